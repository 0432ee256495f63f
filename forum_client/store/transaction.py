"""The one write path of a sync: :class:`SyncTransaction`, from :meth:`LocalStore.begin_sync`.

A transaction is one ``BEGIN IMMEDIATE``: it stages entries and view rows (it is the
:class:`~forum_client.store.view.ViewWriter` the replay writes to, and the
:class:`~forum_client.rules.SignalLookup` the content rules ask), and either commits them
together with the verified sync state, or rolls all of it back.  The sync never touches SQL.
"""

from __future__ import annotations

import sqlite3
from types import TracebackType
from typing import TYPE_CHECKING

from ..errors import StoreError
from ..merkle import CompactRange
from ..verifier import LogState
from .state import state_to_json, write_log_tables
from .view import ViewWriter

if TYPE_CHECKING:
    from .local import LocalStore


def _pages(con: sqlite3.Connection) -> tuple[int, bool]:
    """The database's size in pages, and whether it is larger than the connection's page
    cache."""
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    cache = con.execute("PRAGMA cache_size").fetchone()[0]  # pages, or -KiB if negative
    cache_bytes = -cache * 1024 if cache < 0 else cache * page_size
    return int(pages), bool(pages * page_size > cache_bytes)


class ConcurrentSyncError(StoreError):
    """Another sync advanced the same local copy while this one was running."""


class SyncTransaction(ViewWriter):
    """Staged rows of one sync step, on top of the copy's committed, verified state.

    ``spill_rows``: once the copy outgrew its page cache, pending signal rows beyond this
    many go to SQLite's TEMP stage tables (:class:`~forum_client.store.view.ViewWriter`).

    Made by :meth:`LocalStore.begin_sync`, which waits for another writer of the file (up to
    the store's busy timeout) and then checks the copy is still at the size the caller
    verified from: ConcurrentSyncError if another sync moved it, StoreError if the file stays
    locked.  Use it as a context manager (rolled back unless committed), or call
    :meth:`commit` / :meth:`rollback`.
    """

    def __init__(self, store: LocalStore, expected_size: int | None, spill_rows: int) -> None:
        con = store.con
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(
                f"cannot write {store.path}: {exc} (another sync or forum-client process is "
                "writing it; wait for it to finish)"
            ) from exc
        pages, grown = _pages(con)
        super().__init__(con, key_order=grown, spill_rows=spill_rows if grown else 0)
        self.copy_pages = pages
        """The copy's size in pages when the transaction began."""
        self.grown = grown
        """Whether the copy outgrew its page cache (then its rows are written in key order,
        and large steps are staged in SQLite)."""
        self.store = store
        if expected_size is not None:
            size = store.size
            if size != expected_size:
                con.execute("ROLLBACK")
                raise ConcurrentSyncError(
                    f"another sync is writing {store.path}: it moved the copy from "
                    f"{expected_size} to {size} entries while this one ran. One sync per copy "
                    "at a time: wait for the other one (or keep one `sync --follow`), then "
                    "sync again"
                )

    def __enter__(self) -> SyncTransaction:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.rollback()

    @property
    def open(self) -> bool:
        return self.con.in_transaction

    def commit(
        self,
        state: LogState,
        rng: CompactRange,
        checkpoint_note: bytes,
        checkpoint_size: int,
        checkpoint_root: bytes,
        proof: tuple[bytes, ...],
    ) -> None:
        """Commit the staged rows with what proves them: the replayed key state, the compact
        range, the signed checkpoint they are (a prefix of), and the proof of that."""
        self.flush()
        now = self.store.now_ms()
        con = self.con
        con.execute(
            "INSERT OR REPLACE INTO sync_state VALUES (1, ?, ?, ?, ?, ?, ?)",
            (rng.size, rng.to_bytes(), checkpoint_note, b"".join(proof), state_to_json(state), now),
        )
        con.execute(
            "INSERT OR IGNORE INTO checkpoints VALUES (?, ?, ?, ?)",
            (checkpoint_size, checkpoint_root, checkpoint_note, now),
        )
        write_log_tables(con, state)
        con.execute("COMMIT")

    def commit_replay(self, state: LogState | None) -> None:
        """Commit the view and key tables of a replay that has no checkpoint of its own (the
        offline audit's scratch copy)."""
        self.flush()
        if state is not None:
            write_log_tables(self.con, state)
        self.con.execute("COMMIT")

    def record_evidence(
        self,
        what: str,
        message: str,
        *,
        entry_index: int | None = None,
        served_checkpoint: bytes | None = None,
    ) -> int:
        """Keep evidence that does not stop the sync (a reported leak), committed with the
        staged rows; return its id."""
        return self.store.insert_evidence(
            self.con,
            what,
            message,
            entry_index=entry_index,
            served_checkpoint=served_checkpoint,
        )

    def rollback(self) -> None:
        """Drop everything staged (a no-op once committed or rolled back)."""
        if self.con.in_transaction:
            self.con.execute("ROLLBACK")
