"""``forum-client show-checkpoint | compare-checkpoint``: catch a forum that shows members
different histories, by comparing signed checkpoints (a thin shell over
:mod:`forum_client.gossip`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cli_context import client_from
from .gossip import Comparison, compare_checkpoints, compare_with_store
from .receipts import verify_checkpoint_note
from .source import GrpcSource
from .store import LocalStore

NOTE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command(
    "show-checkpoint",
    help="Print the signed checkpoint your local copy is verified against, to send to other "
    "members (they run compare-checkpoint on it).",
)
@click.option(
    "--db",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The local SQLite copy.",
)
def show_checkpoint(db: Path) -> None:
    with LocalStore(db) as store:
        note = store.sync_state().checkpoint_note
    if note is None:
        raise click.UsageError(f"{db} holds no verified checkpoint yet: sync first")
    click.echo(note.decode(), nl=False)


@click.command(
    "compare-checkpoint",
    help="Compare another member's signed checkpoint (NOTE) with yours: with --db, against "
    "your verified local copy (no server asked); with --other NOTE2 and --profile, the two "
    "notes with each other (a consistency proof is fetched from the forum when sizes "
    "differ). Exit 5 when they prove a fork.",
)
@click.argument("note", type=NOTE)
@click.option(
    "--db",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Your local SQLite copy.",
)
@click.option("--other", type=NOTE, help="A second signed checkpoint to compare NOTE with.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def compare_checkpoint(
    ctx: click.Context, note: Path, db: Path | None, other: Path | None, as_json: bool
) -> None:

    if (db is None) == (other is None):
        raise click.UsageError("give exactly one of --db or --other")
    theirs = note.read_bytes()
    result: Comparison
    if db is not None:
        with LocalStore(db) as store:
            result = compare_with_store(store, theirs)
    else:
        assert other is not None
        client = client_from(ctx)
        mine = other.read_bytes()
        a, b = (verify_checkpoint_note(x, client.trust_root) for x in (theirs, mine))
        proof = None
        if a.size != b.size:
            small, large = sorted((a.size, b.size))
            proof = GrpcSource(client.stub, client.timeout).consistency_proof(small, large)
        result = compare_checkpoints(theirs, mine, client.trust_root, proof)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "consistent": True,
                    "size_a": result.size_a,
                    "size_b": result.size_b,
                    "how": result.how,
                }
            )
        )
    else:
        click.echo(f"consistent: sizes {result.size_a} and {result.size_b} ({result.how})")


COMMANDS = (show_checkpoint, compare_checkpoint)
