"""A private PostgreSQL cluster for the tests that must restart PostgreSQL or change how it
authenticates (the machine's shared server at 127.0.0.1:5432 is used by other test runs at
the same moment, so those tests never touch it).

    with private_cluster(tmp) as pg:
        url = pg.url(password=pg.password)       # scram-sha-256 over TCP on 127.0.0.1
        pg.restart("fast")                       # pg_ctl restart -m fast, waits until up

``initdb`` makes the cluster in a fresh directory of its own with the machine's PostgreSQL
binaries (``/usr/lib/postgresql/*/bin``, the newest); ``pg_ctl`` runs it on a free port of
127.0.0.1 with its Unix socket in that directory.  Connections over TCP need the password
(``scram-sha-256`` in ``pg_hba.conf``); the socket trusts the owner, which the helper uses to
create roles and databases.  PostgreSQL refuses to run as root: as root, every PostgreSQL
command runs as the ``postgres`` user (``runuser``), which owns the directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_TIMEOUT = 120  # seconds any one pg_ctl / initdb / psql call may take on a loaded machine


class ClusterUnavailable(RuntimeError):
    """The PostgreSQL server binaries (or the user to run them as) are not on this machine."""


def postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/VERSION/bin`` holding initdb and pg_ctl."""
    found = [
        p
        for p in Path("/").glob(_BIN_GLOB.lstrip("/"))
        if (p / "initdb").is_file() and (p / "pg_ctl").is_file()
    ]
    if not found:
        raise ClusterUnavailable(f"no PostgreSQL server binaries (initdb, pg_ctl) in {_BIN_GLOB}")
    return max(found, key=lambda p: _version_key(p.parent.name))


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in name.split(".") if x.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateCluster:
    """A running cluster; ``password`` is the ``postgres`` superuser's (TCP needs it)."""

    bin: Path
    directory: Path
    port: int
    password: str = field(repr=False)
    run_as: str | None  # "postgres" when the tests run as root

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        return self.directory / "server.log"

    def url(self, user: str = "postgres", password: str | None = None, db: str = "forum") -> str:
        secret = f":{password}" if password is not None else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{db}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*(["runuser", "-u", self.run_as, "--"] if self.run_as else []), *args]
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=_TIMEOUT, cwd=self.directory
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr or proc.stdout}"
                f"\n{self._log_tail()}"
            )
        return proc

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "server log:\n" + "\n".join(self.log_file.read_text().splitlines()[-20:])
        return ""

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self._run(
            str(self.bin / "pg_ctl"),
            action,
            "-D",
            str(self.data),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            str(_TIMEOUT),
            "-o",
            options,
            *extra,
        )

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m MODE`` (``fast``: clients are disconnected and the server
        shuts down cleanly; ``immediate``: no shutdown checkpoint, recovery from the WAL on
        start, as after a crash); returns once the server accepts connections again."""
        self._pg_ctl("restart", "-m", mode)

    def stop(self, mode: str = "immediate") -> None:
        self._pg_ctl("stop", "-m", mode)

    def sql(self, statement: str, db: str = "postgres") -> str:
        """Run ``statement`` as the superuser over the Unix socket (trusted)."""
        proc = self._run(
            str(self.bin / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.directory),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            db,
            "-At",
            "-c",
            statement,
        )
        return proc.stdout.strip()


@contextlib.contextmanager
def private_cluster(parent: Path | str | None = None) -> Iterator[PrivateCluster]:
    """Init and start a cluster with an empty database ``forum``; stop and delete it after.
    Raises ClusterUnavailable when the binaries (or, as root, the ``postgres`` user) are
    missing."""
    bin_dir = postgres_bin()
    run_as: str | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise ClusterUnavailable("running as root and there is no 'postgres' user") from None
        run_as = "postgres"
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as
    # the postgres user.  The socket path must stay short (108 bytes), hence /tmp.
    directory = Path(tempfile.mkdtemp(prefix="forum-pg-", dir=parent))
    try:
        if run_as:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        directory.chmod(0o700)
        password = secrets.token_urlsafe(12)
        pwfile = directory / "pwfile"
        pwfile.write_text(password + "\n")
        if run_as:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        cluster = PrivateCluster(bin_dir, directory, _free_port(), password, run_as)
        cluster._run(
            str(bin_dir / "initdb"),
            "-D",
            str(cluster.data),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        pwfile.unlink()
        for attempt in range(3):  # the free port may be taken before PostgreSQL binds it
            try:
                cluster.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                cluster.port = _free_port()
                time.sleep(0.2)
        try:
            cluster.sql("CREATE DATABASE forum")
            yield cluster
        finally:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                cluster.stop("immediate")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
