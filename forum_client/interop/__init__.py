"""Interop: the forum in the formats and tools members already run.

Everything here starts from the member's **verified** local copy
(:class:`~forum_client.store.LocalStore`), read through its public methods, never from the
server directly:

- :mod:`.export`: ``forum-client export`` to CSV, JSON Lines, STIX 2.1 and MISP, streamed;
- :mod:`.stix` and :mod:`.misp`: the two formats, both ways (export and import);
- :mod:`.mapping`: how each forum signal type is written in STIX, MISP and python-threatexchange;
- :mod:`.pytx_exchange`: a python-threatexchange ``SignalExchangeAPI`` and extension manifest
  (needs the ``pytx`` extra).
"""
