"""Faults: crashes, a full disk, a corrupted local database, concurrency.

Already covered elsewhere (not repeated): one ``kill -9`` of the server during concurrent
submissions (``tests/integration/test_submissions.py``,
``test_kill_9_loses_no_acknowledged_submission``)
and five ``kill -9`` of ``forum-client sync`` at random points
(``tests/integration/test_sync.py::test_kill_9_at_random_points_always_converges``).
Added here: the server killed *repeatedly* while members submit and a follower syncs, the
follower itself killed repeatedly, a full disk during sync, a corrupted page of the local
copy, many concurrent submitters and readers during a sync.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest

from forum_client import entries as e
from forum_client.client import ForumClient
from forum_client.entries import SignalItem
from forum_client.envelope import Envelope
from forum_client.errors import StoreError, TransportError
from forum_client.receipts import verify_checkpoint_note, verify_receipt
from forum_client.store import LocalStore, verify_store
from forum_client.sync import SyncConfig
from forum_client.wire import Receipt
from forum_server.app import ServerPaths
from forum_server.testing import LocalForum, local_forum, start_server_process
from tests.adversarial.submit_load import wait_for

pytestmark = pytest.mark.adversarial

PUB = "behaviour:terrorist-publication"


@pytest.fixture
def forum(tmp_path: Path) -> Iterator[LocalForum]:
    with local_forum(tmp_path / "f", members=["alice", "bob"], observers=["carol"]) as f:
        yield f


def fill(forum: LocalForum, entries: int, per_entry: int, tag: str = "") -> None:
    with forum.client("alice") as alice:
        key = forum.members["alice"].signing_key
        for n in range(entries):
            alice.submit(
                [
                    SignalItem("sha256", sha256(f"{tag}-{n}-{i}".encode()).hexdigest(), (PUB,))
                    for i in range(per_entry)
                ],
                key,
            )


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "forum_client.cli", *args]


# ---- crashes ----


@pytest.mark.slow
def test_server_killed_repeatedly_during_submissions_loses_nothing(tmp_path: Path) -> None:
    """Three rounds: members submit concurrently, the server is ``kill -9``-ed at a random
    moment and restarted.  Every acknowledged entry is in the log, each restart's
    checkpoint extends every earlier one, and a fresh copy of the final log verifies.

    Checks: forum_server/sequencer.py (durable before acknowledged; rebuild on start) and
    forum_client/merkle.py:verify_consistency / verify_inclusion."""
    with local_forum(tmp_path, members=["alice", "bob"], observers=["carol"]) as f:
        members = {m: (f.members[m].bundle, f.members[m].signing_key) for m in ("alice", "bob")}
        carol = f.members["carol"].bundle
        data_dir, root = f.directory / "server", f.trust_root
    rng = random.Random(6)
    acknowledged: list[tuple[Receipt, Envelope]] = []
    checkpoints = []
    lock = threading.Lock()
    for round_ in range(3):
        proc, address = start_server_process(data_dir)
        stop = threading.Event()

        def submitter(
            member: str, address: str = address, round_: int = round_, stop: threading.Event = stop
        ) -> None:
            bundle, key = members[member]
            # A call the kill cuts fails at once; the timeout only has to outlast the load.
            with ForumClient(bundle, server=address, timeout=60) as client:
                try:
                    sequence = client.next_sequence(key)
                except TransportError:
                    return
                for n in range(10_000):
                    if stop.is_set():
                        return
                    items = [
                        {"type": "md5", "value": f"{round_:04x}{n:012x}{i:016x}"} for i in range(20)
                    ]
                    env = client.prepare_submission(items, key, sequence=sequence)
                    try:
                        receipt = client.submit_envelope(env)
                    except TransportError:
                        return
                    sequence += 1
                    with lock:
                        acknowledged.append((receipt, env))

        threads = [threading.Thread(target=submitter, args=(m,)) for m in members]
        before = len(acknowledged)
        for t in threads:
            t.start()
        # Some acknowledgements first (a loaded machine may take seconds to get there), then
        # the kill at a random moment of the stream of submissions.
        wait_for(lambda n=before: len(acknowledged) >= n + 4, 120, "4 acknowledged submissions")
        time.sleep(rng.uniform(0.0, 0.7))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join(timeout=30)
        with lock:
            if acknowledged:
                newest = max(acknowledged, key=lambda x: x[0].tree_size)[0]
                checkpoints.append(verify_checkpoint_note(newest.checkpoint_note, root))
    assert len(acknowledged) >= 10
    proc, address = start_server_process(data_dir)
    try:
        with ForumClient(carol, server=address, timeout=30) as client:
            final = client.checkpoint()
            for cp in checkpoints:
                client.verify_consistent(cp, final)
            for receipt, env in acknowledged:
                verify_receipt(receipt, env, root)
                client.verify_included(receipt, env, final)
            with LocalStore(tmp_path / "fresh.db") as store:
                assert client.sync(store).size == final.size
                assert verify_store(store, root).ok
                assert [i for i, _ in store.leaves()] == list(range(final.size))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    location = ServerPaths(data_dir).database_location()
    if not location.startswith("postgresql"):
        _assert_view_matches_log(Path(location))


def _assert_view_matches_log(database: Path) -> None:
    """The server's view holds exactly the signals of its stored submissions: the view rows
    held back when a kill came (deferred view rows) were replayed at the next start."""
    con = sqlite3.connect(database)
    try:
        envelopes = [
            Envelope.from_leaf_bytes(leaf) for (leaf,) in con.execute("SELECT leaf FROM leaves")
        ]
        stored = {value for (value,) in con.execute("SELECT value FROM signals")}
        (view_size,) = con.execute("SELECT value FROM view_meta WHERE key = 'size'").fetchone()
    finally:
        con.close()
    bodies = [e.decode(env.payload_type, env.body) for env in envelopes]
    submitted = {s.value for b in bodies if isinstance(b, e.Submission) for s in b.signals}
    assert view_size == len(envelopes)
    assert submitted and stored == submitted


@pytest.mark.slow
def test_follower_killed_repeatedly_while_the_log_grows(forum: LocalForum, tmp_path: Path) -> None:
    """``forum-client sync --follow`` is ``kill -9``-ed four times at random moments while
    alice keeps submitting; after each kill the copy is a verified prefix (offline verify
    finds nothing), never shrinks, and a final sync converges with no gap or duplicate.

    Checks: forum_client/sync.py:Syncer._commit (one transaction per verified batch)."""
    fill(forum, 5, 500, "a")
    db = tmp_path / "follow.db"
    argv = _cli(
        "--profile",
        str(forum.members["carol"].bundle_path),
        "sync",
        "--db",
        str(db),
        "--follow",
        "--no-progress",
        "--commit-every",
        "700",
    )
    rng = random.Random(11)
    sizes = []
    for round_ in range(4):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        fill(forum, 3, 500, f"r{round_}")
        time.sleep(rng.uniform(0.1, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with LocalStore(db) as store:
            sizes.append(store.size)
            assert verify_store(store, forum.trust_root).problems == ()
    assert sizes == sorted(sizes)
    with forum.client("carol") as carol, LocalStore(db) as store:
        result = carol.sync(store)
        assert result.size == forum.running.handle.sequencer.size
        assert [i for i, _ in store.leaves()] == list(range(result.size))
        assert store.counts()["signals"] == (5 + 4 * 3) * 500


# ---- the local disk ----


def test_disk_full_during_sync_fails_cleanly_and_resumes(forum: LocalForum, tmp_path: Path) -> None:
    """SQLite's ``max_page_count`` caps the copy just above its size, so the next sync runs
    out of space mid-way: StoreError, the copy stays at its last verified state (offline
    verify finds nothing), no evidence is recorded (it is not the forum's fault), and once
    space is back the sync resumes and completes.

    Check: forum_client/sync.py:Syncer.sync (rollback on any failure; sqlite3.Error
    reported as StoreError)."""
    fill(forum, 2, 200, "a")
    db = tmp_path / "full.db"
    with forum.client("carol") as carol, LocalStore(db) as store:
        carol.sync(store)
        before, counts = store.size, store.counts()
        fill(forum, 20, 500, "b")
        pages = store.con.execute("PRAGMA page_count").fetchone()[0]
        store.con.execute(f"PRAGMA max_page_count = {pages + 20}")
        with pytest.raises(StoreError, match="full"):
            carol.sync(store, config=SyncConfig(commit_every_rows=2_000_000))
        assert store.size == before and store.counts() == counts
        assert not store.evidence()
        assert verify_store(store, forum.trust_root).ok
        store.con.execute("PRAGMA max_page_count = 1073741823")
        result = carol.sync(store)
        assert result.size == forum.running.handle.sequencer.size
        assert store.counts()["signals"] == 2 * 200 + 20 * 500


def _corrupt(db: Path, page: int, rng: random.Random) -> None:
    size = db.stat().st_size
    page_size = 4096
    with db.open("r+b") as f:
        f.seek(min(page * page_size, size - page_size) + 100)
        f.write(rng.randbytes(page_size - 200))


@pytest.mark.parametrize("where", [0.3, 0.5, 0.7, 0.9])
def test_a_corrupted_page_of_the_local_copy_is_never_accepted(
    forum: LocalForum, tmp_path: Path, where: float
) -> None:
    """Random bytes over one page in the middle of the closed database file: opening it,
    or ``forum-client verify``, must report it (StoreError, exit 6, or a TAMPERED problem,
    exit 5), never pass silently.

    Checks: forum_client/store.py:LocalStore.__init__ (open) and
    forum_client/sync.py:verify_store (reads every row; integrity check)."""
    fill(forum, 6, 400, "c")
    db = tmp_path / "corrupt.db"
    with forum.client("carol") as carol, LocalStore(db) as store:
        carol.sync(store)
        store.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.stat().st_size // 4096
    _corrupt(db, int(pages * where), random.Random(int(where * 100)))
    try:
        with LocalStore(db) as store:
            report = verify_store(store, forum.trust_root)
        assert not report.ok, "a corrupted copy verified"
    except StoreError:
        pass
    done = subprocess.run(
        _cli("--profile", str(forum.members["carol"].bundle_path), "verify", "--db", str(db)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (5, 6), (done.returncode, done.stderr[-500:])
    assert "Traceback" not in done.stderr


# ---- concurrency ----


def test_many_concurrent_submitters(forum: LocalForum, tmp_path: Path) -> None:
    """8 threads x 20 submissions (alice and bob, 4 threads each, interleaved sequences):
    no gap, no duplicate index, every receipt verifies, the log verifies.

    Checks: forum_server/sequencer.py:Sequencer._commit (one writer, contiguous indexes)."""
    receipts: list[tuple[Receipt, Envelope]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    clients = {m: forum.client(m) for m in ("alice", "bob")}
    next_seq = {m: clients[m].next_sequence(forum.members[m].signing_key) for m in clients}

    def worker(n: int) -> None:
        member = "alice" if n % 2 else "bob"
        key = forum.members[member].signing_key
        client = clients[member]
        try:
            for i in range(20):
                with lock:
                    seq = next_seq[member]
                    next_seq[member] += 1
                    env = client.prepare_submission(
                        [{"type": "md5", "value": f"{n:016x}{i:016x}"}], key, sequence=seq
                    )
                for attempt in range(50):  # a later sequence may overtake an earlier one
                    try:
                        receipt = client.submit_envelope(env)
                        break
                    except TransportError as exc:
                        if exc.code != "FAILED_PRECONDITION" or attempt == 49:
                            raise
                        with lock:  # re-sign with a fresh sequence
                            seq = next_seq[member]
                            next_seq[member] += 1
                            env = client.prepare_submission(
                                [{"type": "md5", "value": f"{n:016x}{i:016x}"}], key, sequence=seq
                            )
                with lock:
                    receipts.append((receipt, env))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for c in clients.values():
        c.close()
    assert not errors, errors[:3]
    assert len(receipts) == 160
    indexes = [r.index for r, _ in receipts]
    assert len(set(indexes)) == 160
    for receipt, env in receipts:
        verify_receipt(receipt, env, forum.trust_root)
    with forum.client("carol") as carol, LocalStore(tmp_path / "all.db") as store:
        result = carol.sync(store)
        assert [i for i, _ in store.leaves()] == list(range(result.size))
        assert set(indexes) <= set(range(result.size))
        assert store.counts()["signals"] == 160
        assert verify_store(store, forum.trust_root).ok


def test_readers_during_a_sync_see_only_whole_batches(forum: LocalForum, tmp_path: Path) -> None:
    """A second connection polls the copy while a sync commits every ~1,000 rows: every
    snapshot it sees has as many entries as the verified size and exactly the signals of
    those entries (never a partial batch), and sizes only grow.

    Check: forum_client/sync.py:Syncer._commit (entries, view rows and sync_state in one
    transaction) with WAL snapshots (forum_client/store.py:LocalStore.read).  After each
    batch the sync waits for the reader to take a snapshot begun after it, so the reader
    sees every intermediate commit however the two threads are scheduled."""
    db = tmp_path / "read.db"
    seen: list[tuple[int, int, int]] = []
    done = threading.Event()
    snapshots = threading.Condition()
    with forum.client("carol") as carol, LocalStore(db) as writer:
        carol.sync(writer)  # genesis and membership
        base = writer.size
        fill(forum, 30, 300, "r")

        def read() -> None:
            with LocalStore(db) as reader:
                while not done.is_set():
                    with reader.read() as con:
                        row = con.execute("SELECT size FROM sync_state").fetchone()
                        size = row[0] if row else 0
                        entries = con.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
                        signals = con.execute("SELECT COUNT(*) FROM signals").fetchone()[0]
                    with snapshots:
                        seen.append((size, entries, signals))
                        snapshots.notify_all()

        def after_each_batch(_: object) -> None:
            with snapshots:  # the one under way may predate this point; the next does not
                wanted = len(seen) + 2
                assert snapshots.wait_for(lambda: len(seen) >= wanted, 60), "reader stuck"

        reader = threading.Thread(target=read)
        reader.start()
        try:
            config = SyncConfig(commit_every_rows=1_000, max_batch=2)
            carol.sync(writer, progress=after_each_batch, config=config)
        finally:
            done.set()
            reader.join(timeout=30)
        final = writer.size
    assert seen
    sizes = [s for s, _, _ in seen]
    assert sizes == sorted(sizes)
    distinct = sorted(set(sizes))
    assert len(distinct) >= 3, distinct  # the reader really saw intermediate commits
    assert final == base + 30
    for size, entries, signals in seen:
        assert entries == size
        assert signals == 300 * (size - base), (size, signals)  # whole entries only
