"""The member's verified SQLite copy of the forum: this package alone owns its database.

Every SQL statement on the local copy is in here: the schema and migrations (``schema``),
the reads (``local``, records in ``records``), the sync's writes (``transaction`` and
``view``), the saved key state (``state``), the matcher's index source (``matching``) and the
offline audit (``audit``).  Nothing outside opens a transaction on it.

The boundary.  A sync writes only through one :class:`SyncTransaction` at a time, from
:meth:`LocalStore.begin_sync`; it owns BEGIN, COMMIT and ROLLBACK, the view writes, the
saved sync state and the lookups the content rules ask.  The sync verifies, the transaction
persists:

- :func:`~forum_client.replay.Replay.apply` checks one entry and writes it to the
  transaction (``txn`` is the :class:`~forum_client.replay.ViewSink`);
- :meth:`SyncTransaction.commit` stores the staged rows together with what proves them (the
  replayed key state, the compact range, the signed checkpoint, the consistency proof);
- leaving the ``with`` block without a commit rolls everything back.

Where later work plugs in: checkpoint acceptance is :class:`~forum_client.sync.CheckpointPolicy`
(e.g. a witness quorum), called by the sync's one ``_accept_checkpoint``; an entry served as
its leaf hash only arrives as ``(index, None)`` in a :data:`~forum_client.source.Batch` and is
decided in ``Syncer._apply_batch`` (the range needs only its leaf hash); signature checks
that run ahead of the apply go before :meth:`Replay.apply` in the same loop, which keeps the
one order check (``Syncer._check_position``).

Replaying a log by hand (what the sync and the audit do), with the genesis of a new forum::

    >>> import tempfile, pathlib
    >>> from forum_client.envelope import SigningKey
    >>> from forum_client.merkle import CompactRange
    >>> from forum_client.replay import Replay
    >>> from forum_client.verifier import TrustRoot, make_genesis
    >>> op, log = SigningKey.generate(), SigningKey.generate()
    >>> trust_root = TrustRoot("f.example", op.public_bytes, log.public_bytes, "f.example")
    >>> genesis = make_genesis(trust_root, op, forum_name="Example", created_unix_ms=0)
    >>> with tempfile.TemporaryDirectory() as d, LocalStore(pathlib.Path(d) / "f.db") as store:
    ...     replay = Replay(trust_root, None, CompactRange.empty())
    ...     with store.begin_sync(expected_size=0) as txn:
    ...         replay.apply(0, genesis, genesis.leaf_bytes(), txn)
    ...         txn.commit_replay(replay.state)
    ...     print(replay.size, store.counts()["entries"], store.lookup("md5", "0" * 32))
    1 1 None

(:meth:`SyncTransaction.commit` is the sync's commit, with a verified checkpoint;
``commit_replay`` commits a replay that has none, as the audit's scratch copy does.)

Readers (matching, the CLI, other processes) may read at any time: the database is in WAL
mode, so a reader sees the last committed sync, never half of one.  Two syncs into one file
do not interleave: the second waits for the first's transaction, and if the first moved the
copy meanwhile, it stops with :class:`ConcurrentSyncError` instead of applying entries twice.

Schema (version-controlled by :data:`MIGRATIONS`, a ``sqlite_utils`` ``Migrations`` set):

=================== =========================================================================
table               rows
=================== =========================================================================
forum               the pinned trust root this copy belongs to (one row)
entries             ``idx``, ``leaf``: every log entry's canonical leaf bytes, as verified
signals             ``type``, ``value`` (normalised), ``status`` (``active``/``retracted``),
                    ``first_index``: primary key ``(type, value)``, so lookups by value are
                    one index probe
descriptors         one per member per signal: ``labels`` (JSON list), ``content_type``,
                    ``quality``, ``scope``, ``active``, ``entry_index``
retractions         ``entry_index``, ``position``, ``type``, ``value``, ``member_id``, ``reason``
opinions            the latest opinion of each member on a signal (``kind``, ``note``)
signal_rollup       (a view) opinions rolled up per signal: ``positive``, ``negative``, ``seen``
benign              known-benign signals published by the operator
pdq_changes         ``entry_index``, ``value``: every PDQ value an entry submitted, retracted or
                    (un)listed as benign, written as the sync applies it, so the PDQ index
                    follows the sync without re-reading the log (from the size in
                    ``journal_from`` on)
vpdq_changes        the same for vpdq values (videos), so the video index follows the sync
journal_from        ``type``, ``size``: where each journal starts (added when the first index
                    of that type is opened over the copy; no row, no journal)
members, keys,      membership and key history as the log states it (``valid_from`` is the
member_events       index of the entry that added a key; it signs entries after it)
checkpoints         every signed checkpoint the sync verified
sync_state          one row: verified ``size``, ``compact_range`` bytes, the signed checkpoint
                    it is a verified prefix of, the consistency ``proof`` between the two, and
                    the replayed key state (``log_state``, JSON) so a sync resumes without
                    replaying the log
security_evidence   what a failed verification showed: both checkpoints, the proof, the
                    offending entry; an unacknowledged row blocks further syncs (except a
                    ``leak``: a body this member was not entitled to, reported, not kept)
reader              the member this copy is synced as (one row): what it may read follows
                    from its group membership, so a copy belongs to one member
redacted            entries served as a leaf hash only (scoped to a group the reader was not
                    in at that index): ``idx``, ``leaf_hash``, ``group_id``, the author's
                    ``key_id`` and scope claim ``signature`` (NULL for a leaked entry, which
                    verified in full before its body was dropped)
groups,             sharing groups and their membership history as the log states it
group_events
=================== =========================================================================

Scoped descriptors carry their group in ``scope`` ("" for forum-wide) and their TLP level
in ``tlp`` (``TLP:RED``; "" for entries written before scopes existed).

Roll-up: ``positive`` counts ``agree`` opinions, ``negative`` counts ``disagree`` and
``false_positive``; the verdict is ``disputed`` when both are non-zero, ``none`` when neither.

Raises :class:`~forum_client.errors.StoreError` when the database cannot be opened, read or
written, or was made by a newer version of the SDK.
"""

from __future__ import annotations

from .audit import VerifyReport, verify_store
from .local import DEFAULT_CACHE_MIB, LocalStore
from .records import Descriptor, Evidence, MatchResult, PdqDelta, Rollup, Signal, SyncState
from .schema import ACTIVE, MIGRATIONS, RETRACTED, VIEW_TABLES
from .transaction import ConcurrentSyncError, SyncTransaction

__all__ = [
    "ACTIVE",
    "DEFAULT_CACHE_MIB",
    "MIGRATIONS",
    "RETRACTED",
    "VIEW_TABLES",
    "ConcurrentSyncError",
    "Descriptor",
    "Evidence",
    "LocalStore",
    "MatchResult",
    "PdqDelta",
    "Rollup",
    "Signal",
    "SyncState",
    "SyncTransaction",
    "VerifyReport",
    "verify_store",
]
