"""``forum-admin backup`` / ``restore``: across engines, verified, rollback refused."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from forum_client.client import ForumClient
from forum_client.store import LocalStore
from forum_server.admin.cli import main as admin_main
from forum_server.admin.init import init_forum
from forum_server.app import running_server
from forum_server.testing import local_forum, postgres_database

pytestmark = pytest.mark.integration


@pytest.fixture
def second_postgres(postgres_url: str) -> Iterator[str]:
    with postgres_database() as url:
        yield url


def _new_server_dir(source: Path, target: Path) -> Path:
    """The server's keys and certificates, without its store (what an operator keeps)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("forum.db*", "database.url"))
    return target


@pytest.mark.parametrize("engines", [("sqlite", "postgres"), ("postgres", "sqlite")])
def test_a_backup_restores_on_the_other_engine_and_verifies(
    tmp_path: Path,
    postgres_url: str,
    second_postgres: str,
    engines: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    source_db = postgres_url if engines[0] == "postgres" else None
    with local_forum(tmp_path, database=source_db) as f:
        key = f.members["alice"].signing_key
        with f.client("alice") as client:
            client.submit([{"type": "md5", "value": "a" * 32}], key)
            old = client.checkpoint()
            old_note = f.running.handle.sequencer.checkpoint_note
            client.submit([{"type": "md5", "value": "b" * 32}], key)
            client.retract([{"type": "md5", "value": "a" * 32}], key, "mistake")
        server = f.directory / "server"
        assert admin_main(["backup", str(server), "--out", str(tmp_path / "b.gz")]) == 0
        final_note = f.running.handle.sequencer.checkpoint_note
        carol = f.members["carol"].bundle
    (tmp_path / "old.note").write_bytes(old_note)
    (tmp_path / "final.note").write_bytes(final_note)

    restored = _new_server_dir(server, tmp_path / "restored")
    target = ["--database", second_postgres] if engines[1] == "postgres" else []
    args = ["restore", str(tmp_path / "b.gz"), str(restored), *target]
    assert admin_main([*args, "--latest-checkpoint", str(tmp_path / "final.note")]) == 0
    if target:  # the data dir still names its own store: the way to serve this one is said
        assert "forum-server serve --database URL" in capsys.readouterr().err
    assert admin_main(args) != 0  # the store is not empty any more
    capsys.readouterr()
    with running_server(restored, database=target[1] if target else None) as running:
        assert running.handle.sequencer.checkpoint_note == final_note
        assert running.handle.store.signal_status("md5", "a" * 32) == "retracted"
        assert running.handle.store.signal_status("md5", "b" * 32) == "active"
        with (
            ForumClient(carol, server=running.address) as client,
            LocalStore(tmp_path / "carol.db") as store,
        ):
            result = client.sync(store)
            assert result.size == running.handle.sequencer.size
            client.verify_consistent(old, client.checkpoint())


def test_an_old_backup_is_a_rollback_and_a_tampered_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with local_forum(tmp_path, observers=[]) as f:
        key = f.members["alice"].signing_key
        server = f.directory / "server"
        assert admin_main(["backup", str(server), "--out", str(tmp_path / "old.gz")]) == 0
        with f.client("alice") as client:
            client.submit([{"type": "md5", "value": "c" * 32}], key)
        (tmp_path / "new.note").write_bytes(f.running.handle.sequencer.checkpoint_note)
    latest = ["--latest-checkpoint", str(tmp_path / "new.note")]

    target = _new_server_dir(server, tmp_path / "r1")
    capsys.readouterr()
    assert admin_main(["restore", str(tmp_path / "old.gz"), str(target), *latest]) == 3
    assert "rollback (--accept-rollback)" in capsys.readouterr().err  # names the way on
    assert not (target / "forum.db").exists()
    code = admin_main(
        ["restore", str(tmp_path / "old.gz"), str(target), *latest, "--accept-rollback"]
    )
    assert code == 0

    # One entry's bytes changed: its signature (or its checkpoint) no longer verifies.
    lines = gzip.decompress((tmp_path / "old.gz").read_bytes()).decode().splitlines()
    doc = json.loads(lines[3])
    assert "leaf" in doc
    data = bytearray(base64.b64decode(doc["bytes"]))
    data[-1] ^= 1
    doc["bytes"] = base64.b64encode(bytes(data)).decode()
    lines[3] = json.dumps(doc)
    (tmp_path / "bad.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    target = _new_server_dir(server, tmp_path / "r2")
    capsys.readouterr()
    assert admin_main(["restore", str(tmp_path / "bad.gz"), str(target)]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()
    # nothing was written: the good backup restores into the same store afterwards
    assert admin_main(["restore", str(tmp_path / "old.gz"), str(target)]) == 0


def _damaged(lines: list[str], number: int, change: Callable[[dict[str, Any]], None]) -> bytes:
    doc = json.loads(lines[number - 1])
    change(doc)
    out = [*lines[: number - 1], json.dumps(doc), *lines[number:]]
    return gzip.compress(("\n".join(out) + "\n").encode())


def test_a_damaged_backup_is_bad_input_naming_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backup whose records were cut or edited is exit 2 naming the file and the line,
    before anything is written (it used to be a KeyError or binascii traceback)."""
    init_forum(tmp_path / "forum", name="Damaged", now=dt.datetime.now(dt.UTC))
    server = tmp_path / "forum" / "server"
    assert admin_main(["backup", str(server), "--out", str(tmp_path / "ok.gz")]) == 0
    lines = gzip.decompress((tmp_path / "ok.gz").read_bytes()).decode().splitlines()
    leaf = next(i for i, line in enumerate(lines, 1) if '"leaf"' in line)
    damaged = {
        "header without size": _damaged(lines, 1, lambda d: d.pop("size")),
        "header size not a number": _damaged(lines, 1, lambda d: d.update(size="x")),
        "leaf not base64": _damaged(lines, leaf, lambda d: d.update(bytes="%%%")),
        "leaf index missing": _damaged(lines, leaf, lambda d: d.pop("leaf")),
        "cut short": (tmp_path / "ok.gz").read_bytes()[:-20],
    }
    target = _new_server_dir(server, tmp_path / "target")
    for what, data in damaged.items():
        path = tmp_path / f"{what}.gz"
        path.write_bytes(data)
        capsys.readouterr()
        assert admin_main(["restore", str(path), str(target)]) == 2, what
        err = capsys.readouterr().err
        assert "Traceback" not in err and str(path) in err, (what, err)
    # nothing was written: the good backup restores into the same (still empty) store
    assert admin_main(["restore", str(tmp_path / "ok.gz"), str(target)]) == 0
