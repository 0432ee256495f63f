"""Bad-input sweep: every option and argument of the three CLIs, given a bad value, ends
with exit 2, no traceback, and a message naming that option, before any key is used or any
connection is made (no server runs in this test; a connection would be exit 4)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import click
import pytest

from forum_client.cli import cli as client_cli
from forum_client.cli import main as client_main
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
    ("client", ("verify",)): ["verify", "--db", "{file}"],
    ("client", ("security-report",)): ["security-report", "--db", "{file}"],
    ("client", ("match",)): ["match", "--db", "{file}"],
    ("client", ("hash",)): ["hash", "{file}"],
    ("client", ("show-checkpoint",)): ["show-checkpoint", "--db", "{file}"],
    ("client", ("compare-checkpoint",)): ["compare-checkpoint", "{file}"],
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
    ("admin", ("member", "reinstate"), "MEMBER_ID"): "-x",
    ("admin", ("member", "reinstate"), "--reason"): "\x00",
    ("admin", ("member", "rotate-key"), "MEMBER_ID"): "UPPER",
    ("admin", ("member", "rotate-key"), "--signing-key"): MISSING,
    ("admin", ("credentials", "reissue"), "MEMBER_ID"): "a b",
    ("admin", ("credentials", "reissue"), "--out"): "{dir}",
    ("admin", ("credentials", "reissue"), "--days"): "-1",
    ("admin", ("taxonomy", "publish"), "FILE"): MISSING,
    ("admin", ("incident", "open"), "INCIDENT_ID"): "Bad_Id",
    ("admin", ("incident", "open"), "--title"): "",
    ("admin", ("incident", "close"), "INCIDENT_ID"): "-bad",
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
    ("admin", ("group", "add"), "GROUP_ID"): "-g",
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
}

# Options other issues added after this sweep was written (board proposals, governance
# reports, disputes): not swept yet.  The completeness test keeps this list exact, so a new
# option is either swept above or consciously added here.
NOT_YET_SWEPT: frozenset[tuple[str, tuple[str, ...], str]] = frozenset(
    {
        # issue #12 (backup, restore, check, metrics): landed after the sweep was written
        ("admin", ("backup",), "DATA_DIR"),
        ("admin", ("backup",), "--out"),
        ("admin", ("backup",), "--database"),
        ("admin", ("restore",), "BACKUP_FILE"),
        ("admin", ("restore",), "DATA_DIR"),
        ("admin", ("restore",), "--database"),
        ("admin", ("restore",), "--latest-checkpoint"),
        ("server", ("serve",), "--metrics-listen"),
        ("server", ("check",), "--data-dir"),
        ("server", ("check",), "--database"),
        ("client", ("report",), "--db"),
        ("client", ("report",), "--period"),
        ("client", ("report",), "--at"),
        ("client", ("report",), "--out"),
        ("client", ("incidents",), "--db"),
        ("client", ("disputes",), "--db"),
        ("client", ("dispute", "open"), "DISPUTE_ID"),
        ("client", ("dispute", "open"), "--type"),
        ("client", ("dispute", "open"), "--value"),
        ("client", ("dispute", "open"), "--respondent"),
        ("client", ("dispute", "open"), "--reason"),
        ("client", ("dispute", "open"), "--key"),
        ("client", ("dispute", "open"), "--answer-within"),
        ("client", ("dispute", "answer"), "DISPUTE_ID"),
        ("client", ("dispute", "answer"), "--db"),
        ("client", ("dispute", "answer"), "--rationale"),
        ("client", ("dispute", "answer"), "--key"),
        ("admin", ("propose", "member-add"), "MEMBER_ID"),
        ("admin", ("propose", "member-add"), "--name"),
        ("admin", ("propose", "member-add"), "--signing-key"),
        ("admin", ("propose", "member-add"), "--role"),
        ("admin", ("propose", "member-add"), "--out"),
        ("admin", ("propose", "member-add"), "--expires-in"),
        ("admin", ("propose", "member-status"), "MEMBER_ID"),
        ("admin", ("propose", "member-status"), "--reason"),
        ("admin", ("propose", "member-status"), "--out"),
        ("admin", ("propose", "member-status"), "--expires-in"),
        ("admin", ("propose", "rotate-board"), "--key"),
        ("admin", ("propose", "rotate-board"), "--threshold"),
        ("admin", ("propose", "rotate-board"), "--reason"),
        ("admin", ("propose", "rotate-board"), "--out"),
        ("admin", ("propose", "rotate-board"), "--expires-in"),
        ("admin", ("propose", "retract"), "--type"),
        ("admin", ("propose", "retract"), "--value"),
        ("admin", ("propose", "retract"), "--reason"),
        ("admin", ("propose", "retract"), "--out"),
        ("admin", ("propose", "retract"), "--expires-in"),
        ("admin", ("propose", "incident-declare"), "INCIDENT_ID"),
        ("admin", ("propose", "incident-declare"), "--title"),
        ("admin", ("propose", "incident-declare"), "--level"),
        ("admin", ("propose", "incident-declare"), "--occurred"),
        ("admin", ("propose", "incident-declare"), "--out"),
        ("admin", ("propose", "incident-declare"), "--expires-in"),
        ("admin", ("propose", "incident-update"), "INCIDENT_ID"),
        ("admin", ("propose", "incident-update"), "--text"),
        ("admin", ("propose", "incident-update"), "--out"),
        ("admin", ("propose", "incident-update"), "--expires-in"),
        ("admin", ("propose", "incident-conclude"), "INCIDENT_ID"),
        ("admin", ("propose", "incident-conclude"), "--text"),
        ("admin", ("propose", "incident-conclude"), "--out"),
        ("admin", ("propose", "incident-conclude"), "--expires-in"),
        ("admin", ("propose", "incident-debrief"), "INCIDENT_ID"),
        ("admin", ("propose", "incident-debrief"), "--text"),
        ("admin", ("propose", "incident-debrief"), "--out"),
        ("admin", ("propose", "incident-debrief"), "--expires-in"),
        ("admin", ("propose", "dispute-open"), "DISPUTE_ID"),
        ("admin", ("propose", "dispute-open"), "--type"),
        ("admin", ("propose", "dispute-open"), "--value"),
        ("admin", ("propose", "dispute-open"), "--respondent"),
        ("admin", ("propose", "dispute-open"), "--reason"),
        ("admin", ("propose", "dispute-open"), "--appellant"),
        ("admin", ("propose", "dispute-open"), "--answer-within"),
        ("admin", ("propose", "dispute-open"), "--out"),
        ("admin", ("propose", "dispute-open"), "--expires-in"),
        ("admin", ("propose", "dispute-decide"), "DISPUTE_ID"),
        ("admin", ("propose", "dispute-decide"), "--rationale"),
        ("admin", ("propose", "dispute-decide"), "--out"),
        ("admin", ("propose", "dispute-decide"), "--expires-in"),
        ("admin", ("sign",), "PROPOSAL_PATH"),
        ("admin", ("sign",), "--key"),
        ("admin", ("submit",), "PROPOSAL_PATH"),
        ("admin", ("pending",), "DIRECTORY"),
        ("admin", ("report",), "--period"),
        ("admin", ("report",), "--at"),
        ("admin", ("report",), "--out"),
        ("admin", ("propose", "taxonomy"), "FILE"),
        ("admin", ("propose", "taxonomy"), "--out"),
        ("admin", ("propose", "taxonomy"), "--expires-in"),
        ("admin", ("propose", "witness-add"), "VKEY"),
        ("admin", ("propose", "witness-add"), "--url"),
        ("admin", ("propose", "witness-add"), "--quorum"),
        ("admin", ("propose", "witness-add"), "--out"),
        ("admin", ("propose", "witness-add"), "--expires-in"),
        ("admin", ("propose", "witness-remove"), "NAME"),
        ("admin", ("propose", "witness-remove"), "--quorum"),
        ("admin", ("propose", "witness-remove"), "--out"),
        ("admin", ("propose", "witness-remove"), "--expires-in"),
        ("admin", ("witness", "add"), "VKEY"),
        ("admin", ("witness", "add"), "--url"),
        ("admin", ("witness", "add"), "--quorum"),
        ("admin", ("witness", "remove"), "NAME"),
        ("admin", ("witness", "remove"), "--quorum"),
        ("client", ("export",), "--db"),
        ("client", ("export",), "--format"),
        ("client", ("export",), "--since"),
        ("client", ("export",), "--output"),
    }
)


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
    init_forum(root / "forum", name="Sweep", now=dt.datetime.now(dt.UTC))
    key = SigningKey.generate()
    key.save(root / "m.key", possession=[("o", "acme")])
    (root / "some.file").write_text("x\n")
    work = root / "work"
    work.mkdir()
    return {
        "op": str(root / "forum" / "operator"),
        "bundle": str(root / "forum" / "operator" / "bundle.json"),
        "key": str(root / "m.key"),
        "pub": str(root / "m.key.pub"),
        "file": str(root / "some.file"),
        "dir": str(work),
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
    # an argument: it replaces the base's (right after the command path), or is appended
    at = len(path)
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
    argv = _argv(cli, path, option, BAD[(cli, path, option)], files)
    rc = CLIS[cli][1](argv)
    out, err = capfd.readouterr()
    assert rc == 2, f"{argv}: exit {rc}\n{out}{err}"
    assert "Traceback" not in out + err
    assert option in err or option.lower() in err or option.strip("-") in err, err


def test_days_zero_is_refused_by_the_library_too(files: dict[str, str]) -> None:
    from forum_client.errors import InvalidInputError
    from forum_server.admin.operator import check_days

    for days in (0, -1, 10_000):
        with pytest.raises(InvalidInputError, match="days"):
            check_days(days)
    check_days(1)
