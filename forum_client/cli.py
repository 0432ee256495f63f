"""``forum-client``: the member's command line, a thin shell over the SDK."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import click

from .cli_context import bundle_from as _bundle
from .cli_context import client_from as _client
from .cli_errors import run
from .entries import SignalItem
from .envelope import SigningKey
from .errors import ForumError
from .inputfiles import detect_format, read_signals
from .wire import Receipt


@click.group(help="A member's client for a Shared-Signal Forum: keys, status, submit, sync, match.")
@click.option(
    "--profile",
    type=click.Path(path_type=Path),
    envvar="FORUM_PROFILE",
    help="Your credentials bundle from the operator (or set FORUM_PROFILE).",
)
@click.option("--server", help="HOST:PORT of the forum, overriding the bundle's address.")
@click.pass_context
def cli(ctx: click.Context, profile: Path | None, server: str | None) -> None:
    ctx.obj = {"profile": profile, "server": server}


@cli.command(
    help="Make your Ed25519 signing key: OUT (private, 0600, never leaves you) and "
    "OUT.pub (send it to the operator). The .pub carries a proof of possession "
    "for your member id in the forum: give --member-id and --origin, or "
    "--profile for a new key (rotation)."
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Path of the private key; the public key goes to OUT.pub.",
)
@click.option("--member-id", help="Your member id, as agreed with the operator.")
@click.option("--origin", help="The forum's origin, as the operator told you.")
@click.pass_context
def keygen(ctx: click.Context, out: Path, member_id: str | None, origin: str | None) -> None:
    if ctx.obj["profile"] is not None:
        bundle = _bundle(ctx)
        member_id = member_id or bundle.member_id
        origin = origin or bundle.trust_root.origin
    if not member_id or not origin:
        raise click.UsageError("keygen needs --member-id and --origin (or --profile BUNDLE)")
    key = SigningKey.generate()
    key.save(out, possession=[(origin, member_id)])
    click.echo(
        f"wrote {out} (private, keep it) and {out}.pub (send to the operator); "
        f"key id {key.key_id.hex()[:16]}"
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
    return SigningKey.load(path)


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
    help="Submit signals: one by --type/--value, or many from --input (streamed, "
    "signed and sent in batches, a progress line on stderr). Values are "
    "normalised before signing; each batch returns a verified receipt."
)
@_KEY
@click.option("--type", "type_", help="Signal type: pdq, vpdq, md5, sha1, sha256, url, domain.")
@click.option("--value", help="The signal's value.")
@click.option("--label", "labels", multiple=True, help="A taxonomy label id (repeatable).")
@click.option(
    "--content-type", help="image, video, audio, pdf, text, url or other (default: the type's)."
)
@click.option("--quality", type=int, help="PDQ quality, 0-100.")
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
    as_json: bool,
) -> None:
    key = _key(key_path)
    if input_path is None:
        if not type_ or not value:
            raise click.UsageError("give --type and --value, or --input FILE")
        item = {
            "type": type_,
            "value": value,
            "labels": labels,
            "content_type": content_type,
            "quality": quality,
        }
        client = _client(ctx)
        _print_receipt(client.submit([item], key, group=group, tlp=tlp), 1, as_json, "submitted")
        return
    if type_ or value or labels:
        raise click.UsageError("--input cannot be combined with --type/--value/--label")
    total = batches = 0
    started = time.monotonic()
    if fmt in ("stix", "misp"):
        from .cli_interop import read_import, report_import

        found = read_import(input_path, fmt)
        report_import(found)
        if not found.signals:
            click.echo("nothing to submit", err=True)
            return
        stream: IO[str] = io.StringIO()
        signals: Iterable[SignalItem] = found.signals
    else:
        stream, chosen = _open_input(input_path, fmt)
        signals = read_signals(stream, chosen, name=str(input_path))
    client = _client(ctx)
    with stream:
        try:
            for count, receipt in client.submit_batches(
                signals, key, group=group, tlp=tlp, batch_size=batch_size
            ):
                total += count
                batches += 1
                _print_receipt(receipt, count, as_json, f"batch {batches}")
                rate = total / max(time.monotonic() - started, 1e-9)
                click.echo(
                    f"\r{total:,} signals in {batches} batch(es), {rate:,.0f}/s", err=True, nl=False
                )
        except ForumError as exc:
            if batches:
                click.echo(
                    f"\nstopped after {batches} accepted batch(es) ({total:,} signals, "
                    "each with its receipt above)",
                    err=True,
                )
            raise exc from None
    click.echo(f"\rsubmitted {total:,} signals in {batches} batch(es)" + " " * 20, err=True)


@cli.command(
    help="Retract signals you submitted (the operator can retract any), with a "
    "reason: one by --type/--value or many from --input."
)
@_KEY
@click.option("--type", "type_", help="Signal type.")
@click.option("--value", help="The signal's value.")
@click.option("--reason", required=True, help="Why (recorded in the signed entry).")
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
    key = _key(key_path)
    refs: list[Any]
    if input_path is None:
        if not type_ or not value:
            raise click.UsageError("give --type and --value, or --input FILE")
        refs = [{"type": type_, "value": value}]
    else:
        stream, chosen = _open_input(input_path, fmt)
        with stream:
            refs = list(read_signals(stream, chosen, name=str(input_path)))
    receipt = _client(ctx).retract(refs, key, reason, group=group, tlp=tlp)
    _print_receipt(receipt, len(refs), as_json, "retracted")


@cli.command(
    help="Give your opinion on a signal: agree, disagree, false-positive or seen "
    "(replaces your earlier opinion on it)."
)
@_KEY
@click.option("--type", "type_", required=True, help="Signal type.")
@click.option("--value", required=True, help="The signal's value.")
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["agree", "disagree", "false-positive", "seen"]),
    help="Your opinion of the signal.",
)
@click.option("--note", default="", help="A short note.")
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
    receipt = _client(ctx).opine(
        {"type": type_, "value": value}, kind, _key(key_path), note, group=group, tlp=tlp
    )
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
