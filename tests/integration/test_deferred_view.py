"""Deferred view rows (SQLite, one server): submissions' view rows are held back and written
together, and the stored view always ends up exactly as if every commit had written its own.

What is checked, against a real SQLite store and the real sequencer:
- right after a receipt the submission's rows are not stored yet; they are written once the
  log is quiet, at the row threshold, or on shutdown;
- an entry whose content rules read the view (a retraction, an opinion) is checked against
  the deferred rows too: it is accepted, where the stored view alone would refuse it; only
  the held rows of the signals it names are written first, the rest stay held, and the
  recorded view size stays behind until nothing is held;
- a dispute is checked against its respondent's held descriptor the same way;
- a group with a retraction writes with its leaves only the rows of the signals it names
  (its submissions' others stay held), in log order, after their older held rows;
- a mixed log (submissions, retractions, opinions, repeated signals from two members) gives
  the same view tables, row for row, deferred or not;
- a crash with rows still deferred, and a write that committed but reported a failure, both
  end with the view replayed from the stored leaves, retractions stored past the recorded
  view size replayed in their place;
- a pass is written in key ranges between later commits, only its last range records the
  view's size, and a crash in the middle of one is replayed like any other;
- a pass grows with the view: the same rows that make a pass over a small view are held
  back over a larger one;
- random batches of submissions, retractions and opinions sharing groups: the same entries
  accepted and refused, and the same view, as when every commit writes its own rows.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from forum_client import entries as e
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import InvalidInputError, StoreError
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
    monkeypatch.setattr(sequencer_module, "PASS_IDLE_SECONDS", 3600.0)


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

    async def dispute(self, value: str, respondent: str, dispute_id: str) -> int:
        header = self.header()
        ref = e.SignalRef("md5", value)
        deadline = header.created_unix_ms + 86_400_000
        return await self._append(
            e.Dispute(header, dispute_id, ref, respondent, "wrongly listed", "", deadline)
        )

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


async def _mixed_log(authors: dict[str, Author]) -> int:
    """Submissions (one signal from both members), retractions, opinions; returns the index
    of the first retraction."""
    alice, bob = authors["alice"], authors["bob"]
    await alice.submit(_md5(1), _md5(2), _md5(3))
    await bob.submit(_md5(3), _md5(4))
    await alice.submit(*(_md5(i) for i in range(10, 40)))
    first_retraction = await alice.retract(_md5(2))
    await bob.opine(_md5(1))
    await bob.submit(_md5(2), _md5(11))  # bob submits what alice retracted: active again
    await alice.submit(_md5(4))
    await bob.retract(_md5(3))
    await alice.submit(*(_md5(i) for i in range(40, 60)))
    await alice.opine(_md5(4))
    await bob.submit(_md5(70), _md5(71))  # the log ends with rows held back
    return first_retraction


Keys = dict[str, SigningKey]
Check = Callable[[Sequencer, SQLiteStore, Keys], Awaitable[None]]


def _with_sequencer(
    forum_dir: tuple[Path, Keys],
    where: Path,
    deferred: int,
    check: Check,
    store_type: type[SQLiteStore] = SQLiteStore,
    max_rows: int = 0,
    data: Path | None = None,
) -> ServerPaths:
    """A copy of the forum (or of ``data``) at ``where``, its sequencer started over a store
    of its own with ``deferred_view_rows=deferred`` (and ``deferred_view_max_rows``), and
    ``check`` run against both."""
    paths = _copy(data or forum_dir[0], where)
    keys = forum_dir[1]
    store = store_type(paths.database)

    async def run() -> None:
        seq = Sequencer(
            store,
            SigningKey.load(paths.log_key),
            deferred_view_rows=deferred,
            deferred_view_max_rows=max_rows,
        )
        seq.start()
        await check(seq, store, keys)

    try:
        asyncio.run(run())
    finally:
        store.close()
    return paths


async def _crash(seq: Sequencer) -> None:
    """The process dies: nothing more is written, whatever is held is lost."""
    task = seq._task
    assert task is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def _restart(paths: ServerPaths, deferred: int) -> None:
    """Start a sequencer on the store a crash left: its start-up replay brings the stored
    view up to the whole log."""
    again = SQLiteStore(paths.database)
    try:
        restarted = Sequencer(again, SigningKey.load(paths.log_key), deferred_view_rows=deferred)
        assert again.view_size() == restarted.size == again.size()
    finally:
        again.close()


async def _mixed_log_then_stop(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
    await _mixed_log({m: Author(seq, m, k) for m, k in keys.items()})
    await seq.stop()


@pytest.mark.parametrize(
    ("threshold", "range_rows"), [(1, 100_000), (7, 100_000), (10_000, 100_000), (7, 2), (30, 3)]
)
def test_the_deferred_view_equals_the_view_written_with_every_commit(
    forum_dir: tuple[Path, Keys],
    tmp_path: Path,
    never_quiet: None,
    threshold: int,
    range_rows: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sequencer_module, "PASS_RANGE_ROWS", range_rows)
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


@pytest.mark.parametrize("range_rows", [100_000, 1])
def test_a_quiet_log_gets_its_rows_written(
    forum_dir: tuple[Path, Keys], tmp_path: Path, range_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sequencer_module, "PASS_RANGE_ROWS", range_rows)

    async def check(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        await Author(seq, "alice", keys["alice"]).submit(_md5(1), _md5(2), _md5(3))
        # Written 0.2 s after the last entry (nothing else writes them here), in one range
        # or, a row at a time, in six one after another.
        await _until(lambda: store.view_size() == seq.size)
        assert all(store.signal_status("md5", _md5(i)) == "active" for i in (1, 2, 3))
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
        first_retraction = await _mixed_log({m: Author(seq, m, k) for m, k in keys.items()})
        # Rows were held back all along: the retractions and opinions were written past the
        # recorded size, and the replay replays them too.
        assert store.view_size() < first_retraction
        await _crash(seq)

    paths = _with_sequencer(forum_dir, tmp_path / "server", 10_000, crash)
    _restart(paths, 10_000)
    assert _view_tables(paths.database) == _view_tables(reference.database)


class CommittedButFailed(SQLiteStore):
    """Once ``fail_once`` is set, the next append commits, then reports a failure (a lost
    answer).  Every append is recorded in ``writes``: ("append", log size)."""

    fail_once = False

    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        self.writes: list[tuple[str, int | None]] = []

    def append(
        self,
        leaves: Sequence[StoredLeaf],
        size: int,
        checkpoint_note: bytes,
        view: ViewDelta | None = None,
        *,
        records_view_size: bool = True,
    ) -> None:
        super().append(leaves, size, checkpoint_note, view, records_view_size=records_view_size)
        self.writes.append(("append", size))
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

    def write_view(self, view: ViewDelta, size: int | None) -> None:
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


class Recording(CommittedButFailed):
    """Also records each write of view rows: ("view", recorded size or None)."""

    def write_view(self, view: ViewDelta, size: int | None) -> None:
        super().write_view(view, size)
        self.writes.append(("view", size))


async def _one_by_one(seq: Sequencer, keys: Keys, values: range) -> None:
    alice = Author(seq, "alice", keys["alice"])
    for i in values:
        await alice.submit(_md5(i))


async def _forty_then_stop(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
    await _one_by_one(seq, keys, range(40))
    await seq.stop()


def test_a_pass_is_written_in_key_ranges_between_commits(
    forum_dir: tuple[Path, Keys],
    tmp_path: Path,
    never_quiet: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """40 held rows make a pass of 10 ranges; each later one-signal commit (2 rows) is
    followed by one range (4 rows, twice its own), so the log goes on while the pass is
    written, and the stored view size moves only with the last range."""
    monkeypatch.setattr(sequencer_module, "PASS_RANGE_ROWS", 4)
    reference = _with_sequencer(forum_dir, tmp_path / "reference", 0, _forty_then_stop)

    async def check(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        assert isinstance(store, Recording)
        await _one_by_one(seq, keys, range(20))
        pass_size = seq.size  # the pass holds the rows of every entry so far
        await _until(lambda: ("view", None) in store.writes)
        # Its first key range (the lowest keys) is stored, the view's size not yet recorded.
        assert store.signal_status("md5", _md5(0)) == "active"
        assert store.signal_status("md5", _md5(19)) is None
        assert store.view_size() < pass_size
        await _one_by_one(seq, keys, range(20, 40))
        views = [n for n, (kind, _) in enumerate(store.writes) if kind == "view"]
        assert [store.writes[n] for n in views[:10]] == [("view", None)] * 9 + [("view", pass_size)]
        between = [size for kind, size in store.writes[views[0] : views[9]] if kind == "append"]
        assert between == list(range(pass_size + 1, pass_size + 10))  # commits went on
        await seq.stop()

    paths = _with_sequencer(forum_dir, tmp_path / "server", 40, check, Recording)
    assert _view_tables(paths.database) == _view_tables(reference.database)


class PassNeverEnds(SQLiteStore):
    """Once armed, the range that would end a pass (it records the size) always fails."""

    armed = False

    def write_view(self, view: ViewDelta, size: int | None) -> None:
        if self.armed and size is not None:
            raise StoreError("disk I/O error")
        super().write_view(view, size)


def test_a_crash_in_the_middle_of_a_pass_is_replayed_at_start(
    forum_dir: tuple[Path, Keys],
    tmp_path: Path,
    never_quiet: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ranges already written are written again from the leaves: the same view."""
    monkeypatch.setattr(sequencer_module, "PASS_RANGE_ROWS", 3)

    async def submit(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        await _mixed_log({m: Author(seq, m, k) for m, k in keys.items()})
        if isinstance(store, PassNeverEnds):
            store.armed = True
        await Author(seq, "alice", keys["alice"]).submit(*(_md5(i) for i in range(100, 130)))

    async def then_stop(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        await submit(seq, store, keys)
        await seq.stop()

    reference = _with_sequencer(forum_dir, tmp_path / "reference", 0, then_stop)

    async def crash(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        await submit(seq, store, keys)  # the last submission's 60 rows make a pass
        await _until(lambda: store.signal_status("md5", _md5(100)) == "active")
        assert store.view_size() < seq.size  # some ranges stored, the pass not ended
        await _crash(seq)

    paths = _with_sequencer(forum_dir, tmp_path / "server", 50, crash, PassNeverEnds)
    _restart(paths, 50)
    assert _view_tables(paths.database) == _view_tables(reference.database)


def test_a_pass_grows_with_the_view(
    forum_dir: tuple[Path, Keys], tmp_path: Path, never_quiet: None
) -> None:
    """Over a view of 400 signals (800 rows) a pass is an eighth of it: 60 held rows stay
    held with a floor of 10, and are written once they pass 100; capped at 10 they are
    written at once."""

    async def fill(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        await Author(seq, "bob", keys["bob"]).submit(*(_md5(i) for i in range(1000, 1400)))
        await seq.stop()

    big = _with_sequencer(forum_dir, tmp_path / "big", 0, fill)

    def held_after(count: int, max_rows: int, where: str) -> bool:
        result: list[bool] = []

        async def check(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
            alice = Author(seq, "alice", keys["alice"])
            await alice.submit(*(_md5(i) for i in range(count)))
            await alice.submit(_md5(count))  # written by now if the first made a pass
            result.append(store.signal_status("md5", _md5(0)) is None)
            await seq.stop()

        _with_sequencer(forum_dir, tmp_path / where, 10, check, max_rows=max_rows, data=big.root)
        return result[0]

    assert held_after(30, 1000, "floor") is True  # 60 rows < 800 / 8
    assert held_after(60, 1000, "share") is False  # 120 rows > 100
    assert held_after(30, 10, "capped") is False  # 60 rows > the cap of 10


class ViewWritesFail(SQLiteStore):
    """The first ``failures`` writes of held-back rows fail."""

    failures = 0

    def write_view(self, view: ViewDelta, size: int | None) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreError("database is locked")
        super().write_view(view, size)


class FailsTwice(ViewWritesFail):
    failures = 2


class FailsThrice(ViewWritesFail):
    failures = 3


@pytest.mark.parametrize(
    ("threshold", "store_type"),
    [(4, FailsThrice), (6, FailsTwice)],
    ids=["merged into the next pass", "written at stop"],
)
def test_rows_held_after_a_pass_that_stalled_win_over_it(
    forum_dir: tuple[Path, Keys],
    tmp_path: Path,
    never_quiet: None,
    monkeypatch: pytest.MonkeyPatch,
    threshold: int,
    store_type: type[SQLiteStore],
) -> None:
    """A pass whose writes fail is still under way when later rows are written with it
    (they make the next pass, or the server stops): a descriptor submitted again since
    keeps its later index."""
    monkeypatch.setattr(sequencer_module, "PASS_RANGE_ROWS", 1)

    async def log(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        alice, bob = Author(seq, "alice", keys["alice"]), Author(seq, "bob", keys["bob"])
        await alice.submit(_md5(1), _md5(2))
        await bob.submit(_md5(1))  # a pass by now, whose writes fail
        await alice.submit(_md5(1), _md5(3))  # alice's descriptor of md5 1 again
        await seq.stop()

    reference = _with_sequencer(forum_dir, tmp_path / "reference", 0, log)
    paths = _with_sequencer(forum_dir, tmp_path / "server", threshold, log, store_type)
    expected = _view_tables(reference.database)
    assert _view_tables(paths.database) == expected


class CommittedButFailedAfterStalledPass(CommittedButFailed, FailsTwice):
    pass


def test_a_stalled_pass_is_dropped_when_the_view_is_replayed(
    forum_dir: tuple[Path, Keys], tmp_path: Path, never_quiet: None
) -> None:
    """A write that committed despite an error brings the view up to the stored log from
    the leaves; a pass under way then is dropped, not written over the newer rows."""

    async def log(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        assert isinstance(store, CommittedButFailed)
        alice = Author(seq, "alice", keys["alice"])
        await alice.submit(_md5(1), _md5(2))  # 4 rows: a pass, whose writes fail
        await alice.submit(_md5(3))
        store.fail_once = True
        with pytest.raises(StoreError):
            await alice.submit(_md5(1))  # committed, but nobody was told
        await alice.retract(_md5(2))  # takes in the store: the view replayed
        await seq.stop()

    reference = _with_sequencer(forum_dir, tmp_path / "reference", 0, log, CommittedButFailed)
    paths = _with_sequencer(
        forum_dir, tmp_path / "server", 4, log, CommittedButFailedAfterStalledPass
    )
    assert _view_tables(paths.database) == _view_tables(reference.database)


def test_a_retraction_stores_only_the_held_rows_of_the_signals_it_names(
    forum_dir: tuple[Path, Keys],
    tmp_path: Path,
    never_quiet: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retraction of one held signal, then an opinion on a signal held in a pass under
    way: each is checked and stored after the rows of the signal it names, and every other
    held row stays held (a retraction used to wait for all of them to be written); the
    recorded view size stays behind until nothing is held; the view ends as if every commit
    had written its own rows."""
    monkeypatch.setattr(sequencer_module, "PASS_RANGE_ROWS", 4)

    async def log(seq: Sequencer, store: SQLiteStore, keys: Keys) -> list[int]:
        alice, bob = Author(seq, "alice", keys["alice"]), Author(seq, "bob", keys["bob"])
        first = await alice.submit(*(_md5(i) for i in range(20)))  # 40 rows, held
        retraction = await alice.retract(_md5(5))
        for i in range(20, 26):  # one row pair each: a pass of 50 rows starts at the last
            await alice.submit(_md5(i))
        await alice.submit(_md5(24))  # again: newer rows of md5 24, held after the pass
        opinion = await bob.opine(_md5(24))  # its older rows are in the pass's last range
        return [first, retraction, opinion]

    async def then_stop(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        await log(seq, store, keys)
        await seq.stop()

    reference = _with_sequencer(forum_dir, tmp_path / "reference", 0, then_stop)

    async def check(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        assert isinstance(store, Recording)
        first, retraction, opinion = await log(seq, store, keys)
        assert store.signal_status("md5", _md5(5)) == "retracted"
        assert [o.member_id for o in store.opinions("md5", _md5(24))] == ["bob"]
        assert store.signal_status("md5", _md5(24)) == "active"
        for held in (4, 6, 19, 23, 25):  # neither named nor in a range written
            assert store.signal_status("md5", _md5(held)) is None
        assert store.view_size() <= first < retraction < opinion
        # What went in: md5 5's two rows before the retraction, the pass's first two ranges
        # (md5 0 to 3) after the next two commits, md5 24's four rows (the pass's, then the
        # newer) before the opinion; nothing more.
        assert store.signal_status("md5", _md5(3)) == "active"
        assert seq.deferred_rows == 54 - 2 - 4 - 4 - 4
        sizes = [size for kind, size in store.writes if kind == "view"]
        assert sizes == [None, None, None, None]
        await seq.stop()
        assert store.view_size() == seq.size

    paths = _with_sequencer(forum_dir, tmp_path / "server", 50, check, Recording)
    assert _view_tables(paths.database) == _view_tables(reference.database)


def test_a_group_with_a_retraction_holds_back_its_other_submissions_rows(
    forum_dir: tuple[Path, Keys], tmp_path: Path, never_quiet: None
) -> None:
    """One group: alice submits md5 1 again, bob md5 3 (both held from alice's first
    submission), alice retracts md5 2, submits md5 9 and 5, bob gives an opinion on md5 9,
    alice retracts md5 5.  Only the rows of md5 2, 9 and 5 go in with the leaves, in log
    order (held, md5 5's submission would be written after its retraction); md5 1 and 3
    stay held, and are written after their older rows (written before, alice's descriptor
    would get its older index back, and md5 3 bob's later first index)."""

    async def log(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        assert isinstance(store, Recording)
        alice, bob = Author(seq, "alice", keys["alice"]), Author(seq, "bob", keys["bob"])
        await alice.submit(_md5(1), _md5(2), _md5(3), _md5(4))
        before = seq.size
        group = [
            alice.submit(_md5(1)),
            bob.submit(_md5(3)),
            alice.retract(_md5(2)),
            alice.submit(_md5(9), _md5(5)),
            bob.opine(_md5(9)),
            alice.retract(_md5(5)),
        ]
        await asyncio.gather(*map(asyncio.ensure_future, group))
        assert ("append", before + len(group)) in store.writes  # all in one group
        assert store.signal_status("md5", _md5(2)) == "retracted"
        assert store.signal_status("md5", _md5(5)) == "retracted"
        assert [o.member_id for o in store.opinions("md5", _md5(9))] == ["bob"]
        if seq.deferred_view_rows:
            assert all(store.signal_status("md5", _md5(i)) is None for i in (1, 3, 4))
        await seq.stop()

    reference = _with_sequencer(forum_dir, tmp_path / "reference", 0, log, Recording)
    paths = _with_sequencer(forum_dir, tmp_path / "server", 10_000, log, Recording)
    assert _view_tables(paths.database) == _view_tables(reference.database)


def test_a_retraction_whose_held_rows_cannot_be_stored_is_refused_and_nothing_is_lost(
    forum_dir: tuple[Path, Keys], tmp_path: Path, never_quiet: None
) -> None:
    """Storing the held rows of the signal a retraction names fails: the retraction is
    refused (nothing of it written), the held rows stay held and are written later."""

    async def log(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        alice = Author(seq, "alice", keys["alice"])
        await alice.submit(_md5(1), _md5(2), _md5(3))
        size = seq.size
        if isinstance(store, ViewWriteFailsOnce):
            with pytest.raises(StoreError):
                await alice.retract(_md5(2))
            assert store.size() == seq.size == size and store.failed
            assert store.signal_status("md5", _md5(2)) is None  # still held
        else:
            alice.n += 1  # the sequence number the refused retraction took
        await alice.retract(_md5(1))
        await alice.submit(_md5(8))
        await seq.stop()

    reference = _with_sequencer(forum_dir, tmp_path / "reference", 0, log)
    paths = _with_sequencer(forum_dir, tmp_path / "server", 10_000, log, ViewWriteFailsOnce)
    assert _view_tables(paths.database) == _view_tables(reference.database)


def test_a_write_lost_after_a_retraction_past_the_view_size_is_replayed(
    forum_dir: tuple[Path, Keys], tmp_path: Path, never_quiet: None
) -> None:
    """The view is brought up to a group that committed despite an error by replaying the
    stored entries since the recorded view size: a retraction among them (stored while
    rows were held) is replayed in its place too."""

    async def log(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        assert isinstance(store, CommittedButFailed)
        alice = Author(seq, "alice", keys["alice"])
        await alice.submit(_md5(1), _md5(2), _md5(3))
        retraction = await alice.retract(_md5(2))
        if seq.deferred_view_rows:
            assert store.view_size() < retraction
        store.fail_once = True
        with pytest.raises(StoreError):
            await alice.submit(_md5(2), _md5(4))  # committed, but nobody was told
        await alice.retract(_md5(1))  # takes in the store: the view replayed
        assert store.signal_status("md5", _md5(2)) == "active"
        await seq.stop()

    reference = _with_sequencer(forum_dir, tmp_path / "reference", 0, log, CommittedButFailed)
    paths = _with_sequencer(forum_dir, tmp_path / "server", 10_000, log, CommittedButFailed)
    assert _view_tables(paths.database) == _view_tables(reference.database)


Step = tuple[str, str, tuple[str, ...]]  # (member, "submit" | "retract" | "opine", values)


def _random_script(seed: int) -> list[list[Step]]:
    """Batches of entries from two members over six signals; the entries of a batch are
    sent at once, so they share groups (submissions beside retractions and opinions of the
    same signals).  Some are refused (a retraction of what the member does not hold, an
    opinion on what does not exist), the same way whatever the view holds back."""
    rng = random.Random(seed)
    pool = [_md5(100 + i) for i in range(6)]
    batches: list[list[Step]] = []
    for _ in range(20):
        batch: list[Step] = []
        for _ in range(rng.randint(1, 5)):
            member = rng.choice(MEMBERS)
            kind = rng.choices(["submit", "retract", "opine"], [5, 3, 2])[0]
            count = rng.randint(1, 4) if kind == "submit" else rng.randint(1, 2)
            values = tuple(rng.sample(pool, 1 if kind == "opine" else count))
            batch.append((member, kind, values))
        batches.append(batch)
    return batches


async def _play(seq: Sequencer, keys: Keys, script: list[list[Step]]) -> list[object]:
    """Send each batch at once; the index of each accepted entry, the error type of each
    refused one."""
    authors = {m: Author(seq, m, keys[m]) for m in MEMBERS}
    outcomes: list[object] = []
    for batch in script:
        calls = [getattr(authors[m], kind)(*values) for m, kind, values in batch]
        results = await asyncio.gather(*map(asyncio.ensure_future, calls), return_exceptions=True)
        outcomes += [r if isinstance(r, int) else type(r).__name__ for r in results]
    return outcomes


@pytest.mark.parametrize("ending", ["stop", "crash"])
@pytest.mark.parametrize("seed", range(16))
def test_random_groups_end_in_the_view_written_with_every_commit(
    forum_dir: tuple[Path, Keys],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    ending: str,
) -> None:
    """Random batches (above) through a sequencer that holds rows back (a pass threshold,
    key ranges and the quiet-log writes chosen by the seed) and through one that writes them
    with every commit: the same entries are accepted and refused, and the view tables end
    the same, after a stop or after a crash and the start-up replay."""
    rng = random.Random(seed)
    monkeypatch.setattr(sequencer_module, "PASS_RANGE_ROWS", rng.choice([1, 1, 3, 100_000]))
    quiet = rng.choice([0.001, 3600])  # the quiet-log writes: at once, or never
    monkeypatch.setattr(sequencer_module, "DEFERRED_VIEW_IDLE_SECONDS", quiet)
    monkeypatch.setattr(sequencer_module, "PASS_IDLE_SECONDS", quiet)
    threshold = rng.choice([2, 6, 20, 30, 10_000])  # 20, 30: passes outlast several commits
    script = _random_script(seed)
    outcomes: dict[str, list[object]] = {}

    def run(name: str, deferred: int) -> Check:
        async def check(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
            outcomes[name] = await _play(seq, keys, script)
            if ending == "stop" or not deferred:
                await seq.stop()
                return
            await _crash(seq)

        return check

    reference = _with_sequencer(forum_dir, tmp_path / "reference", 0, run("reference", 0))
    paths = _with_sequencer(forum_dir, tmp_path / "held", threshold, run("held", threshold))
    assert outcomes["held"] == outcomes["reference"]
    assert {"EntryRejectedError", "InvalidInputError"} & set(map(str, outcomes["reference"]))
    if ending == "crash":
        _restart(paths, threshold)
    assert _view_tables(paths.database) == _view_tables(reference.database)


def test_a_dispute_sees_the_held_descriptor_of_its_respondent(
    forum_dir: tuple[Path, Keys], tmp_path: Path, never_quiet: None
) -> None:
    """A dispute's rules read the view (the respondent must hold an active descriptor on the
    signal): against held rows it is accepted, and refused for a member without one; only
    the disputed signal's held rows are written for it."""

    async def check(seq: Sequencer, store: SQLiteStore, keys: Keys) -> None:
        alice, bob = Author(seq, "alice", keys["alice"]), Author(seq, "bob", keys["bob"])
        await alice.submit(_md5(1), _md5(2))
        await bob.dispute(_md5(1), "alice", "d-1")
        assert store.has_active_descriptor("alice", "md5", _md5(1))
        assert store.signal_status("md5", _md5(2)) is None  # still held
        with pytest.raises(InvalidInputError, match="bob has no active descriptor"):
            await alice.dispute(_md5(2), "bob", "d-2")
        await seq.stop()

    _with_sequencer(forum_dir, tmp_path / "server", 10_000, check)
