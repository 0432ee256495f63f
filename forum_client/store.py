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
                    offending entry; an unacknowledged row blocks further syncs
=================== =========================================================================

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
from typing import TYPE_CHECKING, Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from . import entries as e
from .errors import ConfigError, StoreError
from .merkle import CompactRange
from .signals import normalize
from .verifier import KeyRecord, LogState, MemberRecord, TrustRoot

if TYPE_CHECKING:
    from .match.lookup import MatchResult

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


# ---- what readers get ----


@dataclass(frozen=True)
class Descriptor:
    """One member's description of a signal."""

    member_id: str
    labels: tuple[str, ...]
    content_type: str
    quality: int | None
    scope: str
    active: bool
    entry_index: int


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

    def pin(self, root: TrustRoot) -> None:
        """Bind this copy to a forum on first use; ConfigError if it belongs to another."""
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
            "SELECT member_id, labels, content_type, quality, scope, active, entry_index "
            "FROM descriptors WHERE type = ? AND value = ? ORDER BY member_id",
            (type, value),
        ).fetchall()
        return tuple(
            Descriptor(m, tuple(json.loads(labels)), ct, q, scope, bool(active), idx)
            for m, labels, ct, q, scope, active, idx in rows
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
        }
        with self.read() as con:
            return {k: int(con.execute(sql).fetchone()[0]) for k, sql in queries.items()}

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

    def evidence(self, *, include_acknowledged: bool = False) -> list[Evidence]:
        sql = (
            "SELECT id, detected_unix_ms, what, entry_index, message, stored_checkpoint, "
            "served_checkpoint, proof, entry, acknowledged_unix_ms FROM security_evidence"
        )
        if not include_acknowledged:
            sql += " WHERE acknowledged_unix_ms IS NULL"
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


# ---- writing the view (the sync's hot path) ----


def _labels_json(labels: tuple[str, ...]) -> str:
    # Label ids are [a-z0-9:-] (checked by the content rules before this runs), so this is
    # valid JSON without json.dumps' per-call cost.
    return '["' + '","'.join(labels) + '"]' if labels else "[]"


class ViewWriter:
    """Applies verified bodies to the view tables, batching rows for ``executemany``.

    Also the :class:`~forum_client.rules.SignalLookup` the content rules ask, answering from
    the open transaction (pending rows are flushed first).
    """

    SIGNAL_SQL = (
        "INSERT INTO signals (type, value, status, first_index) VALUES (?, ?, 'active', ?) "
        "ON CONFLICT (type, value) DO UPDATE SET status = 'active' WHERE status != 'active'"
    )
    DESCRIPTOR_SQL = "INSERT OR REPLACE INTO descriptors VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)"
    ENTRY_SQL = "INSERT INTO entries (idx, leaf) VALUES (?, ?)"

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con
        self.entry_rows: list[tuple[int, bytes]] = []
        self.signal_rows: list[tuple[str, str, int]] = []
        self.descriptor_rows: list[tuple[Any, ...]] = []
        self.signals_applied = 0
        self.rows_staged = 0  # entries and signals since this writer began

    @property
    def pending_rows(self) -> int:
        return len(self.signal_rows) + len(self.entry_rows)

    def flush(self) -> None:
        con = self.con
        if self.entry_rows:
            con.executemany(self.ENTRY_SQL, self.entry_rows)
            self.entry_rows = []
        if self.signal_rows:
            con.executemany(self.SIGNAL_SQL, self.signal_rows)
            con.executemany(self.DESCRIPTOR_SQL, self.descriptor_rows)
            self.signal_rows = []
            self.descriptor_rows = []

    # SignalLookup
    def signal_exists(self, type: str, value: str) -> bool:
        self.flush()
        return (
            self.con.execute(
                "SELECT 1 FROM signals WHERE type = ? AND value = ?", (type, value)
            ).fetchone()
            is not None
        )

    def submitted_by(self, member_id: str, type: str, value: str) -> bool:
        self.flush()
        return (
            self.con.execute(
                "SELECT 1 FROM descriptors WHERE type = ? AND value = ? AND member_id = ? "
                "AND active = 1",
                (type, value, member_id),
            ).fetchone()
            is not None
        )

    def add_entry(self, index: int, leaf: bytes) -> None:
        self.entry_rows.append((index, leaf))
        self.rows_staged += 1

    def apply(self, index: int, body: e.Body, state: LogState) -> None:
        """Apply one verified body (after LogState.apply and the content rules passed)."""
        if isinstance(body, e.Submission):
            member, scope = body.header.member_id, body.scope
            signals = body.signals
            self.signal_rows += [(s.type, s.value, index) for s in signals]
            self.descriptor_rows += [
                (
                    s.type,
                    s.value,
                    member,
                    _labels_json(s.labels),
                    s.content_type,
                    s.quality,
                    scope,
                    index,
                )
                for s in signals
            ]
            self.signals_applied += len(signals)
            self.rows_staged += len(signals)
        elif isinstance(body, e.Retraction):
            self._retract(index, body, state)
        elif isinstance(body, e.Opinion):
            self.flush()
            self.con.execute(
                "INSERT OR REPLACE INTO opinions VALUES (?, ?, ?, ?, ?, ?)",
                (
                    body.signal.type,
                    body.signal.value,
                    body.header.member_id,
                    body.kind.name.lower(),
                    body.note,
                    index,
                ),
            )
        elif isinstance(body, e.BenignList):
            self.flush()
            self.con.executemany(
                "INSERT OR REPLACE INTO benign VALUES (?, ?, ?)",
                [(r.type, r.value, index) for r in body.add],
            )
            self.con.executemany(
                "DELETE FROM benign WHERE type = ? AND value = ?",
                [(r.type, r.value) for r in body.remove],
            )

    def _retract(self, index: int, body: e.Retraction, state: LogState) -> None:
        self.flush()
        author = body.header.member_id
        refs = [(r.type, r.value) for r in body.signals]
        con = self.con
        con.executemany(
            "INSERT INTO retractions VALUES (?, ?, ?, ?, ?, ?)",
            [(index, i, t, v, author, body.reason) for i, (t, v) in enumerate(refs)],
        )
        if state.members[author].role is e.Role.OPERATOR:
            con.executemany("UPDATE descriptors SET active = 0 WHERE type = ? AND value = ?", refs)
        else:
            con.executemany(
                "UPDATE descriptors SET active = 0 WHERE type = ? AND value = ? AND member_id = ?",
                [(t, v, author) for t, v in refs],
            )
        con.executemany(
            "UPDATE signals SET status = CASE WHEN EXISTS (SELECT 1 FROM descriptors d WHERE "
            "d.type = signals.type AND d.value = signals.value AND d.active = 1) "
            "THEN 'active' ELSE 'retracted' END WHERE type = ? AND value = ?",
            refs,
        )


def write_log_tables(con: sqlite3.Connection, state: LogState) -> None:
    """Rewrite members, member_events and keys from the replayed key state (small)."""
    con.execute("DELETE FROM members")
    con.execute("DELETE FROM member_events")
    con.execute("DELETE FROM keys")
    con.executemany(
        "INSERT INTO members VALUES (?, ?, ?, ?, ?)",
        [
            (m.member_id, m.display_name, m.role.label, m.status.label, m.admitted_at)
            for m in state.members.values()
        ],
    )
    con.executemany(
        "INSERT INTO member_events VALUES (?, ?, ?)",
        [(m.member_id, i, s.label) for m in state.members.values() for i, s in m.history],
    )
    con.executemany(
        "INSERT INTO keys VALUES (?, ?, ?, ?, ?)",
        [
            (k.key_id, k.member_id, k.public_key, k.valid_from, k.valid_until)
            for k in state.keys.values()
        ],
    )


# ---- key state <-> JSON (never pickle) ----


def state_to_json(state: LogState) -> str:
    doc = {
        "size": state.size,
        "members": [
            [
                m.member_id,
                m.display_name,
                int(m.role),
                int(m.status),
                m.admitted_at,
                [[i, int(s)] for i, s in m.history],
            ]
            for m in state.members.values()
        ],
        "keys": [
            [k.key_id.hex(), k.member_id, k.public_key.hex(), k.valid_from, k.valid_until]
            for k in state.keys.values()
        ],
        "last_sequence": {kid.hex(): seq for kid, seq in state.last_sequence.items()},
        "taxonomy_version": state.taxonomy_version,
        "labels": [[x.id, x.kind, x.title, x.description] for x in state.labels.values()],
        "incidents": state.incidents,
    }
    return json.dumps(doc, separators=(",", ":"))


def state_from_json(genesis_leaf: bytes, text: str) -> LogState:
    """Rebuild a LogState saved by :func:`state_to_json` (the genesis entry is re-verified)."""
    from .envelope import Envelope

    state = LogState.from_genesis(Envelope.from_leaf_bytes(genesis_leaf))
    doc = json.loads(text)
    state.size = int(doc["size"])
    state.members = {
        m[0]: MemberRecord(
            m[0],
            m[1],
            e.Role(m[2]),
            e.MemberStatus(m[3]),
            int(m[4]),
            [(int(i), e.MemberStatus(s)) for i, s in m[5]],
        )
        for m in doc["members"]
    }
    state.keys = {
        bytes.fromhex(k[0]): KeyRecord(
            bytes.fromhex(k[0]),
            k[1],
            bytes.fromhex(k[2]),
            int(k[3]),
            None if k[4] is None else int(k[4]),
        )
        for k in doc["keys"]
    }
    state.last_sequence = {bytes.fromhex(k): int(v) for k, v in doc["last_sequence"].items()}
    state.taxonomy_version = int(doc["taxonomy_version"])
    state.labels = {x[0]: e.Label(x[0], x[1], x[2], x[3]) for x in doc["labels"]}
    state.incidents = {str(k): bool(v) for k, v in doc["incidents"].items()}
    return state


def _chunks(data: bytes) -> tuple[bytes, ...]:
    """Evidence proofs as served: 32-byte pieces, even when the server sent malformed ones."""
    return tuple(bytes(data[i : i + 32]) for i in range(0, len(data), 32))


def split_hashes(data: bytes) -> tuple[bytes, ...]:
    if len(data) % 32:
        raise ValueError(f"{len(data)} bytes is not a list of 32-byte hashes")
    return tuple(bytes(data[i : i + 32]) for i in range(0, len(data), 32))
