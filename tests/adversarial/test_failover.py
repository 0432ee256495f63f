"""Failover with real processes: three ``forum-server`` processes over one PostgreSQL
database, twenty members submitting through one address list, the leader ``kill -9``-ed ten
times at random moments, then a leader frozen with SIGSTOP past its lease and resumed.

Checked at the end, against the database itself:
- every acknowledged entry is at the index its receipt names (nothing acknowledged lost, no
  index used twice: each index holds one leaf);
- every stored checkpoint and every receipt's checkpoint verifies and matches the root of
  that prefix of the final log;
- the resumed old leader appended nothing after a new one took over (its epoch is fenced
  off), and a fresh member copy synced from the survivors verifies.

The PostgreSQL "restart" case ends every connection the forum holds
(``pg_terminate_backend`` on the forum's own ``application_name``): restarting the shared
PostgreSQL server itself would break other test runs on the machine.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from forum_client.checkpoint import verify_checkpoint
from forum_client.client import ForumClient
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import TransportError
from forum_client.merkle import MerkleTree
from forum_client.profile import Bundle
from forum_client.source import GrpcSource
from forum_client.store import LocalStore
from forum_client.sync import Syncer
from forum_client.wire import Receipt
from forum_server.storage.postgres import PostgresStore
from forum_server.testing import local_forum, start_server_process

pytestmark = [pytest.mark.adversarial, pytest.mark.slow, pytest.mark.serial]

SERVERS = 3
CLIENTS = 20
KILLS = 10
LEASE = "1.5"


@dataclass
class Cluster:
    data_dir: Path
    url: str
    log_dir: Path
    procs: list[subprocess.Popen[str] | None] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)

    def start(self, slot: int) -> None:
        listen = self.addresses[slot] if slot < len(self.addresses) else "127.0.0.1:0"
        with open(self.log_dir / f"server-{slot}.log", "a") as err:
            proc, address = start_server_process(
                self.data_dir,
                log_level="INFO",
                stderr=err.fileno(),
                extra_args=["--lease", LEASE],
                listen=listen,
            )
        if slot < len(self.procs):
            self.procs[slot] = proc
        else:
            self.procs.append(proc)
            self.addresses.append(address)

    def slot_of(self, pid: int) -> int | None:
        for slot, proc in enumerate(self.procs):
            if proc is not None and proc.pid == pid:
                return slot
        return None

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(timeout=30)


@dataclass
class Acked:
    receipts: list[tuple[Receipt, Envelope]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    times: list[float] = field(default_factory=list)  # monotonic time of each acknowledgement
    errors: list[BaseException] = field(default_factory=list)


def _leader_pid(store: PostgresStore) -> tuple[int, int] | None:
    found = store.leader()
    if found is None:
        return None
    epoch, holder = found
    return epoch, int(holder.rsplit(":", 1)[1])


def _submitter(
    bundle: Bundle, key: SigningKey, servers: str, member: str, stop: threading.Event, acked: Acked
) -> None:
    try:
        with ForumClient(bundle, server=servers, timeout=5) as client:
            sequence = None
            while sequence is None:
                try:
                    sequence = client.next_sequence(key)
                except TransportError:
                    time.sleep(0.05)
            n = 0
            while not stop.is_set():
                value = hashlib.sha256(f"{member}-{n}".encode()).hexdigest()
                items = [{"type": "sha256", "value": value}]
                envelope = client.prepare_submission(items, key, sequence=sequence)
                while True:  # resend the same bytes until acknowledged: idempotent
                    try:
                        receipt = client.submit_envelope(envelope)
                        break
                    except TransportError as exc:
                        if exc.code not in {"UNAVAILABLE", "DEADLINE_EXCEEDED", "UNKNOWN"}:
                            raise
                        time.sleep(0.05)
                with acked.lock:
                    acked.receipts.append((receipt, envelope))
                    acked.times.append(time.monotonic())
                sequence += 1
                n += 1
    except BaseException as exc:  # reported by the test
        acked.errors.append(exc)


@dataclass
class Follower:
    """``sync --follow`` through the address list, for the whole test."""

    bundle: Bundle
    servers: str
    db: Path
    sizes: list[int] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    syncer: Syncer | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            with (
                ForumClient(self.bundle, server=self.servers, timeout=5) as client,
                LocalStore(self.db) as store,
            ):
                self.syncer = Syncer(
                    GrpcSource(client.stub, 5),
                    store,
                    self.bundle.trust_root,
                    reader=self.bundle.member_id,
                )
                self.ready.set()
                self.syncer.follow(lambda result: self.sizes.append(result.size))
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
            self.ready.set()


def _terminate_forum_connections(url: str, application: str) -> int:
    with psycopg.connect(url, autocommit=True) as con:
        rows = con.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application,),
        ).fetchall()
    return len(rows)


def test_kill_9_the_leader_ten_times_then_freeze_it(tmp_path: Path, postgres_url: str) -> None:
    application = f"forum-failover-{os.getpid()}"
    url = f"{postgres_url}&application_name={application}"
    members = [f"m{i:02d}" for i in range(CLIENTS)]
    with local_forum(tmp_path, database=url, members=members, observers=["watcher"]) as f:
        data_dir = f.directory / "server"
        creds = {m: (f.members[m].bundle, f.members[m].signing_key) for m in members}
        watcher = f.members["watcher"].bundle
    cluster = Cluster(data_dir, url, tmp_path)
    store = PostgresStore(postgres_url)
    rng = random.Random(12)
    stop = threading.Event()
    acked = Acked()
    failovers: list[float] = []
    try:
        for slot in range(SERVERS):
            cluster.start(slot)
        servers = ",".join(cluster.addresses)
        threads = [
            threading.Thread(
                target=_submitter, args=(*creds[m], servers, m, stop, acked), daemon=True
            )
            for m in members
        ]
        for t in threads:
            t.start()
        follower = Follower(watcher, servers, tmp_path / "follower.db")
        following = threading.Thread(target=follower.run, daemon=True)
        following.start()
        follower.ready.wait(60)
        _wait_for(lambda: len(acked.receipts) >= 40, 60)

        for _ in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.5))
            current = _leader_pid(store)
            assert current is not None
            epoch, pid = current
            slot = cluster.slot_of(pid)
            assert slot is not None, f"leader pid {pid} is not one of ours"
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            proc = cluster.procs[slot]
            assert proc is not None
            proc.wait(timeout=30)
            cluster.procs[slot] = None
            _wait_for(lambda e=epoch: (_leader_pid(store) or (e, 0))[0] > e, 30)
            failovers.append(time.monotonic() - killed_at)
            size = store.size()  # the new leader sequences from here: wait for its first
            _wait_for(lambda s=size: any(r.index >= s for r, _ in acked.receipts[-40:]), 30)
            cluster.start(slot)  # back on the same port: the clients' list stays valid

        # Freeze the leader past its lease: another takes over; resumed, it cannot append.
        epoch, pid = _leader_pid(store) or (0, 0)
        frozen_slot = cluster.slot_of(pid)
        before = len(acked.receipts)
        os.kill(pid, signal.SIGSTOP)
        try:
            _wait_for(lambda: (_leader_pid(store) or (epoch, 0))[0] > epoch, 30)
            _wait_for(lambda: len(acked.receipts) > before + 20, 30)
        finally:
            os.kill(pid, signal.SIGCONT)
        size_at_resume = store.size()
        # the resumed leader notices that its epoch ended (and is fenced off until then)
        frozen_log = tmp_path / f"server-{frozen_slot}.log"
        _wait_for(lambda: "no longer leading" in frozen_log.read_text(), 30)

        # "PostgreSQL restarts": every connection of the forum is cut under load.
        before = len(acked.receipts)
        assert _terminate_forum_connections(postgres_url, application) > 0
        _wait_for(lambda: len(acked.receipts) > before + 20, 60)

        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert not acked.errors, acked.errors[:3]
        # The follower reconnected on its own through every failover and caught up.
        final = store.size()
        try:
            _wait_for(lambda: bool(follower.sizes) and follower.sizes[-1] == final, 60)
        except AssertionError:
            raise AssertionError(
                f"the follower stopped at {follower.sizes[-3:]} of {final}: {follower.errors}"
            ) from None
        assert follower.syncer is not None
        follower.syncer.stop()
        following.join(timeout=60)
        assert not follower.errors, follower.errors
        assert follower.sizes == sorted(follower.sizes)
    finally:
        stop.set()
        cluster.stop_all()

    try:
        _check_log(store, acked, f.trust_root.origin, f.trust_root)
        assert store.size() > size_at_resume
        # Fencing: every epoch's checkpoints come before the next epoch's first one, so no
        # old leader (killed or frozen) committed anything after a new one took over.
        with psycopg.connect(postgres_url) as con:
            spans = con.execute(
                "SELECT epoch, min(size), max(size) FROM checkpoints WHERE epoch IS NOT NULL "
                "GROUP BY epoch ORDER BY epoch"
            ).fetchall()
        assert len(spans) >= KILLS + 1
        for (_, _, last), (_, first, _) in itertools.pairwise(spans):
            assert last < first
    finally:
        store.close()

    # A fresh member copy from a restarted server verifies.
    cluster.procs = []
    cluster.addresses = []
    cluster.start(0)
    try:
        with (
            ForumClient(watcher, server=cluster.addresses[0]) as client,
            LocalStore(tmp_path / "watcher.db") as local,
        ):
            result = client.sync(local)
            assert result.size >= max(r.index for r, _ in acked.receipts) + 1
    finally:
        cluster.stop_all()
    print(
        f"\nfailover (kill -9 -> new leader) over {len(failovers)} kills: "
        f"p50 {statistics.median(failovers):.2f} s, max {max(failovers):.2f} s; "
        f"{len(acked.receipts)} entries acknowledged"
    )


def _check_log(store: PostgresStore, acked: Acked, origin: str, root: object) -> None:
    from forum_client.verifier import TrustRoot

    assert isinstance(root, TrustRoot)
    size = store.size()
    leaves = list(store.leaves(0, size))
    assert [x.index for x in leaves] == list(range(size))  # no gap, each index once
    # Nothing acknowledged is lost: each receipt's index holds exactly its entry.
    for receipt, envelope in acked.receipts:
        assert leaves[receipt.index].leaf_bytes == envelope.leaf_bytes()
    assert len({r.index for r, _ in acked.receipts}) == len(acked.receipts)
    # Every checkpoint, stored or handed out, is over a prefix of the final log.
    notes = {r.tree_size: r.checkpoint_note for r, _ in acked.receipts}
    with psycopg.connect(store.url) as con:
        stored = con.execute("SELECT size, note FROM checkpoints ORDER BY size").fetchall()
    by_size: dict[int, list[bytes]] = {}
    for s, note in [*stored, *notes.items()]:
        by_size.setdefault(int(s), []).append(bytes(note))
    tree = MerkleTree()
    for leaf in leaves:
        tree.append(leaf.leaf_hash)
        for note in by_size.get(tree.size, []):
            cp = verify_checkpoint(
                note, origin=origin, name=root.log_key_name, public_key=root.log_public_key
            )
            assert cp.size == tree.size and cp.root == tree.root()


def _wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"not reached within {timeout} s")
