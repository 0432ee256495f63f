"""LocalStore: the member's verified SQLite copy (see :mod:`forum_client.store`)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import sqlite_utils

from ..errors import ConfigError, StoreError
from ..merkle import CompactRange, leaf_hash
from ..signals import normalize
from ..verifier import DisputeRecord, TrustRoot
from .records import Descriptor, Evidence, MatchResult, PdqDelta, Rollup, Signal, SyncState
from .schema import ACTIVE, CHANGE_TABLES, MIGRATIONS, PDQ, is_foreign
from .state import _chunks, split_hashes, state_from_json
from .transaction import SyncTransaction

if TYPE_CHECKING:
    from .matching import Matcher
    from .scan import SignalRecord

_log = logging.getLogger(__name__)

DEFAULT_CACHE_MIB = 128
SPILL_ROWS = 20_000
"""Pending signal rows a grown copy's sync step holds in Python before staging them in SQLite."""
DEFAULT_BUSY_TIMEOUT_SECONDS = 30.0
"""How long a writer waits for another one (e.g. a second sync) before StoreError."""
_CHUNK = 500  # values per SQL IN (...) statement


class LocalStore:
    """The member's SQLite copy.  One writer (the sync); any number of readers.

    ``cache_mib``: SQLite page cache (MiB).  ``busy_timeout_seconds``: how long a write waits
    for another process's write transaction before it gives up with StoreError.  Raises
    StoreError when the file cannot be opened or its schema is newer than this SDK.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        cache_mib: int = DEFAULT_CACHE_MIB,
        clock: Callable[[], float] = time.time,
        busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self._matcher: Matcher | None = None
        try:
            self.con = sqlite3.connect(
                str(self.path),
                isolation_level=None,
                check_same_thread=False,
                timeout=busy_timeout_seconds,
            )
            if is_foreign(self.con):
                self.con.close()
                raise StoreError(
                    f"{self.path} is a SQLite database but not a forum local copy: refusing "
                    "to change it (give the file `forum-client sync --db` made, or a new one)"
                )
            self.con.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a killed process never loses a committed sync; a power cut may
            # lose the last ones, which the next sync fetches again.
            self.con.execute("PRAGMA synchronous=NORMAL")
            self.con.execute(f"PRAGMA cache_size=-{int(cache_mib) * 1024}")
            # Temporary tables and sorts larger than the page cache go to a temporary file
            # (a grown copy's sync stages its steps there), so memory stays bounded.
            self.con.execute("PRAGMA temp_store=FILE")
            self.db = sqlite_utils.Database(self.con)
            known = {m.name for m in MIGRATIONS._migrations}
            unknown = [m.name for m in MIGRATIONS.applied(self.db) if m.name not in known]
            if unknown:
                raise StoreError(
                    f"{self.path}: made by a newer forum_client (migrations {unknown})"
                )
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open local store {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        """Apply the pending migrations and the migrations table itself in one transaction:
        a process killed while creating a new copy leaves an empty file, never a half-made
        schema (sqlite-utils commits the migrations table on its own before the first step)."""
        if not MIGRATIONS.pending(self.db):
            return
        self.con.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS.apply(self.db)  # re-reads what is pending under the write lock
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            if self._matcher is not None:
                self._matcher.close()
        finally:
            self.con.close()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ---- transactions ----

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees one committed snapshot."""
        try:
            self.con.execute("BEGIN")
            try:
                yield self.con
            finally:
                self.con.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"reading {self.path} failed: {exc}") from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any exception)."""
        try:
            self.con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write {self.path}: {exc}") from exc
        try:
            yield self.con
        except BaseException:
            if self.con.in_transaction:
                self.con.execute("ROLLBACK")
            raise
        try:
            self.con.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"commit to {self.path} failed: {exc}") from exc

    # ---- the forum this copy belongs to ----

    def trust_root(self) -> TrustRoot | None:
        row = self.con.execute(
            "SELECT origin, operator_public_key, log_public_key, log_key_name FROM forum"
        ).fetchone()
        if row is None:
            return None
        return TrustRoot(row[0], base64.b64decode(row[1]), base64.b64decode(row[2]), row[3])

    def reader(self) -> str | None:
        """The member this copy is synced as (None before its first sync)."""
        row = self.con.execute("SELECT member_id FROM reader").fetchone()
        return None if row is None else str(row[0])

    def pin(self, root: TrustRoot, reader: str | None = None) -> None:
        """Bind this copy to a forum (and the member reading it) on first use; ConfigError
        if it belongs to another."""
        if reader is not None:
            held = self.reader()
            if held is None:
                with self.write() as con:
                    con.execute("INSERT INTO reader VALUES (1, ?)", (reader,))
            elif held != reader:
                raise ConfigError(
                    f"{self.path} is {held}'s copy (what it holds redacted follows from "
                    f"{held}'s groups), not {reader}'s: use another --db"
                )
        stored = self.trust_root()
        if stored is None:
            with self.write() as con:
                con.execute(
                    "INSERT INTO forum VALUES (1, ?, ?, ?, ?)",
                    (
                        root.origin,
                        base64.b64encode(root.operator_public_key).decode(),
                        base64.b64encode(root.log_public_key).decode(),
                        root.log_key_name,
                    ),
                )
        elif stored != root:
            raise ConfigError(
                f"{self.path} is a copy of forum {stored.origin!r} with other keys than the "
                f"profile's ({root.origin!r}): use another --db"
            )

    # ---- sync state ----

    @property
    def size(self) -> int:
        """How many log entries the copy holds (all verified)."""
        return _size(self.con)

    def sync_state(self) -> SyncState:
        """The last committed verified state, with the key state restored from it."""
        row = self.con.execute(
            "SELECT size, compact_range, checkpoint_note, proof, log_state FROM sync_state"
        ).fetchone()
        if row is None:
            return SyncState(0, CompactRange.empty(), None, (), None)
        size, compact, note, proof, doc = row
        try:
            rng = CompactRange.from_bytes(compact)
            genesis = self.con.execute("SELECT leaf FROM entries WHERE idx = 0").fetchone()
            if genesis is None or rng.size != size:
                raise ValueError("sync state does not match the stored entries")
            state = state_from_json(genesis[0], doc)
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{self.path}: sync state is corrupt ({exc})") from exc
        return SyncState(int(size), rng, bytes(note), split_hashes(proof), state)

    def begin_sync(
        self, expected_size: int | None = None, *, spill_rows: int = SPILL_ROWS
    ) -> SyncTransaction:
        """Open the sync's write transaction (see :class:`SyncTransaction`).

        ``expected_size``: the verified size the caller's replay starts from; if another sync
        moved the copy meanwhile this raises ConcurrentSyncError (a StoreError) instead of
        staging entries twice.  StoreError if another writer keeps the file locked.
        ``spill_rows``: see :class:`SyncTransaction`.
        """
        return SyncTransaction(self, expected_size, spill_rows)

    # ---- reading the view ----

    def lookup(self, type: str, value: str) -> Signal | None:
        """The signal ``(type, value)`` (the value is normalised first) with every member's
        descriptor and the opinion roll-up, or None if the forum never had it.

        Retracted signals are returned with ``status == "retracted"``; matching skips them.
        Raises InvalidInputError for an unknown type or a malformed value.
        """
        return self.signal(type, normalize(type, value))

    def match(self, type: str, value: str, threshold: int = 31) -> list[MatchResult]:
        """Active, non-benign signals matching ``(type, value)``: exact types by value, PDQ
        within Hamming distance ``threshold`` (see :mod:`forum_client.match.lookup`, which
        keeps a PDQ index next to the database and follows the sync).  Raises
        InvalidInputError for a bad type, value or threshold, StoreError."""
        return self.matcher().match(type, value, threshold)

    def matcher(self) -> Matcher:
        """The matcher this store keeps for :meth:`match` (made on first use, closed with
        the store)."""
        if self._matcher is None:
            from .matching import Matcher

            self._matcher = Matcher(self)
        return self._matcher

    def signal(self, type: str, value: str) -> Signal | None:
        """Like :meth:`lookup` for an already normalised value, from one snapshot."""
        with self.read() as con:
            row = con.execute(
                "SELECT status, first_index FROM signals WHERE type = ? AND value = ?",
                (type, value),
            ).fetchone()
            if row is None:
                return None
            return Signal(
                type,
                value,
                row[0],
                row[1],
                self._descriptors(con, type, value),
                self._rollup(con, type, value),
            )

    def descriptors(self, type: str, value: str) -> tuple[Descriptor, ...]:
        """Every member's descriptor on the signal (active or not), by member id."""
        return self._descriptors(self.con, type, value)

    def rollup(self, type: str, value: str) -> Rollup:
        return self._rollup(self.con, type, value)

    @staticmethod
    def _descriptors(con: sqlite3.Connection, type: str, value: str) -> tuple[Descriptor, ...]:
        rows = con.execute(
            "SELECT member_id, labels, content_type, quality, scope, active, entry_index, tlp "
            "FROM descriptors WHERE type = ? AND value = ? ORDER BY member_id",
            (type, value),
        ).fetchall()
        return tuple(
            Descriptor(m, tuple(json.loads(labels)), ct, q, scope, bool(active), idx, tlp)
            for m, labels, ct, q, scope, active, idx, tlp in rows
        )

    @staticmethod
    def _rollup(con: sqlite3.Connection, type: str, value: str) -> Rollup:
        row = con.execute(
            "SELECT positive, negative, seen FROM signal_rollup WHERE type = ? AND value = ?",
            (type, value),
        ).fetchone()
        return Rollup() if row is None else Rollup(int(row[0]), int(row[1]), int(row[2]))

    def opinions(self, type: str, value: str) -> list[tuple[str, str, str]]:
        """``(member_id, kind, note)`` of every member's latest opinion on the signal."""
        return [
            (m, k, n)
            for m, k, n in self.con.execute(
                "SELECT member_id, kind, note FROM opinions WHERE type = ? AND value = ? "
                "ORDER BY member_id",
                (type, value),
            )
        ]

    def counts(self) -> dict[str, int]:
        """Row counts: entries, signals (and active ones), descriptors, opinions, retractions."""
        queries = {
            "entries": "SELECT COUNT(*) FROM entries",
            "signals": "SELECT COUNT(*) FROM signals",
            "active_signals": "SELECT COUNT(*) FROM signals WHERE status = 'active'",
            "descriptors": "SELECT COUNT(*) FROM descriptors",
            "opinions": "SELECT COUNT(*) FROM opinions",
            "retractions": "SELECT COUNT(*) FROM retractions",
            "redacted": "SELECT COUNT(*) FROM redacted",
        }
        with self.read() as con:
            return {k: int(con.execute(sql).fetchone()[0]) for k, sql in queries.items()}

    def scan(
        self, *, since: int = 0, include_retracted: bool = True, page: int = 1000
    ) -> Iterator[SignalRecord]:
        """Every signal with all the copy knows about it (descriptors, opinions, whether it is
        benign, the last log index that changed it), in ``(type, value)`` order, streamed a
        page at a time from one read snapshot (:mod:`forum_client.store.scan`).

        ``since`` keeps the signals changed by an entry at or after that log index;
        ``include_retracted=False`` drops retracted signals.  Raises StoreError.
        """
        from .scan import scan

        with self.read() as con:
            for record in scan(con, since, page):
                if include_retracted or record.signal.active:
                    yield record

    def changed(
        self, start: int, end: int | None = None, *, chunk: int = 10_000
    ) -> Iterator[tuple[int, list[SignalRecord]]]:
        """The current records of the signals that entries in ``[start, end)`` touched, a
        chunk at a time: yields ``(upto, records)`` where every signal an entry in
        ``[start, upto)`` touched is in these records or earlier ones, so ``upto`` is a
        checkpoint to resume from.  A chunk closes at an entry boundary once it holds
        ``chunk`` distinct signals; a signal touched again in a later chunk comes again (its
        current record both times).  Memory: one chunk; queries: a few per 500 signals, not
        per signal.  Raises StoreError."""
        from .scan import changed_keys, records

        stop = self.size if end is None else end
        with self.read() as con:
            keys: dict[tuple[str, str], None] = {}
            last = start - 1
            for index, key in changed_keys(self.leaves(start, stop)):
                if index != last and len(keys) >= chunk:
                    yield index, list(records(con, keys))
                    keys = {}
                last = index
                keys[key] = None
            if keys or start < stop:
                yield stop, list(records(con, keys))

    def redacted_groups(self) -> set[str]:
        """The groups this copy holds entries of as leaf hashes only."""
        return {str(g) for (g,) in self.con.execute("SELECT DISTINCT group_id FROM redacted")}

    def labelled(self, label: str) -> list[tuple[str, str, str, bool]]:
        """``(type, value, member_id, active)`` of every descriptor carrying ``label``, in
        log order (e.g. the signals of incident ``x``: ``labelled("incident:x")``)."""
        with self.read() as con:
            rows = con.execute(
                "SELECT type, value, member_id, active FROM descriptors "
                "WHERE instr(labels, ?) > 0 ORDER BY entry_index, type, value",
                (json.dumps(label),),  # labels are a JSON array of label ids
            ).fetchall()
        return [(str(t), str(v), str(m), bool(a)) for t, v, m, a in rows]

    def disputes(self) -> list[DisputeRecord]:
        """Every dispute in the verified copy, oldest first, with where it stands."""
        with self.read() as con:
            row = con.execute("SELECT log_state FROM sync_state").fetchone()
        if row is None or not row[0]:
            return []
        records = [DisputeRecord(*d) for d in json.loads(row[0]).get("disputes", [])]
        return sorted(records, key=lambda d: d.opened_at)

    def redacted(self) -> list[tuple[int, bytes, str, str]]:
        """``(index, leaf hash, group, author)`` of every entry held as its leaf hash only."""
        return [
            (int(i), bytes(h), g, str(m or "?"))
            for i, h, g, m in self.con.execute(
                "SELECT r.idx, r.leaf_hash, r.group_id, k.member_id FROM redacted r "
                "LEFT JOIN keys k ON k.key_id = r.key_id ORDER BY r.idx"
            )
        ]

    def leaf_hashes(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
        """``(index, leaf hash)`` of every stored entry in order, redacted ones included:
        what the log's root is computed from."""
        for idx, leaf, redacted_hash in self.log_leaves(start, end):
            yield idx, leaf_hash(leaf) if leaf is not None else redacted_hash or b""

    def log_leaves(
        self, start: int = 0, end: int | None = None
    ) -> Iterator[tuple[int, bytes | None, bytes | None]]:
        """``(index, leaf bytes, None)`` of each full entry and ``(index, None, leaf hash)``
        of each redacted one, in log order."""
        stop = self.size if end is None else end
        cur = self.con.execute(
            "SELECT idx, CAST(leaf AS BLOB), NULL FROM entries WHERE idx >= ?1 AND idx < ?2 "
            "UNION ALL SELECT idx, NULL, leaf_hash FROM redacted WHERE idx >= ?1 AND idx < ?2 "
            "ORDER BY idx",
            (start, stop),
        )
        for idx, leaf, redacted_hash in cur:
            yield (
                int(idx),
                None if leaf is None else bytes(leaf),
                None if redacted_hash is None else bytes(redacted_hash),
            )

    def leaves(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Stored ``(index, leaf bytes)`` in order (streamed)."""
        stop = self.size if end is None else end
        cur = self.con.execute(
            "SELECT idx, leaf FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, stop),
        )
        for idx, leaf in cur:
            yield int(idx), bytes(leaf)

    # ---- what the matcher reads ----

    def matches(self, type: str, candidates: list[tuple[str, int]]) -> list[MatchResult]:
        """The candidates ``(normalised value, distance)`` that are active, not benign and
        have an active descriptor, as match results, from one snapshot."""
        out = []
        with self.read() as con:
            for value, dist in candidates:
                row = con.execute(
                    "SELECT status, first_index FROM signals WHERE type = ? AND value = ? "
                    "AND NOT EXISTS (SELECT 1 FROM benign b WHERE b.type = signals.type "
                    "AND b.value = signals.value)",
                    (type, value),
                ).fetchone()
                if row is None or row[0] != ACTIVE:
                    continue
                active = tuple(d for d in self._descriptors(con, type, value) if d.active)
                if not active:
                    continue
                rollup = self._rollup(con, type, value)
                out.append(MatchResult(type, value, dist, int(row[1]), active, rollup))
        return out

    def active_pdq_values(self) -> tuple[int, bytes, list[str]]:
        """:meth:`indexed_values` of PDQ."""
        return self.indexed_values(PDQ)

    def indexed_values(self, type: str) -> tuple[int, bytes, list[str]]:
        """``(size, tail, values)``: every active, non-benign value of ``type`` (one of
        :data:`~forum_client.store.schema.CHANGE_TABLES`), with the copy's size and the
        SHA-256 of its last leaf, from one snapshot."""
        _change_table(type)
        with self.read() as con:
            size = _size(con)
            values = [
                v
                for (v,) in con.execute(
                    "SELECT value FROM signals WHERE type = ? AND status = ? AND NOT EXISTS "
                    "(SELECT 1 FROM benign b WHERE b.type = ? AND b.value = signals.value)",
                    (type, ACTIVE, type),
                )
            ]
            return size, _leaf_digest(con, size - 1) if size else b"", values

    def follow_journal(self, type: str) -> int | None:
        """Have the sync journal ``type``'s changes from now on, for an index about to be
        built or loaded (see :data:`~forum_client.store.schema.JOURNAL_FROM`); return the size
        the journal starts at.  The row is added in a write transaction of its own, at the
        copy's size then, so any sync that commits later journals every entry it applies.
        None when the copy cannot be written (read-only, or another writer held it past the
        busy timeout): the index then cannot follow and is rebuilt whenever the copy grew."""
        _change_table(type)
        start = _journal_start(self.con, type)
        if start is not None:
            return start
        try:
            with self.write() as con:
                con.execute(
                    "INSERT OR IGNORE INTO journal_from SELECT ?, "
                    "coalesce((SELECT size FROM sync_state), 0)",
                    (type,),
                )
                return _journal_start(con, type)
        except (StoreError, sqlite3.Error) as exc:
            _log.info(
                "%s: the %s index cannot follow the sync (%s): rebuilt when it lags",
                self.path,
                type,
                exc,
            )
            return None

    def has_prefix(self, size: int, tail: bytes) -> bool:
        """Whether the copy holds at least ``size`` entries, the last of them hashing to
        ``tail`` (SHA-256 of the leaf; anything for ``size`` 0)."""
        with self.read() as con:
            return _size(con) >= size and (size == 0 or _leaf_digest(con, size - 1) == tail)

    def pdq_changes_since(self, size: int, tail: bytes) -> PdqDelta | None:
        """:meth:`changes_since` of PDQ."""
        return self.changes_since(PDQ, size, tail)

    def changes_since(self, type: str, size: int, tail: bytes) -> PdqDelta | None:
        """What the entries after ``size`` changed for the index of ``type`` (PDQ or vpdq; see
        :class:`PdqDelta`), from the journal the sync writes; None when the copy does not
        extend ``(size, tail)`` (it was replaced) or the journal does not reach back to
        ``size`` (see :meth:`follow_journal`): rebuild."""
        table = _change_table(type)
        with self.read() as con:
            now = _size(con)
            if now < size or (size and now and _leaf_digest(con, size - 1) != tail):
                return None
            if now == size:
                return PdqDelta(size, tail, (), frozenset())
            start = _journal_start(con, type)
            if start is None or start > size:  # not journaled that far back: rebuild
                return None
            touched = [
                v
                for (v,) in con.execute(
                    f"SELECT value FROM {table} WHERE entry_index >= ? AND entry_index < ? "
                    "GROUP BY value ORDER BY MIN(entry_index), value",
                    (size, now),
                )
            ]
            active: set[str] = set()
            for start in range(0, len(touched), _CHUNK):
                chunk = touched[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                active.update(
                    v
                    for (v,) in con.execute(
                        f"SELECT value FROM signals WHERE type = ? AND status = ? "
                        f"AND value IN ({marks}) AND NOT EXISTS (SELECT 1 FROM benign b "
                        "WHERE b.type = ? AND b.value = signals.value)",
                        (type, ACTIVE, *chunk, type),
                    )
                )
            return PdqDelta(now, _leaf_digest(con, now - 1), tuple(touched), frozenset(active))

    # ---- security evidence ----

    def record_evidence(
        self,
        what: str,
        message: str,
        *,
        entry_index: int | None = None,
        stored_checkpoint: bytes | None = None,
        served_checkpoint: bytes | None = None,
        proof: tuple[bytes, ...] = (),
        entry: bytes | None = None,
    ) -> int:
        """Keep what a failed verification showed (its own transaction); return its id."""
        with self.write() as con:
            return self.insert_evidence(
                con,
                what,
                message,
                entry_index=entry_index,
                stored_checkpoint=stored_checkpoint,
                served_checkpoint=served_checkpoint,
                proof=proof,
                entry=entry,
            )

    def insert_evidence(
        self,
        con: sqlite3.Connection,
        what: str,
        message: str,
        *,
        entry_index: int | None = None,
        stored_checkpoint: bytes | None = None,
        served_checkpoint: bytes | None = None,
        proof: tuple[bytes, ...] = (),
        entry: bytes | None = None,
    ) -> int:
        """:meth:`record_evidence` inside the caller's open write transaction."""
        cur = con.execute(
            "INSERT INTO security_evidence (detected_unix_ms, what, entry_index, message, "
            "stored_checkpoint, served_checkpoint, proof, entry) VALUES (?,?,?,?,?,?,?,?)",
            (
                self.now_ms(),
                what,
                entry_index,
                message,
                stored_checkpoint,
                served_checkpoint,
                b"".join(proof),
                entry,
            ),
        )
        return int(cur.lastrowid or 0)

    def evidence(
        self, *, include_acknowledged: bool = False, blocking: bool = False
    ) -> list[Evidence]:
        """Kept evidence, oldest first: the open pieces (or all); with ``blocking`` only
        those that stop syncs (every kind but a reported ``leak``)."""
        sql = (
            "SELECT id, detected_unix_ms, what, entry_index, message, stored_checkpoint, "
            "served_checkpoint, proof, entry, acknowledged_unix_ms FROM security_evidence"
        )
        if not include_acknowledged:
            sql += " WHERE acknowledged_unix_ms IS NULL"
            if blocking:
                sql += " AND what != 'leak'"
        return [
            Evidence(i, t, w, idx, m, sc, vc, _chunks(p or b""), en, ack)
            for i, t, w, idx, m, sc, vc, p, en, ack in self.con.execute(sql + " ORDER BY id")
        ]

    def acknowledge_evidence(self) -> int:
        """Mark every open piece of evidence as seen; syncs may run again.  Returns how many."""
        with self.write() as con:
            return con.execute(
                "UPDATE security_evidence SET acknowledged_unix_ms = ? "
                "WHERE acknowledged_unix_ms IS NULL",
                (self.now_ms(),),
            ).rowcount


def _size(con: sqlite3.Connection) -> int:
    row = con.execute("SELECT size FROM sync_state").fetchone()
    return 0 if row is None else int(row[0])


def _journal_start(con: sqlite3.Connection, type: str) -> int | None:
    """Where the journal of ``type`` starts (JOURNAL_FROM), None if it is not kept."""
    row = con.execute("SELECT size FROM journal_from WHERE type = ?", (type,)).fetchone()
    return None if row is None else int(row[0])


def _leaf_digest(con: sqlite3.Connection, idx: int) -> bytes:
    row = con.execute("SELECT leaf FROM entries WHERE idx = ?", (idx,)).fetchone()
    if row is None:  # an entry held redacted: its leaf hash stands for it
        row = con.execute("SELECT leaf_hash FROM redacted WHERE idx = ?", (idx,)).fetchone()
    return b"" if row is None else hashlib.sha256(bytes(row[0])).digest()


def _change_table(type: str) -> str:
    """The journal table of a type whose index follows the sync (ValueError for another)."""
    try:
        return CHANGE_TABLES[type]
    except KeyError:
        raise ValueError(f"no matcher index follows {type!r} signals") from None
