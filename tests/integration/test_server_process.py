"""The real `forum-server serve` and `forum-admin init` processes."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from forum_client.client import ForumClient
from forum_client.errors import ConfigError
from forum_server.admin.init import init_forum
from forum_server.admin.operator import Operator
from forum_server.testing import engine_database

pytestmark = pytest.mark.integration


def _tree(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_init_writes_private_keys_0600_and_refuses_an_existing_forum(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    root = init_forum(tmp_path / "f", name="Forum", now=now)
    for private in (
        "server/log.key",
        "server/tls/server.key",
        "operator/admin.key",
        "operator/ca.key",
        "operator/bundle.json",
    ):
        assert (tmp_path / "f" / private).stat().st_mode & 0o777 == 0o600, private
    before = _tree(tmp_path / "f")
    with pytest.raises(ConfigError, match="refusing"):
        init_forum(tmp_path / "f", name="Forum", now=now)
    assert _tree(tmp_path / "f") == before
    assert re.fullmatch(r"forum-[0-9a-f]{8}\.forum\.local", root.origin)
    assert init_forum(tmp_path / "g", name="Forum", now=now).origin != root.origin
    # the CLI says the same, with exit code 3 (configuration)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "forum_server.admin.cli",
            "init",
            str(tmp_path / "f"),
            "--name",
            "Forum",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "refusing" in result.stderr
    assert _tree(tmp_path / "f") == before


def test_serve_on_port_0_prints_the_port_and_stops_gracefully_on_sigterm(
    tmp_path: Path,
) -> None:
    with engine_database() as database:  # --engine=postgres reaches this test too
        init_forum(tmp_path / "f", name="Forum", now=dt.datetime.now(dt.UTC), database=database)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "forum_server.cli",
                "serve",
                "--data-dir",
                str(tmp_path / "f" / "server"),
                "--listen",
                "127.0.0.1:0",
                "--grace",
                "5",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # blocks until the server is ready
            match = re.fullmatch(r"forum-server listening on 127\.0\.0\.1:(\d+)\n", line)
            assert match, line
            address = f"127.0.0.1:{match.group(1)}"
            with Operator.open(tmp_path / "f" / "operator", server=address) as op:
                assert [m.member_id for m in op.members()] == ["operator"]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.stderr is not None
        log = proc.stderr.read()
        assert "method=ListMembers member=operator status=OK" in log
        assert "shutting down" in log
        assert "PRIVATE KEY" not in log
        assert (tmp_path / "f" / "server" / "forum.db").exists() == (database is None)


def test_serve_refuses_a_directory_that_is_not_a_forum(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "forum_server.cli",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "forum-admin init" in result.stderr


def test_client_status_reports_a_server_that_is_down(tmp_path: Path) -> None:
    init_forum(tmp_path / "f", name="Forum", now=dt.datetime.now(dt.UTC))
    with ForumClient.connect(
        tmp_path / "f" / "operator", server="127.0.0.1:1", timeout=2
    ) as client:
        from forum_client.errors import TransportError

        with pytest.raises(TransportError) as info:
            client.status()
    assert info.value.code in {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
