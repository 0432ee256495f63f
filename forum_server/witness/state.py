"""What a witness remembers: per log origin, the latest checkpoint it cosigned.

One SQLite file (WAL, ``synchronous=FULL``).  :meth:`WitnessState.advance` reads the stored
checkpoint, runs the pure decision and writes the new one inside one ``BEGIN IMMEDIATE``
transaction, so the check and the update are atomic (the race in c2sp.org/tlog-witness
cannot happen, even between two processes on one directory) and the new checkpoint is on
disk before any cosignature for it is made.  A ``kill -9`` at any moment leaves either the
old or the new checkpoint, and a cosignature only ever exists for a stored one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from forum_client.checkpoint import Checkpoint
from forum_client.errors import StoreError

from .core import Stored

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    origin TEXT PRIMARY KEY,
    size TEXT NOT NULL,  -- decimal: sizes go up to 2^64-1, beyond SQLite's INTEGER
    root BLOB NOT NULL,
    note BLOB NOT NULL,
    updated_at INTEGER NOT NULL
)
"""


class WitnessState:
    """The witness's SQLite store.  Thread-safe; one connection under a lock."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._con = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=FULL")
            self._con.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the witness state ({exc})") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def latest(self, origin: str) -> tuple[Stored, bytes] | None:
        """The stored checkpoint of ``origin`` and its note, or None."""
        with self._lock:
            row = self._con.execute(
                "SELECT size, root, note FROM checkpoints WHERE origin = ?", (origin,)
            ).fetchone()
        return None if row is None else (Stored(int(row[0]), bytes(row[1])), bytes(row[2]))

    def all(self) -> list[tuple[str, int]]:
        """``(origin, size)`` of every log this witness has cosigned."""
        with self._lock:
            rows = self._con.execute("SELECT origin, size FROM checkpoints ORDER BY origin")
            return [(str(o), int(s)) for o, s in rows]

    def advance(
        self,
        origin: str,
        note: bytes,
        decide: Callable[[Stored | None], Checkpoint],
        now: int,
    ) -> Checkpoint:
        """Atomically: read ``origin``'s checkpoint, call ``decide`` with it (it raises to
        refuse), store what it returns with ``note``.  Returns the stored checkpoint."""
        with self._lock:
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                row = con.execute(
                    "SELECT size, root FROM checkpoints WHERE origin = ?", (origin,)
                ).fetchone()
                stored = None if row is None else Stored(int(row[0]), bytes(row[1]))
                cp = decide(stored)
                if cp.origin != origin:
                    raise StoreError("decided checkpoint has another origin")
                con.execute(
                    "INSERT INTO checkpoints (origin, size, root, note, updated_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin) DO UPDATE SET "
                    "size = excluded.size, root = excluded.root, note = excluded.note, "
                    "updated_at = excluded.updated_at",
                    (origin, str(cp.size), cp.root, note, now),
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return cp


__all__ = ["WitnessState"]
