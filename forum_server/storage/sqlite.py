"""The embedded SQLite store: WAL, one writer, ``synchronous=FULL``.

Writes happen on the sequencer's thread through one connection; readers get a connection
per thread so that a long ``GetEntries`` stream never blocks the writer (WAL snapshots).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from operator import itemgetter
from pathlib import Path

from forum_client.errors import StoreError
from forum_client.scopes import ScopeClaim

from . import (
    OP_DESCRIPTOR,
    OP_OPINION,
    OP_REFRESH_STATUS,
    OP_RETRACT_ALL,
    OP_RETRACT_MEMBER,
    OP_SIGNAL,
    UPSERT_KEY_WIDTH,
    AuditRecord,
    Credential,
    Descriptor,
    OpinionRow,
    StoredLeaf,
    ViewDelta,
    key_ordered,
)

_VIEW_SQL = {
    OP_SIGNAL: "INSERT INTO signals (type, value, status, first_idx) VALUES (?, ?, 'active', ?) "
    "ON CONFLICT (type, value) DO UPDATE SET status = 'active' "
    "WHERE status != 'active'",
    OP_DESCRIPTOR: "INSERT INTO descriptors (type, value, member, labels, content_type, quality, "
    "scope, active, idx) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?) "
    "ON CONFLICT (type, value, member) DO UPDATE SET labels = excluded.labels, "
    "content_type = excluded.content_type, quality = excluded.quality, "
    "scope = excluded.scope, active = 1, idx = excluded.idx",
    # A retracted descriptor keeps the index of the submission that set it (as members' copies do)
    OP_RETRACT_MEMBER: "UPDATE descriptors SET active = 0 "
    "WHERE type = ?1 AND value = ?2 AND member = ?3",
    OP_RETRACT_ALL: "UPDATE descriptors SET active = 0 "
    "WHERE type = ?1 AND value = ?2 AND active = 1",
    OP_REFRESH_STATUS: "UPDATE signals SET status = CASE WHEN EXISTS (SELECT 1 FROM descriptors d "
    "WHERE d.type = ?1 AND d.value = ?2 AND d.active = 1) THEN 'active' "
    "ELSE 'retracted' END WHERE type = ?1 AND value = ?2",
    OP_OPINION: "INSERT INTO opinions (type, value, member, kind, note, idx) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (type, value, member) DO UPDATE SET "
    "kind = excluded.kind, note = excluded.note, idx = excluded.idx",
}
_VIEW_SIZE_SQL = "INSERT OR REPLACE INTO view_meta (key, value) VALUES ('size', ?)"

# Bulk forms of the two hot upserts: every column but ``value`` bound once, the values as one
# JSON array of strings.  One ``sqlite3_step`` inserts the whole run, so the GIL is released
# for all of it (``executemany`` takes the GIL back for every row, which stalls the writer
# thread while the event loop is busy).  Same conflict handling as ``_VIEW_SQL``.
_BULK_SQL = {
    OP_SIGNAL: "INSERT INTO signals (type, value, status, first_idx) "
    "SELECT ?1, j.value, 'active', ?2 FROM json_each(?3) AS j WHERE true "
    "ON CONFLICT (type, value) DO UPDATE SET status = 'active' "
    "WHERE status != 'active'",
    OP_DESCRIPTOR: "INSERT INTO descriptors (type, value, member, labels, content_type, quality, "
    "scope, active, idx) "
    "SELECT ?1, j.value, ?2, ?3, ?4, ?5, ?6, 1, ?7 FROM json_each(?8) AS j "
    "WHERE true "
    "ON CONFLICT (type, value, member) DO UPDATE SET labels = excluded.labels, "
    "content_type = excluded.content_type, quality = excluded.quality, "
    "scope = excluded.scope, active = 1, idx = excluded.idx",
}
# Every column but the value, in the order the bulk statement binds them.
_BULK_REST = {OP_SIGNAL: itemgetter(0, 2), OP_DESCRIPTOR: itemgetter(0, 2, 3, 4, 5, 6, 7)}
_VALUE_COLUMN = itemgetter(1)
_BULK_MIN_ROWS = 64
_ONE_PASS_ROWS = 50_000  # rows of several entries from which one key-ordered pass is written


def _bulk_statements(
    op: str, rows: Sequence[tuple[object, ...]]
) -> list[tuple[str, Sequence[tuple[object, ...]]]] | None:
    """``rows`` of ``op`` as a few bulk statements, or None when they must go row by row.

    Rows are grouped by every column but the value and each group's values sorted (the
    b-tree then takes them in key order).  That reordering is only allowed when no two rows
    touch the same primary key, so a run with a repeated key goes row by row, in order; so
    does one with a value that JSON would escape (the bulk form only carries literal text).
    """
    width = UPSERT_KEY_WIDTH.get(op)
    if width is None or len(rows) < _BULK_MIN_ROWS:
        return None
    try:
        rests = set(map(_BULK_REST[op], rows))
    except TypeError:  # an unhashable column: row by row
        return None
    if len(rests) == 1:
        # The common case (one submission), column-wise: every key column but the value is
        # in the shared rest, so the keys are distinct when the values are.
        values = list(map(_VALUE_COLUMN, rows))
        if set(map(type, values)) != {str} or len(set(values)) != len(values):
            return None
        return _bulk_groups(op, {rests.pop(): values})
    groups: dict[tuple[object, ...], list[str]] = {}
    keys: set[tuple[object, ...]] = set()
    for row in rows:
        value = row[1]
        if type(value) is not str:
            return None
        keys.add(row[:width])
        rest = (row[0], *row[2:])
        found = groups.get(rest)
        if found is None:
            groups[rest] = [value]
        else:
            found.append(value)
    if len(keys) != len(rows):
        return None
    if len(groups) > 1 and len(rows) >= _ONE_PASS_ROWS:
        # Rows of many entries (a deferred view, see the sequencer): one pass in key order
        # touches each leaf page once, where a bulk statement per entry passes over the
        # whole b-tree once per entry.
        return [(_VIEW_SQL[op], key_ordered(rows, width))]
    return _bulk_groups(op, groups)


def _bulk_groups(
    op: str, groups: dict[tuple[object, ...], list[str]]
) -> list[tuple[str, Sequence[tuple[object, ...]]]] | None:
    out: list[tuple[str, Sequence[tuple[object, ...]]]] = []
    for rest, values in groups.items():
        values.sort()
        text = json.dumps(values)
        if "\\" in text:
            return None
        out.append((_BULK_SQL[op], [(*rest, text)]))
    return out


SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS leaves (
    idx INTEGER PRIMARY KEY,
    leaf BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
);
-- Issue #10: the author's scope claim of every entry scoped to a group (served, with the
-- leaf hash, to members outside the group).
CREATE TABLE IF NOT EXISTS scope_claims (
    idx INTEGER PRIMARY KEY,
    group_id TEXT NOT NULL,
    key_id BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    note BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    certificate_sha256 BLOB PRIMARY KEY,
    member_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE INDEX IF NOT EXISTS credentials_member ON credentials(member_id);
-- The materialised view of the log (see forum_server/view.py), written in the same
-- transaction as the leaves it comes from.
CREATE TABLE IF NOT EXISTS signals (
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    status TEXT NOT NULL,  -- active | retracted
    first_idx INTEGER NOT NULL,
    PRIMARY KEY (type, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS descriptors (
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    member TEXT NOT NULL,
    labels TEXT NOT NULL,  -- ';'-separated label ids
    content_type TEXT NOT NULL,
    quality INTEGER,
    scope TEXT NOT NULL,
    active INTEGER NOT NULL,
    idx INTEGER NOT NULL,  -- log index of the submission that set it (a retraction keeps it)
    PRIMARY KEY (type, value, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS opinions (
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    member TEXT NOT NULL,
    kind INTEGER NOT NULL,
    note TEXT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (type, value, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS view_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- Issue #9: what the cosigner serves (the newest checkpoint a quorum of witnesses
-- cosigned, the pending one), so that a restarted server serves it at once.
CREATE TABLE IF NOT EXISTS witnessed (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cosigned_size INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


def _shape(view: ViewDelta) -> list[tuple[str, int]]:
    return [(op, len(rows)) for op, rows in view.runs]


def _view_statements(view: ViewDelta) -> list[tuple[str, Sequence[tuple[object, ...]]]]:
    if view.in_key_order:  # a key range of a pass: one b-tree walk per table, whatever its size
        return [(_VIEW_SQL[op], rows) for op, rows in view.runs]
    batches: list[tuple[str, Sequence[tuple[object, ...]]]] = []
    for op, rows in view.runs:
        bulk = _bulk_statements(op, rows)
        if bulk is None:
            batches.append((_VIEW_SQL[op], rows))
        else:
            batches += bulk
    return batches


# Pages in the WAL past which the committing connection checkpoints by itself (SQLite's
# ``wal_autocheckpoint``, a PASSIVE checkpoint run after the commit is durable).  Under
# back-to-back commits the _Checkpointer never finds the WAL fully copied back at the moment
# a write begins, so SQLite never restarts the WAL from its start: it grew to 7 GB for a
# 400 MB database while 1M signals were submitted in 10,000-signal batches, and every commit
# appended to it.  Past this bound the writer copies back what the _Checkpointer has not
# yet copied (usually the last commit), and the next write starts the WAL again from its
# beginning.  512 MiB at 4 KiB pages: a smaller bound checkpoints more often in the writer
# (at 64 and 128 MiB submissions into a 1M forum were slower, see docs/benchmarks.md).
WAL_RESTART_PAGES = 131_072


class _Checkpointer:
    """Copies the WAL back into the database on its own thread and connection, after commits.

    SQLite's automatic checkpoint runs inside the committing write, so every commit waited
    for it; here it runs beside the next write instead (a PASSIVE checkpoint never blocks
    writers or readers).  Durability is the commit's: the WAL is synced when it commits.
    The writer only checkpoints by itself past ``WAL_RESTART_PAGES``.
    """

    MIN_INTERVAL = 0.5  # seconds between checkpoints: a page rewritten meanwhile is copied once

    def __init__(self, path: str) -> None:
        self.path = path
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def kick(self) -> None:
        with self._lock:
            if self._stopping:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sqlite-checkpoint", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            con.execute("PRAGMA busy_timeout=10000")
            con.execute("PRAGMA synchronous=FULL")
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    break
                with contextlib.suppress(sqlite3.Error):  # retried after the next commit
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                if self._stopped.wait(self.MIN_INTERVAL):
                    break
        finally:
            con.close()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._stopped.set()
        self._wake.set()
        if thread is not None:
            thread.join()


class SQLiteStore:
    """``ServerStore`` on one SQLite file (``DIR/forum.db``)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._checkpointer = _Checkpointer(self.path)
        self._plan_lock = threading.Lock()
        self._planned: dict[
            int,
            tuple[ViewDelta, list[tuple[str, int]], list[tuple[str, Sequence[tuple[object, ...]]]]],
        ] = {}
        con = self._connect()
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema {version} is newer than this server")
        with con:
            fresh = version < 2
            con.executescript(_SCHEMA)
            if fresh and version == 0:
                # A new database: its (empty) view reflects the (empty) log.
                con.execute(_VIEW_SIZE_SQL, (0,))
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _connect(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=FULL")
                con.execute("PRAGMA busy_timeout=10000")
                con.execute("PRAGMA cache_size=-262144")  # 256 MiB
                con.execute("PRAGMA temp_store=MEMORY")
                con.execute(f"PRAGMA wal_autocheckpoint={WAL_RESTART_PAGES}")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open {self.path}: {exc}") from exc
            self._local.con = con
        return con

    def _write(self, sql_batches: Sequence[tuple[str, Sequence[tuple[object, ...]]]]) -> None:
        con = self._connect()
        with self._write_lock:
            try:
                con.execute("BEGIN IMMEDIATE")
                for sql, rows in sql_batches:
                    con.executemany(sql, rows)
                con.execute("COMMIT")
            except sqlite3.Error as exc:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise StoreError(f"write to {self.path} failed: {exc}") from exc
        self._checkpointer.kick()

    def append(
        self,
        leaves: Sequence[StoredLeaf],
        size: int,
        checkpoint_note: bytes,
        view: ViewDelta | None = None,
        *,
        records_view_size: bool = True,
    ) -> None:
        batches: list[tuple[str, Sequence[tuple[object, ...]]]] = [
            (
                "INSERT INTO leaves (idx, leaf, leaf_hash) VALUES (?, ?, ?)",
                [(x.index, x.leaf_bytes, x.leaf_hash) for x in leaves],
            ),
            ("INSERT INTO checkpoints (size, note) VALUES (?, ?)", [(size, checkpoint_note)]),
        ]
        claims = [
            (x.index, x.claim.group_id, x.claim.key_id, x.claim.signature)
            for x in leaves
            if x.claim is not None
        ]
        if claims:
            batches.append(("INSERT INTO scope_claims VALUES (?, ?, ?, ?)", claims))
        batches += self._view_batches(view, size if records_view_size else None)
        self._write(batches)

    def plan_view(self, view: ViewDelta) -> None:
        """Work out the statements for ``view`` now, on the caller's thread, so that the
        :meth:`append` that writes it later does only SQLite work (the sequencer plans a
        group while the group before it is being written).  Optional: append plans
        whatever was not planned, or changed since."""
        with self._plan_lock:
            if len(self._planned) > 16:  # planned, then never written (a failed check)
                self._planned.clear()
            self._planned[id(view)] = (view, _shape(view), _view_statements(view))

    def _view_batches(
        self, view: ViewDelta | None, size: int | None
    ) -> list[tuple[str, Sequence[tuple[object, ...]]]]:
        batches: list[tuple[str, Sequence[tuple[object, ...]]]] = []
        if view is not None:
            with self._plan_lock:
                planned = self._planned.pop(id(view), None)
            if planned is not None and planned[0] is view and planned[1] == _shape(view):
                batches += planned[2]
            else:
                batches += _view_statements(view)
        if size is not None:
            batches.append((_VIEW_SIZE_SQL, [(size,)]))
        return batches

    def view_size(self) -> int:
        row = self._connect().execute("SELECT value FROM view_meta WHERE key = 'size'").fetchone()
        return 0 if row is None else int(row[0])

    def write_view(self, view: ViewDelta, size: int | None) -> None:
        self._write(self._view_batches(view, size))

    def signal_exists(self, type: str, value: str, scope: str = "") -> bool:
        return (
            self._connect()
            .execute(
                "SELECT 1 FROM descriptors WHERE type = ? AND value = ? AND scope = ?",
                (type, value, scope),
            )
            .fetchone()
            is not None
        )

    def descriptor_holders(self, type: str, value: str, scope: str) -> set[str]:
        return {
            m
            for (m,) in self._connect().execute(
                "SELECT member FROM descriptors WHERE type = ? AND value = ? AND scope = ?",
                (type, value, scope),
            )
        }

    def has_active_descriptor(self, member_id: str, type: str, value: str, scope: str = "") -> bool:
        return (
            self._connect()
            .execute(
                "SELECT 1 FROM descriptors "
                "WHERE type = ? AND value = ? AND member = ? AND active = 1 AND scope = ?",
                (type, value, member_id, scope),
            )
            .fetchone()
            is not None
        )

    def signal_status(self, type: str, value: str) -> str | None:
        row = (
            self._connect()
            .execute("SELECT status FROM signals WHERE type = ? AND value = ?", (type, value))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def descriptors(self, type: str, value: str) -> list[Descriptor]:
        rows = self._connect().execute(
            "SELECT member, labels, content_type, quality, scope, active, idx FROM descriptors "
            "WHERE type = ? AND value = ? ORDER BY member",
            (type, value),
        )
        return [
            Descriptor(m, tuple(x for x in labels.split(";") if x), ct, q, scope, bool(a), idx)
            for m, labels, ct, q, scope, a, idx in rows
        ]

    def opinions(self, type: str, value: str) -> list[OpinionRow]:
        rows = self._connect().execute(
            "SELECT member, kind, note, idx FROM opinions WHERE type = ? AND value = ? "
            "ORDER BY member",
            (type, value),
        )
        return [OpinionRow(*row) for row in rows]

    def signal_count(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM signals").fetchone()[0])

    def size(self) -> int:
        row = self._connect().execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM leaves").fetchone()
        return int(row[0])

    def leaves(self, start: int, end: int) -> Iterator[StoredLeaf]:
        cur = self._connect().execute(
            "SELECT idx, leaf, leaf_hash FROM leaves WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, end),
        )
        for idx, leaf, leaf_hash in cur:
            yield StoredLeaf(idx, leaf, leaf_hash)

    def scope_claims(self, start: int = 0) -> Iterator[tuple[int, ScopeClaim]]:
        cur = self._connect().execute(
            "SELECT idx, group_id, key_id, signature FROM scope_claims WHERE idx >= ? ORDER BY idx",
            (start,),
        )
        for idx, group_id, kid, signature in cur:
            yield idx, ScopeClaim(group_id, bytes(kid), bytes(signature))

    def latest_checkpoint(self) -> tuple[int, bytes] | None:
        row = (
            self._connect()
            .execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
            .fetchone()
        )
        return None if row is None else (int(row[0]), bytes(row[1]))

    def checkpoints(self, up_to: int) -> list[tuple[int, bytes]]:
        rows = self._connect().execute(
            "SELECT size, note FROM checkpoints WHERE size <= ? ORDER BY size", (up_to,)
        )
        return [(int(size), bytes(note)) for size, note in rows]

    def credentials(self) -> list[Credential]:
        rows = self._connect().execute(
            "SELECT certificate_sha256, member_id, created_ms, revoked_ms FROM credentials "
            "ORDER BY created_ms, certificate_sha256"
        )
        return [Credential(bytes(c), m, created, revoked) for c, m, created, revoked in rows]

    def restore_credential(self, credential: Credential) -> None:
        c = credential
        self._write(
            [
                (
                    "INSERT INTO credentials (certificate_sha256, member_id, created_ms, "
                    "revoked_ms) VALUES (?, ?, ?, ?) ON CONFLICT(certificate_sha256) DO NOTHING",
                    [(c.certificate_sha256, c.member_id, c.created_unix_ms, c.revoked_unix_ms)],
                )
            ]
        )

    def register_credential(
        self, certificate_sha256: bytes, member_id: str, now_ms: int, revoke_others: bool
    ) -> int:
        con = self._connect()
        with self._write_lock:
            try:
                con.execute("BEGIN IMMEDIATE")
                revoked = 0
                if revoke_others:
                    revoked = con.execute(
                        "UPDATE credentials SET revoked_ms = ? WHERE member_id = ? "
                        "AND revoked_ms IS NULL AND certificate_sha256 != ?",
                        (now_ms, member_id, certificate_sha256),
                    ).rowcount
                con.execute(
                    "INSERT INTO credentials (certificate_sha256, member_id, created_ms) "
                    "VALUES (?, ?, ?) ON CONFLICT(certificate_sha256) DO NOTHING",
                    (certificate_sha256, member_id, now_ms),
                )
                con.execute("COMMIT")
            except sqlite3.Error as exc:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise StoreError(f"write to {self.path} failed: {exc}") from exc
        return revoked

    def credential(self, certificate_sha256: bytes) -> Credential | None:
        row = (
            self._connect()
            .execute(
                "SELECT certificate_sha256, member_id, created_ms, revoked_ms FROM credentials "
                "WHERE certificate_sha256 = ?",
                (certificate_sha256,),
            )
            .fetchone()
        )
        return None if row is None else Credential(bytes(row[0]), row[1], row[2], row[3])

    def record_audit(
        self, now_ms: int, actor: str, action: str, target: str, outcome: str, detail: str
    ) -> None:
        self._write(
            [
                (
                    "INSERT INTO audit (time_ms, actor, action, target, outcome, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(now_ms, actor, action, target, outcome, detail)],
                )
            ]
        )

    def audit(self, limit: int = 0) -> list[AuditRecord]:
        sql = "SELECT id, time_ms, actor, action, target, outcome, detail FROM audit ORDER BY id"
        if limit:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(limit)}) ORDER BY id"
        return [AuditRecord(*row) for row in self._connect().execute(sql)]

    def save_witnessed(self, doc: str, cosigned_size: int) -> None:
        self._write(
            [
                (
                    "INSERT INTO witnessed (id, cosigned_size, doc) VALUES (1, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET cosigned_size = excluded.cosigned_size, "
                    "doc = excluded.doc WHERE witnessed.cosigned_size <= excluded.cosigned_size",
                    [(cosigned_size, doc)],
                )
            ]
        )

    def witnessed(self) -> str | None:
        row = self._connect().execute("SELECT doc FROM witnessed WHERE id = 1").fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self._checkpointer.stop()
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
