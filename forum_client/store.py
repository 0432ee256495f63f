"""LocalStore: a member's verified SQLite copy of the forum.

Only :mod:`forum_client.sync` writes it, and only what it has verified: every row of the
view comes from an entry whose signature, key, sequence, membership and content rules were
checked, under a signed checkpoint whose root the sync recomputed.  Readers (matching, the
CLI, other processes) may read at any time: the database is in WAL mode, so a reader sees
the last committed sync, never half of one.

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

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d, LocalStore(pathlib.Path(d) / "f.db") as store:
    ...     print(store.size, store.lookup("md5", "D41D8CD98F00B204E9800998ECF8427E"))
    0 None

Raises :class:`~forum_client.errors.StoreError` when the database cannot be opened, read or
written, or was made by a newer version of the SDK.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .errors import ConfigError, StoreError
from .merkle import CompactRange
from .signals import normalize
from .store_state import _chunks, split_hashes, state_from_json, state_to_json, write_log_tables
from .verifier import DisputeRecord, LogState, TrustRoot

if TYPE_CHECKING:
    from .match.lookup import MatchResult
    from .store_scan import SignalRecord

MIGRATIONS = Migrations("forum_client.store")
"""The schema's migration set; each step runs once, in a transaction, in order."""

DEFAULT_CACHE_MIB = 128
ACTIVE, RETRACTED = "active", "retracted"
VIEW_TABLES = (
    "signals",
    "descriptors",
    "retractions",
    "opinions",
    "benign",
    "members",
    "keys",
    "member_events",
    "groups",
    "group_events",
)
"""Tables derived from ``entries``: ``forum-client verify`` recomputes and compares them."""


@MIGRATIONS(name="m001_initial")
def _m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE forum (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            origin TEXT NOT NULL,
            operator_public_key TEXT NOT NULL,
            log_public_key TEXT NOT NULL,
            log_key_name TEXT NOT NULL
        );
        CREATE TABLE entries (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL);
        CREATE TABLE signals (
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            status TEXT NOT NULL,
            first_index INTEGER NOT NULL,
            PRIMARY KEY (type, value)
        ) WITHOUT ROWID;
        CREATE TABLE descriptors (
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            member_id TEXT NOT NULL,
            labels TEXT NOT NULL,
            content_type TEXT NOT NULL,
            quality INTEGER,
            scope TEXT NOT NULL,
            active INTEGER NOT NULL,
            entry_index INTEGER NOT NULL,
            PRIMARY KEY (type, value, member_id)
        ) WITHOUT ROWID;
        CREATE TABLE retractions (
            entry_index INTEGER NOT NULL,
            position INTEGER NOT NULL,
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            member_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (entry_index, position)
        );
        CREATE INDEX retractions_signal ON retractions (type, value);
        CREATE TABLE opinions (
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            member_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            note TEXT NOT NULL,
            entry_index INTEGER NOT NULL,
            PRIMARY KEY (type, value, member_id)
        ) WITHOUT ROWID;
        CREATE VIEW signal_rollup AS
            SELECT type, value,
                   SUM(kind = 'agree') AS positive,
                   SUM(kind IN ('disagree', 'false_positive')) AS negative,
                   SUM(kind = 'seen') AS seen
            FROM opinions GROUP BY type, value;
        CREATE TABLE benign (
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            entry_index INTEGER NOT NULL,
            PRIMARY KEY (type, value)
        ) WITHOUT ROWID;
        CREATE TABLE members (
            member_id TEXT PRIMARY KEY,
            display_name TEXT NOT NULL,
            role TEXT NOT NULL,
            status TEXT NOT NULL,
            admitted_at INTEGER NOT NULL
        );
        CREATE TABLE member_events (
            member_id TEXT NOT NULL,
            entry_index INTEGER NOT NULL,
            status TEXT NOT NULL,
            PRIMARY KEY (member_id, entry_index)
        );
        CREATE TABLE keys (
            key_id BLOB PRIMARY KEY,
            member_id TEXT NOT NULL,
            public_key BLOB NOT NULL,
            valid_from INTEGER NOT NULL,
            valid_until INTEGER
        );
        CREATE INDEX keys_member ON keys (member_id);
        CREATE TABLE checkpoints (
            size INTEGER PRIMARY KEY,
            root BLOB NOT NULL,
            note BLOB NOT NULL,
            verified_unix_ms INTEGER NOT NULL
        );
        CREATE TABLE sync_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            size INTEGER NOT NULL,
            compact_range BLOB NOT NULL,
            checkpoint_note BLOB NOT NULL,
            proof BLOB NOT NULL,
            log_state TEXT NOT NULL,
            updated_unix_ms INTEGER NOT NULL
        );
        CREATE TABLE security_evidence (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            detected_unix_ms INTEGER NOT NULL,
            what TEXT NOT NULL,
            entry_index INTEGER,
            message TEXT NOT NULL,
            stored_checkpoint BLOB,
            served_checkpoint BLOB,
            proof BLOB,
            entry BLOB,
            acknowledged_unix_ms INTEGER
        );
        """
    )


@MIGRATIONS(name="m002_scopes")
def _m002_scopes(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE reader (id INTEGER PRIMARY KEY CHECK (id = 1), member_id TEXT NOT NULL);
        CREATE TABLE redacted (
            idx INTEGER PRIMARY KEY,
            leaf_hash BLOB NOT NULL,
            group_id TEXT NOT NULL,
            key_id BLOB NOT NULL,
            signature BLOB
        );
        CREATE INDEX redacted_group ON redacted (group_id);
        ALTER TABLE descriptors ADD COLUMN tlp TEXT NOT NULL DEFAULT '';
        CREATE TABLE groups (
            group_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            description TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            closed_at INTEGER
        );
        CREATE TABLE group_events (
            group_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            entry_index INTEGER NOT NULL,
            member INTEGER NOT NULL,
            PRIMARY KEY (group_id, member_id, entry_index)
        );
        """
    )


# ---- what readers get ----


@dataclass(frozen=True)
class Descriptor:
    """One member's description of a signal."""

    member_id: str
    labels: tuple[str, ...]
    content_type: str
    quality: int | None
    scope: str  # "" forum-wide, else the group it was shared with
    active: bool
    entry_index: int
    tlp: str = ""  # "TLP:RED" style; "" for entries written before scopes existed


@dataclass(frozen=True)
class Rollup:
    """Opinions on a signal, one per member (the latest), rolled up."""

    positive: int = 0
    negative: int = 0
    seen: int = 0

    @property
    def verdict(self) -> str:
        """``positive``, ``negative``, ``disputed`` (both) or ``none``."""
        if self.positive and self.negative:
            return "disputed"
        if self.positive:
            return "positive"
        return "negative" if self.negative else "none"


@dataclass(frozen=True)
class Signal:
    """A signal as the local copy knows it, with every member's descriptor."""

    type: str
    value: str
    status: str
    first_index: int
    descriptors: tuple[Descriptor, ...]
    rollup: Rollup

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label of the active descriptors, each once, sorted."""
        return tuple(sorted({x for d in self.descriptors if d.active for x in d.labels}))


@dataclass(frozen=True)
class SyncState:
    """What the last committed sync verified (``size`` 0 and no checkpoint for a new copy)."""

    size: int
    compact_range: CompactRange
    checkpoint_note: bytes | None
    proof: tuple[bytes, ...]
    log_state: LogState | None


@dataclass(frozen=True)
class Evidence:
    """A verification failure, kept until the member acknowledges it."""

    id: int
    detected_unix_ms: int
    what: str
    entry_index: int | None
    message: str
    stored_checkpoint: bytes | None
    served_checkpoint: bytes | None
    proof: tuple[bytes, ...]
    entry: bytes | None
    acknowledged_unix_ms: int | None


# ---- the store ----


class LocalStore:
    """The member's SQLite copy.  One writer (the sync); any number of readers.

    Raises StoreError when the file cannot be opened or its schema is newer than this SDK.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        cache_mib: int = DEFAULT_CACHE_MIB,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        try:
            self.con = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30
            )
            self.con.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a killed process never loses a committed sync; a power cut may
            # lose the last ones, which the next sync fetches again.
            self.con.execute("PRAGMA synchronous=NORMAL")
            self.con.execute(f"PRAGMA cache_size=-{int(cache_mib) * 1024}")
            self.con.execute("PRAGMA temp_store=MEMORY")
            self.db = sqlite_utils.Database(self.con)
            known = {m.name for m in MIGRATIONS._migrations}
            unknown = [m.name for m in MIGRATIONS.applied(self.db) if m.name not in known]
            if unknown:
                raise StoreError(
                    f"{self.path}: made by a newer forum_client (migrations {unknown})"
                )
            MIGRATIONS.apply(self.db)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open local store {self.path}: {exc}") from exc

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
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
        row = self.con.execute("SELECT size FROM sync_state").fetchone()
        return 0 if row is None else int(row[0])

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

    def save_sync_state(
        self,
        con: sqlite3.Connection,
        state: LogState,
        rng: CompactRange,
        checkpoint_note: bytes,
        checkpoint_size: int,
        checkpoint_root: bytes,
        proof: tuple[bytes, ...],
    ) -> None:
        """Inside the sync's write transaction: record what was just verified."""
        now = self.now_ms()
        con.execute(
            "INSERT OR REPLACE INTO sync_state VALUES (1, ?, ?, ?, ?, ?, ?)",
            (rng.size, rng.to_bytes(), checkpoint_note, b"".join(proof), state_to_json(state), now),
        )
        con.execute(
            "INSERT OR IGNORE INTO checkpoints VALUES (?, ?, ?, ?)",
            (checkpoint_size, checkpoint_root, checkpoint_note, now),
        )
        write_log_tables(con, state)

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
        from .match.lookup import matcher_for

        return matcher_for(self).match(type, value, threshold)

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
        page at a time from one read snapshot (:mod:`forum_client.store_scan`).

        ``since`` keeps the signals changed by an entry at or after that log index;
        ``include_retracted=False`` drops retracted signals.  Raises StoreError.
        """
        from .store_scan import scan

        with self.read() as con:
            for record in scan(con, since, page):
                if include_retracted or record.signal.active:
                    yield record

    def changed(self, start: int, end: int | None = None) -> Iterator[SignalRecord]:
        """The current record of every signal that an entry in ``[start, end)`` touched, once
        each, in the order of the first entry that touched it (memory: the keys of the
        signals changed in that range).  Raises StoreError."""
        from .store_scan import changed_keys, records

        def keys() -> Iterator[tuple[str, str]]:
            seen: set[tuple[str, str]] = set()
            for _, key in changed_keys(self.leaves(start, end)):
                if key not in seen:
                    seen.add(key)
                    yield key

        ordered = list(keys())
        with self.read() as con:
            yield from records(con, ordered)

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

    def leaves(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Stored ``(index, leaf bytes)`` in order (streamed)."""
        stop = self.size if end is None else end
        cur = self.con.execute(
            "SELECT idx, leaf FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, stop),
        )
        for idx, leaf in cur:
            yield int(idx), bytes(leaf)

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
