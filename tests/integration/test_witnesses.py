"""A forum with 3 real witness processes and quorum 2 (issue #9): the log collects
cosignatures, members enforce the quorum, a split view cannot gather one, witnesses going
down degrade and then fail closed, with evidence."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from forum_client.checkpoint import Checkpoint, sign_checkpoint, vkey
from forum_client.cli import main as client_main
from forum_client.client import ForumClient
from forum_client.cosignature import verify_quorum
from forum_client.entries import SignalItem
from forum_client.envelope import SigningKey
from forum_client.errors import QuorumUnavailableError, SecurityError
from forum_client.merkle import MerkleTree
from forum_client.source import GrpcSource
from forum_client.store import LocalStore
from forum_client.sync import (
    UNWITNESSED,
    WITNESS_DISAGREES,
    SyncConfig,
    Syncer,
    SyncSecurityError,
)
from forum_server.admin.backup import backup_forum, restore_forum
from forum_server.admin.witnesses import add_witness, current_policy, remove_witness
from forum_server.app import running_server
from forum_server.config import ServerConfig
from forum_server.testing import (
    LocalForum,
    local_forum,
    postgres_database,
    start_server_process,
    start_witness_process,
)
from forum_server.witness.service import init_witness

from .test_witness_process import post

pytestmark = pytest.mark.integration
PUB = "behaviour:terrorist-publication"
# A round waits for every witness that answers (a killed one is refused at once): with the
# default straggler wait (0.25 s past the quorum) a witness slowed down by a loaded machine
# was left behind, and tests that need every witness to hold the log's size (a split view,
# gossip) depended on scheduling.  The slow-witness test sets the straggler wait it tests.
CONFIG = ServerConfig(
    witness_timeout_seconds=30.0,
    witness_straggler_seconds=30.0,
    witness_backoff_max_seconds=1.0,
)


@dataclass
class WitnessProc:
    name: str
    vkey: str
    url: str
    proc: subprocess.Popen[str]
    directory: Path


@dataclass
class Witnessed:
    forum: LocalForum
    witnesses: list[WitnessProc]
    log_vkey_file: Path


@contextlib.contextmanager
def witnessed_forum(
    tmp_path: Path,
    n: int = 3,
    quorum: int = 2,
    config: ServerConfig = CONFIG,
    database: str | None = None,
) -> Iterator[Witnessed]:
    with local_forum(
        tmp_path, members=["alice", "bob", "dave"], config=config, database=database
    ) as forum:
        log_vkey_file = tmp_path / "log.vkey"
        root = forum.trust_root
        log_vkey_file.write_text(vkey(root.log_key_name, root.log_public_key) + "\n")
        witnesses = []
        try:
            for i in range(1, n + 1):
                directory = tmp_path / f"w{i}"
                wkey = init_witness(directory, f"witness.test/w{i}")
                proc, url = start_witness_process(directory, [log_vkey_file])
                witnesses.append(WitnessProc(f"witness.test/w{i}", wkey, url, proc, directory))
            with forum.operator() as op:
                for i, w in enumerate(witnesses):
                    add_witness(op, w.vkey, url=w.url, quorum=min(i + 1, quorum))
                assert current_policy(op).quorum == quorum
            # Bundles carry the policy the log states when they are issued.
            forum.enroll("erin")
            yield Witnessed(forum, witnesses, log_vkey_file)
        finally:
            for w in witnesses:
                w.proc.kill()
                w.proc.wait()


def wait_cosigned(forum: LocalForum, timeout: float = 30.0) -> tuple[int, bytes]:
    """Until the forum serves a quorum-cosigned checkpoint of its whole log."""
    handle = forum.running.handle
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        size, note = handle.cosigner.checkpoint()
        if size == handle.sequencer.size and b"witness.test" in note:
            return size, note
        time.sleep(0.05)
    raise AssertionError(f"no cosigned checkpoint: {handle.cosigner.status()}")


def submit(client: ForumClient, forum: LocalForum, member: str, value: str) -> int:
    receipt = client.submit([SignalItem("md5", value, (PUB,))], forum.members[member].signing_key)
    return receipt.index


def test_a_member_accepts_only_a_quorum_and_the_bundle_pins_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with witnessed_forum(tmp_path) as w:
        forum = w.forum
        bundle = forum.members["erin"].bundle
        assert bundle.trust_root.witness_policy.quorum == 2
        assert len(bundle.trust_root.witness_policy.witnesses) == 3
        with forum.client("alice") as alice:
            submit(alice, forum, "alice", "a" * 32)
        size, note = wait_cosigned(forum)
        policy = bundle.trust_root.witness_policy
        verdict = verify_quorum(note, policy, now=int(time.time()), max_age=600, skew=5)
        assert verdict.ok and len(verdict.agreed) >= 2
        with forum.client("erin") as erin, LocalStore(tmp_path / "erin.db") as store:
            result = erin.sync(store)
            assert result.size >= size
            # Gossip: every witness was asked and holds a view consistent with erin's.
            assert sorted((v.name, v.outcome) for v in result.witnesses) == [
                (f"witness.test/w{i}", "consistent") for i in (1, 2, 3)
            ]
            assert store.lookup("md5", "a" * 32) is not None
        capsys.readouterr()
        db = str(tmp_path / "erin.db")
        assert client_main(["show-checkpoint", "--db", db]) == 0
        shown = capsys.readouterr()
        assert shown.out.count("\u2014 witness.test/w") >= 2  # the note carries them
        assert "cosigned (quorum 2, policy version 3)" in shown.err
        assert client_main(["security-report", "--db", db]) == 0
        report = capsys.readouterr().out
        assert "agreed: witness.test/w" in report
        assert "no open security failures" in report


def _fork(data_dir: Path, tmp_path: Path, stack: contextlib.ExitStack) -> Path:
    """A second server directory holding the same log key and log as ``data_dir`` now (a
    copy through backup and restore, so it works for either engine; on PostgreSQL the copy
    gets a database of its own)."""
    fork_dir = tmp_path / "fork-server"
    shutil.copytree(data_dir, fork_dir, ignore=shutil.ignore_patterns("forum.db*", "database.*"))
    if (data_dir / "database.url").exists():
        url = stack.enter_context(postgres_database())
        (fork_dir / "database.url").write_text(url + "\n")
    backup_forum(data_dir, tmp_path / "fork.backup")
    restore_forum(tmp_path / "fork.backup", fork_dir)
    return fork_dir


def test_a_split_view_gathers_no_quorum_and_a_new_member_refuses_it(tmp_path: Path) -> None:
    """The operator's server forks: view A on the real server, view B on a second server
    run from a copy of the same data (same log key). Witnesses cosign A; B never gets a
    quorum, and both a brand-new member and an existing one shown B refuse it."""
    with witnessed_forum(tmp_path) as w, contextlib.ExitStack() as stack:
        forum = w.forum
        with forum.client("alice") as alice:
            submit(alice, forum, "alice", "1" * 32)
        wait_cosigned(forum)
        with forum.client("bob") as bob, LocalStore(tmp_path / "bob.db") as store:
            bob.sync(store)
        # Copy the server's data as it is now: the fork point.
        fork_dir = _fork(forum.running.data_dir, tmp_path, stack)
        # View A grows and is cosigned first.
        with forum.client("alice") as alice:
            submit(alice, forum, "alice", "a" * 32)
        size_a, note_a = wait_cosigned(forum)
        # View B: the same log key, another history.
        proc, address_b = start_server_process(fork_dir)
        try:
            with ForumClient(forum.members["alice"].bundle.with_server(address_b)) as alice_b:
                submit(alice_b, forum, "alice", "b" * 32)
                time.sleep(0.5)  # give B's cosigner time to try (and fail)
                checkpoint_b = alice_b.checkpoint()
                assert checkpoint_b.size == size_a  # a true split view: same size, other root
            raw_b = _raw_checkpoint(forum, "alice", address_b)
            policy = forum.members["erin"].bundle.trust_root.witness_policy
            assert not verify_quorum(raw_b, policy, now=int(time.time()), max_age=None).ok
            assert verify_quorum(note_a, policy, now=int(time.time()), max_age=None).ok
            # No witness will cosign B, whatever B sends: at most one view has a quorum.
            for wp in w.witnesses:
                status, body, _ = post(wp.url, f"old {size_a}\n\n".encode() + raw_b)
                assert status == 409, body
            # The brand-new member (never synced, its bundle pins the policy) shown view B
            # refuses it, with evidence.
            new_bundle = forum.members["erin"].bundle.with_server(address_b)
            with ForumClient(new_bundle) as erin, LocalStore(tmp_path / "erin.db") as store:
                with pytest.raises(SyncSecurityError) as caught:
                    erin.sync(store)
                assert caught.value.what == UNWITNESSED
                assert "0 of the required 2" in str(caught.value)
                evidence = store.evidence()
                assert evidence[0].what == UNWITNESSED
                assert evidence[0].served_checkpoint == raw_b
                assert store.size == 0  # nothing from view B was kept
            # A new member whose bundle predates the witnesses learns the policy from the
            # entries and refuses B before committing anything.
            old_policy_bundle = forum.members["dave"].bundle.with_server(address_b)
            assert not old_policy_bundle.trust_root.witness_policy.enforced
            with ForumClient(old_policy_bundle) as dave, LocalStore(tmp_path / "d.db") as store:
                with pytest.raises(SyncSecurityError) as caught:
                    dave.sync(store)
                assert caught.value.what == UNWITNESSED
                assert store.size == 0
            # The existing member shown B refuses it too.
            old_bundle = forum.members["bob"].bundle.with_server(address_b)
            with (
                ForumClient(old_bundle) as bob_b,
                LocalStore(tmp_path / "bob.db") as store,
                pytest.raises(SecurityError),
            ):
                bob_b.sync(store)
            # The same brand-new member shown view A accepts it.
            with forum.client("dave") as dave, LocalStore(tmp_path / "dave-a.db") as store:
                assert dave.sync(store).size == size_a
            # Compare-checkpoint proves the fork even from the smaller view: B grows past A,
            # and the forum (A) cannot prove B's larger checkpoint extends dave's copy.
            with ForumClient(forum.members["alice"].bundle.with_server(address_b)) as alice_b:
                submit(alice_b, forum, "alice", "c" * 32)
            (tmp_path / "b.note").write_bytes(_raw_checkpoint(forum, "alice", address_b))
            (tmp_path / "a.note").write_bytes(note_a)
            profile = ["--profile", str(forum.members["dave"].bundle_path)]
            compare = [*profile, "compare-checkpoint", str(tmp_path / "b.note")]
            assert client_main([*compare, "--db", str(tmp_path / "dave-a.db")]) == 5
            assert client_main([*compare, "--other", str(tmp_path / "a.note")]) == 5
            # Without a forum to ask, the copy alone cannot decide a larger note: usage error.
            assert (
                client_main(
                    [
                        "compare-checkpoint",
                        str(tmp_path / "b.note"),
                        "--db",
                        str(tmp_path / "dave-a.db"),
                    ]
                )
                == 2
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_gossip_catches_a_witness_shown_another_history_and_keeps_evidence(
    tmp_path: Path,
) -> None:
    """Gossip without a human: the log key shows the third witness another history (a
    checkpoint of the next size that the forum never served), then the forum's real next
    checkpoint is cosigned by the other two (a quorum). A member syncing it asks every
    witness what it holds: the third one disagrees, and the sync fails with
    witness-disagrees evidence, though its checkpoint had a quorum."""
    with witnessed_forum(tmp_path) as w:
        forum = w.forum
        cosigner = forum.running.handle.cosigner
        with forum.client("alice") as alice:
            submit(alice, forum, "alice", "1" * 32)
        size, _ = wait_cosigned(forum)
        _wait(
            lambda: cosigner.status().get("witness.test/w3") == f"holds {size}",
            "the third witness holds the cosigned size",
        )
        with forum.client("bob") as bob, LocalStore(tmp_path / "bob.db") as store:
            assert bob.sync(store).size == size
            leaves = [h for _, h in store.leaf_hashes(0, size)]
        # The same log key signs a one-entry extension that the forum never serves.
        fork = MerkleTree.from_leaf_hashes([*leaves, bytes([7]) * 32])
        root = forum.trust_root
        log_key = SigningKey.load(forum.running.data_dir / "log.key")
        fork_note = sign_checkpoint(
            Checkpoint(root.origin, size + 1, fork.root(size + 1)), root.log_key_name, log_key
        )
        proof = "".join(
            base64.b64encode(node).decode() + "\n"
            for node in fork.consistency_proof(size, size + 1)
        )
        w3 = w.witnesses[2]
        status, body, _ = post(w3.url, f"old {size}\n{proof}\n".encode() + fork_note)
        assert status == 200, body  # consistent with what it held: it cosigns the fork
        # The forum's real next checkpoint: w1 and w2 cosign it, w3 refuses (409).
        with forum.client("alice") as alice:
            submit(alice, forum, "alice", "2" * 32)
        size2, note = wait_cosigned(forum)
        assert size2 == size + 1
        assert b"witness.test/w3 " not in note.split(b"\n\n")[1]
        with forum.client("erin") as erin, LocalStore(tmp_path / "erin.db") as store:
            with pytest.raises(SyncSecurityError) as caught:
                erin.sync(store)
            assert caught.value.what == WITNESS_DISAGREES
            assert "witness.test/w3" in str(caught.value)
            (evidence,) = store.evidence()
            assert evidence.what == WITNESS_DISAGREES
            assert store.size == size2  # the quorum-cosigned checkpoint was verified


def _raw_checkpoint(forum: LocalForum, member: str, address: str) -> bytes:
    from forum_client._proto.forum.v1 import forum_pb2 as pb

    with ForumClient(forum.members[member].bundle.with_server(address)) as c:
        return bytes(c.stub.GetCheckpoint(pb.GetCheckpointRequest(), timeout=30).note)


def _wait(predicate: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not reached: {what}")


def test_one_witness_down_goes_on_two_down_fails_closed_at_once_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kill one witness process: submissions and syncs go on. Kill a second: submissions go
    on, and members refuse the newer checkpoint at once (not when their freshness window
    ends), naming the witnesses that did not cosign, the cosigned size and the log's size,
    with exit code 7; their copies stay at the last quorum checkpoint. A witness back at
    its URL: syncs go on again."""
    with witnessed_forum(tmp_path) as w:
        forum = w.forum
        cosigner = forum.running.handle.cosigner
        profile = ["--profile", str(forum.members["erin"].bundle_path)]
        erin_db = str(tmp_path / "erin.db")
        w.witnesses[0].proc.kill()
        w.witnesses[0].proc.wait()
        with forum.client("alice") as alice:
            submit(alice, forum, "alice", "1" * 32)
        size, note = wait_cosigned(forum)
        assert b"witness.test/w1 " not in note.split(b"\n\n")[1]
        assert cosigner.pending() is None
        assert client_main([*profile, "sync", "--db", erin_db]) == 0  # one down: the CLI too
        follower = _Follower(forum, "dave", tmp_path / "dave.db")
        with forum.client("bob") as bob, LocalStore(tmp_path / "bob.db") as store:
            assert bob.sync(store).size == size
            assert follower.ready.wait(30)  # dave follows, at the cosigned size
            # Two down: submissions still go on; no new checkpoint can be cosigned.
            w2 = w.witnesses[1]
            w2.proc.kill()
            w2.proc.wait()
            with forum.client("alice") as alice:
                index = submit(alice, forum, "alice", "2" * 32)
            assert index == size
            _wait(lambda: cosigner.pending() is not None, "the cosigner's round fell short")
            assert cosigner.checkpoint()[0] == size  # the served one is still the old one
            # The SDK refuses at once (the cosignatures are fresh) and says why.
            with pytest.raises(QuorumUnavailableError) as caught:
                bob.sync(store)
            refused = caught.value
            assert (refused.log_size, refused.cosigned_size) == (size + 1, size)
            assert refused.agreed == ("witness.test/w3",)
            assert refused.missing == {
                "witness.test/w1": "no cosignature",
                "witness.test/w2": "no cosignature",
            }
            assert "witness.test/w2" in refused.forum_says  # the server's word, shown too
            assert store.size == size and store.lookup("md5", "2" * 32) is None
            assert store.evidence() == []  # an outage is not evidence: nothing blocks later
        # The follower was told on its open stream and ended the same way, by itself.
        follower.thread.join(30)
        assert not follower.thread.is_alive()
        assert isinstance(follower.error, QuorumUnavailableError), follower.error
        assert (follower.error.log_size, follower.error.cosigned_size) == (size + 1, size)
        with LocalStore(tmp_path / "dave.db") as store:
            assert store.size == size
        # The CLI: exit 7, the same facts on stderr, the copy left at the quorum checkpoint.
        capsys.readouterr()
        assert client_main([*profile, "sync", "--db", erin_db]) == 7
        err = capsys.readouterr().err
        assert "witness quorum error" in err and "Traceback" not in err
        assert f"log holds {size + 1} entries" in err
        assert f"cosigned by a quorum of witnesses is {size}" in err
        assert "1 of the required 2 witness cosignatures; agreed: witness.test/w3" in err
        assert "witness.test/w1: no cosignature; witness.test/w2: no cosignature" in err
        with LocalStore(tmp_path / "erin.db") as store:
            assert store.size == size
        assert client_main([*profile, "verify", "--db", erin_db]) == 0
        # Follow mode fails closed the same way (it starts with a sync).
        assert client_main([*profile, "sync", "--db", erin_db, "--follow"]) == 7
        # The second witness comes back at its URL: a quorum again, members sync on.
        host_port = w2.url.removeprefix("http://")
        w2.proc, _ = start_witness_process(w2.directory, [w.log_vkey_file], listen=host_port)
        size2, _ = wait_cosigned(forum)
        assert size2 == size + 1 and cosigner.pending() is None
        capsys.readouterr()
        assert client_main([*profile, "sync", "--db", erin_db]) == 0
        with LocalStore(tmp_path / "erin.db") as store:
            assert store.size == size + 1 and store.lookup("md5", "2" * 32) is not None


def test_a_slow_witness_blocks_neither_submissions_nor_the_cosigned_checkpoint(
    tmp_path: Path,
) -> None:
    """A witness that accepts connections but never answers (its process stopped with
    SIGSTOP), with a 300 s witness timeout: submissions are answered at once, and the
    checkpoint is cosigned by the other two and served long before that timeout (a round
    waits only witness_straggler_seconds past its quorum); members sync it."""
    config = dataclasses.replace(
        CONFIG, witness_timeout_seconds=300.0, witness_straggler_seconds=0.25
    )
    with witnessed_forum(tmp_path, config=config) as w:
        forum = w.forum
        slow = w.witnesses[0]
        os.kill(slow.proc.pid, signal.SIGSTOP)
        try:
            for i in range(3):
                started = time.monotonic()
                with forum.client("alice") as alice:
                    submit(alice, forum, "alice", str(i) * 32)
                assert time.monotonic() - started < 60, "a submission waited for a witness"
                size, note = wait_cosigned(forum, timeout=60)  # not the 300 s timeout
                assert b"witness.test/w1 " not in note.split(b"\n\n")[1]
            with forum.client("bob") as bob, LocalStore(tmp_path / "bob.db") as store:
                assert bob.sync(store).size == size
                assert store.lookup("md5", "2" * 32) is not None
        finally:
            os.kill(slow.proc.pid, signal.SIGCONT)


def test_a_restarted_server_serves_its_last_cosigned_checkpoint_at_once(tmp_path: Path) -> None:
    """The server stores what its cosigner serves: restarted while no witness answers, it
    serves the last quorum-cosigned checkpoint, not its plain one, which every member
    syncing in that window would refuse as unwitnessed (blocking evidence)."""
    with witnessed_forum(tmp_path) as w:
        forum = w.forum
        with forum.client("alice") as alice:
            submit(alice, forum, "alice", "3" * 32)
        size, note = wait_cosigned(forum)
        bob = forum.members["bob"].bundle
        with forum.client("bob") as client, LocalStore(tmp_path / "bob.db") as store:
            assert client.sync(store).size == size
    # The server is stopped and every witness is down; the server comes back alone.
    with (
        running_server(forum.directory / "server", port=0, config=CONFIG) as again,
        ForumClient(bob, server=again.address) as client,
    ):
        assert again.handle.cosigner.checkpoint() == (size, note)
        with LocalStore(tmp_path / "bob.db") as store:
            assert client.sync(store).size == size
            assert store.evidence() == []
        with LocalStore(tmp_path / "new.db") as store:  # a new copy verifies the quorum
            assert client.sync(store).size == size


class _Follower:
    """``member`` follows the forum (SDK follow mode) on a thread of its own, into ``db``;
    ``error`` is what ended it."""

    def __init__(self, forum: LocalForum, member: str, db: Path) -> None:
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(forum, member, db), daemon=True)
        self.thread.start()

    def _run(self, forum: LocalForum, member: str, db: Path) -> None:
        try:
            with forum.client(member) as client, LocalStore(db) as store:
                syncer = Syncer(
                    GrpcSource(client.stub, 30), store, client.trust_root, reader=member
                )
                syncer.follow(lambda _result: self.ready.set())
        except BaseException as exc:
            self.error = exc


def test_a_stale_cosignature_is_refused_with_the_freshness_limit(tmp_path: Path) -> None:
    """A member whose freshness limit has passed refuses the served checkpoint and says
    why (--witness-freshness on the CLI; witness_max_age_seconds in the SDK)."""
    with witnessed_forum(tmp_path) as w:
        forum = w.forum
        with forum.client("alice") as alice:
            submit(alice, forum, "alice", "1" * 32)
        _size, note = wait_cosigned(forum)
        stamps = verify_quorum(
            note, forum.members["erin"].bundle.trust_root.witness_policy, now=2**62, max_age=None
        ).timestamps
        _wait(lambda: time.time() > max(stamps.values()) + 2, "the cosignatures are 2 s old")
        with forum.client("bob") as bob, LocalStore(tmp_path / "bob.db") as store:
            with pytest.raises(SyncSecurityError) as caught:
                bob.sync(store, config=SyncConfig(witness_max_age_seconds=1))
            message = str(caught.value)
            assert caught.value.what == UNWITNESSED
            assert "freshness limit 1 s" in message
            assert store.size == 0
            store.acknowledge_evidence()
        profile = ["--profile", str(forum.members["erin"].bundle_path)]
        db = str(tmp_path / "erin.db")
        assert client_main([*profile, "sync", "--db", db, "--witness-freshness", "1"]) == 5
        assert client_main([*profile, "sync", "--db", db, "--witness-freshness", "3600"]) == 5
        assert client_main([*profile, "security-report", "--db", db, "--acknowledge"]) == 0
        assert client_main([*profile, "sync", "--db", db, "--witness-freshness", "3600"]) == 0


def test_verify_rechecks_the_stored_cosignatures_and_catches_tampering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The offline audit re-checks the quorum of the stored checkpoint against the policy
    the copy's log states: cosignatures removed or altered in the SQLite file fail it."""
    with witnessed_forum(tmp_path) as w:
        forum = w.forum
        with forum.client("alice") as alice:
            submit(alice, forum, "alice", "1" * 32)
        wait_cosigned(forum)
        db = tmp_path / "erin.db"
        profile = ["--profile", str(forum.members["erin"].bundle_path)]
        assert client_main([*profile, "sync", "--db", str(db)]) == 0
    capsys.readouterr()
    assert client_main(["verify", "--db", str(db)]) == 0  # offline: the forum is gone
    assert capsys.readouterr().out.startswith("ok: ")
    with sqlite3.connect(db) as con:
        (note,) = con.execute("SELECT checkpoint_note FROM sync_state").fetchone()
    note = bytes(note)
    text, signatures = note.split(b"\n\n")
    lines = signatures.decode().splitlines()
    log_line = [x for x in lines if "witness.test/" not in x]
    cosigs = [x for x in lines if "witness.test/" in x]
    assert len(log_line) == 1 and len(cosigs) >= 2

    def tampered(new_lines: list[str]) -> str:
        with sqlite3.connect(db) as con:
            forged = text + b"\n\n" + "".join(x + "\n" for x in new_lines).encode()
            con.execute("UPDATE sync_state SET checkpoint_note = ?", (forged,))
        capsys.readouterr()
        assert client_main(["verify", "--db", str(db)]) == 5
        return capsys.readouterr().out

    # Every cosignature stripped: the log's own signature still verifies, the quorum does not.
    out = tampered(log_line)
    assert "TAMPERED sync_state.checkpoint_note: not witnessed by the policy's quorum" in out
    assert "0 of the required 2" in out
    # One cosignature left, the others' signatures altered (one byte of each blob).
    altered = []
    for line in cosigs[1:]:
        dash, name, blob = line.split(" ")
        raw = bytearray(base64.b64decode(blob))
        raw[-1] ^= 1
        altered.append(f"{dash} {name} {base64.b64encode(bytes(raw)).decode()}")
    out = tampered([*log_line, cosigs[0], *altered])
    assert "1 of the required 2" in out and "cosignature does not verify" in out
    # The genuine note again: intact.
    tampered_back = note
    with sqlite3.connect(db) as con:
        con.execute("UPDATE sync_state SET checkpoint_note = ?", (tampered_back,))
    assert client_main(["verify", "--db", str(db)]) == 0


def test_witness_remove_and_list_through_the_admin_cli(tmp_path: Path) -> None:
    from forum_server.admin.cli import main as admin_main

    with witnessed_forum(tmp_path) as w:
        forum = w.forum
        profile = ["--profile", str(forum.operator_profile), "--server", forum.address]
        assert admin_main([*profile, "witness", "remove", "witness.test/w3", "--quorum", "3"]) == 2
        with forum.operator() as op:
            policy, _ = remove_witness(op, "witness.test/w3")
        assert [x.name for x in policy.witnesses] == ["witness.test/w1", "witness.test/w2"]
        assert admin_main([*profile, "witness", "list"]) == 0
        assert admin_main([*profile, "witness", "add", w.witnesses[0].vkey, "--url", "x"]) == 2
        with forum.client("alice") as alice:
            submit(alice, forum, "alice", "1" * 32)
        wait_cosigned(forum)


def test_a_multi_key_board_changes_witnesses_by_proposal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a 2-of-3 operator board (issue #11), the witness set changes only through a
    proposal signed by two board keys; one key alone is refused."""
    from forum_client.envelope import SigningKey
    from forum_server.admin.cli import main as admin_main

    with local_forum(tmp_path / "f", members=["alice"], observers=[]) as forum:
        base = ["--profile", str(forum.operator_profile), "--server", forum.address]
        keys = []
        for i in range(3):
            path = tmp_path / f"board{i}.key"
            SigningKey.generate().save(path)
            keys.append(path)
        rot = tmp_path / "rotate.json"
        pubs = [x for p in keys for x in ("--key", f"{p}.pub")]
        args = [*base, "propose", "rotate-board", "--threshold", "2", "--out", str(rot), *pubs]
        assert admin_main(args) == 0
        for key in (forum.operator_profile / "admin.key", keys[0], keys[1]):
            assert admin_main(["sign", str(rot), "--key", str(key)]) == 0
        assert admin_main([*base, "submit", str(rot)]) == 0
        wkey = init_witness(tmp_path / "w1", "witness.test/w1")
        # The one-key command is refused now; the proposal path works.
        assert admin_main([*base, "witness", "add", wkey, "--url", "http://127.0.0.1:9"]) != 0
        prop = tmp_path / "witness.json"
        add = [*base, "propose", "witness-add", wkey, "--url", "http://127.0.0.1:9"]
        assert admin_main([*add, "--out", str(prop)]) == 0
        assert admin_main(["sign", str(prop), "--key", str(keys[0])]) == 0
        assert admin_main([*base, "submit", str(prop)]) != 0  # one signature of two
        assert admin_main(["sign", str(prop), "--key", str(keys[2])]) == 0
        capsys.readouterr()
        assert admin_main([*base, "submit", str(prop)]) == 0
        assert admin_main([*base, "witness", "list"]) == 0
        assert "quorum 1 of 1" in capsys.readouterr().out
        policy = forum.running.handle.sequencer.state.witness_policy
        assert [w.name for w in policy.witnesses] == ["witness.test/w1"]


@pytest.mark.serial
def test_several_servers_only_the_leader_asks_and_a_new_leader_goes_on_cosigning(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two servers over one PostgreSQL database, 3 witness processes, quorum 2: only the
    leader asks the witnesses; the follower serves the cosigned checkpoint the leader
    stored (a member syncing from it gets a quorum); when the leader stops, the other server
    takes over and goes on cosigning."""
    config = dataclasses.replace(  # a stopped leader's lease ends with its connection
        CONFIG, lease_seconds=10.0, follow_store_seconds=0.05, grace_seconds=1.0
    )
    with witnessed_forum(tmp_path, config=config, database=postgres_url) as w:
        forum = w.forum
        first = forum.running
        assert first.handle.sequencer.leading  # it started alone and took the lease
        with running_server(forum.directory / "server", config=config) as other:
            assert not other.handle.sequencer.leading
            bundle = forum.members["alice"].bundle
            with ForumClient(bundle, server=other.address) as alice:  # forwarded
                submit(alice, forum, "alice", "1" * 32)
            size, note = wait_cosigned(forum)
            _wait(
                lambda: other.handle.cosigner.checkpoint() == (size, note),
                "the follower serves the leader's cosigned checkpoint",
            )
            assert other.handle.cosigner.status() == {}  # it never asked a witness
            erin = forum.members["erin"].bundle
            with (
                ForumClient(erin, server=other.address) as client,
                LocalStore(tmp_path / "erin.db") as store,
            ):
                assert client.sync(store).size == size
                assert client.checkpoint().size == size
            # The leader goes away: the other server leads and cosigns what it commits.
            first.call(first.handle.stop(grace=0.5))
            _wait(lambda: other.handle.sequencer.leading, "the other server leads")
            with ForumClient(bundle, server=other.address) as alice:
                index = submit(alice, forum, "alice", "2" * 32)
            assert index >= size
            handle = other.handle
            _wait(
                lambda: (
                    handle.cosigner.checkpoint()[0] == handle.sequencer.size > index
                    and b"witness.test" in handle.cosigner.checkpoint()[1]
                ),
                "the new leader's checkpoint is cosigned",
            )
            assert handle.cosigner.status()  # it asks the witnesses now
            with (
                ForumClient(erin, server=other.address) as client,
                LocalStore(tmp_path / "erin.db") as store,
            ):
                result = client.sync(store)
                assert result.size == handle.sequencer.size
                assert store.lookup("md5", "2" * 32) is not None
