"""A wrong password or role at start, against a PostgreSQL cluster of the test's own that
asks for passwords (``scram-sha-256`` over TCP; the machine's shared server trusts every
connection, so it cannot tell a wrong password from a right one).

``forum-server serve``, ``forum-server check`` and ``forum-admin init`` each say what is
wrong, with the documented exit code (6: the store; 3: a failed check), never print the
password, and leave nothing half-made behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres_cluster import PrivateCluster

pytestmark = pytest.mark.integration

WRONG = "not-the-pw-7c1e"  # a wrong password, looked for in every message


def _cli(
    module: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _serve(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return _cli(
        "forum_server.cli",
        "serve",
        "--data-dir",
        str(data_dir),
        "--listen",
        "127.0.0.1:0",
        *args,
        env=env,
    )


def _init(directory: Path, url: str) -> subprocess.CompletedProcess[str]:
    return _cli(
        "forum_server.admin.cli",
        "init",
        str(directory),
        "--name",
        "Auth forum",
        "--database",
        url,
    )


def _clear(proc: subprocess.CompletedProcess[str], code: int, *expect: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    out = proc.stdout + proc.stderr
    for text in expect:
        assert text in out, out
    assert "Traceback" not in out, out


def test_a_wrong_password_or_role_is_a_clear_error(
    tmp_path: Path, private_postgres: PrivateCluster
) -> None:
    pg = private_postgres
    pg.sql(f"CREATE ROLE forum LOGIN PASSWORD '{pg.password}'")
    pg.sql("ALTER DATABASE forum OWNER TO forum")
    good = pg.url(user="forum", password=pg.password)
    wrong_password = pg.url(user="forum", password=WRONG)
    no_role = pg.url(user="no_such_role_q", password=WRONG)
    no_password = pg.url(user="forum")

    # forum-admin init: refused, nothing left behind, and then it works with the right one.
    for url, expect in [
        (wrong_password, 'password authentication failed for user "forum"'),
        (no_role, 'password authentication failed for user "no_such_role_q"'),
        (no_password, "no password supplied"),
    ]:
        proc = _init(tmp_path / "f", url)
        _clear(proc, 6, "forum-admin: store error: cannot connect to PostgreSQL", expect)
        assert WRONG not in proc.stdout + proc.stderr
        assert not (tmp_path / "f" / "server").exists()
        assert not (tmp_path / "f" / "operator").exists()
    _clear(_init(tmp_path / "f", good), 0)
    data_dir = tmp_path / "f" / "server"

    # forum-server serve --database (or FORUM_DATABASE_URL) with a wrong password or role.
    for args, env, user in [
        (["--database", wrong_password], None, "forum"),
        ([], {"FORUM_DATABASE_URL": wrong_password}, "forum"),
        (["--database", no_role], None, "no_such_role_q"),
    ]:
        proc = _serve(data_dir, *args, env=env)
        _clear(
            proc,
            6,
            "forum-server: store error: cannot connect to PostgreSQL at "
            f"postgresql://{user}@127.0.0.1:{pg.port}/forum",
            f'password authentication failed for user "{user}"',
        )
        assert WRONG not in proc.stdout + proc.stderr
        assert "listening on" not in proc.stdout

    # forum-server check names the failing database check (exit 3: a check failed).
    proc = _cli(
        "forum_server.cli", "check", "--data-dir", str(data_dir), "--database", wrong_password
    )
    _clear(proc, 3, "FAIL database", "password authentication failed")
    assert WRONG not in proc.stdout + proc.stderr
    proc = _cli("forum_server.cli", "check", "--data-dir", str(data_dir))
    _clear(proc, 0, "ready to serve")


@pytest.mark.parametrize(
    "url, code, expect",
    [
        (f"postgresql://forum:{WRONG}@[::1/forum", 6, "cannot connect to PostgreSQL"),
        # psycopg quotes the offending part alone: here the password, without the URL
        (f"postgresql://forum:{WRONG} x@127.0.0.1/forum", 6, "unexpected spaces"),
        (f"postgresql://forum:{WRONG}%zz@127.0.0.1/forum", 6, "percent-encoded"),
        (f"postgresq://forum:{WRONG} x@127.0.0.1/forum", 2, "neither a postgresql:// URL"),
        (f"postgresq://forum:{WRONG}@127.0.0.1/forum", 2, "neither a postgresql:// URL"),
        (f"host=127.0.0.1 password={WRONG}", 2, "neither a postgresql:// URL"),
    ],
)
def test_a_malformed_url_is_named_without_its_password(
    tmp_path: Path, url: str, code: int, expect: str
) -> None:
    _clear(_cli("forum_server.admin.cli", "init", str(tmp_path / "f"), "--name", "F"), 0)
    serve = _serve(tmp_path / "f" / "server", "--database", url)
    _clear(serve, code, expect)
    init = _init(tmp_path / "g", url)
    _clear(init, code)
    for proc in (serve, init):
        assert WRONG not in proc.stdout + proc.stderr
        assert "***" in proc.stderr
