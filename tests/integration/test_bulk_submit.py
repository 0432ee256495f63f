"""`forum-client submit --input`: the whole file is checked before the first batch is signed,
every bad line is named FILE:LINE (the forum's refusals too), and a resubmission after a
partial failure sends each signal once."""

from __future__ import annotations

from pathlib import Path

import pytest

from forum_client.bulk_submit import progress_path
from forum_client.cli import main as client_main
from forum_server.testing import LocalForum

pytestmark = pytest.mark.integration

PUB = "behaviour:terrorist-publication"


def _md5(n: int) -> str:
    return f"{n:032x}"


def _submit(forum: LocalForum, path: Path, *extra: str) -> int:
    alice = forum.members["alice"]
    return client_main(
        [
            "--profile",
            str(alice.bundle_path),
            "submit",
            "--key",
            str(alice.key_path),
            "--input",
            str(path),
            *extra,
        ]
    )


def _size(forum: LocalForum) -> int:
    return forum.running.handle.sequencer.size


def test_every_bad_line_is_reported_and_nothing_is_signed(
    local_forum_instance: LocalForum, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    forum = local_forum_instance
    rows = [f"md5,{_md5(i)},{PUB}" for i in range(1, 30)]
    rows[9] = "md5,zz,"  # line 11
    rows[20] = f"sha256,{_md5(3)},"  # line 22: too short for sha256
    rows[25] = f"md5,{_md5(99)},entity:no-such-label"  # line 27: not in the taxonomy
    path = tmp_path / "signals.csv"
    path.write_text("type,value,labels\n" + "\n".join(rows) + "\n")
    before = _size(forum)
    rc = _submit(forum, path, "--batch-size", "5")
    err = capfd.readouterr().err
    assert rc == 2, err
    assert "3 bad line(s)" in err and "nothing was submitted" in err
    for line in (11, 22, 27):
        assert f"{path}:{line}" in err, err
    assert _size(forum) == before  # not one batch signed or sent
    assert not progress_path(path).exists()


def test_a_refused_batch_names_the_line_and_a_rerun_resumes(
    local_forum_instance: LocalForum, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    forum = local_forum_instance
    rows = [f"md5,{_md5(i)},{PUB}" for i in range(100, 106)]
    rows[4] = f"md5,{_md5(104)},{PUB};{PUB}"  # line 6: the forum refuses a label twice
    path = tmp_path / "signals.csv"
    path.write_text("type,value,labels\n" + "\n".join(rows) + "\n")
    before = _size(forum)
    rc = _submit(forum, path, "--batch-size", "2")
    err = capfd.readouterr().err
    assert rc == 4, err
    assert f"{path}:6" in err, err  # not "signals[0]"
    assert "4 of 6 signals are in the log" in err and "run the same command again" in err
    assert _size(forum) == before + 2
    assert progress_path(path).exists()

    rows[4] = f"md5,{_md5(104)},{PUB}"  # fixed
    path.write_text("type,value,labels\n" + "\n".join(rows) + "\n")
    rc = _submit(forum, path, "--batch-size", "2")
    err = capfd.readouterr().err
    assert rc == 0, err
    assert "the first 4 signals are already in the log" in err
    assert _size(forum) == before + 3  # only the last batch was sent again
    assert not progress_path(path).exists()
    with forum.client("bob") as bob:
        assert bob.status().log_size == before + 3


def test_progress_lines_only_on_a_terminal(
    local_forum_instance: LocalForum, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    forum = local_forum_instance
    path = tmp_path / "s.csv"
    path.write_text("type,value\n" + "".join(f"md5,{_md5(i)}\n" for i in range(200, 206)))
    assert _submit(forum, path, "--batch-size", "2") == 0
    err = capfd.readouterr().err
    assert "\r" not in err  # stderr is not a terminal here
    assert "submitted 6 signals in 3 batch(es)" in err
    path.write_text("type,value\n" + "".join(f"md5,{_md5(i)}\n" for i in range(300, 306)))
    assert _submit(forum, path, "--quiet") == 0
    out, err = capfd.readouterr()
    assert err == "" and "batch 1" in out
