"""``forum-client``: the member's command line, a thin shell over the SDK."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from .cli_errors import run
from .client import ForumClient
from .envelope import SigningKey
from .profile import Bundle


@click.group(help="A member's client for a Shared-Signal Forum: keys, status, submit, sync, "
                  "match.")
@click.option("--profile", type=click.Path(path_type=Path), envvar="FORUM_PROFILE",
              help="Your credentials bundle from the operator (or set FORUM_PROFILE).")
@click.option("--server", help="HOST:PORT of the forum, overriding the bundle's address.")
@click.pass_context
def cli(ctx: click.Context, profile: Path | None, server: str | None) -> None:
    ctx.obj = {"profile": profile, "server": server}


def _bundle(ctx: click.Context) -> Bundle:
    if ctx.obj["profile"] is None:
        raise click.UsageError("this command needs --profile BUNDLE")
    return Bundle.load(ctx.obj["profile"])


def _client(ctx: click.Context) -> ForumClient:
    client = ForumClient(_bundle(ctx), server=ctx.obj["server"])
    ctx.call_on_close(client.close)
    return client


@cli.command(help="Make your Ed25519 signing key: OUT (private, 0600, never leaves you) and "
                  "OUT.pub (send it to the operator). The .pub carries a proof of possession "
                  "for your member id in the forum: give --member-id and --origin, or "
                  "--profile for a new key (rotation).")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Path of the private key; the public key goes to OUT.pub.")
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
    click.echo(f"wrote {out} (private, keep it) and {out}.pub (send to the operator); "
               f"key id {key.key_id.hex()[:16]}")


@cli.command(help="Show who you are to the forum: member id, role, origin, log size.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    client = _client(ctx)
    s = client.status()
    cp = client.checkpoint()
    doc = {
        "member_id": s.member_id, "role": s.role.label, "status": s.status.label,
        "forum": s.forum_name, "origin": s.origin, "log_size": cp.size,
        "root": cp.root.hex(),
    }
    if as_json:
        click.echo(json.dumps(doc))
        return
    for k, v in doc.items():
        click.echo(f"{k + ':':<11} {v}")


def main(argv: Sequence[str] | None = None) -> int:
    return run(cli, argv, "forum-client")


if __name__ == "__main__":
    raise SystemExit(main())
