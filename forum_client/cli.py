"""``forum-client``: the member's command line, a thin shell over the SDK.

Imports are lazy: ``--help``, ``keygen`` and ``hash`` never load grpc or SQLite, so they
answer in a fraction of a second.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from .cli_context import bundle_from as _bundle
from .cli_context import client_from as _client
from .cli_context import show_progress
from .cli_errors import run, version_option
from .cli_types import (
    ADDRESS,
    CONTENT_TYPE,
    GROUP_ID,
    LABEL,
    MEMBER_ID,
    ORIGIN,
    REQUIRED_TEXT,
    SIGNAL_TYPE,
    TEXT,
    bad_signal_option,
    signal_option,
)
from .errors import ForumError, InvalidInputError

if TYPE_CHECKING:
    from .envelope import SigningKey
    from .wire import Receipt

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@click.group(help="A member's client for a Shared-Signal Forum: keys, status, submit, sync, match.")
@version_option()
@click.option(
    "--profile",
    type=click.Path(path_type=Path, exists=True),
    envvar="FORUM_PROFILE",
    help="Your credentials bundle from the operator (or set FORUM_PROFILE).",
)
@click.option(
    "--server",
    type=ADDRESS,
    help="HOST:PORT of the forum, overriding the bundle's address (e.g. through a tunnel).",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No progress lines or notes on stderr (errors are still printed).",
)
@click.option(
    "--verbose",
    "-v",
    count=True,
    help="More log output on stderr: -v for INFO, -vv for DEBUG (gRPC's own logs included).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="Log level on stderr (default WARNING; overrides -v).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    profile: Path | None,
    server: str | None,
    quiet: bool,
    verbose: int,
    log_level: str | None,
) -> None:
    level = (log_level or ("DEBUG" if verbose >= 2 else "INFO" if verbose else "WARNING")).upper()
    configure_logging(level)
    ctx.obj = {"profile": profile, "server": server, "quiet": quiet}


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``; gRPC's C core logs only at DEBUG (it reads its level
    from the environment once, when grpc is first imported, which is after this)."""
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if level == "DEBUG":
        os.environ["GRPC_VERBOSITY"] = "DEBUG"


@cli.command(
    help="Make your Ed25519 signing key: OUT (private, 0600, never leaves you) and "
    "OUT.pub (send it to the operator). The .pub carries a proof of possession "
    "for your member id in the forum: give --member-id and --origin, or "
    "--profile for a new key (rotation). With none of them, a key for the operator "
    "board (no member id, no proof of possession; for `forum-admin propose rotate-board "
    "--key` or `init --board-key`)."
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Path of the private key; the public key goes to OUT.pub.",
)
@click.option("--member-id", type=MEMBER_ID, help="Your member id, as agreed with the operator.")
@click.option("--origin", type=ORIGIN, help="The forum's origin, as the operator told you.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def keygen(
    ctx: click.Context, out: Path, member_id: str | None, origin: str | None, as_json: bool
) -> None:
    from .envelope import SigningKey

    if ctx.obj["profile"] is not None:
        bundle = _bundle(ctx)
        member_id = member_id or bundle.member_id
        origin = origin or bundle.trust_root.origin
    possession: list[tuple[str, str]] = []  # none: a key for the operator board
    if member_id and origin:
        possession.append((origin, member_id))
    elif member_id or origin:
        raise click.UsageError(
            "keygen needs --member-id and --origin (or --profile BUNDLE) for a member key, "
            "or neither for an operator board key"
        )
    for path in (out, Path(f"{out}.pub")):
        if path.exists():
            raise click.BadParameter(f"{path} exists: refusing to overwrite", param_hint="--out")
    key = SigningKey.generate()
    key.save(out, possession=possession)
    if as_json:
        doc = {
            "private_key": str(out),
            "public_key": f"{out}.pub",
            "key_id": key.key_id.hex(),
            "member_id": member_id,
            "origin": origin,
        }
        click.echo(json.dumps(doc))
        return
    board = "" if possession else " (an operator board key: no member id, no proof of possession)"
    click.echo(
        f"wrote {out} (private, keep it) and {out}.pub (send to the operator); "
        f"key id {key.key_id.hex()[:16]}{board}"
    )


@cli.command(help="Show who you are to the forum: member id, role, origin, log size.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    client = _client(ctx)
    s = client.status()
    cp = client.checkpoint()
    doc = {
        "member_id": s.member_id,
        "role": s.role.label,
        "status": s.status.label,
        "forum": s.forum_name,
        "origin": s.origin,
        "log_size": cp.size,
        "root": cp.root.hex(),
        "groups": list(s.groups),
    }
    if as_json:
        click.echo(json.dumps(doc))
        return
    for k, v in doc.items():
        shown = ", ".join(v) or "-" if isinstance(v, list) else v
        click.echo(f"{k + ':':<11} {shown}")


def _key(path: Path) -> SigningKey:
    from .envelope import SigningKey

    try:
        return SigningKey.load(path)
    except InvalidInputError as exc:
        raise click.BadParameter(
            exc.violations[0].reason if exc.violations else str(exc), param_hint="--key"
        ) from None


def _print_receipt(r: Receipt, count: int, as_json: bool, what: str) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "what": what,
                    "signals": count,
                    "index": r.index,
                    "leaf_hash": r.leaf_hash.hex(),
                    "tree_size": r.tree_size,
                }
            )
        )
    else:
        click.echo(
            f"{what}: {count} signal(s) at log index {r.index} "
            f"(verified in a tree of {r.tree_size})"
        )


def _open_input(path: Path, fmt: str | None) -> tuple[IO[str], str]:
    from .inputfiles import detect_format

    chosen = fmt or detect_format(path)
    return path.open(newline="", encoding="utf-8"), chosen


_KEY = click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Your private signing key (from `forum-client keygen`).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON object per receipt.")
_INPUT = click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A CSV (header type,value[,labels,content_type,quality]) or JSON "
    "Lines file; labels are ';'-separated.",
)
_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    help="Input format (default: from the file name).",
)
_SUBMIT_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl", "stix", "misp"]),
    help="Input format (default: from the file name). stix: a STIX 2.1 bundle; misp: a "
    "MISP event. For these two, each object that cannot be represented (a pattern or type "
    "the forum has no signal type for, a malformed pattern, an invalid value) is reported "
    "with the reason and skipped whole.",
)


_GROUP = click.option(
    "--group",
    default="",
    metavar="GROUP",
    type=GROUP_ID,
    help="Share with this sharing group only (you must be in it); members outside it get "
    "the entry as a leaf hash. Retractions and opinions on a group's signal name its group. "
    "Default: the whole forum.",
)
_TLP = click.option(
    "--tlp",
    type=click.Choice(["clear", "green", "amber", "amber+strict", "red"], case_sensitive=False),
    default=None,
    help="Traffic Light Protocol level: clear or green forum-wide (default green); amber, "
    "amber+strict or red with --group (default amber).",
)


@cli.command(
    help="Submit signals: one by --type/--value, or many from --input. A file is checked "
    "whole first (every bad line reported as FILE:LINE, nothing sent), then signed and sent "
    "in batches, each returning a verified receipt. If a batch is refused, fix the lines "
    "named and run the same command again: the batches already in the log are skipped "
    "(FILE.forum-progress remembers them)."
)
@_KEY
@click.option("--type", "type_", type=SIGNAL_TYPE, help="Signal type.")
@click.option("--value", help="The signal's value.")
@click.option(
    "--label", "labels", type=LABEL, multiple=True, help="A taxonomy label id (repeatable)."
)
@click.option(
    "--content-type",
    type=CONTENT_TYPE,
    help="What the signal was computed from (default: the type's).",
)
@click.option("--quality", type=click.IntRange(0, 100), help="PDQ quality, 0-100.")
@_GROUP
@_TLP
@_INPUT
@_SUBMIT_FORMAT
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=10_000,
    show_default=True,
    help="Signals per signed entry.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress line on stderr.")
@_JSON
@click.pass_context
def submit(
    ctx: click.Context,
    key_path: Path,
    type_: str | None,
    value: str | None,
    labels: tuple[str, ...],
    content_type: str | None,
    quality: int | None,
    group: str,
    tlp: str | None,
    input_path: Path | None,
    fmt: str | None,
    batch_size: int,
    quiet: bool,
    as_json: bool,
) -> None:
    if input_path is None:
        if not type_ or not value:
            raise click.UsageError("give --type and --value, or --input FILE")
        from .client import normalize_item

        try:
            item = normalize_item(
                {
                    "type": type_,
                    "value": value,
                    "labels": labels,
                    "content_type": content_type,
                    "quality": quality,
                }
            )
        except InvalidInputError as exc:
            raise bad_signal_option(exc) from None
        key = _key(key_path)
        client = _client(ctx)
        _print_receipt(client.submit([item], key, group=group, tlp=tlp), 1, as_json, "submitted")
        return
    if fmt in ("stix", "misp"):
        _submit_import(ctx, _key(key_path), input_path, fmt, group, tlp, batch_size, as_json)
        return
    if type_ or value or labels or content_type or quality is not None:
        raise click.UsageError(
            "--input cannot be combined with --type/--value/--label/--content-type/--quality"
        )
    _submit_file(ctx, _key(key_path), input_path, fmt, group, tlp, batch_size, as_json, quiet)


def _submit_import(
    ctx: click.Context,
    key: SigningKey,
    path: Path,
    fmt: str,
    group: str,
    tlp: str | None,
    batch_size: int,
    as_json: bool,
) -> None:
    """A STIX bundle or MISP event: its indicators, reported, then sent in batches."""
    from .cli_interop import read_import, report_import

    found = read_import(path, fmt)
    report_import(found)
    if not found.signals:
        click.echo("nothing to submit", err=True)
        return
    client = _client(ctx)
    for batches, (count, receipt) in enumerate(
        client.submit_batches(found.signals, key, group=group, tlp=tlp, batch_size=batch_size), 1
    ):
        _print_receipt(receipt, count, as_json, f"batch {batches}")


def _submit_file(
    ctx: click.Context,
    key: SigningKey,
    path: Path,
    fmt: str | None,
    group: str,
    tlp: str | None,
    batch_size: int,
    as_json: bool,
    quiet: bool,
) -> None:
    from .bulk_submit import BulkSubmission, progress_path

    chatty = not quiet and not (ctx.find_root().obj or {}).get("quiet")
    live = chatty and show_progress(ctx)
    client = _client(ctx)
    known = client.status().labels  # the forum's vocabulary now: checked before signing

    def notify(text: str, warning: bool) -> None:
        if warning or chatty:  # a warning is printed even with --quiet
            click.echo(("warning: " if warning else "") + text, err=True)

    job = BulkSubmission(
        client,
        key,
        path,
        fmt,
        group=group,
        tlp=tlp,
        batch_size=batch_size,
        known_labels=known.__contains__,
        notify=notify,
    )
    found = job.check()
    if chatty:
        click.echo(f"{path}: {found.signals:,} signals checked", err=True)
    started = time.monotonic()
    done = None
    try:
        for done in job.run():
            if done.number == 1 and job.skipped and chatty:
                click.echo(
                    f"resuming: the first {job.skipped:,} signals are already in the log",
                    err=True,
                )
            label = f"batch {done.number}" + (" (resent)" if done.resent else "")
            _print_receipt(done.receipt, done.signals, as_json, label)
            if live:
                rate = (done.total - job.skipped) / max(time.monotonic() - started, 1e-9)
                click.echo(
                    f"\r{done.total:,}/{found.signals:,} signals, {rate:,.0f}/s",
                    err=True,
                    nl=False,
                )
    except ForumError as exc:
        accepted = done.total if done else job.skipped
        if (accepted or job.in_flight) and chatty:
            where = (
                f"{progress_path(path)} remembers them"
                if job.progress_saved
                else "(the progress file could not be written)"
            )
            maybe = (
                ", and perhaps the batch whose answer was lost (a rerun resends it as it was "
                "signed: the forum keeps it once)"
                if job.in_flight
                else ""
            )
            fix = "Fix the lines named below and run" if getattr(exc, "violations", None) else "Run"
            click.echo(
                f"\n{accepted:,} of {found.signals:,} signals are in the log (receipts above)"
                f"{maybe}; {where}. {fix} the same command again to send the rest.",
                err=True,
            )
        raise
    if done is None and job.skipped:
        click.echo(f"all {found.signals:,} signals were already in the log", err=True)
        return
    if chatty:
        click.echo(
            ("\r" if live else "") + f"submitted {found.signals - job.skipped:,} signals in "
            f"{done.number if done else 0} batch(es)",
            err=True,
        )


@cli.command(
    help="Retract signals you submitted (the operator can retract any), with a "
    "reason: one by --type/--value or many from --input."
)
@_KEY
@click.option("--type", "type_", type=SIGNAL_TYPE, help="Signal type.")
@click.option("--value", help="The signal's value.")
@click.option(
    "--reason", type=REQUIRED_TEXT, required=True, help="Why (recorded in the signed entry)."
)
@_GROUP
@_TLP
@_INPUT
@_FORMAT
@_JSON
@click.pass_context
def retract(
    ctx: click.Context,
    key_path: Path,
    type_: str | None,
    value: str | None,
    reason: str,
    group: str,
    tlp: str | None,
    input_path: Path | None,
    fmt: str | None,
    as_json: bool,
) -> None:
    refs: list[Any]
    if input_path is None:
        if not type_ or not value:
            raise click.UsageError("give --type and --value, or --input FILE")
        refs = [signal_option(type_, value)]
    else:
        if type_ or value:
            raise click.UsageError("--input cannot be combined with --type/--value")
        from .inputfiles import read_signals

        stream, chosen = _open_input(input_path, fmt)
        with stream:
            refs = list(read_signals(stream, chosen, name=str(input_path)))
    key = _key(key_path)
    receipt = _client(ctx).retract(refs, key, reason, group=group, tlp=tlp)
    _print_receipt(receipt, len(refs), as_json, "retracted")


@cli.command(
    help="Give your opinion on a signal: agree, disagree, false-positive or seen "
    "(replaces your earlier opinion on it)."
)
@_KEY
@click.option("--type", "type_", type=SIGNAL_TYPE, required=True, help="Signal type.")
@click.option("--value", required=True, help="The signal's value.")
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["agree", "disagree", "false-positive", "seen"]),
    help="Your opinion of the signal.",
)
@click.option("--note", type=TEXT, default="", help="A short note.")
@_GROUP
@_TLP
@_JSON
@click.pass_context
def opine(
    ctx: click.Context,
    key_path: Path,
    type_: str,
    value: str,
    kind: str,
    note: str,
    group: str,
    tlp: str | None,
    as_json: bool,
) -> None:
    ref = signal_option(type_, value)
    receipt = _client(ctx).opine(ref, kind, _key(key_path), note, group=group, tlp=tlp)
    _print_receipt(receipt, 1, as_json, f"opinion {kind}")


from .cli_sync import COMMANDS as _SYNC_COMMANDS  # noqa: E402

for _command in _SYNC_COMMANDS:
    cli.add_command(_command)

from .cli_match import COMMANDS as _MATCH_COMMANDS  # noqa: E402

for _command in _MATCH_COMMANDS:
    cli.add_command(_command)

from .cli_gossip import COMMANDS as _GOSSIP_COMMANDS  # noqa: E402

for _command in _GOSSIP_COMMANDS:
    cli.add_command(_command)

from .cli_interop import COMMANDS as _INTEROP_COMMANDS  # noqa: E402

for _command in _INTEROP_COMMANDS:
    cli.add_command(_command)

from .cli_governance import COMMANDS as _GOVERNANCE_COMMANDS  # noqa: E402

for _command in _GOVERNANCE_COMMANDS:
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    return run(cli, argv, "forum-client")


if __name__ == "__main__":
    raise SystemExit(main())
