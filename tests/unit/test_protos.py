"""The committed stubs are what protoc makes of protos/ today."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def test_generated_stubs_are_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_stale_stub_is_detected(tmp_path: Path) -> None:
    """The check really compares: a changed copy of the stubs fails it."""
    copy = tmp_path / "_proto"
    shutil.copytree(REPO_ROOT / "forum_client" / "_proto", copy)
    stub = copy / "forum" / "v1" / "forum_pb2.pyi"
    stub.write_bytes(stub.read_bytes() + b"\n# stale\n")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "gen_protos.py"),
            "--check",
            "--against",
            str(copy),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "forum_pb2.pyi" in result.stdout
