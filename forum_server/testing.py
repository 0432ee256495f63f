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

Both engines: ``local_forum(engine="postgres")`` keeps the log in a schema of its own in the
PostgreSQL database at ``$FORUM_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), dropped afterwards.  Under pytest,
``--engine=postgres`` makes that the default of every ``local_forum`` (so the whole
integration suite runs on PostgreSQL); the ``postgres_url`` fixture gives a test an empty
schema of its own.  Without a reachable PostgreSQL those tests skip, saying why, unless
``CI=true`` or ``FORUM_REQUIRE_POSTGRES=1``: then they fail.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from forum_client.client import ForumClient
from forum_client.entries import Role
from forum_client.envelope import SigningKey
from forum_client.errors import StoreError
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
        return Operator.open(
            self.operator_profile, server=self.address, member_address=self.address
        )

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


DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
ENGINES = ("sqlite", "postgres")
_default_engine = ["sqlite"]  # what local_forum uses when no engine is given (pytest --engine)


def postgres_base_url() -> str:
    return os.environ.get("FORUM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


_kept_schemas: list[tuple[str, str]] = []  # (base URL, schema): dropped at the end of pytest


@contextlib.contextmanager
def postgres_database(base_url: str | None = None, *, keep: bool = False) -> Iterator[str]:
    """A fresh, empty schema in the PostgreSQL database at ``base_url``; yields a URL whose
    connections use it (``search_path``), and drops it with everything in it afterwards
    (with ``keep``, at the end of the pytest session instead, for a test that restarts the
    server on the data dir after the forum closed).  Raises StoreError when PostgreSQL
    cannot be reached."""
    import psycopg
    from psycopg import sql

    from .storage.postgres import redact

    base_url = base_url or postgres_base_url()
    schema = f"forum_test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as con:
            con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    except psycopg.Error as exc:
        raise StoreError(f"cannot reach PostgreSQL at {redact(base_url)}: {exc}") from exc
    if keep:
        _kept_schemas.append((base_url, schema))
    try:
        sep = "&" if "?" in base_url else "?"
        yield f"{base_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        if not keep:
            drop_schema(base_url, schema)


@contextlib.contextmanager
def engine_database() -> Iterator[str | None]:
    """For a test that inits a forum itself (the CLI's ``init``, or :func:`init_forum`) rather
    than through :func:`local_forum`: ``None`` (SQLite) by default, or under pytest's
    ``--engine=postgres`` the URL of a fresh PostgreSQL schema (give it as ``--database``),
    dropped afterwards."""
    if _default_engine[0] != "postgres":
        yield None
        return
    with postgres_database() as url:
        yield url


def drop_schema(base_url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as con:
        con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextlib.contextmanager
def local_forum(
    directory: Path | str | None = None,
    *,
    members: Iterable[str] = ("alice", "bob"),
    observers: Iterable[str] = ("carol",),
    name: str = "Local test forum",
    config: ServerConfig | None = None,
    engine: str | None = None,
    database: str | None = None,
) -> Iterator[LocalForum]:
    """Init a forum in ``directory`` (a fresh temporary one by default), serve it on a free
    port of 127.0.0.1 and enroll ``members`` and ``observers``.  ``engine`` is ``"sqlite"``
    or ``"postgres"`` (a schema of its own, dropped afterwards); the default is SQLite, or
    what pytest's ``--engine`` says.  ``database``: this (empty) PostgreSQL database instead
    (for example the ``postgres_url`` fixture's)."""
    engine = "postgres" if database else engine or _default_engine[0]
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    with contextlib.ExitStack() as stack:
        if engine == "postgres" and database is None:
            # A caller's directory outlives the forum (tests restart servers on it): so does
            # its schema, until the end of the pytest session.
            database = stack.enter_context(postgres_database(keep=directory is not None))
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="forum-"))
        root = Path(directory) / "forum"
        trust_root = init_forum(
            root,
            name=name,
            address="127.0.0.1:0",
            now=dt.datetime.now(dt.UTC),
            database=database,
        )
        running = stack.enter_context(running_server(root / "server", port=0, config=config))
        forum = LocalForum(root, trust_root, running)
        for member_id in members:
            forum.enroll(member_id, Role.MEMBER)
        for member_id in observers:
            forum.enroll(member_id, Role.OBSERVER)
        yield forum


def _serve_process(
    module: str,
    what: str,
    data_dir: Path | str,
    listen: str,
    log_level: str,
    stderr: int | None,
    extra_args: Iterable[str],
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m MODULE serve`` and wait for the line naming where it listens."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            module,
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            listen,
            "--log-level",
            log_level,
            *extra_args,
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the process prints where it listens once it is ready
    if "listening on" not in line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{what} did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()


def start_server_process(
    data_dir: Path | str,
    *,
    log_level: str = "WARNING",
    stderr: int | None = subprocess.DEVNULL,
    extra_args: Iterable[str] = (),
    listen: str = "127.0.0.1:0",
) -> tuple[subprocess.Popen[str], str]:
    """Start a real ``forum-server serve`` process on ``listen`` (a free port of 127.0.0.1
    by default; crash and restart tests); return it and its address once it listens."""
    return _serve_process(
        "forum_server.cli", "forum-server", data_dir, listen, log_level, stderr, extra_args
    )


def start_witness_process(
    data_dir: Path | str,
    log_vkey_files: Iterable[Path | str],
    *,
    log_level: str = "WARNING",
    stderr: int | None = subprocess.DEVNULL,
    listen: str = "127.0.0.1:0",
) -> tuple[subprocess.Popen[str], str]:
    """Start a real ``forum-witness serve`` process on ``listen`` (default: a free port of
    127.0.0.1; a witness restarted at its old URL passes that); return it and its URL
    (``http://127.0.0.1:PORT``) once it is listening."""
    logs = [arg for path in log_vkey_files for arg in ("--log", str(path))]
    return _serve_process(
        "forum_server.witness.cli",
        "forum-witness",
        data_dir,
        listen,
        log_level,
        stderr,
        logs,
    )


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixture
    pass
else:

    def pytest_addoption(parser: pytest.Parser) -> None:
        parser.addoption(
            "--engine",
            choices=ENGINES,
            default="sqlite",
            help="the store every local_forum uses (default sqlite)",
        )

    def pytest_configure(config: pytest.Config) -> None:
        _default_engine[0] = config.getoption("--engine")
        config.addinivalue_line(
            "markers", "sqlite_only: tests SQLite internals; skipped under --engine=postgres"
        )

    def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
        if config.getoption("--engine") != "postgres":
            return
        skip = pytest.mark.skip(reason="tests SQLite internals (--engine=postgres)")
        for item in items:
            if "sqlite_only" in item.keywords:
                item.add_marker(skip)

    def pytest_unconfigure(config: pytest.Config) -> None:
        while _kept_schemas:
            with contextlib.suppress(Exception):
                drop_schema(*_kept_schemas.pop())

    def _postgres_required() -> bool:
        return (
            os.environ.get("CI", "").lower() == "true"
            or os.environ.get("FORUM_REQUIRE_POSTGRES") == "1"
        )

    @pytest.fixture
    def postgres_url() -> Iterator[str]:
        """An empty schema of its own in the test PostgreSQL (dropped afterwards); skips
        when PostgreSQL is unreachable, or fails under CI=true / FORUM_REQUIRE_POSTGRES=1."""
        try:
            context = postgres_database()
            url = context.__enter__()
        except StoreError as exc:
            message = (
                f"PostgreSQL tests need a server: {exc} "
                "(set FORUM_TEST_POSTGRES_URL; CI=true or FORUM_REQUIRE_POSTGRES=1 make this "
                "a failure)"
            )
            if _postgres_required():
                pytest.fail(message)
            pytest.skip(message)
        try:
            yield url
        finally:
            context.__exit__(None, None, None)

    @pytest.fixture
    def local_forum_instance(tmp_path: Path) -> Iterator[LocalForum]:
        """A running local forum with members alice and bob and observer carol."""
        with local_forum(tmp_path) as forum:
            yield forum
