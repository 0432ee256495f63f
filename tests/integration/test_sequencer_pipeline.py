"""The pipelined sequencer: a group is checked while the one before it is being written.

A later group sees what the group under it did (before that is stored); if that write fails,
neither is acknowledged and the log goes on from what is stored.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from forum_client import entries as e
from forum_client import sigcheck
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import EntryRejectedError, StoreError
from forum_server.app import ServerPaths
from forum_server.sequencer import Sequencer
from forum_server.storage import StoredLeaf, ViewDelta
from forum_server.storage.sqlite import SQLiteStore
from forum_server.testing import local_forum

MD5 = "ab" * 16


class GatedStore(SQLiteStore):
    """Holds the first append until released; can make it fail."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail_next = False
        self.appends = 0

    def append(
        self,
        leaves: Sequence[StoredLeaf],
        size: int,
        checkpoint_note: bytes,
        view: ViewDelta | None = None,
        *,
        records_view_size: bool = True,
    ) -> None:
        self.appends += 1
        if self.appends == 1:
            self.started.set()
            assert self.release.wait(30)
            if self.fail_next:
                raise StoreError("disk on fire")
        super().append(leaves, size, checkpoint_note, view, records_view_size=records_view_size)


@pytest.fixture(scope="module")
def forum_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SigningKey]:
    root = tmp_path_factory.mktemp("pipe")
    with local_forum(root, members=["alice"], observers=[]) as forum:
        key = forum.members["alice"].signing_key
        data = forum.directory / "server"
    return data, key


def _entry(key: SigningKey, body: Any) -> Envelope:
    return key.sign(e.payload_type_of(body), e.encode(body))


def _header(seq: Sequencer, key: SigningKey, sequence: int) -> e.Header:
    return e.Header(seq.state.origin, "alice", key.key_id, sequence, int(time.time() * 1000))


def _copy_forum(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


async def _wait(event: threading.Event) -> None:
    deadline = time.monotonic() + 30
    while not event.is_set():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("fail", [False, True])
def test_next_group_sees_the_one_being_written(
    forum_dir: tuple[Path, SigningKey], tmp_path: Path, fail: bool
) -> None:
    data, key = forum_dir
    data = _copy_forum(data, tmp_path / "server")
    paths = ServerPaths(data)
    store = GatedStore(paths.database)
    store.fail_next = fail
    log_key = SigningKey.load(paths.log_key)

    async def run() -> None:
        seq = Sequencer(store, log_key)
        seq.start()
        start_size = seq.size
        first = key.key_id
        n = seq.state.last_sequence.get(first, 0) + 1
        sub = e.Submission(_header(seq, key, n), (e.SignalItem("md5", MD5, (), "image"),))
        ret = e.Retraction(_header(seq, key, n + 1), (e.SignalRef("md5", MD5),), "oops")
        a = asyncio.ensure_future(seq.append(_entry(key, sub), e.MEMBER_BODIES, "alice"))
        await _wait(store.started)  # the submission's transaction is under way
        b = asyncio.ensure_future(seq.append(_entry(key, ret), e.MEMBER_BODIES, "alice"))
        resent = asyncio.ensure_future(seq.append(_entry(key, sub), e.MEMBER_BODIES, "alice"))
        await asyncio.sleep(0.2)  # b is checked against the state after a, and waits
        assert not b.done() and not a.done()
        store.release.set()
        results = await asyncio.gather(a, b, resent, return_exceptions=True)
        if fail:
            assert all(isinstance(r, StoreError) for r in results), results
            assert seq.size == start_size
            # The log goes on from what is stored: the same sequence number is free again.
            again = await seq.append(_entry(key, sub), e.MEMBER_BODIES, "alice")
            assert again.index == start_size
            assert store.signal_status("md5", MD5) == "active"
        else:
            ra, rb, rr = results
            assert not isinstance(ra, BaseException) and not isinstance(rb, BaseException)
            assert not isinstance(rr, BaseException)
            assert (ra.index, rb.index, rr.index) == (start_size, start_size + 1, start_size)
            assert seq.size == start_size + 2
            assert store.signal_status("md5", MD5) == "retracted"
        await seq.stop()

    asyncio.run(run())
    store.close()


@pytest.mark.sqlite_only
@pytest.mark.parametrize("tampered", [False, True])
def test_start_up_replays_with_checks_ahead_and_refuses_a_forged_stored_entry(
    forum_dir: tuple[Path, SigningKey],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tampered: bool,
) -> None:
    """A server starts by replaying its whole log, the signatures checked on worker threads
    a few entries ahead (sigcheck.replay_checked). An entry whose stored signature was
    edited in the database is still refused, at its index, and the server does not start."""
    monkeypatch.setattr(sigcheck, "AHEAD_ENTRIES", 2)  # several chunks in a short log
    data, key = forum_dir
    data = _copy_forum(data, tmp_path / "server")
    paths = ServerPaths(data)
    log_key = SigningKey.load(paths.log_key)

    async def fill() -> tuple[int, int]:
        seq = Sequencer(SQLiteStore(paths.database), log_key)
        seq.start()
        n = seq.state.last_sequence.get(key.key_id, 0)
        for i in range(1, 9):
            item = e.SignalItem("md5", f"{i:032x}", (), "image")
            sub = e.Submission(_header(seq, key, n + i), (item,))
            await seq.append(_entry(key, sub), e.MEMBER_BODIES, "alice")
        size, last = seq.size, seq.state.last_sequence[key.key_id]
        await seq.stop()
        return size, last

    size, last = asyncio.run(fill())
    forged_at = size - 3
    if tampered:  # the stored signature's last byte, edited in the database
        with sqlite3.connect(paths.database) as con:
            (leaf,) = con.execute("SELECT leaf FROM leaves WHERE idx = ?", (forged_at,)).fetchone()
            edited = leaf[:-1] + bytes([leaf[-1] ^ 1])
            con.execute("UPDATE leaves SET leaf = ? WHERE idx = ?", (edited, forged_at))
        con.close()
    store = SQLiteStore(paths.database)
    try:
        if tampered:
            with pytest.raises(EntryRejectedError) as info:
                Sequencer(store, log_key)
            assert info.value.reason == "bad-signature" and info.value.index == forged_at
        else:
            restarted = Sequencer(store, log_key)
            assert restarted.size == size and restarted.state.last_sequence[key.key_id] == last
    finally:
        store.close()
