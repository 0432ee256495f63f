"""``forum-server check``: every check passes on a good forum and names what is wrong."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from forum_server.admin.init import init_forum
from forum_server.cli import main
from forum_server.storage.postgres import SCHEMA_VERSION

pytestmark = pytest.mark.integration


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["check", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_a_new_sqlite_forum_is_ready(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init_forum(tmp_path / "f", name="F", now=_now())
    code, out = _check(capsys, "--data-dir", str(tmp_path / "f" / "server"))
    assert code == 0, out
    assert "ready to serve" in out
    assert "2 entries verified" in out
    assert "FAIL" not in out


def test_problems_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init_forum(tmp_path / "f", name="F", now=_now())
    server = tmp_path / "f" / "server"
    (server / "log.key").chmod(0o644)
    (server / "tls" / "server.key").write_bytes(
        (tmp_path / "f" / "operator" / "ca.key").read_bytes()
    )
    code, out = _check(capsys, "--data-dir", str(server))
    assert code == 3
    assert "FAIL log key" in out and "make it 600" in out
    assert "FAIL tls" in out and "does not belong to server.crt" in out
    (tmp_path / "empty").mkdir()
    code, out = _check(capsys, "--data-dir", str(tmp_path / "empty"))
    assert code == 3 and "FAIL files" in out
    # a directory that does not exist is a typo, refused like `serve --data-dir` (exit 2)
    assert _check(capsys, "--data-dir", str(tmp_path / "nothing"))[0] == 2


def test_postgres_forum_ready_and_wrong_databases(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    init_forum(tmp_path / "f", name="F", now=_now(), database=postgres_url)
    server = str(tmp_path / "f" / "server")
    code, out = _check(capsys, "--data-dir", server)
    assert code == 0, out
    assert f"schema {SCHEMA_VERSION}" in out and "ready to serve" in out
    code, out = _check(
        capsys, "--data-dir", server, "--database", "postgresql://postgres@127.0.0.1:1/x"
    )
    assert code == 3 and "FAIL database" in out and "cannot connect" in out
    init_forum(tmp_path / "g", name="G", now=_now())
    code, out = _check(
        capsys, "--data-dir", str(tmp_path / "g" / "server"), "--database", postgres_url
    )
    assert code == 3 and "FAIL forum" in out and "another forum" in out
