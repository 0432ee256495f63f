"""Signal types: parse, normalise and validate the values members share.

A *signal* is a ``(type, value)`` pair such as a PDQ hash of an image or the URL of a page.  Two
members who hold the same content must produce byte-identical values, so every value goes through
its type's :meth:`SignalType.normalize` before it is signed, stored or compared.  Normalisation is
idempotent: ``normalize(t, normalize(t, v)) == normalize(t, v)`` for every accepted ``v``.

>>> Signal.parse("md5", " D41D8CD98F00B204E9800998ECF8427E ")
Signal(type='md5', value='d41d8cd98f00b204e9800998ecf8427e')
>>> normalize("url", "HTTP://Example.COM:80/a/./b/../c?x=1#frag")
'http://example.com/a/c?x=1'
>>> normalize("domain", "Bücher.example.")
'xn--bcher-kva.example'
>>> get_signal_type("pdq").default_content_type
<ContentType.IMAGE: 'image'>

Every failure raises :class:`~forum_client.errors.InvalidInputError` whose single violation names
the field (``"type"`` or ``"value"``) and says precisely why.

Adding a type is one module: subclass :class:`SignalType` (from
:mod:`forum_client.signals.base`), decorate it with :func:`register` and add the module to the
import list below.
"""

from __future__ import annotations

# The built-in types register themselves on import.
from forum_client.signals import domain, hashes, pdq, url, versions, vpdq
from forum_client.signals.base import (
    SIGNAL_TYPES,
    ContentType,
    Signal,
    SignalType,
    get_signal_type,
    normalize,
    register,
)

__all__ = [
    "SIGNAL_TYPES",
    "ContentType",
    "Signal",
    "SignalType",
    "domain",
    "get_signal_type",
    "hashes",
    "normalize",
    "pdq",
    "register",
    "url",
    "versions",
    "vpdq",
]
