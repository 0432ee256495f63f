"""``forum-client show-checkpoint | compare-checkpoint``: catch a forum that shows members
different histories, by comparing signed checkpoints (a thin shell over
:mod:`forum_client.gossip`)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .cli_context import client_from
from .cli_files import LOCAL_COPY, NOTE_FILE
from .errors import InvalidInputError

if TYPE_CHECKING:
    from .gossip import Comparison
    from .store import LocalStore


@click.command(
    "show-checkpoint",
    help="Print the signed checkpoint your local copy is verified against, to send to other "
    "members (they run compare-checkpoint on it).",
)
@click.option("--db", required=True, type=LOCAL_COPY, help="The local SQLite copy.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object: origin, size, root (hex) and the note itself.",
)
def show_checkpoint(db: Path, as_json: bool) -> None:
    from .receipts import verify_checkpoint_note
    from .store import LocalStore

    with LocalStore(db) as store:
        note = store.sync_state().checkpoint_note
        root = store.trust_root()
        summary = witness_summary(store)
    if note is None or root is None:
        raise click.UsageError(f"{db} holds no verified checkpoint yet: sync first")
    if as_json:
        cp = verify_checkpoint_note(note, root)
        doc = {"origin": cp.origin, "size": cp.size, "root": cp.root.hex(), "note": note.decode()}
        click.echo(json.dumps(doc))
        return
    click.echo(note.decode(), nl=False)  # stdout: the note itself, to send as it is
    if summary:
        click.echo(summary, err=True)


def witness_summary(store: LocalStore) -> str | None:
    """Which witnesses of the copy's policy cosigned its checkpoint, and when (None when
    the forum names no witnesses)."""
    from .cosignature import verify_quorum

    state = store.sync_state()
    if state.checkpoint_note is None or state.log_state is None:
        return None
    policy = state.log_state.witness_policy
    if not policy.enforced:
        return "witnesses: none (the forum's log names no witnesses)"
    verdict = verify_quorum(state.checkpoint_note, policy, now=int(time.time()), max_age=None)
    lines = [
        f"witnesses: {len(verdict.agreed)} of {len(policy.witnesses)} cosigned "
        f"(quorum {policy.quorum}, policy version {policy.version})"
    ]
    for name in verdict.agreed:
        when = dt.datetime.fromtimestamp(verdict.timestamps[name], dt.UTC)
        lines.append(f"  agreed: {name} at {when:%Y-%m-%d %H:%M:%S} UTC")
    lines += [f"  missing: {name}: {why}" for name, why in verdict.missing.items()]
    return "\n".join(lines)


@click.command(
    "compare-checkpoint",
    help="Compare another member's signed checkpoint (NOTE) with yours: with --db, against "
    "your verified local copy (no server asked when NOTE is no larger than your copy; "
    "otherwise, with --profile, a consistency proof is fetched from the forum); with --other "
    "NOTE2 and --profile, the two notes with each other (a proof is fetched when sizes "
    "differ). A forum that answers but will not prove two checkpoints it signed is "
    "evidence of a fork. Exit 5 when they prove a fork.",
)
@click.argument("note", type=NOTE_FILE)
@click.option("--db", type=LOCAL_COPY, help="Your local SQLite copy.")
@click.option("--other", type=NOTE_FILE, help="A second signed checkpoint to compare NOTE with.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def compare_checkpoint(
    ctx: click.Context, note: bytes, db: Path | None, other: bytes | None, as_json: bool
) -> None:
    from .gossip import compare_checkpoints, compare_with_store, fetch_proof_or_evidence
    from .receipts import verify_checkpoint_note
    from .source import GrpcSource
    from .store import LocalStore

    if (db is None) == (other is None):
        raise click.UsageError("give exactly one of --db or --other")
    theirs = note  # read with a size limit and parsed (not yet verified) by NOTE_FILE
    result: Comparison
    if db is not None:
        fetch = None
        if ctx.obj.get("profile") is not None:
            client = client_from(ctx)
            fetch = GrpcSource(client.stub, client.timeout).consistency_proof
        with LocalStore(db) as store:
            try:
                result = compare_with_store(store, theirs, fetch)
            except InvalidInputError as exc:
                if fetch is not None or not any(v.field == "proof" for v in exc.violations):
                    raise
                raise click.UsageError(
                    f"{exc}. NOTE is larger than your copy: give --profile BUNDLE (before "
                    "compare-checkpoint) so the forum is asked to prove your checkpoint is a "
                    "prefix of it; a forum that signed both and will not prove it has forked"
                ) from None
    else:
        assert other is not None
        client = client_from(ctx)
        mine = other
        a, b = (verify_checkpoint_note(x, client.trust_root) for x in (theirs, mine))
        proof = None
        if a.size != b.size:
            fetch = GrpcSource(client.stub, client.timeout).consistency_proof
            proof = fetch_proof_or_evidence(fetch, theirs, mine, client.trust_root)
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
