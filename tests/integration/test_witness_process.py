"""forum-witness as a real process on 127.0.0.1: the C2SP add-checkpoint API, every bad
input the issue lists (the spec's status, nothing stored, still serving), and kill -9."""

from __future__ import annotations

import base64
import doctest
import http.client
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

import forum_client.cosignature
import forum_client.witness_gossip
import forum_server.witness.core
from forum_client.checkpoint import Checkpoint, sign_checkpoint, vkey
from forum_client.cosignature import Witness, WitnessPolicy, verify_quorum, witness_from_vkey
from forum_client.envelope import SigningKey
from forum_client.merkle import EMPTY_ROOT, MerkleTree
from forum_server.testing import start_witness_process
from forum_server.witness.service import init_witness

pytestmark = pytest.mark.integration
ORIGIN = "forum.test/log"


class Log:
    """A tiny honest log: leaves, tree, signed notes, request bodies."""

    def __init__(self, key: SigningKey | None = None, origin: str = ORIGIN) -> None:
        self.key = key or SigningKey.generate()
        self.origin = origin
        self.tree = MerkleTree()

    def grow(self, n: int, tag: bytes = b"") -> None:
        for _ in range(n):
            self.tree.append(bytes([self.tree.size % 256]) * 31 + tag[:1].ljust(1, b"\0"))

    def note(self, size: int | None = None) -> bytes:
        size = self.tree.size if size is None else size
        root = self.tree.root(size) if size else EMPTY_ROOT
        return sign_checkpoint(Checkpoint(self.origin, size, root), self.origin, self.key)

    def request(self, old: int, size: int | None = None) -> bytes:
        size = self.tree.size if size is None else size
        proof = self.tree.consistency_proof(old, size) if 0 < old < size else []
        lines = "".join(base64.b64encode(p).decode() + "\n" for p in proof)
        return f"old {old}\n{lines}\n".encode() + self.note(size)


def post(url: str, body: bytes) -> tuple[int, bytes, str]:
    parts = urllib.parse.urlsplit(url)
    con = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        con.request("POST", "/add-checkpoint", body=body)
        resp = con.getresponse()
        return resp.status, resp.read(), resp.getheader("Content-Type", "")
    finally:
        con.close()


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def witness_dir(tmp_path: Path, log: Log) -> tuple[Path, Path, Witness]:
    directory = tmp_path / "w1"
    w = witness_from_vkey(init_witness(directory, "witness.test/w1"))
    vkey_file = tmp_path / "log.vkey"
    vkey_file.write_text(vkey(log.origin, log.key.public_bytes) + "\n")
    return directory, vkey_file, w


@pytest.fixture
def witness(witness_dir: tuple[Path, Path, Witness]):  # type: ignore[no-untyped-def]
    directory, vkey_file, w = witness_dir
    proc, url = start_witness_process(directory, [vkey_file])
    try:
        yield url, w, directory
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def stored(directory: Path) -> list[tuple[str, str, bytes]]:
    with sqlite3.connect(directory / "witness.db") as con:
        return [
            (o, s, bytes(r))
            for o, s, r in con.execute("SELECT origin, size, root FROM checkpoints")
        ]


def cosigned(log: Log, w: Witness, note: bytes, answer: bytes, now: int) -> bool:
    policy = WitnessPolicy((w,), 1)
    return verify_quorum(note + answer, policy, now=now + 5, max_age=600).ok


def test_module_docstrings_run() -> None:
    for module in (
        forum_client.cosignature,
        forum_server.witness.core,
        forum_client.witness_gossip,
    ):
        assert doctest.testmod(module).failed == 0


def test_init_writes_a_private_key_and_prints_the_vkey(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "forum_server.witness.cli",
            "init",
            str(tmp_path / "w"),
            "--name",
            "witness.test/a",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    w = witness_from_vkey(out)
    assert w.name == "witness.test/a"
    assert (tmp_path / "w" / "witness.key").stat().st_mode & 0o777 == 0o600
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "forum_server.witness.cli",
            "init",
            str(tmp_path / "w"),
            "--name",
            "witness.test/a",
        ],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2 and "refusing" in again.stderr
    assert witness_from_vkey((tmp_path / "w" / "witness.vkey").read_text()) == w


def test_cosigns_a_consistent_sequence_and_answers_409_with_its_size(witness, log: Log) -> None:  # type: ignore[no-untyped-def]
    import time

    url, w, directory = witness
    log.grow(5)
    status, body, _ = post(url, log.request(0))
    assert status == 200, body
    assert cosigned(log, w, log.note(), body, int(time.time()))
    log.grow(9)
    status, body, ctype = post(url, log.request(0))  # stale: the witness holds 5
    assert (status, body, ctype) == (409, b"5\n", "text/x.tlog.size")
    status, body, _ = post(url, log.request(5))
    assert status == 200 and cosigned(log, w, log.note(), body, int(time.time()))
    status, body, _ = post(url, log.request(14))  # same size, same root: cosigned again
    assert status == 200
    assert stored(directory) == [(ORIGIN, "14", log.tree.root(14))]


def test_every_bad_input_gets_the_spec_status_and_stores_nothing(witness, log: Log) -> None:  # type: ignore[no-untyped-def]
    url, _w, directory = witness
    log.grow(8)
    proof_4_8 = log.tree.consistency_proof(4, 8)
    # The spec: "The proof MUST be empty if the old size is zero" (422), here while the
    # witness holds nothing yet, and a proof between equal sizes is not empty either.
    some_proof = b"old 0\n" + base64.b64encode(proof_4_8[0]) + b"\n\n" + log.note(4)
    assert post(url, some_proof)[0] == 422
    assert stored(directory) == []
    assert post(url, log.request(0, 4))[0] == 200
    before = stored(directory)
    equal_with_proof = b"old 4\n" + base64.b64encode(proof_4_8[0]) + b"\n\n" + log.note(4)
    assert post(url, equal_with_proof)[0] == 422
    assert stored(directory) == before
    other = Log(origin="other.test/log")
    other.grow(6)
    impostor = Log(origin=ORIGIN)  # right origin, wrong key
    impostor.grow(6)
    fork = Log(log.key)  # the same key signing another history: a split view
    fork.grow(8, tag=b"x")
    good_proof = log.request(4, 8)
    proof_lines = good_proof.split(b"\n\n")[0].split(b"\n")[1:]
    flipped = base64.b64encode(bytes(32)).decode().encode()
    bad_proof = b"old 4\n" + b"\n".join([flipped, *proof_lines[1:]]) + b"\n\n" + log.note(8)
    cases = [
        ("unknown origin", other.request(0), 404),
        ("bad log signature", impostor.request(0), 403),
        ("stale old size", log.request(0, 8), 409),
        ("future old size", b"old 9\n\n" + log.note(8), 400),
        ("old size ahead of what the witness holds", log.request(6, 8), 409),
        ("proof that does not verify", bad_proof, 422),
        ("fork at a larger size", fork.request(4, 8), 422),
        ("proof with old size 0", b"old 0\n" + proof_lines[0] + b"\n\n" + log.note(8), 409),
        (
            "too many proof lines",
            b"old 4\n" + (proof_lines[0] + b"\n") * 64 + b"\n" + log.note(8),
            400,
        ),
        ("proof line not base64", b"old 4\n!!!!\n\n" + log.note(8), 400),
        (
            "proof line of 31 bytes",
            b"old 4\n" + base64.b64encode(bytes(31)) + b"\n\n" + log.note(8),
            400,
        ),
        ("no old line", b"\n" + log.note(8), 400),
        ("leading zero", b"old 04\n\n" + log.note(8), 400),
        ("no blank line", b"old 4\n" + log.note(8).replace(b"\n\n", b"\n"), 400),
        ("garbage", os.urandom(300), 400),
        ("empty body", b"", 400),
        ("note not a checkpoint", b"old 0\n\nhello\n\n\xe2\x80\x94 x AAAA\n", 400),
        ("note over the size limit", b"old 4\n\n" + log.note(8) + b"x" * (70 * 1024), 413),
    ]
    for what, body, expected in cases:
        status, answer, _ = post(url, body)
        assert status == expected, (what, status, answer)
        assert stored(directory) == before, what
    # The same size with another root: 409 (the spec), and the fork is never cosigned.
    fork4 = Log(log.key)
    fork4.grow(4, tag=b"y")
    assert post(url, fork4.request(4))[0] == 409
    assert stored(directory) == before
    assert post(url, log.request(4, 8))[0] == 200  # still serving, still honest


def test_concurrent_requests_never_roll_back(witness, log: Log) -> None:  # type: ignore[no-untyped-def]
    url, _w, directory = witness
    log.grow(64)
    results: list[int] = []

    def hit(size: int) -> None:
        for old in (0, *range(1, size)):
            status, _, _ = post(url, log.request(old, size))
            if status == 200:
                results.append(size)
                return

    threads = [threading.Thread(target=hit, args=(s,)) for s in (8, 16, 32, 64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stored(directory)[0][1] == str(max(results))


@pytest.mark.slow
@pytest.mark.adversarial
def test_kill_9_in_a_loop_never_signs_two_inconsistent_checkpoints(
    witness_dir: tuple[Path, Path, Witness], log: Log
) -> None:
    """Two histories under one log key race for the witness; it is killed with SIGKILL at
    random moments. Of everything it ever signed, no two cosigned checkpoints conflict."""
    directory, vkey_file, _w = witness_dir
    fork = Log(log.key)
    log.grow(40)
    fork.grow(40, tag=b"f")
    signed: list[tuple[str, int]] = []  # (history, size) of every 200 answer
    rounds = 0
    while rounds < 8:
        rounds += 1
        proc, url = start_witness_process(directory, [vkey_file])
        killer = threading.Timer(0.05 + 0.05 * (rounds % 4), os.kill, (proc.pid, signal.SIGKILL))
        killer.start()
        try:
            for size in range(1, 41):
                for name, history in (("a", log), ("b", fork)):
                    try:
                        status, body, _ = post(url, b"old 0\n\n" + history.note(size))
                        if status == 409:
                            have = int(body)
                            if have <= size:
                                status, body, _ = post(url, history.request(have, size))
                    except OSError:
                        break
                    if status == 200:
                        signed.append((name, size))
        finally:
            killer.cancel()
            proc.kill()
            proc.wait()
    histories = {name for name, _ in signed}
    assert signed, "the witness never cosigned anything"
    assert len(histories) == 1, f"cosigned both histories: {sorted(set(signed))[:10]}"
    sizes = [size for _, size in signed]
    assert sizes == sorted(sizes)  # it never went back either
    _origin, size, root = stored(directory)[0]
    winner = log if histories == {"a"} else fork
    assert root == winner.tree.root(int(size))


def test_member_gossip_learns_what_each_witness_holds(witness, log: Log) -> None:  # type: ignore[no-untyped-def]
    """forum_client.witness_gossip against a real witness: consistent (a prefix, the same),
    ahead, and a split view the witness holds (disagrees)."""
    from forum_client.witness_gossip import ask_witnesses

    url, w, _directory = witness
    policy = WitnessPolicy((Witness(w.name, w.public_key, url),), 1)
    log.grow(10)
    assert post(url, log.request(0, 6))[0] == 200  # the witness holds 6 of this history

    def proof(old: int, new: int) -> list[bytes]:
        return log.tree.consistency_proof(old, new)

    (view,) = ask_witnesses(policy, log.note(10), proof)
    assert (view.outcome, view.size) == ("consistent", 10)  # and it now holds 10
    (view,) = ask_witnesses(policy, log.note(8), proof)
    assert (view.outcome, view.size) == ("ahead", 10)
    fork = Log(log.key)
    fork.grow(12, tag=b"z")
    (view,) = ask_witnesses(policy, fork.note(12), lambda a, b: fork.tree.consistency_proof(a, b))
    assert view.outcome == "disagrees" and view.size == 10
    fork10 = Log(log.key)
    fork10.grow(10, tag=b"q")
    (view,) = ask_witnesses(policy, fork10.note(10), proof)
    assert view.outcome == "disagrees"
    dead = WitnessPolicy((Witness(w.name, w.public_key, "http://127.0.0.1:9"),), 1)
    (view,) = ask_witnesses(dead, log.note(10), proof, timeout=2)
    assert view.outcome == "unreachable"
