"""CLI conventions: --version, --json where scripts need it, log levels, and a --help (and
hash) that loads neither grpc nor SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from forum_client.cli import main as client_main
from forum_client.cli_match import (
    DEFAULT_COMPARED_MATCH,
    DEFAULT_MIN_QUALITY,
    DEFAULT_QUERY_MATCH,
    DEFAULT_THRESHOLD,
)
from forum_client.cli_sync import (
    CACHE_MIB,
    COMMIT_EVERY_ROWS,
    ROWS_PER_COPY_PAGE,
    WITNESS_FRESHNESS_SECONDS,
)
from forum_client.match import media, pdq_index, video_index
from forum_client.store.local import DEFAULT_CACHE_MIB
from forum_client.sync import SyncConfig
from forum_server.admin.cli import main as admin_main
from forum_server.cli import main as server_main
from forum_server.testing import LocalForum
from forum_server.witness.cli import main as witness_main

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("main", [client_main, admin_main, server_main, witness_main])
def test_version(main: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0  # type: ignore[operator]
    out = capsys.readouterr().out
    assert out.split()[0] in ("forum-client", "forum-admin", "forum-server", "forum-witness")
    assert out.split()[1][0].isdigit()


def test_help_and_hash_load_no_grpc_sqlite_or_numpy(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    code = (
        "import sys\n"
        "from forum_client.cli import main\n"
        "for argv in (['--help'], ['submit', '--help'], ['hash', sys.argv[1]]):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('grpc', 'sqlite_utils', 'numpy', 'sqlite3') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(text)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout
    assert '"md5"' in done.stdout  # hash did its work


def test_the_clis_defaults_match_the_library() -> None:
    assert DEFAULT_THRESHOLD == pdq_index.DEFAULT_THRESHOLD
    assert DEFAULT_QUERY_MATCH == video_index.DEFAULT_QUERY_MATCH
    assert DEFAULT_COMPARED_MATCH == video_index.DEFAULT_COMPARED_MATCH
    assert DEFAULT_MIN_QUALITY == media.DEFAULT_MIN_QUALITY
    assert SyncConfig.commit_every_rows == COMMIT_EVERY_ROWS
    assert SyncConfig.rows_per_copy_page == ROWS_PER_COPY_PAGE
    assert DEFAULT_CACHE_MIB == CACHE_MIB
    assert SyncConfig.witness_max_age_seconds == WITNESS_FRESHNESS_SECONDS


def test_keygen_and_show_checkpoint_json(
    local_forum_instance: LocalForum, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forum = local_forum_instance
    key = tmp_path / "k.key"
    origin = forum.trust_root.origin
    keygen = ["keygen", "--out", str(key), "--member-id", "x1", "--origin", origin]
    assert client_main([*keygen, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["public_key"] == f"{key}.pub" and len(doc["key_id"]) == 64
    assert doc["origin"] == origin
    # refuses to overwrite, naming --out
    assert client_main(keygen) == 2
    assert "--out" in capsys.readouterr().err

    alice = forum.members["alice"]
    db = tmp_path / "copy.db"
    profile = ["--profile", str(alice.bundle_path)]
    assert client_main([*profile, "--quiet", "sync", "--db", str(db)]) == 0
    capsys.readouterr()
    assert client_main(["show-checkpoint", "--db", str(db), "--json"]) == 0
    cp = json.loads(capsys.readouterr().out)
    assert cp["origin"] == origin and cp["size"] >= 1 and len(cp["root"]) == 64
    assert cp["note"].startswith(origin)


def test_log_level_and_verbose_are_accepted(
    local_forum_instance: LocalForum, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = str(local_forum_instance.members["alice"].bundle_path)
    for flags in (["-v"], ["-vv"], ["--log-level", "error"]):
        assert client_main(["--profile", bundle, *flags, "status", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["member_id"] == "alice"
