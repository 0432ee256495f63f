"""The embedded SQLite store: WAL, one writer, ``synchronous=FULL``.

Writes happen on the sequencer's thread through one connection; readers get a connection
per thread so that a long ``GetEntries`` stream never blocks the writer (WAL snapshots).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from forum_client.errors import StoreError

from . import AuditRecord, Credential, StoredLeaf

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS leaves (
    idx INTEGER PRIMARY KEY,
    leaf BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
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


class SQLiteStore:
    """``ServerStore`` on one SQLite file (``DIR/forum.db``)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        con = self._connect()
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema {version} is newer than this server")
        with con:
            con.executescript(_SCHEMA)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _connect(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=FULL")
                con.execute("PRAGMA busy_timeout=10000")
                con.execute("PRAGMA cache_size=-65536")
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

    def append(self, leaves: Sequence[StoredLeaf], size: int, checkpoint_note: bytes) -> None:
        self._write(
            [
                (
                    "INSERT INTO leaves (idx, leaf, leaf_hash) VALUES (?, ?, ?)",
                    [(x.index, x.leaf_bytes, x.leaf_hash) for x in leaves],
                ),
                ("INSERT INTO checkpoints (size, note) VALUES (?, ?)", [(size, checkpoint_note)]),
            ]
        )

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

    def latest_checkpoint(self) -> tuple[int, bytes] | None:
        row = self._connect().execute(
            "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

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
        row = self._connect().execute(
            "SELECT certificate_sha256, member_id, created_ms, revoked_ms FROM credentials "
            "WHERE certificate_sha256 = ?",
            (certificate_sha256,),
        ).fetchone()
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

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
