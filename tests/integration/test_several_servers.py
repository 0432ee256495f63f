"""Several servers over one PostgreSQL database: one sequences, all serve, fencing holds.

Real servers on port 0 with real mTLS, talked to through the SDK; the fencing cases drive
the store's leadership row directly, because they are about what PostgreSQL lets a stale
leader do.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psycopg
import pytest

from forum_client.client import ForumClient
from forum_client.envelope import SigningKey
from forum_client.errors import StoreError, TransportError
from forum_client.store import LocalStore
from forum_server.admin.init import init_forum
from forum_server.admin.operator import Operator
from forum_server.app import RunningForum, ServerPaths, running_server
from forum_server.config import ServerConfig
from forum_server.sequencer import Sequencer
from forum_server.storage import NotLeaderError, StoredLeaf
from forum_server.storage.postgres import PostgresStore
from forum_server.testing import LocalForum, local_forum

pytestmark = [pytest.mark.integration, pytest.mark.serial]

# A leader that stops closes its lease connection, and the other server takes over at once;
# the lease only has to outlast a loaded machine's pauses (a 1 s lease made the leader step
# down after 0.8 s without a renewal).
FAST = ServerConfig(lease_seconds=10.0, follow_store_seconds=0.05, grace_seconds=1.0)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _wait(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def _leader_and_follower(
    forum: LocalForum, second: RunningForum
) -> tuple[RunningForum, RunningForum]:
    first = forum.running
    _wait(lambda: first.handle.sequencer.leading or second.handle.sequencer.leading)
    if first.handle.sequencer.leading:
        return first, second
    return second, first


def test_a_follower_serves_reads_and_forwards_submissions(
    tmp_path: Path, postgres_url: str
) -> None:
    with local_forum(tmp_path, database=postgres_url, config=FAST, observers=["carol"]) as f:
        data_dir = f.directory / "server"
        with running_server(data_dir, config=FAST) as other:
            leader, follower = _leader_and_follower(f, other)
            assert not follower.handle.sequencer.leading
            key = f.members["alice"].signing_key
            bundle = f.members["alice"].bundle
            with ForumClient(bundle, server=follower.address) as client:
                first = client.checkpoint()
                envelope = client.prepare_submission([{"type": "md5", "value": "a" * 32}], key)
                receipt = client.submit_envelope(envelope)
                cp = client.checkpoint()
                assert cp.size > receipt.index
                # every read RPC is served by the follower: status, both proofs
                assert client.status().member_id == "alice"
                client.verify_included(receipt, envelope, cp)
                client.verify_consistent(first, cp)
                # A rejected entry is rejected the same way through the follower.
                with pytest.raises(TransportError) as bad:
                    stale = client.prepare_submission(
                        [{"type": "md5", "value": "e" * 32}], key, sequence=1
                    )
                    client.submit_envelope(stale)
                assert bad.value.code == "FAILED_PRECONDITION"
            # Both servers list both; one address list reaches either.
            both = f"{f.address},{other.address}"
            with ForumClient(bundle, server=both) as client:
                for n in range(6):
                    client.submit([{"type": "sha256", "value": sha(f"both-{n}")}], key)
            _wait(lambda: leader.handle.sequencer.size == follower.handle.sequencer.size)
            assert (
                leader.handle.sequencer.checkpoint_note == follower.handle.sequencer.checkpoint_note
            )
            # A fresh member copy synced from the follower verifies.
            with (
                ForumClient(f.members["carol"].bundle, server=follower.address) as carol,
                LocalStore(tmp_path / "carol.db") as store,
            ):
                result = carol.sync(store)
                assert result.size == follower.handle.sequencer.size


def test_when_the_leader_stops_the_other_server_takes_over(
    tmp_path: Path, postgres_url: str
) -> None:
    with local_forum(tmp_path, database=postgres_url, config=FAST, observers=[]) as f:
        data_dir = f.directory / "server"
        key = f.members["alice"].signing_key
        bundle = f.members["alice"].bundle
        with running_server(data_dir, config=FAST) as other:
            assert f.running.handle.sequencer.leading  # the first server took the lease
            with ForumClient(bundle, server=other.address) as client:
                first = client.submit([{"type": "md5", "value": "b" * 32}], key)
                f.running.call(f.running.handle.stop(grace=0.5))  # the leader goes away
                _wait(lambda: other.handle.sequencer.leading)
                second = client.submit([{"type": "md5", "value": "c" * 32}], key)
                assert second.index > first.index
                client.verify_consistent(first_cp := client.checkpoint(), first_cp)


def test_a_leader_deposed_without_knowing_it_serves_nothing_older(
    tmp_path: Path, postgres_url: str
) -> None:
    # A renews its lease every 200 s, so after losing it (its lease connection cut, as a
    # PostgreSQL restart does) it goes on believing it leads while B sequences.  Reads from
    # A must not show members the log older than B's checkpoints: it answers UNAVAILABLE.
    slow = ServerConfig(lease_seconds=600.0, follow_store_seconds=0.05, grace_seconds=1.0)
    with local_forum(tmp_path, database=postgres_url, config=slow, observers=[]) as f:
        key = f.members["alice"].signing_key
        bundle = f.members["alice"].bundle
        with running_server(f.directory / "server", config=slow) as b:
            a = f.running
            assert a.handle.sequencer.leading
            with psycopg.connect(postgres_url, autocommit=True) as con:
                cut = con.execute("SELECT pg_terminate_backend(holder_pid) FROM lease").fetchone()
            assert cut == (True,)
            _wait(lambda: b.handle.sequencer.leading)
            assert a.handle.sequencer.leading  # it does not know yet
            with ForumClient(bundle, server=b.address) as client:
                older = client.checkpoint()
                client.submit([{"type": "md5", "value": "d" * 32}], key)
                newer = client.checkpoint()
            assert newer.size > a.handle.sequencer.size
            with ForumClient(bundle, server=a.address, timeout=10) as stale:
                with pytest.raises(TransportError) as refused:
                    stale.checkpoint()  # not its own older one: a member would see a rollback
                assert refused.value.code == "UNAVAILABLE"
                with pytest.raises(TransportError) as refused:
                    stale.verify_consistent(older, newer)  # not "no such size": a fork alarm
                assert refused.value.code == "UNAVAILABLE"
            assert a.handle.sequencer.leading  # still unaware: nothing above was luck


def test_a_stale_leader_cannot_append(postgres_url: str) -> None:
    a, b = PostgresStore(postgres_url), PostgresStore(postgres_url)
    try:
        a.epoch = a.try_lead("a", 30.0)
        assert a.epoch == 1
        assert b.try_lead("b", 30.0) is None  # a's lease is live and its connection too
        a.append([StoredLeaf(0, b"x", b"h" * 32)], 1, b"note 1")
        # a's lease connection goes away (a process killed with -9 closes it): b takes over
        # at once, without waiting for the lease.
        a._drop_lease_connection()
        deadline = time.monotonic() + 60  # PostgreSQL ends the backend a moment later
        while (epoch := b.try_lead("b", 30.0)) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        b.epoch = epoch
        assert b.epoch == 2
        with pytest.raises(NotLeaderError):
            a.append([StoredLeaf(1, b"y", b"i" * 32)], 2, b"note 2")
        assert not a.renew(1, 30.0)
        assert b.size() == 1 and b.latest_checkpoint() == (1, b"note 1")
        b.append([StoredLeaf(1, b"z", b"j" * 32)], 2, b"note 2b")
        assert [x.leaf_bytes for x in a.leaves(0, 5)] == [b"x", b"z"]
        # an expired lease is taken over even while its holder's connection lives on
        assert b.renew(2, 0.01)
        time.sleep(0.05)
        a.epoch = a.try_lead("a", 30.0)
        assert a.epoch == 3
        with pytest.raises(NotLeaderError):
            b.append([StoredLeaf(2, b"w", b"k" * 32)], 3, b"note 3")
    finally:
        a.close()
        b.close()


def test_a_new_leader_checks_the_stored_log_before_it_signs(
    tmp_path: Path, postgres_url: str
) -> None:
    # A second server's sequencer, caught up at the start; the leader then commits two more
    # entries and goes away, and the database is changed under them (the last entry
    # replaced by the one before it, leaf hash and all).  Taking the leadership, the new
    # leader replays what it has not seen against the last signed checkpoint: it refuses
    # to lead, and signs nothing.
    with local_forum(tmp_path, database=postgres_url, config=FAST, observers=[]) as f:
        log_key = SigningKey.load(ServerPaths(f.directory / "server").log_key)
        store = PostgresStore(postgres_url)
        try:

            async def second_server() -> Sequencer:
                return Sequencer(store, log_key)

            sequencer = asyncio.run(second_server())
            start = sequencer.size
            with f.client("alice") as alice:
                for n in range(2):
                    alice.submit(
                        [{"type": "sha256", "value": sha(f"late-{n}")}],
                        f.members["alice"].signing_key,
                    )
            f.running.call(f.running.handle.stop(grace=0.5))
            with psycopg.connect(postgres_url, autocommit=True) as con:
                con.execute(
                    "UPDATE leaves SET (leaf, leaf_hash) = (SELECT leaf, leaf_hash FROM leaves "
                    "WHERE idx = %s) WHERE idx = %s",
                    (start, start + 1),
                )
            signed = store.latest_checkpoint()
            assert signed is not None and signed[0] == start + 2
            epoch = None
            deadline = time.monotonic() + 60  # the stopped leader's session ends a moment later
            while epoch is None and time.monotonic() < deadline:
                epoch = store.try_lead("second", 30.0)
                time.sleep(0.02)
            assert epoch is not None

            async def promote() -> None:
                with pytest.raises(StoreError, match=f"stored entry {start + 1}"):
                    await sequencer.promote(epoch)

            asyncio.run(promote())
            assert sequencer.size == start
            assert store.latest_checkpoint() == signed
        finally:
            store.close()


class _FrozenHalfway(Sequence[StoredLeaf]):
    """Leaves that stop after the first one until released: an append frozen halfway through
    its ``COPY``, as a leader stopped with SIGSTOP leaves it."""

    def __init__(self, leaf: StoredLeaf) -> None:
        self.leaf = leaf
        self.started = threading.Event()
        self.release = threading.Event()

    def __iter__(self) -> Iterator[StoredLeaf]:
        yield self.leaf
        self.started.set()
        self.release.wait(60)

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> StoredLeaf:  # type: ignore[override]
        return [self.leaf][i]


def test_a_leader_frozen_inside_an_append_does_not_hold_the_log(postgres_url: str) -> None:
    # The backend waiting for COPY data is neither idle (idle_in_transaction_session_timeout)
    # nor cancelled by statement_timeout: without the takeover ending it, the fence row stays
    # locked and no other server can ever lead.
    a, b = PostgresStore(postgres_url), PostgresStore(postgres_url)
    frozen = _FrozenHalfway(StoredLeaf(0, b"x", b"h" * 32))
    failed: list[BaseException] = []

    def append() -> None:
        try:
            a.append(frozen, 1, b"note 1")
        except StoreError as exc:
            failed.append(exc)

    writer = threading.Thread(target=append, daemon=True)
    try:
        a.epoch = a.try_lead("a", 0.5)
        writer.start()
        assert frozen.started.wait(10)
        deadline = time.monotonic() + 10  # under STATEMENT_SECONDS: no timeout helps here
        epoch = None
        while epoch is None and time.monotonic() < deadline:
            with contextlib.suppress(StoreError):  # lock_timeout: the frozen append holds it
                epoch = b.try_lead("b", 30.0)
            time.sleep(0.05)
        assert epoch == 2
        frozen.release.set()
        writer.join(30)
        assert failed, "the frozen append was ended, it must not report success"
        assert b.size() == 0 and b.latest_checkpoint() is None
    finally:
        frozen.release.set()
        a.close()
        b.close()


def test_a_database_of_another_forum_is_refused(tmp_path: Path, postgres_url: str) -> None:
    init_forum(tmp_path / "one", name="One", now=_now(), database=postgres_url)
    with pytest.raises(StoreError, match="already holds a log"):
        init_forum(tmp_path / "two", name="Two", now=_now(), database=postgres_url)
    assert not (tmp_path / "two" / "server").exists()
    init_forum(tmp_path / "three", name="Three", now=_now())
    proc = _serve(tmp_path / "three" / "server", "--database", postgres_url)
    assert proc.returncode == 6, proc.stderr
    assert "another forum" in proc.stderr


@pytest.mark.parametrize(
    "url, expect",
    [
        ("postgresql://postgres@127.0.0.1:1/test", "cannot connect to PostgreSQL"),
        ("postgresql://no_such_role_x@127.0.0.1:5432/test", "no_such_role_x"),
        ("postgresql://postgres@127.0.0.1:5432/no_such_db_x", "no_such_db_x"),
    ],
)
def test_a_wrong_database_url_is_a_clear_error(
    tmp_path: Path, postgres_url: str, url: str, expect: str
) -> None:
    init_forum(tmp_path / "f", name="F", now=_now(), database=postgres_url)
    proc = _serve(tmp_path / "f" / "server", "--database", url)
    assert proc.returncode == 6, proc.stderr
    assert expect in proc.stderr
    assert "Traceback" not in proc.stderr
    assert ServerPaths(tmp_path / "f" / "server").database_location() == postgres_url


def test_init_with_several_addresses_prints_a_serve_command_for_each(
    tmp_path: Path, postgres_url: str
) -> None:
    # What init prints is what the operator runs: one `serve` per address of the list.
    ports = [_free_port(), _free_port()]
    addresses = ",".join(f"127.0.0.1:{port}" for port in ports)
    init = subprocess.run(
        [
            *(sys.executable, "-m", "forum_server.admin.cli", "init", str(tmp_path / "f")),
            *("--name", "F", "--address", addresses, "--database", postgres_url),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    commands = [
        shlex.split(line[line.index("forum-server serve") :])
        for line in init.stdout.splitlines()
        if "forum-server serve" in line
    ]
    assert [c[-2:] for c in commands] == [["--listen", a] for a in addresses.split(",")]
    procs: list[subprocess.Popen[str]] = []
    try:
        for command in commands:
            proc = subprocess.Popen(
                [sys.executable, "-m", "forum_server.cli", *command[1:]],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            procs.append(proc)
            assert proc.stdout is not None
            assert "listening on" in proc.stdout.readline()
        for address in addresses.split(","):
            with Operator.open(tmp_path / "f" / "operator", server=address) as op:
                assert [m.member_id for m in op.members()] == ["operator"]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _serve(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "forum_server.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_scoped_entry_forwarded_by_a_follower_is_redacted_by_both(
    tmp_path: Path, postgres_url: str
) -> None:
    """Issue #10: the scope claim crosses the forwarding table, and every server serves the
    entry redacted to members outside the group (followers load claims as they catch up)."""
    with local_forum(tmp_path, database=postgres_url, config=FAST, observers=["carol"]) as f:
        with f.operator() as op:
            op.create_group("g", "Cell")
            op.set_group_member("g", "alice", member=True)
        with running_server(f.directory / "server", config=FAST) as other:
            leader, follower = _leader_and_follower(f, other)
            key = f.members["alice"].signing_key
            with ForumClient(f.members["alice"].bundle, server=follower.address) as alice:
                item = {"type": "md5", "value": "c" * 32}
                index = alice.submit([item], key, group="g", tlp="red").index
            for server in (leader, follower):
                _wait(lambda s=server: s.handle.sequencer.size > index)  # type: ignore[misc]
                with (
                    ForumClient(f.members["carol"].bundle, server=server.address) as carol,
                    LocalStore(tmp_path / f"carol-{server.address}.db") as store,
                ):
                    carol.sync(store)
                    assert [(i, g) for i, _, g, _ in store.redacted()] == [(index, "g")]
                    assert store.lookup("md5", "c" * 32) is None
