"""Errors a newcomer hits say which bundle, which forum and what to do; each is printed once
and no gRPC C-core log line reaches stderr."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest

from forum_client.cli import main as client_main
from forum_client.profile import Bundle
from forum_server.admin.ca import KeyAndCert, issue_member_cert
from forum_server.testing import LocalForum, local_forum

pytestmark = pytest.mark.integration

C_CORE_LINE = re.compile(r"^[EWID]\d{4} \d\d:\d\d:\d\d", re.MULTILINE)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forum_client.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_another_forums_bundle_names_bundle_and_forum(tmp_path: Path) -> None:
    with (
        local_forum(tmp_path / "a", members=("alice",), observers=()) as a,
        local_forum(tmp_path / "b", members=("bob",), observers=()) as b,
    ):
        bob = b.members["bob"]
        done = _cli("--profile", str(bob.bundle_path), "--server", a.address, "status")
    assert done.returncode == 4, done.stderr
    err = done.stderr
    assert "TLS handshake" in err
    assert str(bob.bundle_path) in err
    assert b.trust_root.origin in err
    assert "another forum" in err
    assert "credentials reissue bob" in err
    assert not C_CORE_LINE.search(err), err
    assert err.count("UNAVAILABLE") == 1  # the error once, then what to do


def test_expired_certificate_is_a_clear_config_error(
    local_forum_instance: LocalForum, capfd: pytest.CaptureFixture[str]
) -> None:
    forum = local_forum_instance
    alice = forum.members["alice"].bundle
    ca_dir = forum.operator_profile
    ca = KeyAndCert((ca_dir / "ca.key").read_bytes(), (ca_dir / "ca.crt").read_bytes())
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    old = issue_member_cert(ca, "alice", long_ago, 1)
    expired = Bundle(
        alice.member_id,
        forum.address,
        alice.ca_certificate,
        old.cert_pem,
        old.key_pem,
        alice.trust_root,
    )
    path = forum.directory / "expired.bundle.json"
    expired.save(path)
    rc = client_main(["--profile", str(path), "status"])
    err = capfd.readouterr().err
    assert rc == 3, err
    assert str(path) in err and "expired on" in err
    assert forum.trust_root.origin in err
    assert "forum-admin credentials reissue alice" in err


def test_a_single_error_is_printed_once(
    local_forum_instance: LocalForum, capfd: pytest.CaptureFixture[str]
) -> None:
    forum = local_forum_instance
    alice = forum.members["alice"]
    rc = client_main(
        [
            "--profile",
            str(alice.bundle_path),
            "retract",
            "--key",
            str(alice.key_path),
            "--type",
            "md5",
            "--value",
            "d41d8cd98f00b204e9800998ecf8427e",
            "--reason",
            "r",
        ]
    )
    err = capfd.readouterr().err
    assert rc == 4, err  # the forum refuses: alice never submitted it
    lines = [x for x in err.splitlines() if x.strip()]
    reason = lines[0].split(": ")[-1]
    assert sum(reason in x for x in lines) == 1, err


def test_a_refusal_whose_detail_repeats_the_message_is_printed_once(
    local_forum_instance: LocalForum, capfd: pytest.CaptureFixture[str]
) -> None:
    """forum-admin printed the server's reason, then the same reason again under its field
    (``  member_id: entry N: nosuch is not a member``)."""
    from forum_server.admin.cli import main as admin_main

    forum = local_forum_instance
    profile = ["--profile", str(forum.operator_profile), "--server", forum.address]
    rc = admin_main([*profile, "member", "suspend", "nosuch", "--reason", "r"])
    err = capfd.readouterr().err
    assert rc == 4, err
    assert err.count("nosuch is not a member") == 1, err
