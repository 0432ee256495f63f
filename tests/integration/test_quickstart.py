"""``scripts/quickstart`` as a newcomer runs it: it serves, a rerun with another FORUM_PORT
works, and Ctrl-C ends it with exit 0.

It runs in a copy of the scripts beside this checkout's ``.venv`` (its install stamp matches,
so nothing is installed), so the test needs no network and leaves the checkout alone."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _default_extras() -> str:
    text = (REPO_ROOT / "scripts" / "_venv.sh").read_text()
    found = re.search(r"extras=\$\{EXTRAS-([^}]*)\}", text)
    assert found
    return found.group(1)


def _run_until_up(repo: Path, port: int) -> tuple[int, str, str]:
    env = {**os.environ, "FORUM_PORT": str(port), "EXTRAS": _default_extras()}
    proc = subprocess.Popen(
        ["bash", str(repo / "scripts" / "quickstart")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    out = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if "The forum is up" in line:
            break
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    rest, err = proc.communicate(timeout=60)
    return proc.returncode, "".join(out) + rest, err


def test_quickstart_serves_reruns_on_another_port_and_exits_0_on_ctrl_c(tmp_path: Path) -> None:
    if not (REPO_ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("needs the checkout's .venv (made by scripts/test)")
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("quickstart", "_venv.sh"):
        shutil.copy(REPO_ROOT / "scripts" / name, repo / "scripts" / name)
    shutil.copy(REPO_ROOT / "pyproject.toml", repo / "pyproject.toml")
    (repo / ".venv").symlink_to(REPO_ROOT / ".venv")

    first, second = _free_port(), _free_port()
    code, out, err = _run_until_up(repo, first)
    assert f"The forum is up on 127.0.0.1:{first}" in out, out + err
    assert "member_id:  demo" in out
    assert code == 0, err

    code, out, err = _run_until_up(repo, second)  # the profile still says the first port
    assert f"The forum is up on 127.0.0.1:{second}" in out, out + err
    assert "reusing the forum" in err and "member demo is already enrolled" in err
    assert code == 0, err
