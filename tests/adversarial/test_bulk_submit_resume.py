"""`forum-client submit --input` when a batch's answer is lost: the rerun resends that batch
exactly as it was signed, so each signal ends up in one log entry.

The proxy (:mod:`tests.adversarial.malicious`) relays every call to the real forum, except
one Submit whose answer it drops (after relaying it, or without relaying it).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from forum_client import entries as e
from forum_client.bulk_submit import load_progress, progress_path
from forum_client.cli import main as client_main
from forum_client.envelope import Envelope, SigningKey
from forum_client.merkle import leaf_hash
from forum_client.wire import envelope_from_pb
from forum_server.testing import LocalForum

from .malicious import PUB, HoldSubmitAnswer, LoseSubmitAnswer, malicious_forum, real_leaves

pytestmark = pytest.mark.adversarial


def _write(path: Path, first: int, count: int) -> list[str]:
    values = [f"{n:032x}" for n in range(first, first + count)]
    _write_values(path, values)
    return values


def _write_values(path: Path, values: list[str]) -> None:
    path.write_text("type,value,labels\n" + "".join(f"md5,{v},{PUB}\n" for v in values))


def _submit(forum: LocalForum, path: Path, *extra: str, server: str | None = None) -> int:
    alice = forum.members["alice"]
    where = ["--server", server] if server else []
    return client_main(
        [
            "--profile",
            str(alice.bundle_path),
            *where,
            "submit",
            "--key",
            str(alice.key_path),
            "--input",
            str(path),
            "--batch-size",
            "2",
            *extra,
        ]
    )


def _alice_entries(forum: LocalForum) -> tuple[Counter[str], list[bytes]]:
    """How many log entries of alice's key hold each value, and those entries' leaf hashes."""
    key = SigningKey.load(forum.members["alice"].key_path)
    counts: Counter[str] = Counter()
    hashes = []
    for leaf in real_leaves(forum):
        envelope = Envelope.from_leaf_bytes(leaf)
        if envelope.key_id != key.key_id:
            continue
        body = e.decode(envelope.payload_type, envelope.body)
        if isinstance(body, e.Submission):
            counts.update(s.value for s in body.signals)
            hashes.append(leaf_hash(leaf))
    return counts, hashes


def _lose(
    forum: LocalForum, path: Path, nth: int, *extra: str, commit: bool
) -> tuple[LoseSubmitAnswer, bytes | None]:
    """Run the submission through a proxy that loses the answer of its ``nth`` Submit (run
    exits 4); the proxy and the leaf hash of the lost entry."""
    lose = LoseSubmitAnswer(nth, commit=commit)
    with malicious_forum(forum, lose, upstream_member="alice") as proxy:
        assert _submit(forum, path, *extra, server=proxy.address) == 4
    lost = None if lose.lost is None else leaf_hash(envelope_from_pb(lose.lost.entry).leaf_bytes())
    return lose, lost


def _rerun(
    forum: LocalForum, path: Path, capfd: pytest.CaptureFixture[str], *extra: str
) -> tuple[str, Counter[str], list[bytes]]:
    """Run it again, straight to the forum: exit 0 and the progress file gone.  Its stderr,
    and :func:`_alice_entries` after it."""
    capfd.readouterr()
    rc = _submit(forum, path, *extra)
    err = capfd.readouterr().err
    assert rc == 0, err
    assert not progress_path(path).exists()
    return (err, *_alice_entries(forum))


@pytest.mark.parametrize("committed", [True, False], ids=["committed", "not-committed"])
def test_a_batch_whose_answer_was_lost_is_resent_as_signed(
    local_forum_instance: LocalForum,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    committed: bool,
) -> None:
    forum = local_forum_instance
    path = tmp_path / "signals.csv"
    values = _write(path, 0x5000, 6)  # three batches of two
    _, lost = _lose(forum, path, 2, commit=committed)
    err = capfd.readouterr().err
    assert "2 of 6 signals are in the log" in err, err
    progress = load_progress(path)
    assert progress is not None and progress.signals == 2
    assert len(progress.in_flight) == 1  # the batch sent, whose answer was lost
    assert lost is not None and (lost in _alice_entries(forum)[1]) is committed

    err, counts, hashes = _rerun(forum, path, capfd)
    assert "resending 1 batch" in err, err
    assert counts == Counter(values), counts  # every signal in exactly one entry
    assert len(hashes) == 3
    assert lost in hashes  # the very entry first sent, not a new one


def test_a_lost_batch_whose_sequence_was_used_since_is_sent_again(
    local_forum_instance: LocalForum, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    forum = local_forum_instance
    path = tmp_path / "signals.csv"
    values = _write(path, 0x6000, 6)
    _lose(forum, path, 2, commit=False)
    progress = load_progress(path)
    assert progress is not None and len(progress.in_flight) == 1
    sequence = progress.in_flight[0].sequence
    # Meanwhile the key signs something else, taking the lost batch's sequence number.
    alice = forum.members["alice"]
    other = f"{0x6FFF:032x}"
    single = ["submit", "--key", str(alice.key_path), "--type", "md5", "--value", other]
    assert client_main(["--profile", str(alice.bundle_path), *single]) == 0
    with forum.client("alice") as client:
        key = SigningKey.load(alice.key_path)
        assert client.next_sequence(key) == sequence + 1

    err, counts, _ = _rerun(forum, path, capfd)
    assert f"sequence {sequence}" in err and "stale-sequence" in err, err
    assert "sent again as a new entry" in err, err
    assert counts == Counter([*values, other]), counts  # none lost, none twice


def test_a_lost_batch_whose_lines_changed_is_sent_as_new(
    local_forum_instance: LocalForum, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    forum = local_forum_instance
    path = tmp_path / "signals.csv"
    values = _write(path, 0x7000, 6)
    _lose(forum, path, 2, commit=False)
    values[3] = f"{0x7FFF:032x}"  # line 5, in the lost batch
    _write_values(path, values)

    err, counts, _ = _rerun(forum, path, capfd)
    assert f"{path}:4-5: changed since" in err, err
    assert counts == Counter(values), counts


def _with_group(forum: LocalForum) -> None:
    with forum.operator() as op:
        op.create_group("g", "Crisis cell")
        op.set_group_member("g", "alice", member=True)


def test_a_lost_batch_shared_with_a_group_is_resent_with_its_salt(
    local_forum_instance: LocalForum, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    forum = local_forum_instance
    _with_group(forum)
    path = tmp_path / "signals.csv"
    values = _write(path, 0x8000, 6)
    _, lost = _lose(forum, path, 2, "--group", "g", commit=True)
    progress = load_progress(path)
    assert progress is not None and len(progress.in_flight[0].salt) == 64

    err, counts, hashes = _rerun(forum, path, capfd, "--group", "g")
    assert "warning" not in err, err
    assert counts == Counter(values), counts
    assert len(hashes) == 3 and lost in hashes


def test_a_lost_batch_that_cannot_be_rebuilt_is_sent_as_new(
    local_forum_instance: LocalForum, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    forum = local_forum_instance
    _with_group(forum)
    path = tmp_path / "signals.csv"
    values = _write(path, 0x9000, 6)
    _lose(forum, path, 2, "--group", "g", commit=False)

    err, counts, _ = _rerun(forum, path, capfd, "--group", "g", "--tlp", "red")  # another entry
    assert "cannot be rebuilt byte for byte" in err, err
    assert counts == Counter(values), counts


def test_a_client_killed_after_the_forum_committed_resends_on_the_rerun(
    local_forum_instance: LocalForum, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    forum = local_forum_instance
    alice = forum.members["alice"]
    path = tmp_path / "signals.csv"
    values = _write(path, 0xA000, 6)
    hold = HoldSubmitAnswer(2)
    with malicious_forum(forum, hold, upstream_member="alice") as proxy:
        argv = [sys.executable, "-m", "forum_client.cli", "--profile", str(alice.bundle_path)]
        argv += ["--server", proxy.address, "submit", "--key", str(alice.key_path)]
        argv += ["--input", str(path), "--batch-size", "2"]
        client = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert hold.committed.wait(60), "the second batch never reached the forum"
            client.kill()  # SIGKILL: no handler runs, the progress file is as it was
            assert client.wait(30) == -signal.SIGKILL
        finally:
            hold.release.set()
            if client.poll() is None:
                client.kill()
                client.wait()
    progress = load_progress(path)
    assert progress is not None and progress.signals == 2 and len(progress.in_flight) == 1
    assert _alice_entries(forum)[0] == Counter(values[:4])  # the second batch is in the log

    _, counts, hashes = _rerun(forum, path, capfd)
    assert counts == Counter(values), counts  # each signal in exactly one entry
    assert len(hashes) == 3


def test_a_resent_batch_whose_answer_is_lost_again_is_still_logged_once(
    local_forum_instance: LocalForum, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    forum = local_forum_instance
    path = tmp_path / "signals.csv"
    values = _write(path, 0xB000, 6)
    _lose(forum, path, 2, commit=True)
    err = capfd.readouterr().err
    assert "perhaps the batch whose answer was lost" in err, err
    _lose(forum, path, 1, commit=True)  # the resend is committed, its answer lost again
    err = capfd.readouterr().err
    assert "perhaps the batch whose answer was lost" in err, err
    progress = load_progress(path)
    assert progress is not None and progress.signals == 2 and len(progress.in_flight) == 1

    _, counts, hashes = _rerun(forum, path, capfd)
    assert counts == Counter(values), counts
    assert len(hashes) == 3
