"""A complete local forum for tests: ours and integrators' CI.

    from forum_server.testing import local_forum

    def test_my_integration(tmp_path):
        with local_forum(tmp_path, members=["acme"], observers=["watcher"]) as forum:
            with forum.client("acme") as client:
                assert client.status().member_id == "acme"

Everything is real: ``forum-admin init`` in a temporary directory, a ``grpc.aio`` server on a
free port of 127.0.0.1 with mTLS, members admitted with their own signing keys through the
Admin RPCs, and credentials bundles written to disk.  With pytest, add
``pytest_plugins = ["forum_server.testing"]`` to a ``conftest.py`` to get the
``local_forum_instance`` fixture (members ``alice`` and ``bob``, observer ``carol``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from forum_client.client import ForumClient
from forum_client.entries import Role
from forum_client.envelope import SigningKey
from forum_client.profile import Bundle
from forum_client.verifier import TrustRoot

from .admin.init import init_forum
from .admin.operator import Operator
from .app import RunningForum, running_server
from .config import ServerConfig


@dataclass(frozen=True)
class EnrolledMember:
    member_id: str
    role: Role
    bundle_path: Path
    key_path: Path
    signing_key: SigningKey

    @property
    def bundle(self) -> Bundle:
        return Bundle.load(self.bundle_path)


@dataclass
class LocalForum:
    directory: Path
    trust_root: TrustRoot
    running: RunningForum
    members: dict[str, EnrolledMember] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.running.address

    @property
    def operator_profile(self) -> Path:
        return self.directory / "operator"

    def operator(self) -> Operator:
        """An operator session (close it, or use it as a context manager)."""
        return Operator.open(self.operator_profile, server=self.address)

    def enroll(self, member_id: str, role: Role = Role.MEMBER) -> EnrolledMember:
        """Admit a member the way a real one is: own key, proof of possession, bundle."""
        key_path = self.directory / "members" / f"{member_id}.key"
        key_path.parent.mkdir(exist_ok=True)
        key = SigningKey.generate()
        key.save(key_path, possession=[(self.trust_root.origin, member_id)])
        bundle_path = self.directory / "members" / f"{member_id}.bundle.json"
        with self.operator() as op:
            op.add_member(
                member_id,
                display_name=member_id.title(),
                role=role,
                signing_key=f"{key_path}.pub",
                out=bundle_path,
            )
        member = EnrolledMember(member_id, role, bundle_path, key_path, key)
        self.members[member_id] = member
        return member

    def client(self, member_id: str, timeout: float = 60.0) -> ForumClient:
        return ForumClient(self.members[member_id].bundle, timeout=timeout)


@contextlib.contextmanager
def local_forum(
    directory: Path | str | None = None,
    *,
    members: Iterable[str] = ("alice", "bob"),
    observers: Iterable[str] = ("carol",),
    name: str = "Local test forum",
    config: ServerConfig | None = None,
) -> Iterator[LocalForum]:
    """Init a forum in ``directory`` (a fresh temporary one by default), serve it on a free
    port of 127.0.0.1 and enroll ``members`` and ``observers``."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="forum-"))
        root = Path(directory) / "forum"
        trust_root = init_forum(root, name=name, address="127.0.0.1:0", now=dt.datetime.now(dt.UTC))
        running = stack.enter_context(running_server(root / "server", port=0, config=config))
        forum = LocalForum(root, trust_root, running)
        for member_id in members:
            forum.enroll(member_id, Role.MEMBER)
        for member_id in observers:
            forum.enroll(member_id, Role.OBSERVER)
        yield forum


def start_server_process(
    data_dir: Path | str, *, log_level: str = "WARNING", stderr: int | None = subprocess.DEVNULL
) -> tuple[subprocess.Popen[str], str]:
    """Start a real ``forum-server serve`` process on a free port of 127.0.0.1 (for crash
    and restart tests); return it and its address once it is listening."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "forum_server.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            log_level,
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the server prints its address once it is ready
    if "listening on" not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"forum-server did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()


def start_witness_process(
    data_dir: Path | str,
    log_vkey_files: Iterable[Path | str],
    *,
    log_level: str = "WARNING",
    stderr: int | None = subprocess.DEVNULL,
) -> tuple[subprocess.Popen[str], str]:
    """Start a real ``forum-witness serve`` process on a free port of 127.0.0.1; return it
    and its URL (``http://127.0.0.1:PORT``) once it is listening."""
    logs = [arg for path in log_vkey_files for arg in ("--log", str(path))]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "forum_server.witness.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            log_level,
            *logs,
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the witness prints its URL once it is ready
    if "listening on" not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"forum-witness did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixture
    pass
else:

    @pytest.fixture
    def local_forum_instance(tmp_path: Path) -> Iterator[LocalForum]:
        """A running local forum with members alice and bob and observer carol."""
        with local_forum(tmp_path) as forum:
            yield forum
