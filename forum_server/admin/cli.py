"""``forum-admin``: create a forum, admit and manage members, keys, credentials; audit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import click

from forum_client import entries as e
from forum_client.envelope import load_public_key
from forum_client.errors import InvalidInputError
from forum_client.taxonomy import load_labels
from forum_client.tools import (
    ADDRESS,
    DATABASE,
    HOST,
    INCIDENT_ID,
    MEMBER_ID,
    NAME,
    NOTE_FILE,
    ORIGIN,
    OUTPUT_FILE,
    REQUIRED_GROUP_ID,
    REQUIRED_TEXT,
    SIGNAL_TYPE,
    TEXT,
    detect_format,
    read_signals,
    run,
    signal_option,
    version_option,
)
from forum_client.verifier import GroupRecord

from ..app import ServerPaths
from .backup import backup_forum, read_header, restore_forum
from .ca import CLIENT_DAYS, MAX_CERT_DAYS, MIN_CERT_DAYS
from .cli_board import COMMANDS as BOARD_COMMANDS
from .cli_board import operator_from
from .cli_witness import witness
from .init import DEFAULT_ADDRESS, init_forum

_DAYS = click.option(
    "--days",
    default=CLIENT_DAYS,
    show_default=True,
    type=click.IntRange(MIN_CERT_DAYS, MAX_CERT_DAYS),
    help=f"Days the member's certificate is valid ({MIN_CERT_DAYS}-{MAX_CERT_DAYS}).",
)


@click.group(help="Administer a Shared-Signal Forum: the operator's tool.")
@version_option()
@click.option(
    "--profile",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    envvar="FORUM_ADMIN_PROFILE",
    help="The operator profile directory (DIR/operator from `init`); or set FORUM_ADMIN_PROFILE.",
)
@click.option(
    "--server",
    type=ADDRESS,
    help="HOST:PORT to reach the forum at, instead of the profile's address (the one `init "
    "--address` set). Bundles that `member add` and `credentials reissue` write point at this "
    "address too, so use it only when members reach the forum there as well.",
)
@click.pass_context
def cli(ctx: click.Context, profile: Path | None, server: str | None) -> None:
    ctx.obj = {"profile": profile, "server": server}


_operator = operator_from


@cli.command(
    help="Create a forum in DIR: keys, CA, server store, operator profile. "
    "Refuses if DIR already holds a forum."
)
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--name", type=NAME, required=True, help="The forum's display name.")
@click.option(
    "--origin",
    type=ORIGIN,
    help="The log's origin (default: derived from --name, with a random tag).",
)
@click.option(
    "--host",
    "hosts",
    type=HOST,
    multiple=True,
    help="Extra DNS name or IP for the server certificate (repeatable); "
    "localhost and 127.0.0.1 are always included.",
)
@click.option(
    "--address",
    type=ADDRESS,
    default=DEFAULT_ADDRESS,
    show_default=True,
    help="HOST:PORT members' bundles (and the operator profile) point at; several servers: "
    "HOST:PORT,HOST:PORT,... (the SDK spreads calls over them and skips one that is down). "
    "Serve the forum there with `forum-server serve --listen`.",
)
@click.option(
    "--database",
    metavar="URL",
    help="Keep the log in this PostgreSQL database (postgresql://USER@HOST:PORT/DB), "
    "which must not hold a forum yet; several servers can then serve it. "
    "Default: DIR/server/forum.db (SQLite).",
)
@click.option(
    "--board-key",
    "board_key_files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Another operator board member's public key file (repeat): genesis names a board "
    "of the new admin key and these keys.",
)
@click.option(
    "--threshold",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Signatures of the board every operator entry needs (with --board-key).",
)
def init(
    directory: Path,
    name: str,
    origin: str | None,
    hosts: tuple[str, ...],
    address: str,
    database: str | None,
    board_key_files: tuple[Path, ...],
    threshold: int,
) -> None:
    if threshold > 1 + len(board_key_files):
        raise click.UsageError(
            f"--threshold {threshold} needs at least {threshold - 1} --board-key (plus the "
            "admin key init creates)"
        )
    root = init_forum(
        directory,
        name=name,
        origin=origin,
        hosts=list(hosts),
        address=address,
        now=dt.datetime.now(dt.UTC),
        database=database,
        board_keys=tuple(load_public_key(p) for p in board_key_files),
        threshold=threshold,
    )
    addresses = [one.strip() for one in address.split(",")]
    listens = [_listen_address(one) for one in addresses]
    host, _, port = addresses[0].rpartition(":")
    click.echo(f"created forum {root.origin!r} in {directory}")
    if board_key_files:
        n = 1 + len(board_key_files)
        click.echo(f"  board:    {threshold}-of-{n} (the admin key and {n - 1} board keys)")
    if threshold > 1:
        click.echo(
            f"  next:     forum-admin --profile {directory / 'operator'} propose taxonomy "
            "--default --out taxonomy.json, then sign by the board and submit"
        )
    serve = f"forum-server serve --data-dir {directory / 'server'} --listen"
    if len(listens) == 1:
        click.echo(f"  server:   {serve} {listens[0]}")
    else:
        note = (
            f"copy {directory / 'server'} to each machine"
            if database
            else "over SQLite only one of them sequences: see --database"
        )
        click.echo(f"  servers:  one per address ({note}):")
        for listen in listens:
            click.echo(f"            {serve} {listen}")
    click.echo(f"  members reach it at {address} (their bundles point there)")
    local = "" if listens == addresses else f" --server 127.0.0.1:{port}"
    click.echo(f"  operator: forum-admin --profile {directory / 'operator'}{local} member list")
    if local:
        click.echo(
            f"            ({local.strip()} reaches the server from its own machine, before "
            f"{host} resolves; bundles still point at {address})"
        )


def _listen_address(address: str) -> str:
    """What ``serve --listen`` takes for a server members reach at ``address``: the address
    itself on a loopback host, else every interface on its port."""
    host, _, port = address.rpartition(":")
    return address if host in ("127.0.0.1", "localhost", "[::1]") else f"0.0.0.0:{port}"


@cli.group(help="Admit, list, suspend and reinstate members; rotate their keys.")
def member() -> None:
    pass


@member.command(
    "add",
    help="Admit MEMBER_ID with its signing key (KEY.pub from "
    "`forum-client keygen`) and write its credentials bundle.",
)
@click.argument("member_id", type=MEMBER_ID)
@click.option("--name", "display_name", type=NAME, required=True, help="The member's display name.")
@click.option(
    "--signing-key",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The member's public key file, with its proof of possession.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the credentials bundle (mode 0600).",
)
@click.option(
    "--role",
    type=click.Choice(["member", "observer"]),
    default="member",
    show_default=True,
    help="Observers sync and match but cannot submit.",
)
@_DAYS
@click.pass_context
def member_add(
    ctx: click.Context,
    member_id: str,
    display_name: str,
    signing_key: Path,
    out: Path,
    role: str,
    days: int,
) -> None:
    op = _operator(ctx)
    receipt = op.add_member(
        member_id,
        display_name=display_name,
        role=e.Role.parse(role),
        signing_key=signing_key,
        out=out,
        days=days,
    )
    admitted = op.admitted.index if op.admitted else "?"
    click.echo(
        f"admitted {member_id} ({role}) at log index {admitted} (what `member list` shows as "
        f"since #{admitted}), its key at log index {receipt.index}; bundle: {out} (pointing "
        f"at {op.member_address})"
    )


@member.command("list", help="List members with role, status and active keys.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def member_list(ctx: click.Context, as_json: bool) -> None:
    for m in _operator(ctx).members():
        if as_json:
            doc = dataclasses.asdict(m) | {"role": m.role.label, "status": m.status.label}
            click.echo(json.dumps(doc))
        else:
            keys = ",".join(k[:16] for k in m.active_key_ids) or "-"
            click.echo(
                f"{m.member_id:<24} {m.role.label:<9} {m.status.label:<10} "
                f"since #{m.admitted_at_index:<6} keys {keys}  {m.display_name}"
            )


@member.command("suspend", help="Suspend MEMBER_ID: its calls are refused from the next one.")
@click.argument("member_id", type=MEMBER_ID)
@click.option(
    "--reason", type=REQUIRED_TEXT, required=True, help="Recorded in the signed log entry."
)
@click.pass_context
def member_suspend(ctx: click.Context, member_id: str, reason: str) -> None:
    r = _operator(ctx).set_status(member_id, e.MemberStatus.SUSPENDED, reason)
    click.echo(f"suspended {member_id} at log index {r.index}")


@member.command("reinstate", help="Reinstate a suspended MEMBER_ID.")
@click.argument("member_id", type=MEMBER_ID)
@click.option(
    "--reason",
    type=REQUIRED_TEXT,
    default="reinstated",
    show_default=True,
    help="Recorded in the signed log entry.",
)
@click.pass_context
def member_reinstate(ctx: click.Context, member_id: str, reason: str) -> None:
    r = _operator(ctx).set_status(member_id, e.MemberStatus.ACTIVE, reason)
    click.echo(f"reinstated {member_id} at log index {r.index}")


@member.command(
    "rotate-key",
    help="Replace MEMBER_ID's signing key; the old key stays valid "
    "for entries before the rotation's log index.",
)
@click.argument("member_id", type=MEMBER_ID)
@click.option(
    "--signing-key",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The new public key file, with its proof of possession.",
)
@click.pass_context
def member_rotate_key(ctx: click.Context, member_id: str, signing_key: Path) -> None:
    r = _operator(ctx).rotate_key(member_id, signing_key)
    click.echo(f"rotated {member_id}'s key at log index {r.index}")


@cli.group(help="Client certificates (mTLS credentials) of members.")
def credentials() -> None:
    pass


@credentials.command(
    "reissue",
    help="Issue MEMBER_ID a new certificate and bundle; its older "
    "certificates stop working at once.",
)
@click.argument("member_id", type=MEMBER_ID)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the new credentials bundle (mode 0600).",
)
@_DAYS
@click.pass_context
def credentials_reissue(ctx: click.Context, member_id: str, out: Path, days: int) -> None:
    revoked = _operator(ctx).reissue_credentials(member_id, out, days)
    click.echo(f"reissued credentials for {member_id} ({revoked} revoked); bundle: {out}")


@cli.group(help="The label vocabulary members tag signals with (versioned, in the log).")
def taxonomy() -> None:
    pass


@taxonomy.command("show", help="Show the current vocabulary and its version.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the labels as a JSON list (the format `publish` reads).",
)
@click.pass_context
def taxonomy_show(ctx: click.Context, as_json: bool) -> None:
    version, labels = _operator(ctx).taxonomy()
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(x) for x in labels], indent=2))
        return
    click.echo(f"taxonomy version {version}, {len(labels)} labels")
    for label in labels:
        click.echo(f"  {label.id:<48} {label.title}")


@taxonomy.command(
    "publish",
    help="Publish FILE (a JSON list of {id, kind, title, "
    "description}) as the next vocabulary version.",
)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_context
def taxonomy_publish(ctx: click.Context, file: Path) -> None:
    version, r = _operator(ctx).publish_taxonomy(load_labels(file))
    click.echo(f"published taxonomy version {version} at log index {r.index}")


@cli.group(help="Crisis-response incidents: an open incident's label incident:ID is valid.")
def incident() -> None:
    pass


@incident.command("open", help="Open incident ID (1-63 of a-z 0-9 -).")
@click.argument("incident_id", type=INCIDENT_ID)
@click.option("--title", type=REQUIRED_TEXT, required=True, help="What happened, for members.")
@click.pass_context
def incident_open(ctx: click.Context, incident_id: str, title: str) -> None:
    r = _operator(ctx).set_incident(incident_id, open=True, title=title)
    click.echo(
        f"opened incident {incident_id} (label incident:{incident_id}) at log index {r.index}"
    )


@incident.command("close", help="Close incident ID (its label stays valid for history).")
@click.argument("incident_id", type=INCIDENT_ID)
@click.pass_context
def incident_close(ctx: click.Context, incident_id: str) -> None:
    r = _operator(ctx).set_incident(incident_id, open=False)
    click.echo(f"closed incident {incident_id} at log index {r.index}")


@cli.group(
    help="Sharing groups: members share TLP:AMBER/RED entries with a group; members outside "
    "it receive those entries as leaf hashes only. Membership is in the log, by log index."
)
def group() -> None:
    pass


@group.command(
    "create",
    short_help="Create a sharing group.",
    help="Create sharing group GROUP_ID (1-63 of a-z 0-9 . _ -, starting a-z or 0-9); add "
    "members with `group add`.",
)
@click.argument("group_id", type=REQUIRED_GROUP_ID)
@click.option("--name", type=NAME, required=True, help="A short name members see.")
@click.option("--description", type=TEXT, default="", help="What the group is for.")
@click.pass_context
def group_create(ctx: click.Context, group_id: str, name: str, description: str) -> None:
    r = _operator(ctx).create_group(group_id, name, description)
    click.echo(f"created group {group_id} at log index {r.index}")


@group.command(
    "add",
    help="Add MEMBER_IDs to GROUP_ID (one signed entry each). They read the group's entries "
    "from the next log index on; earlier ones stay redacted for them.",
)
@click.argument("group_id", type=REQUIRED_GROUP_ID)
@click.argument("member_ids", type=MEMBER_ID, nargs=-1, required=True)
@click.pass_context
def group_add(ctx: click.Context, group_id: str, member_ids: tuple[str, ...]) -> None:
    _set_group_members(ctx, group_id, member_ids, member=True)


def _set_group_members(
    ctx: click.Context, group_id: str, member_ids: tuple[str, ...], *, member: bool
) -> None:
    op = _operator(ctx)
    for member_id in member_ids:
        r = op.set_group_member(group_id, member_id, member=member)
        what = f"added {member_id} to" if member else f"removed {member_id} from"
        click.echo(f"{what} group {group_id} at log index {r.index}")


@group.command(
    "remove",
    help="Remove MEMBER_IDs from GROUP_ID: the group's later entries reach them redacted; "
    "what they already read stays theirs.",
)
@click.argument("group_id", type=REQUIRED_GROUP_ID)
@click.argument("member_ids", type=MEMBER_ID, nargs=-1, required=True)
@click.pass_context
def group_remove(ctx: click.Context, group_id: str, member_ids: tuple[str, ...]) -> None:
    _set_group_members(ctx, group_id, member_ids, member=False)


@group.command("close", help="Close GROUP_ID: nothing more may be shared with it.")
@click.argument("group_id", type=REQUIRED_GROUP_ID)
@click.option("--reason", type=TEXT, default="", help="Why (recorded in the signed entry).")
@click.pass_context
def group_close(ctx: click.Context, group_id: str, reason: str) -> None:
    r = _operator(ctx).close_group(group_id, reason)
    click.echo(f"closed group {group_id} at log index {r.index}")


def _group_doc(g: GroupRecord) -> dict[str, Any]:
    return {
        "group_id": g.group_id,
        "name": g.name,
        "description": g.description,
        "created_at_index": g.created_at,
        "closed_at_index": g.closed_at,
        "members": g.members(),
        "history": [
            {"member_id": m, "index": i, "member": inside}
            for m, h in sorted(g.history.items())
            for i, inside in h
        ],
    }


@group.command("list", help="List the groups: members now, open or closed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def group_list(ctx: click.Context, as_json: bool) -> None:
    groups = sorted(_operator(ctx).groups().values(), key=lambda g: g.group_id)
    if as_json:
        click.echo(json.dumps([_group_doc(g) for g in groups], indent=2))
        return
    if not groups:
        click.echo("no groups")
    for g in groups:
        state = "open" if g.closed_at is None else f"closed at {g.closed_at}"
        members = ", ".join(g.members()) or "-"
        click.echo(f"{g.group_id:<24} {state:<16} {g.name}  [{members}]")


@group.command("show", help="Show GROUP_ID with its membership history by log index.")
@click.argument("group_id", type=REQUIRED_GROUP_ID)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def group_show(ctx: click.Context, group_id: str, as_json: bool) -> None:
    g = _operator(ctx).groups().get(group_id)
    if g is None:
        raise InvalidInputError.field("group_id", f"there is no group {group_id!r}")
    doc = _group_doc(g)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"group {g.group_id}: {g.name}")
    if g.description:
        click.echo(f"  {g.description}")
    click.echo(f"  created at log index {g.created_at}")
    if g.closed_at is not None:
        click.echo(f"  closed at log index {g.closed_at}")
    click.echo(f"  members now: {', '.join(doc['members']) or '-'}")
    for h in doc["history"]:
        what = "added" if h["member"] else "removed"
        click.echo(f"  index {h['index']:>8}: {h['member_id']} {what}")


@cli.group(
    help="The benign list: known-benign hashes (blank frames, common logos) that members' "
    "matching never reports, published as signed entries."
)
def benign() -> None:
    pass


def _benign_refs(
    type_: str | None, value: str | None, input_path: Path | None, fmt: str | None
) -> Iterator[Any]:
    if input_path is None:
        if not type_ or not value:
            raise click.UsageError("give --type and --value, or --input FILE")
        return iter([signal_option(type_, value)])
    if type_ or value:
        raise click.UsageError("--input cannot be combined with --type/--value")
    return _read_refs(input_path, fmt)


def _read_refs(input_path: Path, fmt: str | None) -> Iterator[Any]:
    with input_path.open(newline="", encoding="utf-8") as stream:
        yield from read_signals(stream, fmt or detect_format(input_path), name=str(input_path))


def _benign_publish(ctx: click.Context, refs: Iterator[Any], adding: bool) -> None:
    op = _operator(ctx)
    limit = op.forum.limits().max_batch_signals
    total = 0
    while batch := list(itertools.islice(refs, limit)):
        r = op.publish_benign(batch, ()) if adding else op.publish_benign((), batch)
        total += len(batch)
        click.echo(
            f"{'added' if adding else 'removed'} {len(batch)} signal(s) "
            f"{'to' if adding else 'from'} the benign list at log index {r.index}"
        )
    if not total:
        raise click.UsageError("the input holds no signals")


_BENIGN_OPTIONS = [
    click.option("--type", "type_", type=SIGNAL_TYPE, help="Signal type."),
    click.option("--value", help="The signal's value (normalised before signing)."),
    click.option(
        "--input",
        "input_path",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        help="Many signals: CSV with a type,value header or JSON Lines (sent in batches).",
    ),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["csv", "jsonl"]),
        help="Format of --input (default: from the file name).",
    ),
]


def _with_benign_options(f: Any) -> Any:
    for option in reversed(_BENIGN_OPTIONS):
        f = option(f)
    return f


@benign.command("add", help="Add signals to the benign list (one signed entry per batch).")
@_with_benign_options
@click.pass_context
def benign_add(
    ctx: click.Context,
    type_: str | None,
    value: str | None,
    input_path: Path | None,
    fmt: str | None,
) -> None:
    _benign_publish(ctx, _benign_refs(type_, value, input_path, fmt), adding=True)


@benign.command("remove", help="Take signals off the benign list: they match again.")
@_with_benign_options
@click.pass_context
def benign_remove(
    ctx: click.Context,
    type_: str | None,
    value: str | None,
    input_path: Path | None,
    fmt: str | None,
) -> None:
    _benign_publish(ctx, _benign_refs(type_, value, input_path, fmt), adding=False)


class _BackupFile(click.Path):
    """A backup file (its header is read and checked: exit 2 naming BACKUP_FILE)."""

    def __init__(self) -> None:
        super().__init__(path_type=Path, dir_okay=False, exists=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = cast(Path, super().convert(value, param, ctx))  # path_type=Path
        try:
            read_header(path)
        except InvalidInputError as exc:
            self.fail(exc.violations[0].reason if exc.violations else str(exc), param, ctx)
        return path


def _progress_bar(label: str) -> tuple[Any, Callable[[int, int], None]]:
    bar = click.progressbar(length=1, label=label, file=sys.stderr)
    done = [0]

    def update(n: int, total: int) -> None:
        bar.length = max(total, 1)
        bar.update(n - done[0])
        done[0] = n

    return bar, update


@cli.command(
    help="Back up the forum served from DATA_DIR (DIR/server) into one file: every entry, "
    "checkpoint, credential and audit record, taken at one checkpoint (a running forum is "
    "fine). Keys are not in it: keep DIR/server/log.key and tls/ safe separately."
)
@click.argument("data_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--out",
    required=True,
    type=OUTPUT_FILE,
    help="The backup file to write (refuses to overwrite one).",
)
@click.option(
    "--database",
    metavar="URL",
    type=DATABASE,
    envvar="FORUM_DATABASE_URL",
    help="The database to back up instead of the one DATA_DIR names.",
)
def backup(data_dir: Path, out: Path, database: str | None) -> None:
    if out.exists():
        raise click.BadParameter(f"{str(out)!r} exists: refusing to overwrite", param_hint="--out")
    bar, update = _progress_bar("backing up")
    with bar:
        size, _ = backup_forum(data_dir, out, database=database, progress=update)
    click.echo(f"backed up {size} entries to {out}")


@cli.command(
    help="Restore BACKUP into the empty store of DATA_DIR (stop every server first). Every "
    "entry is replayed and every checkpoint verified with DATA_DIR's log key. Members that "
    "synced past the backup see a rollback and refuse the log: give --latest-checkpoint to "
    "have that refused unless --accept-rollback."
)
@click.argument("backup_file", type=_BackupFile())
@click.argument("data_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--database",
    metavar="URL",
    type=DATABASE,
    envvar="FORUM_DATABASE_URL",
    help="Restore into this (empty) PostgreSQL database instead of the one DATA_DIR names.",
)
@click.option(
    "--latest-checkpoint",
    "latest",
    type=NOTE_FILE,
    help="The newest checkpoint note the forum is known to have signed "
    "(e.g. `forum-client show-checkpoint` from a member).",
)
@click.option(
    "--accept-rollback",
    is_flag=True,
    help="Restore even though members saw a newer checkpoint (they will refuse the log).",
)
def restore(
    backup_file: Path,
    data_dir: Path,
    database: str | None,
    latest: bytes | None,
    accept_rollback: bool,
) -> None:
    bar, update = _progress_bar("restoring")
    with bar:
        size, _ = restore_forum(
            backup_file,
            data_dir,
            database=database,
            latest=latest,
            accept_rollback=accept_rollback,
            progress=update,
        )
    click.echo(f"restored {size} entries, every checkpoint verified")
    paths = ServerPaths(data_dir)
    if database and paths.database_location() != database:
        named = paths.database_url if paths.database_url.is_file() else paths.database
        click.echo(
            f"note: {data_dir} still names another store ({named}): serve the restored forum "
            f"with `forum-server serve --database URL`, or write its URL to {paths.database_url}",
            err=True,
        )
    if latest is None:
        click.echo(
            f"warning: members that synced past entry {size} will see a rollback and refuse "
            "this log (pass --latest-checkpoint to check before restoring)",
            err=True,
        )


@cli.command(help="List the audit log: every admin action, who, what, when, outcome.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=0, help="Only the last N records (0 = all)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def audit(ctx: click.Context, limit: int, as_json: bool) -> None:
    for r in _operator(ctx).audit(limit):
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(r) | {"time": r.time.isoformat()}))
        else:
            click.echo(
                f"{r.time:%Y-%m-%d %H:%M:%S} {r.actor:<12} {r.action:<22} "
                f"{r.target:<16} {r.outcome:<8} {r.detail}"
            )


for _command in BOARD_COMMANDS:
    cli.add_command(_command)
cli.add_command(witness)


def main(argv: Sequence[str] | None = None) -> int:
    return run(cli, argv, "forum-admin")


if __name__ == "__main__":
    raise SystemExit(main())
