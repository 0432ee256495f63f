"""``forum-admin witness ...``: the witness set and quorum, recorded in the log."""

from __future__ import annotations

from pathlib import Path

import click

from forum_client.cosignature import WitnessPolicy
from forum_client.tools import HTTP_URL, WITNESS_NAME, WITNESS_VKEY

from . import witnesses
from .cli_board import _propose_options, _write, propose
from .operator import Operator


@click.group(
    help="Witnesses cosign every checkpoint after checking it extends the last one they saw; "
    "members accept a checkpoint only with a quorum of cosignatures.  The set and the quorum "
    "are operator-signed log entries.  With N witnesses of which at most f may be dishonest, "
    "choose a quorum t > (N + f) / 2."
)
def witness() -> None:
    pass


def _operator(ctx: click.Context) -> Operator:
    from .cli import _operator as operator  # cli imports this module

    return operator(ctx)


def _describe(policy: WitnessPolicy) -> str:
    if not policy.witnesses:
        return "no witnesses: members accept log-signed checkpoints without cosignatures"
    lines = [
        f"witness policy version {policy.version}: quorum {policy.quorum} of "
        f"{len(policy.witnesses)}"
    ]
    lines += [f"  {w.vkey}  {w.url or '(no url)'}" for w in policy.witnesses]
    return "\n".join(lines)


@witness.command("add", help="Add the witness with verifier key VKEY (from forum-witness init).")
@click.argument("vkey", type=WITNESS_VKEY)
@click.option(
    "--url", type=HTTP_URL, required=True, help="Where the forum reaches it: http(s)://HOST:PORT."
)
@click.option(
    "--quorum",
    type=click.IntRange(min=1),
    help="New quorum (default: unchanged, 1 for the first witness).",
)
@click.pass_context
def add(ctx: click.Context, vkey: str, url: str, quorum: int | None) -> None:
    policy, receipt = witnesses.add_witness(_operator(ctx), vkey, url=url, quorum=quorum)
    click.echo(f"recorded at log index {receipt.index}")
    click.echo(_describe(policy))


@witness.command("remove", help="Remove witness NAME (its key name) from the set.")
@click.argument("name", type=WITNESS_NAME)
@click.option("--quorum", type=click.IntRange(min=0), help="New quorum (default: unchanged).")
@click.pass_context
def remove(ctx: click.Context, name: str, quorum: int | None) -> None:
    policy, receipt = witnesses.remove_witness(_operator(ctx), name, quorum=quorum)
    click.echo(f"recorded at log index {receipt.index}")
    click.echo(_describe(policy))


@witness.command("list", help="Show the witness set and quorum the log currently states.")
@click.pass_context
def list_(ctx: click.Context) -> None:
    click.echo(_describe(witnesses.current_policy(_operator(ctx))))


list_.name = "list"


@witness.command("log-vkey", help="Print the log's verifier key (a witness's --log file).")
@click.pass_context
def log_vkey(ctx: click.Context) -> None:
    click.echo(witnesses.log_vkey(_operator(ctx)))


# ---- with a multi-key operator board: the same changes as proposals (issue #11) ----


@click.command("witness-add", help="Propose adding the witness with verifier key VKEY.")
@click.argument("vkey", type=WITNESS_VKEY)
@click.option(
    "--url", type=HTTP_URL, required=True, help="Where the forum reaches it: http(s)://HOST:PORT."
)
@click.option(
    "--quorum",
    type=click.IntRange(min=1),
    help="New quorum, at most the number of witnesses (default: unchanged).",
)
@_propose_options
def propose_witness_add(
    ctx: click.Context, vkey: str, url: str, quorum: int | None, out: Path, ttl_ms: int
) -> None:
    policy = witnesses.policy_with(_operator(ctx), vkey, url=url, quorum=quorum)
    summary = f"witness add {policy.witnesses[-1].name} (quorum {policy.quorum})"
    _write(ctx, [witnesses.entry_for(policy)], summary, out, ttl_ms)


@click.command("witness-remove", help="Propose removing witness NAME.")
@click.argument("name", type=WITNESS_NAME)
@click.option("--quorum", type=click.IntRange(min=0), help="New quorum (default: unchanged).")
@_propose_options
def propose_witness_remove(
    ctx: click.Context, name: str, quorum: int | None, out: Path, ttl_ms: int
) -> None:
    policy = witnesses.policy_without(_operator(ctx), name, quorum=quorum)
    summary = f"witness remove {name} (quorum {policy.quorum})"
    _write(ctx, [witnesses.entry_for(policy)], summary, out, ttl_ms)


propose.add_command(propose_witness_add)
propose.add_command(propose_witness_remove)
