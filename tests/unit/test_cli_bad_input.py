"""Bad-input sweep: every option and argument of the three CLIs, given a bad value, ends
with exit 2, no traceback, and a message naming that option, before any key is used or any
connection is made (no server runs in this test; a connection would be exit 4)."""

from __future__ import annotations

import datetime as dt
import doctest
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import click
import pytest

from forum_client.checkpoint import vkey
from forum_client.cli import cli as client_cli
from forum_client.cli import main as client_main
from forum_client.cosignature import cosigner_vkey
from forum_client.envelope import SigningKey
from forum_server.admin.cli import cli as admin_cli
from forum_server.admin.cli import main as admin_main
from forum_server.admin.init import init_forum
from forum_server.cli import cli as server_cli
from forum_server.cli import main as server_main

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
MISSING = "/nonexistent/forum-sweep"

# (cli, command path) -> the valid arguments the command needs besides the one under test.
# {op} operator profile, {bundle} a bundle, {key} a private key, {pub} its .pub, {csv} an
# input file, {dir} an existing directory, {file} an existing file.
BASE: dict[tuple[str, tuple[str, ...]], list[str]] = {
    ("client", ()): ["status"],
    ("client", ("keygen",)): ["keygen", "--out", "{dir}/new.key", "--member-id", "acme"],
    ("client", ("submit",)): ["submit", "--key", "{key}", "--type", "md5", "--value", MD5],
    ("client", ("retract",)): ["retract", "--key", "{key}", "--reason", "r"],
    ("client", ("opine",)): [
        "opine",
        "--key",
        "{key}",
        "--type",
        "md5",
        "--value",
        MD5,
        "--kind",
        "agree",
    ],
    ("client", ("sync",)): ["sync", "--db", "{dir}/copy.db"],
    ("client", ("verify",)): ["verify", "--db", "{copy}"],
    ("client", ("security-report",)): ["security-report", "--db", "{copy}"],
    ("client", ("match",)): ["match", "--db", "{copy}"],
    ("client", ("hash",)): ["hash", "{file}"],
    ("client", ("show-checkpoint",)): ["show-checkpoint", "--db", "{copy}"],
    ("client", ("compare-checkpoint",)): ["compare-checkpoint", "{note}", "--db", "{copy}"],
    ("admin", ()): ["member", "list"],
    ("admin", ("init",)): ["init", "{dir}/forum2", "--name", "F"],
    ("admin", ("member", "add")): [
        "member",
        "add",
        "acme",
        "--name",
        "Acme",
        "--signing-key",
        "{pub}",
        "--out",
        "{dir}/acme.bundle.json",
    ],
    ("admin", ("member", "suspend")): ["member", "suspend", "acme", "--reason", "r"],
    ("admin", ("member", "reinstate")): ["member", "reinstate", "acme"],
    ("admin", ("member", "rotate-key")): ["member", "rotate-key", "acme", "--signing-key", "{pub}"],
    ("admin", ("credentials", "reissue")): [
        "credentials",
        "reissue",
        "acme",
        "--out",
        "{dir}/b.json",
    ],
    ("admin", ("taxonomy", "publish")): ["taxonomy", "publish", "{file}"],
    ("admin", ("incident", "open")): ["incident", "open", "crisis", "--title", "t"],
    ("admin", ("incident", "close")): ["incident", "close", "crisis"],
    ("admin", ("benign", "add")): ["benign", "add", "--type", "md5", "--value", MD5],
    ("admin", ("benign", "remove")): ["benign", "remove", "--type", "md5", "--value", MD5],
    ("admin", ("audit",)): ["audit"],
    ("admin", ("group", "create")): ["group", "create", "g1", "--name", "G"],
    ("admin", ("group", "add")): ["group", "add", "g1", "acme"],
    ("admin", ("group", "remove")): ["group", "remove", "g1", "acme"],
    ("admin", ("group", "close")): ["group", "close", "g1"],
    ("admin", ("group", "show")): ["group", "show", "g1"],
    ("server", ("serve",)): ["serve", "--data-dir", "{dir}"],
}

# ---- sweep part A: backup/restore, board files, reports, witnesses, server check, the
# client's governance and export commands.  {srv} the server directory, {backup} its backup,
# {copy} a member's local copy, {proposal} a board proposal.
BASE.update(
    {
        ("admin", ("backup",)): ["backup", "{srv}", "--out", "{dir}/new.backup"],
        ("admin", ("restore",)): ["restore", "{backup}", "{srv}"],
        ("admin", ("sign",)): ["sign", "{proposal}", "--key", "{key}"],
        ("admin", ("submit",)): ["submit", "{proposal}"],
        ("admin", ("pending",)): ["pending", "{dir}"],
        ("admin", ("report",)): ["report", "--period", "2026"],
        ("admin", ("witness", "add")): ["witness", "add", "{witness}", "--url", "https://w1.ex"],
        ("admin", ("witness", "remove")): ["witness", "remove", "w1.example"],
        ("server", ("check",)): ["check", "--data-dir", "{srv}"],
        ("client", ("report",)): ["report", "--db", "{copy}", "--period", "2026"],
        ("client", ("incidents",)): ["incidents", "--db", "{copy}"],
        ("client", ("disputes",)): ["disputes", "--db", "{copy}"],
        ("client", ("dispute", "open")): [
            "dispute",
            "open",
            "d1",
            "--type",
            "md5",
            "--value",
            MD5,
            "--respondent",
            "acme",
            "--reason",
            "r",
            "--key",
            "{key}",
        ],
        ("client", ("dispute", "answer")): [
            "dispute",
            "answer",
            "d1",
            "--db",
            "{copy}",
            "--keep",
            "--rationale",
            "r",
            "--key",
            "{key}",
        ],
        ("client", ("export",)): ["export", "--db", "{copy}", "--format", "csv"],
    }
)

# (cli, command path, parameter name) -> a bad value.  Arguments are named by their
# metavar-style name (FILES, MEMBER_ID ...).
BAD: dict[tuple[str, tuple[str, ...], str], str] = {
    ("client", (), "--profile"): MISSING,
    ("client", (), "--server"): "no-port-here",
    ("client", (), "--log-level"): "LOUD",
    ("client", ("keygen",), "--out"): "{dir}",
    ("client", ("keygen",), "--member-id"): "Not An Id!",
    ("client", ("keygen",), "--origin"): "has spaces",
    ("client", ("submit",), "--key"): MISSING,
    ("client", ("submit",), "--type"): "sha512",
    ("client", ("submit",), "--value"): "not-hex",
    ("client", ("submit",), "--label"): "nolabel",
    ("client", ("submit",), "--content-type"): "gif",
    ("client", ("submit",), "--quality"): "-1",
    ("client", ("submit",), "--group"): "Not A Group",
    ("client", ("submit",), "--tlp"): "purple",
    ("client", ("retract",), "--group"): "-x",
    ("client", ("retract",), "--tlp"): "white",
    ("client", ("opine",), "--group"): "a/b",
    ("client", ("opine",), "--tlp"): "amber-strict",
    ("client", ("submit",), "--input"): MISSING,
    ("client", ("submit",), "--format"): "xml",
    ("client", ("submit",), "--batch-size"): "0",
    ("client", ("retract",), "--key"): MISSING,
    ("client", ("retract",), "--type"): "sha512",
    ("client", ("retract",), "--value"): "not-hex",
    ("client", ("retract",), "--reason"): "   ",
    ("client", ("retract",), "--input"): MISSING,
    ("client", ("retract",), "--format"): "xml",
    ("client", ("opine",), "--key"): MISSING,
    ("client", ("opine",), "--type"): "sha512",
    ("client", ("opine",), "--value"): "not-hex",
    ("client", ("opine",), "--kind"): "love",
    ("client", ("opine",), "--note"): "bell\x07",
    ("client", ("sync",), "--db"): "{dir}",
    ("client", ("sync",), "--commit-every"): "0",
    ("client", ("sync",), "--cache-mib"): "0",
    ("client", ("sync",), "--signature-threads"): "-1",
    ("client", ("sync",), "--witness-freshness"): "0",
    ("client", ("verify",), "--db"): "{dir}",
    ("client", ("security-report",), "--db"): "{dir}",
    ("client", ("match",), "--db"): "{dir}",
    ("client", ("match",), "--type"): "sha512",
    ("client", ("match",), "--value"): "not-hex",
    ("client", ("match",), "--input"): MISSING,
    ("client", ("match",), "--format"): "xml",
    ("client", ("match",), "--threshold"): "300",
    ("client", ("match",), "--min-quality"): "101",
    ("client", ("match",), "--query-match"): "101",
    ("client", ("match",), "--compared-match"): "-1",
    ("client", ("match",), "--seconds-per-hash"): "-1",
    ("client", ("hash",), "--seconds-per-hash"): "nan",
    ("client", ("match",), "FILES"): MISSING,
    ("client", ("hash",), "--min-quality"): "-5",
    ("client", ("hash",), "FILES"): MISSING,
    ("client", ("show-checkpoint",), "--db"): MISSING,
    ("client", ("compare-checkpoint",), "NOTE"): MISSING,
    ("client", ("compare-checkpoint",), "--db"): MISSING,
    ("client", ("compare-checkpoint",), "--other"): MISSING,
    ("admin", (), "--profile"): MISSING,
    ("admin", (), "--server"): "127.0.0.1:99999",
    ("admin", ("init",), "DIRECTORY"): "{file}",
    ("admin", ("init",), "--name"): " ",
    ("admin", ("init",), "--origin"): "has spaces",
    ("admin", ("init",), "--host"): "bad host!",
    ("admin", ("init",), "--address"): "127.0.0.1",
    ("admin", ("init",), "--database"): "mysql://nowhere/db",
    ("admin", ("init",), "--board-key"): MISSING,
    ("admin", ("init",), "--threshold"): "0",
    ("admin", ("member", "add"), "MEMBER_ID"): "Bad Id!",
    ("admin", ("member", "add"), "--name"): "",
    ("admin", ("member", "add"), "--signing-key"): MISSING,
    ("admin", ("member", "add"), "--out"): "{dir}",
    ("admin", ("member", "add"), "--role"): "operator",
    ("admin", ("member", "add"), "--days"): "0",
    ("admin", ("member", "suspend"), "MEMBER_ID"): "x",
    ("admin", ("member", "suspend"), "--reason"): "",
    # (an argument's bad value never starts with "-": click would read it as an option and
    # fail on that before the argument's own check runs)
    ("admin", ("member", "reinstate"), "MEMBER_ID"): "x!",
    ("admin", ("member", "reinstate"), "--reason"): "\x00",
    ("admin", ("member", "rotate-key"), "MEMBER_ID"): "UPPER",
    ("admin", ("member", "rotate-key"), "--signing-key"): MISSING,
    ("admin", ("credentials", "reissue"), "MEMBER_ID"): "a b",
    ("admin", ("credentials", "reissue"), "--out"): "{dir}",
    ("admin", ("credentials", "reissue"), "--days"): "-1",
    ("admin", ("taxonomy", "publish"), "FILE"): MISSING,
    ("admin", ("incident", "open"), "INCIDENT_ID"): "Bad_Id",
    ("admin", ("incident", "open"), "--title"): "",
    ("admin", ("incident", "close"), "INCIDENT_ID"): "bad!",
    ("admin", ("benign", "add"), "--type"): "sha512",
    ("admin", ("benign", "add"), "--value"): "not-hex",
    ("admin", ("benign", "add"), "--input"): MISSING,
    ("admin", ("benign", "add"), "--format"): "xml",
    ("admin", ("benign", "remove"), "--type"): "sha512",
    ("admin", ("benign", "remove"), "--value"): "not-hex",
    ("admin", ("benign", "remove"), "--input"): MISSING,
    ("admin", ("benign", "remove"), "--format"): "xml",
    ("admin", ("audit",), "--limit"): "-1",
    ("admin", ("group", "create"), "GROUP_ID"): "Bad Group",
    ("admin", ("group", "create"), "--name"): "",
    ("admin", ("group", "create"), "--description"): "x" * 5000,
    ("admin", ("group", "add"), "GROUP_ID"): "g 1",
    ("admin", ("group", "add"), "MEMBER_IDS"): "NOT-A-MEMBER",
    ("admin", ("group", "remove"), "GROUP_ID"): "",
    ("admin", ("group", "remove"), "MEMBER_IDS"): "a b",
    ("admin", ("group", "close"), "GROUP_ID"): "G!",
    ("admin", ("group", "close"), "--reason"): "\x1b[31m",
    ("admin", ("group", "show"), "GROUP_ID"): "?",
    ("server", ("serve",), "--data-dir"): MISSING,
    ("server", ("serve",), "--listen"): "127.0.0.1:http",
    ("server", ("serve",), "--grace"): "nan",
    ("server", ("serve",), "--log-level"): "LOUD",
    ("server", ("serve",), "--database"): "mysql://nowhere/db",
    ("server", ("serve",), "--lease"): "0.1",
    ("server", ("serve",), "--deferred-view-rows"): "-1",
    ("server", ("serve",), "--deferred-view-max-rows"): "many",
}

# ---- part B: `forum-admin propose ...` (board proposals, issues #11 and #13) ----
# Each proposal command checks its values while the command line is parsed; what needs the
# operator profile (proof of possession) is checked before any connection; what needs the
# log (an unknown member, an incident not open, the witness set) is in
# tests/integration/test_propose_bad_input.py, with a real forum.

WITNESS = cosigner_vkey("w1.example", SigningKey.from_seed(bytes(range(32))).public_bytes)
_OUT = ["--out", "{dir}/p.json"]
_SIGNAL = ["--type", "md5", "--value", MD5]
BASE.update(
    {
        ("admin", ("propose", "member-add")): [
            *("propose", "member-add", "acme", "--name", "Acme", "--signing-key", "{mpub}"),
            *_OUT,
        ],
        ("admin", ("propose", "member-status")): [
            *("propose", "member-status", "acme", "--suspend", "--reason", "r", *_OUT)
        ],
        ("admin", ("propose", "rotate-board")): [
            *("propose", "rotate-board", "--key", "{pub}", "--threshold", "1", *_OUT)
        ],
        ("admin", ("propose", "retract")): ["propose", "retract", *_SIGNAL, "--reason", "r", *_OUT],
        ("admin", ("propose", "taxonomy")): ["propose", "taxonomy", "{labels}", *_OUT],
        ("admin", ("propose", "incident-declare")): [
            *("propose", "incident-declare", "crisis", "--title", "t", "--level", "3", *_OUT)
        ],
        **{
            ("admin", ("propose", f"incident-{verb}")): [
                *("propose", f"incident-{verb}", "crisis", "--text", "t", *_OUT)
            ]
            for verb in ("update", "conclude", "debrief")
        },
        ("admin", ("propose", "dispute-open")): [
            *("propose", "dispute-open", "d1", *_SIGNAL, "--respondent", "acme"),
            *("--reason", "r", "--appellant", "A user", *_OUT),
        ],
        ("admin", ("propose", "dispute-decide")): [
            *("propose", "dispute-decide", "d1", "--uphold", "--rationale", "r", *_OUT)
        ],
        ("admin", ("propose", "witness-add")): [
            *("propose", "witness-add", WITNESS, "--url", "http://127.0.0.1:7444", *_OUT)
        ],
        ("admin", ("propose", "witness-remove")): [
            *("propose", "witness-remove", "w1.example", *_OUT)
        ],
    }
)


def _propose(command: str, option: str) -> tuple[str, tuple[str, ...], str]:
    return ("admin", ("propose", command), option)


PROPOSE_BAD: dict[tuple[str, tuple[str, ...], str], str] = {
    _propose("member-add", "MEMBER_ID"): "Bad Id!",
    _propose("member-add", "--name"): "",
    _propose("member-add", "--signing-key"): "{file}",  # not a .pub file
    _propose("member-add", "--role"): "operator",
    _propose("member-add", "--out"): "{dir}/missing/p.json",
    _propose("member-add", "--expires-in"): "0d",
    _propose("member-status", "MEMBER_ID"): "Acme Corp",
    _propose("member-status", "--reason"): "",
    _propose("member-status", "--out"): "{file}",  # exists
    _propose("member-status", "--expires-in"): "-1d",
    _propose("rotate-board", "--key"): "{key}",  # the private key, not its .pub
    _propose("rotate-board", "--threshold"): "2",  # one key
    _propose("rotate-board", "--reason"): "\x1b[31m",
    _propose("rotate-board", "--out"): "{dir}",
    _propose("rotate-board", "--expires-in"): "400d",
    _propose("retract", "--type"): "sha512",
    _propose("retract", "--value"): "not-hex",
    _propose("retract", "--reason"): "   ",
    _propose("retract", "--out"): "{file}/p.json",  # the parent is a file
    _propose("retract", "--expires-in"): "forever",
    _propose("taxonomy", "FILE"): "{file}",  # not JSON
    _propose("taxonomy", "--out"): "{dir}/missing/p.json",
    _propose("taxonomy", "--expires-in"): "99999999999999d",
    _propose("incident-declare", "INCIDENT_ID"): "Bad_Id",
    _propose("incident-declare", "--title"): "",
    _propose("incident-declare", "--level"): "4",
    _propose("incident-declare", "--occurred"): "2999-01-01",
    _propose("incident-declare", "--out"): "{file}",
    _propose("incident-declare", "--expires-in"): "2w",
    _propose("incident-update", "INCIDENT_ID"): "crisis!",
    _propose("incident-update", "--text"): "",
    _propose("incident-update", "--out"): "{dir}",
    _propose("incident-update", "--expires-in"): "0m",
    _propose("incident-conclude", "INCIDENT_ID"): "UPPER",
    _propose("incident-conclude", "--text"): "\x07",
    _propose("incident-conclude", "--out"): "{dir}/missing/p.json",
    _propose("incident-conclude", "--expires-in"): "1.5d",
    _propose("incident-debrief", "INCIDENT_ID"): "a_b",
    _propose("incident-debrief", "--text"): "x" * 5000,
    _propose("incident-debrief", "--out"): "{file}",
    _propose("incident-debrief", "--expires-in"): "-7d",
    _propose("dispute-open", "DISPUTE_ID"): "Bad Id!",
    _propose("dispute-open", "--type"): "sha512",
    _propose("dispute-open", "--value"): "not-hex",
    _propose("dispute-open", "--respondent"): "Not A Member",
    _propose("dispute-open", "--reason"): "",
    _propose("dispute-open", "--appellant"): "",
    _propose("dispute-open", "--answer-within"): "0d",
    _propose("dispute-open", "--out"): "{file}",
    _propose("dispute-open", "--expires-in"): "366d",
    _propose("dispute-decide", "DISPUTE_ID"): "d_1",
    _propose("dispute-decide", "--rationale"): "",
    _propose("dispute-decide", "--out"): "{dir}",
    _propose("dispute-decide", "--expires-in"): "",
    _propose("witness-add", "VKEY"): "garbage",
    _propose("witness-add", "--url"): "ftp://127.0.0.1:7444",
    _propose("witness-add", "--quorum"): "0",
    _propose("witness-add", "--out"): "{file}/p.json",
    _propose("witness-add", "--expires-in"): "0s",
    _propose("witness-remove", "NAME"): "w 1",
    _propose("witness-remove", "--quorum"): "-1",
    _propose("witness-remove", "--out"): "{file}",
    _propose("witness-remove", "--expires-in"): "7 days",
}
BAD.update(PROPOSE_BAD)

# More bad values for the same options: the mistakes an operator makes most.
PROPOSE_MORE: list[tuple[tuple[str, tuple[str, ...], str], str]] = [
    (_propose("member-add", "--signing-key"), MISSING),
    (_propose("member-add", "--signing-key"), "{dir}"),
    (_propose("member-add", "--signing-key"), "{key}"),  # the private key
    (_propose("member-add", "--signing-key"), "{pub}"),  # its proof is for another forum
    (_propose("member-add", "MEMBER_ID"), "x"),  # too short
    (_propose("rotate-board", "--key"), MISSING),
    (_propose("rotate-board", "--threshold"), "0"),
    (_propose("taxonomy", "FILE"), MISSING),
    (_propose("taxonomy", "FILE"), "{dir}"),
    (_propose("taxonomy", "FILE"), "{badlabels}"),  # JSON, but a label id is not one
    (_propose("incident-declare", "--occurred"), "1969-12-31"),
    (_propose("incident-declare", "--occurred"), "yesterday"),
    (_propose("incident-declare", "--level"), "0"),
    (_propose("dispute-open", "--answer-within"), "400d"),
    (_propose("dispute-open", "--answer-within"), "soon"),
    (_propose("witness-add", "VKEY"), "{logvkey}"),  # an Ed25519 note key, not a cosigner's
    (_propose("witness-add", "--url"), "http://127.0.0.1:99999"),
    (_propose("witness-add", "--url"), "https://user:pw@w1.example"),
    (_propose("witness-add", "--url"), "http://"),
    (_propose("witness-remove", "NAME"), "w1+abc"),
]

# ---- sweep part A (see BASE above).  {big} is a file larger than any note, {srvdb} the
# server's SQLite database (a SQLite file, but no local copy).
BAD.update(
    {
        ("admin", ("backup",), "DATA_DIR"): "{file}",
        ("admin", ("backup",), "--out"): MISSING + "/new.backup",
        ("admin", ("backup",), "--database"): "{file}",
        ("admin", ("restore",), "BACKUP_FILE"): "{file}",
        ("admin", ("restore",), "DATA_DIR"): "{file}",
        ("admin", ("restore",), "--database"): "mysql://nowhere/db",
        ("admin", ("restore",), "--latest-checkpoint"): "{big}",
        ("admin", ("sign",), "PROPOSAL_PATH"): "{file}",
        ("admin", ("sign",), "--key"): "{pub}",
        ("admin", ("submit",), "PROPOSAL_PATH"): "{key}",
        ("admin", ("pending",), "DIRECTORY"): "{file}",
        ("admin", ("report",), "--period"): "2026-13",
        ("admin", ("report",), "--at"): "0",
        ("admin", ("report",), "--out"): "{file}/report",
        ("server", ("serve",), "--metrics-listen"): "127.0.0.1:99999",
        ("server", ("check",), "--data-dir"): MISSING,
        ("server", ("check",), "--database"): "mysql://nowhere/db",
        ("client", ("report",), "--db"): "{file}",
        ("client", ("report",), "--period"): "0000",
        ("client", ("report",), "--at"): "0",
        ("client", ("report",), "--out"): "{file}/report",
        ("client", ("incidents",), "--db"): "{srvdb}",
        ("client", ("disputes",), "--db"): MISSING,
        ("client", ("dispute", "open"), "DISPUTE_ID"): "Bad Id!",
        ("client", ("dispute", "open"), "--type"): "sha512",
        ("client", ("dispute", "open"), "--value"): "not-hex",
        ("client", ("dispute", "open"), "--respondent"): "Bad Id!",
        ("client", ("dispute", "open"), "--reason"): "   ",
        ("client", ("dispute", "open"), "--key"): "{pub}",
        ("client", ("dispute", "open"), "--answer-within"): "0d",
        ("client", ("dispute", "answer"), "DISPUTE_ID"): "d!",
        ("client", ("dispute", "answer"), "--db"): "{dir}",
        ("client", ("dispute", "answer"), "--rationale"): "\x1b[2J",
        ("client", ("dispute", "answer"), "--key"): MISSING,
        ("client", ("export",), "--db"): "{srvdb}",
        ("client", ("export",), "--format"): "xml",
        ("client", ("export",), "--since"): "-1",
        ("client", ("export",), "--output"): "{file}/out.csv",
        ("admin", ("witness", "add"), "VKEY"): "garbage",
        ("admin", ("witness", "add"), "--url"): "http://",
        ("admin", ("witness", "add"), "--quorum"): "0",
        ("admin", ("witness", "remove"), "NAME"): "a b",
        ("admin", ("witness", "remove"), "--quorum"): "-1",
    }
)

# More bad values of part A's options: the ones that crashed, hung, connected first, or
# changed a file before the fix.
MORE_BAD: list[tuple[str, tuple[str, ...], str, str]] = [
    ("admin", ("backup",), "--out", "{file}"),  # exists: refused before the work, not after
    ("admin", ("backup",), "--database", "mysql://nowhere/db"),
    ("admin", ("restore",), "BACKUP_FILE", "{badgz}"),
    ("admin", ("restore",), "BACKUP_FILE", "{big}"),
    ("admin", ("restore",), "--latest-checkpoint", "{file}"),
    ("server", ("serve",), "--metrics-listen", "127.0.0.1:1,127.0.0.1:2"),
    ("server", ("check",), "--database", "{file}"),
    ("server", ("check",), "--data-dir", "{file}"),
    ("client", ("report",), "--period", "9999"),
    ("client", ("report",), "--period", "2026-13"),
    ("client", ("dispute", "open"), "--answer-within", "99999999999999d"),
    ("client", ("dispute", "answer"), "--db", "{srvdb}"),
    ("client", ("export",), "--db", "{file}"),
    ("client", ("export",), "--output", MISSING + "/out.csv"),
    ("client", ("disputes",), "--db", "{empty}"),
    ("admin", ("witness", "add"), "VKEY", "{logvkey}"),  # the log's key, not a cosigner's
    ("admin", ("witness", "add"), "--url", "https://w1.example:99999"),
    ("admin", ("witness", "remove"), "NAME", "w1+abc"),
    # read as another member's note or a local copy only after the fix (a text file as NOTE
    # was a security failure, exit 5; a wrong --db a store failure, exit 6)
    ("client", ("compare-checkpoint",), "NOTE", "{file}"),
    ("client", ("compare-checkpoint",), "--other", "{file}"),
    ("client", ("compare-checkpoint",), "--db", "{file}"),
    ("client", ("compare-checkpoint",), "--db", "{srvdb}"),
    ("client", ("show-checkpoint",), "--db", "{file}"),
    ("client", ("show-checkpoint",), "--db", "{srvdb}"),
    ("client", ("verify",), "--db", "{file}"),
    ("client", ("verify",), "--db", "{srvdb}"),
    ("client", ("security-report",), "--db", "{file}"),
    ("client", ("security-report",), "--db", "{srvdb}"),
    ("client", ("match",), "--db", "{file}"),
    ("client", ("match",), "--db", "{srvdb}"),
    # read to their end: /dev/zero was hashed for ever before the fix (pytest-timeout
    # ends such a case)
    ("client", ("hash",), "FILES", "/dev/zero"),
    ("client", ("match",), "FILES", "/dev/zero"),
]

# Options added after this sweep was written and not swept yet (none now: parts A and B
# swept those of issues #11-#13).  The completeness test keeps this list exact, so a new
# option is either swept above or consciously added here.
NOT_YET_SWEPT: frozenset[tuple[str, tuple[str, ...], str]] = frozenset()


CLIS: dict[str, tuple[click.Group, Callable[[list[str]], int]]] = {
    "client": (client_cli, client_main),
    "admin": (admin_cli, admin_main),
    "server": (server_cli, server_main),
}


def _name(param: click.Parameter) -> str:
    if isinstance(param, click.Option):
        return max(param.opts, key=len)
    return (param.name or "").upper()


def _parameters() -> list[tuple[str, tuple[str, ...], str]]:
    """Every option and argument that takes a value, of every command of the three CLIs."""
    found = []

    def walk(cli: str, command: click.Command, path: tuple[str, ...]) -> None:
        for param in command.params:
            if isinstance(param, click.Option) and (param.is_flag or param.count):
                continue
            if param.name in ("help", "version"):
                continue
            found.append((cli, path, _name(param)))
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(cli, sub, (*path, name))

    for cli, (group, _) in CLIS.items():
        walk(cli, group, ())
    return found


def test_the_sweep_covers_every_option() -> None:
    missing = [p for p in _parameters() if p not in BAD and p not in NOT_YET_SWEPT]
    assert not missing, f"options without a bad-input case: {missing}"
    listed = [p for p in NOT_YET_SWEPT if p not in _parameters() or p in BAD]
    assert not listed, f"NOT_YET_SWEPT names options that are gone or now swept: {listed}"
    stale = [p for p in BAD if p not in _parameters()]
    assert not stale, f"cases for options that no longer exist: {stale}"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("sweep")
    trust = init_forum(root / "forum", name="Sweep", now=dt.datetime.now(dt.UTC))
    key = SigningKey.generate()
    key.save(root / "m.key", possession=[("o", "acme")])
    (root / "some.file").write_text("x\n")
    # part B: a key with its proof for this forum, a vocabulary, a bad one, the log's vkey
    SigningKey.generate().save(root / "acme.key", possession=[(trust.origin, "acme")])
    label = {"id": "behaviour:x", "kind": "behaviour", "title": "X"}
    (root / "labels.json").write_text(json.dumps([label]))
    (root / "bad-labels.json").write_text(json.dumps([label | {"id": "Bad Label"}]))
    work = root / "work"
    work.mkdir()
    return {
        "op": str(root / "forum" / "operator"),
        "bundle": str(root / "forum" / "operator" / "bundle.json"),
        "key": str(root / "m.key"),
        "pub": str(root / "m.key.pub"),
        "file": str(root / "some.file"),
        "dir": str(work),
        "mpub": str(root / "acme.key.pub"),
        "labels": str(root / "labels.json"),
        "badlabels": str(root / "bad-labels.json"),
        "logvkey": vkey(trust.log_key_name, trust.log_public_key),
        **_part_a_files(root, key),
    }


def _part_a_files(root: Path, key: SigningKey) -> dict[str, str]:
    """The files part A's commands read: a backup, a proposal, a local copy..."""
    from forum_client import entries as e
    from forum_client.checkpoint import Checkpoint, sign_checkpoint
    from forum_client.files import MAX_NOTE_BYTES
    from forum_client.store import LocalStore
    from forum_server.admin.backup import backup_forum
    from forum_server.admin.proposals import Board, Proposal

    server = root / "forum" / "server"
    backup_forum(server, root / "forum.backup")
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    header = e.Header("o", "operator", b"", 1, now_ms, expires_unix_ms=now_ms + 3_600_000)
    board = Board({key.key_id: key.public_bytes}, threshold=1)
    proposal = Proposal.create([e.Incident(header, "x", "X", True)], board, "x", now_ms=now_ms)
    proposal.save(root / "x.proposal.json")
    LocalStore(root / "copy.db").close()
    (root / "big.note").write_bytes(b"x" * (MAX_NOTE_BYTES + 1))
    (root / "a.note").write_bytes(sign_checkpoint(Checkpoint("o", 1, bytes(32)), "o", key))
    (root / "bad.gz").write_bytes(gzip.compress(b"not json\n"))
    (root / "empty.db").write_bytes(b"")
    return {
        "srv": str(server),
        "srvdb": str(server / "forum.db"),
        "backup": str(root / "forum.backup"),
        "proposal": str(root / "x.proposal.json"),
        "copy": str(root / "copy.db"),
        "big": str(root / "big.note"),
        "note": str(root / "a.note"),
        "badgz": str(root / "bad.gz"),
        "empty": str(root / "empty.db"),
        "witness": cosigner_vkey("w1.example", SigningKey.generate().public_bytes),
    }


def _argv(cli: str, path: tuple[str, ...], option: str, bad: str, f: dict[str, str]) -> list[str]:
    if cli == "client":
        prefix = ["--profile", f["bundle"]]
    elif cli == "admin":
        prefix = ["--profile", f["op"]]
    else:
        prefix = []
    base = [x.format(**f) for x in BASE[(cli, path)]]
    value = bad.format(**f)
    if not path:  # a group option: it goes before the command
        if option in ("--profile",):
            prefix = []
        return [*prefix, option, value, *base]
    if option.startswith("--"):
        if option in base:  # replace the base value
            i = base.index(option)
            return [*prefix, *base[:i], option, value, *base[i + 2 :]]
        return [*prefix, *base, option, value]
    # an argument: it replaces the base's (the arguments follow the command path, in order),
    # or is appended
    command = CLIS[cli][0]
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    arguments = [_name(p) for p in command.params if isinstance(p, click.Argument)]
    at = len(path) + arguments.index(option)
    if at < len(base) and not base[at].startswith("--"):
        return [*prefix, *base[:at], value, *base[at + 1 :]]
    return [*prefix, *base, value]


@pytest.mark.parametrize(
    ("cli", "path", "option"),
    sorted(BAD),
    ids=[f"{c}:{' '.join(p) or '-'}:{o}" for c, p, o in sorted(BAD)],
)
def test_bad_value_is_exit_2_naming_the_option(
    cli: str,
    path: tuple[str, ...],
    option: str,
    files: dict[str, str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    _assert_refused(cli, path, option, BAD[(cli, path, option)], files, capfd)


@pytest.mark.parametrize(
    ("param", "bad"),
    PROPOSE_MORE,
    ids=[f"{' '.join(p[1])}:{p[2]}={bad[:24]}" for p, bad in PROPOSE_MORE],
)
def test_more_bad_proposal_values(
    param: tuple[str, tuple[str, ...], str],
    bad: str,
    files: dict[str, str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    _assert_refused(*param, bad, files, capfd)


@pytest.mark.parametrize(
    ("cli", "path", "option", "bad"),
    MORE_BAD,
    ids=[f"{c}:{' '.join(p)}:{o}={b}" for c, p, o, b in MORE_BAD],
)
def test_more_bad_values_of_part_a(
    cli: str,
    path: tuple[str, ...],
    option: str,
    bad: str,
    files: dict[str, str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    _assert_refused(cli, path, option, bad, files, capfd)


def _assert_refused(
    cli: str,
    path: tuple[str, ...],
    option: str,
    bad: str,
    files: dict[str, str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    argv = _argv(cli, path, option, bad, files)
    rc = CLIS[cli][1](argv)
    out, err = capfd.readouterr()
    assert rc == 2, f"{argv}: exit {rc}\n{out}{err}"
    assert "Traceback" not in out + err
    # the usage line ("Usage: forum-client hash [OPTIONS] FILES...") names every argument
    said = "\n".join(x for x in err.splitlines() if not x.startswith("Usage: "))
    assert option in said or option.lower() in said or option.strip("-") in said, err


def test_days_zero_is_refused_by_the_library_too(files: dict[str, str]) -> None:
    from forum_client.errors import InvalidInputError
    from forum_server.admin.operator import check_days

    for days in (0, -1, 10_000):
        with pytest.raises(InvalidInputError, match="days"):
            check_days(days)
    check_days(1)


def test_the_file_option_types_docstring_runs() -> None:
    import forum_client.cli_files

    assert doctest.testmod(forum_client.cli_files).failed == 0


def test_the_cli_bounds_a_dispute_deadline_as_the_sdk_does() -> None:
    from forum_client.cli_governance import _ANSWER_WITHIN
    from forum_client.client import MAX_ANSWER_WITHIN_MS

    assert _ANSWER_WITHIN.most_ms == MAX_ANSWER_WITHIN_MS


@pytest.mark.parametrize(
    "command",
    [
        ["show-checkpoint"],
        ["compare-checkpoint", "{note}"],
        ["verify"],
        ["security-report"],
        ["match", "--type", "md5", "--value", MD5],
    ],
    ids=lambda c: c[0],
)
def test_an_empty_file_as_db_is_refused_unchanged(
    command: list[str], files: dict[str, str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """It was opened as a store first: the empty file became a new, empty local copy (and
    verify said "ok: 0 entries verified ... matches signed checkpoint 0", match found
    nothing, both exit 0)."""
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    argv = [x.format(**files) for x in command]
    assert client_main([*argv, "--db", str(empty)]) == 2
    assert "--db" in capfd.readouterr().err
    assert empty.stat().st_size == 0


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ("[1, 2]", "labels[0] is not an object"),
        ('{"id": "entity:x"}', "a JSON dict, not a list"),
        ('[{"id": "entity:x", "title": "X"}]', 'labels[0] has no "kind"'),
        ('[{"id": "entity:x", "kind": "entity", "title": 7}]', "labels[0]: id, kind, title"),
    ],
)
def test_a_taxonomy_file_of_the_wrong_shape_says_what_it_should_be(
    doc: str, says: str, files: dict[str, str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """It said "'int' object is not subscriptable", "string indices must be integers" or
    just "'kind'" (a KeyError)."""
    import forum_client.taxonomy

    path = tmp_path / "labels.json"
    path.write_text(doc)
    assert admin_main(["--profile", files["op"], "taxonomy", "publish", str(path)]) == 2
    err = capfd.readouterr().err
    assert f"{path}: {says}" in err and '{"id", "kind", "title", "description"}' in err, err
    assert doctest.testmod(forum_client.taxonomy, optionflags=doctest.ELLIPSIS).failed == 0
