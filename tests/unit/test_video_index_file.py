"""The video (vPDQ) index follows the local copy like the PDQ index: saved beside it, caught
up from the sync's journal, equal to a fresh build and to brute force after submissions,
retractions and benign-list changes, and rebuilt when its file is missing, corrupt,
inconsistent or stale; a sync or a matcher killed mid-way leaves a usable index."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from forum_client.match.lookup import Matcher, video_index_path_for
from forum_client.match.pdq_index import PDQIndexFileError
from forum_client.match.video_index import VideoIndex, frame_arrays_of_normal_value
from forum_client.signals import normalize
from forum_client.store import LocalStore
from tests.unit.test_match import FakeLog

ROOT = Path(__file__).resolve().parents[2]


def flip(h: bytes, bits: int, rng: np.random.Generator) -> bytes:
    b = np.unpackbits(np.frombuffer(h, np.uint8))
    b[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(b).tobytes()


def video(frames: list[bytes], quality: int = 90) -> str:
    return normalize("vpdq", "\n".join(f"{h.hex()},{quality},{t}" for t, h in enumerate(frames)))


def pool(seed: int = 3) -> list[str]:
    """16 videos from 4 scenes: copies share frames within a few bits, so frames are shared
    between videos and queries hit several of them."""
    rng = np.random.default_rng(seed)
    scenes = [[rng.bytes(32) for _ in range(8)] for _ in range(4)]
    out = []
    for n in range(16):
        base = scenes[n % 4]
        keep = sorted(rng.choice(8, int(rng.integers(3, 9)), replace=False).tolist())
        out.append(video([flip(base[i], int(rng.integers(0, 12)), rng) for i in keep]))
    return out


def active(store: LocalStore) -> set[str]:
    """The store's active, non-benign vpdq values, read straight from the view."""
    return {
        v
        for (v,) in store.con.execute(
            "SELECT value FROM signals s WHERE type = 'vpdq' AND EXISTS (SELECT 1 FROM "
            "descriptors d WHERE d.type = s.type AND d.value = s.value AND d.active = 1) "
            "AND NOT EXISTS (SELECT 1 FROM benign b WHERE b.type = 'vpdq' AND b.value = s.value)"
        )
    }


def brute(values: set[str], query: str, threshold: int = 31) -> dict[str, tuple[float, float]]:
    """vPDQ's rule written out: every distinct good frame of the query against every one of
    each video (80% each way)."""
    q, qq = frame_arrays_of_normal_value(query)
    qset = {bytes(r) for r in q[qq >= 50]}
    out = {}
    for value in values:
        h, hq = frame_arrays_of_normal_value(value)
        vset = {bytes(r) for r in h[hq >= 50]}
        near = (
            np.array(
                [
                    [
                        bin(int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).count("1")
                        for b in vset
                    ]
                    for a in qset
                ]
            )
            <= threshold
        )
        qs, cs = 100 * near.any(axis=1).mean(), 100 * near.any(axis=0).mean()
        if qs >= 80 and cs >= 80:
            out[value] = (float(qs), float(cs))
    return out


def check(matcher: Matcher, store: LocalStore, queries: list[str]) -> int:
    """The matcher's answers equal a fresh build's and brute force's for every query;
    returns how many matches there were."""
    hits = 0
    values = active(store)
    fresh: VideoIndex[str] = VideoIndex.build((v, frame_arrays_of_normal_value(v)) for v in values)
    assert len(matcher.video_index()) == len(values)
    for query in queries:
        got = {r.value: r.shares for r in matcher.match("vpdq", query)}
        built = {
            m.key: (m.query_match, m.compared_match)
            for m in fresh.query(frame_arrays_of_normal_value(query))
        }
        assert rounded(got) == rounded(built) == rounded(brute(values, query))
        hits += len(got)
    return hits


def rounded(found: dict[str, tuple[float, float] | None]) -> dict[str, tuple[float, ...]]:
    return {k: tuple(round(x, 6) for x in v or ()) for k, v in found.items()}


def test_persisted_index_equals_a_fresh_build_through_submissions_retractions_and_benign(
    tmp_path: Path,
) -> None:
    videos = pool()
    rng = np.random.default_rng(4)
    db = tmp_path / "copy.db"
    store = LocalStore(db)
    log = FakeLog(store)
    log.genesis()
    matcher = Matcher(store, save_lag_entries=2)
    loads = hits = 0
    try:
        for step in range(40):
            which = [videos[i] for i in rng.choice(16, int(rng.integers(1, 4)), replace=False)]
            refs = [("vpdq", v) for v in which]
            op = ["submit", "submit", "retract", "benign+", "benign-", "reopen"][step % 6]
            if op == "submit":
                log.submit(["alice", "bob"][step % 2], refs, content_type="video")
            elif op == "retract":
                log.retract(["alice", "bob"][step % 2], refs)
            elif op == "benign+":
                log.benign(add=refs)
            elif op == "benign-":
                log.benign(remove=refs)
            else:
                matcher.close()
                matcher = Matcher(store, save_lag_entries=2)
                check(matcher, store, videos[:4])
                assert not matcher.video_rebuilt, "a saved index is loaded and caught up"
                loads += 1
            hits += check(
                matcher, store, [videos[int(i)] for i in rng.choice(16, 4, replace=False)]
            )
        assert loads >= 6 and hits >= 40 and video_index_path_for(db).is_file()
    finally:
        matcher.close()
        store.close()


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, list[str]]:
    videos = pool(5)
    with LocalStore(tmp_path / "copy.db") as store:
        log = FakeLog(store)
        log.genesis()
        log.submit("alice", [("vpdq", v) for v in videos[:10]], content_type="video")
        log.retract("alice", [("vpdq", videos[0])])
        log.benign(add=[("vpdq", videos[1])])
        with Matcher(store) as m:
            check(m, store, videos)
            assert m.video_rebuilt
    assert video_index_path_for(tmp_path / "copy.db").is_file()
    return tmp_path / "copy.db", videos


def reopened(db: Path, videos: list[str]) -> bool:
    """Whether a new matcher had to rebuild the video index (its answers checked)."""
    with LocalStore(db) as store, Matcher(store) as m:
        check(m, store, videos)
        return m.video_rebuilt


def test_a_missing_truncated_or_corrupt_file_is_rebuilt(filled: tuple[Path, list[str]]) -> None:
    db, videos = filled
    path = video_index_path_for(db)
    assert not reopened(db, videos)
    good = path.read_bytes()
    for damaged in (b"garbage", good[: len(good) // 2], b""):
        path.write_bytes(damaged)
        assert reopened(db, videos)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x40  # inside an array: its CRC-32 no longer matches
    path.write_bytes(bytes(flipped))
    assert reopened(db, videos)
    path.unlink()
    assert reopened(db, videos)
    # The PDQ index file is no video index, nor the other way round.
    shutil.copy(path, str(db) + ".pdqidx.npz")
    path.write_bytes(Path(str(db) + ".pdqidx.npz").read_bytes())
    with LocalStore(db) as store, Matcher(store) as m:
        check(m, store, videos)
        m.match("pdq", "0" * 64)
        assert m.rebuilt


def test_an_inconsistent_file_with_good_checksums_is_refused(
    filled: tuple[Path, list[str]],
) -> None:
    """The frame lists, owners and PDQ index are checked against each other on load: a file
    rewritten with valid checksums but wrong structures is rebuilt, never trusted."""
    db, videos = filled
    path = video_index_path_for(db)
    index, extra = VideoIndex.load_with_extra(path)
    owner = index._owner
    other = int(owner[0] + 1) % len(index)
    owner[0] = other  # frame 0 now claims another video, which does not list it
    index.save(path, extra=extra)
    with pytest.raises(PDQIndexFileError, match="disagree"):
        VideoIndex.load_with_extra(path)
    assert reopened(db, videos)


def test_a_stale_file_or_one_of_another_copy_is_rebuilt(
    filled: tuple[Path, list[str]], tmp_path: Path
) -> None:
    db, videos = filled
    path = video_index_path_for(db)
    # The copy restored from a backup older than its index file: the file is ahead of it.
    older = tmp_path / "older.db"
    with LocalStore(older) as store:
        log = FakeLog(store)
        log.genesis()
        for v in videos[:3]:  # as many entries as the copy had when `early` was saved
            log.submit("alice", [("vpdq", v)], content_type="video")
    early = path.read_bytes()
    with LocalStore(db) as store:
        FakeLog(store).submit("bob", [("vpdq", v) for v in videos[10:]], content_type="video")
    assert not reopened(db, videos)  # behind the copy: caught up, not rebuilt
    video_index_path_for(older).write_bytes(path.read_bytes())
    assert reopened(older, videos)  # ahead of it
    # Another copy of the same size: its last leaf differs.
    with LocalStore(older) as store:
        assert store.size == 4
    video_index_path_for(older).write_bytes(early)
    assert reopened(older, videos)


def test_a_killed_transaction_leaves_the_index_usable(filled: tuple[Path, list[str]]) -> None:
    """A sync killed mid-transaction never commits its journal rows: the index still
    reflects exactly the committed copy."""
    db, videos = filled
    with LocalStore(db) as store:
        log = FakeLog(store)
        with pytest.raises(RuntimeError), store.write() as con:
            con.execute("INSERT INTO vpdq_changes VALUES (?, ?)", (log.size, videos[12]))
            raise RuntimeError("killed")
    assert not reopened(db, videos)


_CHILD = textwrap.dedent(
    """
    import sys
    from forum_client.match.lookup import Matcher
    from forum_client.store import LocalStore
    from tests.unit.test_match import FakeLog
    from tests.unit.test_video_index_file import pool

    videos = pool(6)
    store = LocalStore(sys.argv[1])
    log = FakeLog(store)
    matcher = Matcher(store, save_lag_entries=1)
    print("ready", flush=True)
    n = 0
    while True:  # syncs and index saves, until killed
        v = videos[n % 16]
        if n % 3 == 2:
            log.retract("alice", [("vpdq", v)])
        else:
            log.submit("alice", [("vpdq", v)], content_type="video")
        matcher.match("vpdq", videos[(n * 7) % 16])
        n += 1
    """
)


def test_a_process_killed_while_syncing_and_saving_leaves_a_usable_index(
    tmp_path: Path,
) -> None:
    db = tmp_path / "killed.db"
    with LocalStore(db) as store:
        FakeLog(store).genesis()
    videos = pool(6)
    for delay in (0.4, 0.9, 1.3):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        with LocalStore(db) as store, Matcher(store) as m:
            check(m, store, videos)
    assert video_index_path_for(db).is_file()


def test_a_copy_made_before_the_video_journal_gets_it_from_its_entries(
    filled: tuple[Path, list[str]],
) -> None:
    """A copy from before m004 (and m005) gets the whole journal from its verified entries,
    and the sync keeps journaling it from entry 0 on (no rebuild of a saved index)."""
    db, videos = filled
    with LocalStore(db) as store:
        store.con.execute("DROP TABLE vpdq_changes")
        store.con.execute("DROP TABLE journal_from")
        store.con.execute(
            "DELETE FROM _sqlite_migrations WHERE name IN ('m004_vpdq_changes', "
            "'m005_journal_from')"
        )
    video_index_path_for(db).unlink()
    with LocalStore(db) as store:
        journal = store.con.execute("SELECT * FROM vpdq_changes ORDER BY 1, 2").fetchall()
        # 10 submitted at entry 1, one retracted at 2, one benign-listed at 3
        assert journal == sorted([(1, v) for v in videos[:10]] + [(2, videos[0]), (3, videos[1])])
        assert dict(store.con.execute("SELECT * FROM journal_from").fetchall()) == {
            "pdq": 0,
            "vpdq": 0,
        }
    assert reopened(db, videos)
