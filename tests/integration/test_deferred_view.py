"""Deferred view rows (SQLite, one server): submissions' view rows are held back and written
together, and the stored view always ends up exactly as if every commit had written its own.

What is checked, against a real SQLite store and the real sequencer:
- right after a receipt the submission's rows are not stored yet; they are written once the
  log is quiet, at the row threshold, or on shutdown;
- an entry whose content rules read the view (a retraction, an opinion) is checked against
  the deferred rows too: it is accepted, where the stored view alone would refuse it;
- a mixed log (submissions, retractions, opinions, repeated signals from two members) gives
  the same view tables, row for row, deferred or not;
- a crash with rows still deferred, and a write that committed but reported a failure, both
  end with the view replayed from the stored leaves.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from forum_client import entries as e
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import StoreError
from forum_server import sequencer as sequencer_module
from forum_server.app import ServerPaths
from forum_server.sequencer import Sequencer
from forum_server.storage import StoredLeaf, ViewDelta
from forum_server.storage.sqlite import SQLiteStore
from forum_server.testing import local_forum

pytestmark = pytest.mark.sqlite_only

MEMBERS = ("alice", "bob")


@pytest.fixture(scope="module")
def forum_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, SigningKey]]:
    root = tmp_path_factory.mktemp("deferred")
    with local_forum(root, members=list(MEMBERS), observers=[]) as forum:
        keys = {m: forum.members[m].signing_key for m in MEMBERS}
        data = forum.directory / "server"
    return data, keys


@pytest.fixture
def never_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """No write because the log went quiet: only the threshold, a reader or stop write."""
    monkeypatch.setattr(sequencer_module, "DEFERRED_VIEW_IDLE_SECONDS", 3600.0)


class Author:
    """Signs entries for one member with consecutive sequence numbers."""

    def __init__(self, seq: Sequencer, member: str, key: SigningKey) -> None:
        self.seq, self.member, self.key = seq, member, key
        self.n = seq.state.last_sequence.get(key.key_id, 0)

    def header(self) -> e.Header:
        self.n += 1
        return e.Header(
            self.seq.state.origin, self.member, self.key.key_id, self.n, int(time.time() * 1000)
        )

    def sign(self, body: Any) -> Envelope:
        return self.key.sign(e.payload_type_of(body), e.encode(body))

    async def submit(self, *values: str) -> int:
        items = tuple(
            e.SignalItem("md5", v, ("behaviour:terrorist-publication",), "image") for v in values
        )
        return await self._append(e.Submission(self.header(), items))

    async def retract(self, *values: str) -> int:
        refs = tuple(e.SignalRef("md5", v) for v in values)
        return await self._append(e.Retraction(self.header(), refs, "mistake"))

    async def opine(self, value: str) -> int:
        ref = e.SignalRef("md5", value)
        return await self._append(e.Opinion(self.header(), ref, e.OpinionKind.FALSE_POSITIVE))

    async def _append(self, body: Any) -> int:
        receipt = await self.seq.append(self.sign(body), e.MEMBER_BODIES, self.member)
        return receipt.index


def _md5(i: int) -> str:
    return f"{i:032x}"


async def _until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.01)


def _copy(src: Path, dst: Path) -> ServerPaths:
    shutil.copytree(src, dst)
    return ServerPaths(dst)


def _view_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = sqlite3.connect(path)
    try:
        return {
            table: con.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
            for table in ("signals", "descriptors", "opinions")
        }
    finally:
        con.close()


async def _mixed_log(authors: dict[str, Author]) -> None:
    """Submissions (one signal from both members), retractions, opinions."""
    alice, bob = authors["alice"], authors["bob"]
    await alice.submit(_md5(1), _md5(2), _md5(3))
    await bob.submit(_md5(3), _md5(4))
    await alice.submit(*(_md5(i) for i in range(10, 40)))
    await alice.retract(_md5(2))
    await bob.opine(_md5(1))
    await bob.submit(_md5(2), _md5(11))  # bob submits what alice retracted: active again
    await alice.submit(_md5(4))
    await bob.retract(_md5(3))
    await alice.submit(*(_md5(i) for i in range(40, 60)))
    await alice.opine(_md5(4))
    await bob.submit(_md5(70), _md5(71))  # the log ends with rows held back


Keys = dict[str, SigningKey]
Check = Callable[[Sequencer, SQLiteStore, Keys], Awaitable[None]]


def _with_sequencer(
    forum_dir: tuple[Path, Keys],
    where: Path,
    deferred: int,
    check: Check,
    store_type: type[SQLiteStore] = SQLiteStore,
) -> ServerPaths:
    """A copy of the forum at ``where``, its sequencer started over a store of its own with
    ``deferred_view_rows=deferred``, and ``check`` run against both."""
    data, keys = forum_dir
    paths = _copy(data, where)
    store = store_type(paths.database)

    async def run() -> None:
        seq = Sequencer(store, SigningKey.load(paths.log_key), deferred_view_rows=deferred)
        seq.start()
        await check(seq, store, keys)

    try:
        asyncio.run(run())
    finally:
        store.close()
    return paths


async def _mixed_log_then_stop(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
    await _mixed_log({m: Author(seq, m, k) for m, k in keys.items()})
    await seq.stop()


@pytest.mark.parametrize("threshold", [1, 7, 10_000])
def test_the_deferred_view_equals_the_view_written_with_every_commit(
    forum_dir: tuple[Path, Keys], tmp_path: Path, never_quiet: None, threshold: int
) -> None:
    now = _with_sequencer(forum_dir, tmp_path / "now", 0, _mixed_log_then_stop)
    later = _with_sequencer(forum_dir, tmp_path / "later", threshold, _mixed_log_then_stop)
    expected = _view_tables(now.database)
    assert len(expected["descriptors"]) > 50 and expected["opinions"]
    assert _view_tables(later.database) == expected


def test_rows_wait_for_quiet_the_threshold_or_stop(
    forum_dir: tuple[Path, Keys], tmp_path: Path, never_quiet: None
) -> None:
    async def check(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        alice = Author(seq, "alice", keys["alice"])
        await alice.submit(_md5(1))
        # Durable and answered; its two view rows are held back.
        assert store.size() == seq.size
        assert store.view_size() < seq.size and store.signal_status("md5", _md5(1)) is None
        await alice.submit(*(_md5(i) for i in range(2, 60)))  # 118 rows > 100: written
        await _until(lambda: store.view_size() == seq.size)  # just after the receipt
        assert store.signal_status("md5", _md5(59)) == "active"
        await alice.submit(_md5(60))
        assert store.signal_status("md5", _md5(60)) is None
        await seq.stop()  # shutdown writes what is still held back
        assert store.view_size() == seq.size == store.size()
        assert store.signal_status("md5", _md5(60)) == "active"

    _with_sequencer(forum_dir, tmp_path / "server", 100, check)


def test_a_quiet_log_gets_its_rows_written(forum_dir: tuple[Path, Keys], tmp_path: Path) -> None:
    async def check(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        await Author(seq, "alice", keys["alice"]).submit(_md5(1))
        # Written 0.2 s after the last entry (nothing else writes them here).
        await _until(lambda: store.signal_status("md5", _md5(1)) == "active")
        assert store.view_size() == seq.size
        await seq.stop()

    _with_sequencer(forum_dir, tmp_path / "server", 10_000, check)


def test_a_retraction_and_an_opinion_see_deferred_submissions(
    forum_dir: tuple[Path, Keys], tmp_path: Path, never_quiet: None
) -> None:
    """Checked against the stored view alone, both would be refused: bob's opinion names a
    signal that does not exist yet, alice's retraction one she has not submitted."""

    async def check(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        alice, bob = Author(seq, "alice", keys["alice"]), Author(seq, "bob", keys["bob"])
        await alice.submit(_md5(1), _md5(2))
        assert store.signal_status("md5", _md5(1)) is None  # still held back
        opinion = asyncio.ensure_future(bob.opine(_md5(1)))
        retraction = asyncio.ensure_future(alice.retract(_md5(2)))
        await asyncio.gather(opinion, retraction)
        assert store.view_size() == seq.size  # written before they were checked
        assert store.signal_status("md5", _md5(1)) == "active"
        assert store.signal_status("md5", _md5(2)) == "retracted"
        assert [o.member_id for o in store.opinions("md5", _md5(1))] == ["bob"]
        await seq.stop()

    _with_sequencer(forum_dir, tmp_path / "server", 10_000, check)


def test_a_crash_with_rows_held_back_replays_them_at_start(
    forum_dir: tuple[Path, Keys], tmp_path: Path, never_quiet: None
) -> None:
    reference = _with_sequencer(forum_dir, tmp_path / "reference", 0, _mixed_log_then_stop)

    async def crash(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        await _mixed_log({m: Author(seq, m, k) for m, k in keys.items()})
        assert store.view_size() < seq.size  # the last submissions are held back
        task = seq._task
        assert task is not None
        task.cancel()  # the process dies: nothing more is written
        with pytest.raises(asyncio.CancelledError):
            await task

    paths = _with_sequencer(forum_dir, tmp_path / "server", 10_000, crash)
    again = SQLiteStore(paths.database)
    restarted = Sequencer(again, SigningKey.load(paths.log_key), deferred_view_rows=10_000)
    assert again.view_size() == restarted.size == again.size()
    again.close()
    assert _view_tables(paths.database) == _view_tables(reference.database)


class CommittedButFailed(SQLiteStore):
    """The next append commits, then reports a failure (a lost answer)."""

    fail_once = False

    def append(
        self,
        leaves: Sequence[StoredLeaf],
        size: int,
        checkpoint_note: bytes,
        view: ViewDelta | None = None,
        *,
        with_view: bool = True,
    ) -> None:
        super().append(leaves, size, checkpoint_note, view, with_view=with_view)
        if self.fail_once:
            self.fail_once = False
            raise StoreError("the answer was lost")


@pytest.mark.parametrize("deferred", [0, 10_000])
def test_a_group_that_committed_despite_an_error_is_taken_in_with_its_view(
    forum_dir: tuple[Path, Keys], tmp_path: Path, never_quiet: None, deferred: int
) -> None:
    """The next entry is checked on what the store holds: the committed group's leaf (its
    sequence number is used), and its view rows (written with it, or replayed if held back)."""

    async def check(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        assert isinstance(store, CommittedButFailed)
        alice = Author(seq, "alice", keys["alice"])
        await alice.submit(_md5(1))
        store.fail_once = True
        with pytest.raises(StoreError):
            await alice.submit(_md5(2))  # committed, but nobody was told
        # The next entry takes in what the store holds: the log has md5 2 at the index the
        # failed call did not learn, and the view gets it (replayed from the leaf).
        await alice.retract(_md5(2))
        assert store.signal_status("md5", _md5(2)) == "retracted"
        assert store.signal_status("md5", _md5(1)) == "active"
        await seq.stop()
        assert store.view_size() == seq.size == store.size()

    _with_sequencer(forum_dir, tmp_path / "server", deferred, check, CommittedButFailed)


class ViewWriteFailsOnce(SQLiteStore):
    """The first write of held-back rows fails (the disk was full for a moment)."""

    failed = False

    def write_view(self, view: ViewDelta, size: int) -> None:
        if not self.failed:
            self.failed = True
            raise StoreError("no space left on device")
        super().write_view(view, size)


def test_rows_whose_write_failed_are_kept_and_written_later(
    forum_dir: tuple[Path, Keys], tmp_path: Path, never_quiet: None
) -> None:
    reference = _with_sequencer(forum_dir, tmp_path / "reference", 0, _mixed_log_then_stop)
    paths = _with_sequencer(
        forum_dir, tmp_path / "server", 7, _mixed_log_then_stop, ViewWriteFailsOnce
    )
    assert _view_tables(paths.database) == _view_tables(reference.database)
