"""Load for the fault tests: members submitting through an address list until told to stop,
resending each entry until it is acknowledged, and the checks of the final log.

    acked = Acked()
    threading.Thread(target=submitter, args=(bundle, key, servers, "m00", stop, acked)).start()
    ...                                   # kill, freeze or restart things
    check_log(store, acked, trust_root)   # nothing acknowledged lost, every checkpoint agrees

Used by the failover test (kill -9 and SIGSTOP of servers) and the PostgreSQL restart test.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from forum_client.checkpoint import verify_checkpoint
from forum_client.client import ForumClient
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import TransportError
from forum_client.merkle import MerkleTree
from forum_client.profile import Bundle
from forum_client.source import GrpcSource
from forum_client.store import LocalStore
from forum_client.sync import Syncer
from forum_client.verifier import TrustRoot
from forum_client.wire import Receipt
from forum_server.storage.postgres import PostgresStore
from forum_server.testing import start_server_process

# What a client retries: the server (or its store) is down or changing leader.
RETRIED = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "UNKNOWN"})


@dataclass
class Servers:
    """``forum-server serve`` processes over one data dir, each in a slot that keeps its
    address when it is started again (so the members' address list stays valid)."""

    data_dir: Path
    log_dir: Path
    lease: str = "1.5"  # --lease, seconds
    procs: list[subprocess.Popen[str] | None] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)

    def start(self, slot: int) -> None:
        listen = self.addresses[slot] if slot < len(self.addresses) else "127.0.0.1:0"
        with open(self.log_dir / f"server-{slot}.log", "a") as err:
            proc, address = start_server_process(
                self.data_dir,
                log_level="INFO",
                stderr=err.fileno(),
                extra_args=["--lease", self.lease],
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
    retried: Counter[str] = field(default_factory=Counter)  # status code -> resends after it


def submitter(
    bundle: Bundle, key: SigningKey, servers: str, member: str, stop: threading.Event, acked: Acked
) -> None:
    """Submit one new entry after another until ``stop``; resend the same bytes (idempotent)
    after a retryable error; any other error ends the thread and is kept in ``acked.errors``."""
    try:
        with ForumClient(bundle, server=servers, timeout=5) as client:
            sequence = None
            while sequence is None:
                try:
                    sequence = client.next_sequence(key)
                except TransportError as exc:
                    if exc.code not in RETRIED:
                        raise
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
                        if exc.code not in RETRIED:
                            raise
                        with acked.lock:
                            acked.retried[str(exc.code)] += 1
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


def check_log(store: PostgresStore, acked: Acked, root: TrustRoot) -> None:
    """Against the database itself: no gap and no index used twice, each acknowledged entry at
    the index its receipt names, and every checkpoint (stored or handed out in a receipt)
    verifies and is the root of that prefix of the final log."""
    size = store.size()
    leaves = list(store.leaves(0, size))
    assert [x.index for x in leaves] == list(range(size))  # no gap, each index once
    # Nothing acknowledged is lost: each receipt's index holds exactly its entry.
    for receipt, envelope in acked.receipts:
        assert leaves[receipt.index].leaf_bytes == envelope.leaf_bytes()
    assert len({r.index for r, _ in acked.receipts}) == len(acked.receipts)
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
                note, origin=root.origin, name=root.log_key_name, public_key=root.log_public_key
            )
            assert cp.size == tree.size and cp.root == tree.root()


def wait_for(predicate: Callable[[], object], timeout: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout} s")


@dataclass
class Load:
    """Members submitting (one thread each) and one member following, through one address
    list, until :meth:`finish`."""

    acked: Acked
    stop: threading.Event
    threads: list[threading.Thread]
    follower: Follower
    following: threading.Thread

    @classmethod
    def start(
        cls,
        creds: dict[str, tuple[Bundle, SigningKey]],
        watcher: Bundle,
        addresses: str,
        follower_db: Path,
    ) -> Load:
        acked, stop = Acked(), threading.Event()
        threads = [
            threading.Thread(
                target=submitter, args=(*creds[m], addresses, m, stop, acked), daemon=True
            )
            for m in creds
        ]
        for t in threads:
            t.start()
        follower = Follower(watcher, addresses, follower_db)
        following = threading.Thread(target=follower.run, daemon=True)
        following.start()
        follower.ready.wait(60)
        return cls(acked, stop, threads, follower, following)

    def finish(self, store: PostgresStore) -> None:
        """Stop submitting (no member may have failed), then check that the follower, which
        reconnected on its own through whatever happened, reaches the final size, and stop
        it."""
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
        assert not self.acked.errors, self.acked.errors[:3]
        final = store.size()
        follower = self.follower
        wait_for(
            lambda: bool(follower.sizes) and follower.sizes[-1] == final,
            60,
            f"the follower at {final} (it is at {follower.sizes[-3:]}: {follower.errors})",
        )
        assert follower.syncer is not None
        follower.syncer.stop()
        self.following.join(timeout=60)
        assert not follower.errors, follower.errors
        assert follower.sizes == sorted(follower.sizes)
