"""Under back-to-back commits the server's WAL is restarted, not grown without bound.

The background checkpointer copies pages back beside the next write, so under a steady
stream of commits it never finds the WAL fully copied when a write begins, and SQLite never
restarts the WAL from its beginning.  The store's ``wal_autocheckpoint`` bound makes the
committing connection finish the copy once the WAL passes it.  These tests model a
checkpointer that never catches up (it is not started) and a small bound.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from forum_server.storage import OP_DESCRIPTOR, OP_SIGNAL, StoredLeaf, ViewDelta
from forum_server.storage import sqlite as sq
from forum_server.storage.sqlite import SQLiteStore

BATCHES = 40
SIGNALS = 200  # per batch: random keys, so each batch dirties pages all over the view


def _write_batches(store: SQLiteStore) -> int:
    """Append ``BATCHES`` submissions; return the largest WAL file size seen."""
    largest = 0
    for b in range(BATCHES):
        values = [hashlib.sha256(f"{b}/{i}".encode()).hexdigest() for i in range(SIGNALS)]
        view = ViewDelta()
        view.add(OP_SIGNAL, [("sha256", v, b) for v in values])
        view.add(OP_DESCRIPTOR, [("sha256", v, "alice", "a", "image", None, "", b) for v in values])
        store.append([StoredLeaf(b, b"leaf%d" % b, bytes(32))], b + 1, b"note", view)
        largest = max(largest, Path(store.path + "-wal").stat().st_size)
    return largest


@pytest.fixture
def no_background_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sq._Checkpointer, "kick", lambda self: None)


@pytest.mark.usefixtures("no_background_checkpoints")
def test_the_wal_is_restarted_past_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sq, "WAL_RESTART_PAGES", 100)
    store = SQLiteStore(tmp_path / "forum.db")
    try:
        largest = _write_batches(store)
        page = store._connect().execute("PRAGMA page_size").fetchone()[0]
        # The bound plus what one commit adds past it (a batch dirties fewer pages than it
        # has rows in each of the two view tables), with the frame headers.
        assert largest <= (100 + 2 * SIGNALS + 50) * (page + 24)
        assert store.signal_count() == BATCHES * SIGNALS
        assert store.size() == BATCHES
    finally:
        store.close()


@pytest.mark.usefixtures("no_background_checkpoints")
def test_without_the_bound_the_same_writes_grow_the_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above means something: the same writes, no bound, a WAL several times larger."""
    monkeypatch.setattr(sq, "WAL_RESTART_PAGES", 0)  # 0: SQLite never checkpoints by itself
    store = SQLiteStore(tmp_path / "forum.db")
    try:
        page = store._connect().execute("PRAGMA page_size").fetchone()[0]
        assert _write_batches(store) > 4 * (100 + 2 * SIGNALS + 50) * (page + 24)
    finally:
        store.close()


def test_a_reopened_store_reads_every_committed_row(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "forum.db")
    try:
        _write_batches(store)
    finally:
        store.close()
    again = SQLiteStore(tmp_path / "forum.db")
    try:
        assert again.signal_count() == BATCHES * SIGNALS
        assert again.latest_checkpoint() == (BATCHES, b"note")
    finally:
        again.close()
