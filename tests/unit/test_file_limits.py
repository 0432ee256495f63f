"""Every file the tools read whole has a size limit and a clear error: an endless device or a
huge file is refused at once, naming the file and what it should have been."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from forum_client.cli import main as client_main
from forum_client.envelope import SigningKey
from forum_client.files import MAX_BUNDLE_BYTES, FileTooLargeError, read_bounded
from forum_client.store import LocalStore
from forum_server.admin.cli import main as admin_main
from forum_server.admin.init import init_forum

ENDLESS = "/dev/zero"


@pytest.fixture(scope="module")
def forum(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("limits")
    init_forum(root / "forum", name="Limits", now=dt.datetime.now(dt.UTC))
    SigningKey.generate().save(root / "m.key", possession=[("o", "acme")])
    LocalStore(root / "copy.db").close()
    return root


def test_read_bounded_stops_after_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    assert read_bounded(big, 101, "a test file") == b"x" * 101
    with pytest.raises(FileTooLargeError, match=r"big: larger than 100 bytes.*a test file"):
        read_bounded(big, 100, "a test file")
    with pytest.raises(FileTooLargeError):
        read_bounded(ENDLESS, MAX_BUNDLE_BYTES, "a credentials bundle")


@pytest.mark.parametrize(
    ("cli", "argv", "code", "says"),
    [
        ("client", ["--profile", ENDLESS, "status"], 3, "too large for a credentials bundle"),
        ("client", ["--profile", "{bundle}", "submit", "--key", ENDLESS, "--type", "md5",
                    "--value", "0" * 32], 2, "--key"),
        ("client", ["compare-checkpoint", ENDLESS, "--db", "{copy}"], 2, "signed checkpoint"),
        ("admin", ["--profile", "{op}", "member", "add", "acme", "--name", "A",
                   "--signing-key", ENDLESS, "--out", "{root}/b.json"], 2, "key file"),
        ("admin", ["--profile", "{op}", "taxonomy", "publish", ENDLESS], 2, "taxonomy file"),
    ],
    ids=["bundle", "private-key", "checkpoint-note", "public-key", "taxonomy"],
)  # fmt: skip
def test_endless_files_are_refused_with_a_clear_error(
    cli: str,
    argv: list[str],
    code: int,
    says: str,
    forum: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    names = {
        "bundle": str(forum / "forum" / "operator" / "bundle.json"),
        "op": str(forum / "forum" / "operator"),
        "key": str(forum / "m.key"),
        "root": str(forum),
        "copy": str(forum / "copy.db"),
    }
    main = client_main if cli == "client" else admin_main
    rc = main([x.format(**names) for x in argv])
    err = capfd.readouterr().err
    assert rc == code, err
    assert says in err and "Traceback" not in err
