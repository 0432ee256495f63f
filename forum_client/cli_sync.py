"""``forum-client sync | verify | security-report``: the local copy, a thin shell over
:mod:`forum_client.sync` and :mod:`forum_client.store`."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from .cli_context import bundle_from, client_from
from .cli_files import LOCAL_COPY
from .errors import SecurityError

if TYPE_CHECKING:
    from .sync import SyncProgress, SyncResult

# sync.SyncConfig.commit_every_rows and witness_max_age_seconds (a test keeps them equal),
# here so --help stays light.
COMMIT_EVERY_ROWS = 100_000
ROWS_PER_COPY_PAGE = 4  # sync.SyncConfig.rows_per_copy_page (the same test)
CACHE_MIB = 128  # store.local.DEFAULT_CACHE_MIB (the same test)
WITNESS_FRESHNESS_SECONDS = 3600
MAX_WITNESS_FRESHNESS_SECONDS = 366 * 24 * 3600

DB_OPTION = click.option(
    "--db",
    "db",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The local SQLite copy (created on first sync).",
)
COPY_OPTION = click.option(
    "--db",
    "db",
    required=True,
    type=LOCAL_COPY,
    help="The local SQLite copy (made by `forum-client sync --db FILE`).",
)


class _ProgressBar:
    """One self-rewriting line on stderr: entries, signals, rate and ETA (10 updates/s)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last = 0.0
        self.shown = False

    def __call__(self, p: SyncProgress) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.1 and p.size < p.target):
            return
        self.last = now
        rate = p.signals / p.elapsed if p.elapsed > 0 else 0.0
        entry_rate = p.entries / p.elapsed if p.elapsed > 0 else 0.0
        left = max(p.target - p.size, 0)
        eta = f"{left / entry_rate:.0f}s" if entry_rate > 0 and left else "-"
        width = 24
        done = int(width * p.size / p.target) if p.target else width
        bar = "#" * done + "." * (width - done)
        sys.stderr.write(
            f"\r[{bar}] {p.size}/{p.target} entries  {p.signals} signals  "
            f"{rate:,.0f} signals/s  ETA {eta}  "
        )
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            self.shown = False


def _result_doc(r: SyncResult) -> dict[str, Any]:
    return {
        "size": r.size,
        "root": r.root.hex(),
        "entries": r.entries,
        "signals": r.signals,
        "seconds": round(r.seconds, 3),
        "flagged_times": list(r.flagged_times),
        "witnesses": [
            {"name": w.name, "outcome": w.outcome, "size": w.size, "detail": w.detail}
            for w in r.witnesses
        ],
    }


@click.command(
    help="Sync the forum into a local SQLite copy, verifying every entry, the "
    "checkpoint and the root before anything is written. With --follow, keep "
    "applying new entries as they commit (Ctrl-C to stop). When the forum names "
    "witnesses, a checkpoint needs a quorum of fresh cosignatures; if the forum's log "
    "has grown beyond the last checkpoint a quorum cosigned, the copy stays there and "
    "the command exits 7 naming the witnesses that did not cosign."
)
@DB_OPTION
@click.option("--follow", is_flag=True, help="Keep the stream open and apply new entries.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print results as JSON (one object per commit with --follow).",
)
@click.option(
    "--no-progress",
    is_flag=True,
    help="No progress bar on stderr (there is none when stderr is not a terminal, or with "
    "forum-client --quiet).",
)
@click.option(
    "--commit-every",
    type=click.IntRange(min=1),
    default=COMMIT_EVERY_ROWS,
    show_default=True,
    help="Rows staged before a verified intermediate commit (at least: once the copy "
    f"outgrows its page cache, a step also stages {ROWS_PER_COPY_PAGE} rows per page of the "
    "copy).",
)
@click.option(
    "--cache-mib",
    type=click.IntRange(min=1),
    default=CACHE_MIB,
    show_default=True,
    help="SQLite page cache of the local copy, in MiB (a bound: the sync's memory does not "
    "grow with the copy).",
)
@click.option(
    "--signature-threads",
    type=click.IntRange(min=0),
    default=None,
    help="Threads that check entry signatures ahead of the in-order apply "
    "(default: one per CPU; 0: every signature checked inline).",
)
@click.option(
    "--witness-freshness",
    "witness_freshness",
    type=click.IntRange(min=1, max=MAX_WITNESS_FRESHNESS_SECONDS),
    default=WITNESS_FRESHNESS_SECONDS,
    show_default=True,
    metavar="SECONDS",
    help="Witness cosignatures older than this many seconds do not count toward the "
    "quorum (a forum whose witnesses stopped cosigning is refused after this long).",
)
@click.pass_context
def sync(
    ctx: click.Context,
    db: Path,
    follow: bool,
    as_json: bool,
    no_progress: bool,
    commit_every: int,
    cache_mib: int,
    signature_threads: int | None,
    witness_freshness: int,
) -> None:
    from .cli_context import show_progress
    from .source import GrpcSource
    from .store import LocalStore
    from .sync import SyncConfig, Syncer

    client = client_from(ctx)
    bar = _ProgressBar(not no_progress and not as_json and show_progress(ctx))

    # In follow mode a result counts the entries since the follow began, so the incident
    # events of a round start where the previous round ended (none is printed twice).
    shown_to: list[int] = []

    def report(r: SyncResult) -> None:
        bar.done()
        start = shown_to[-1] if shown_to else r.size - r.entries
        shown_to[:] = [r.size]
        if follow and r.size > start:  # incident events first: what a follower needs
            from .cli_governance import incident_events

            with LocalStore(db) as reader:
                for event in incident_events(reader, start, r.size):
                    if as_json:
                        click.echo(json.dumps(event))
                    else:
                        what = event["title"] or event["text"]
                        click.echo(
                            f"INCIDENT {event['incident_id']} {event['stage']}: {what} "
                            f"(label {event['label']}, log index {event['index']})"
                        )
        if as_json:
            click.echo(json.dumps(_result_doc(r)))
        else:
            click.echo(
                f"synced: {r.size} entries verified (+{r.entries} entries, "
                f"+{r.signals} signals in {r.seconds:.1f}s), root {r.root.hex()[:16]}"
            )
        if r.flagged_times:
            shown = ", ".join(str(i) for i in r.flagged_times[:10])
            click.echo(
                f"warning: {len(r.flagged_times)} entries claim an impossible creation time "
                f"(before 1970 or in the future), at log indexes {shown}; they verify, but the "
                "forum's server should have refused them",
                err=True,
            )
        if not as_json:
            for w in r.witnesses:
                held = "" if w.size is None else f" (holds size {w.size})"
                click.echo(f"  witness {w.name}: {w.outcome}{held} {w.detail}".rstrip())

    with LocalStore(db, cache_mib=cache_mib) as store:
        syncer = Syncer(
            GrpcSource(client.stub, client.timeout),
            store,
            client.trust_root,
            SyncConfig(
                commit_every_rows=commit_every,
                signature_threads=signature_threads,
                witness_max_age_seconds=witness_freshness,
            ),
            progress=bar,
            reader=client.bundle.member_id,
        )
        if not follow:
            try:
                result = syncer.gossip(syncer.sync())
            finally:
                bar.done()
            report(result)
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            syncer.stop()

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            syncer.follow(report)
        except KeyboardInterrupt:
            syncer.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            bar.done()


@click.command(
    help="Re-verify a local copy offline: every signature (replaying the log), "
    "the root against the stored signed checkpoint, and every view row "
    "recomputed and compared. Exit 5 if anything was tampered with."
)
@COPY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def verify(ctx: click.Context, db: Path, as_json: bool) -> None:
    from .store import LocalStore, verify_store

    root = bundle_from(ctx).trust_root if ctx.obj.get("profile") is not None else None
    with LocalStore(db) as store:
        report = verify_store(store, root)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "size": report.size,
                    "root": report.root.hex(),
                    "checkpoint_size": report.checkpoint_size,
                    "redacted": report.redacted,
                    "problems": list(report.problems),
                }
            )
        )
    else:
        for problem in report.problems:
            click.echo(f"TAMPERED {problem}")
        if report.ok:
            held = (
                f" ({report.redacted} redacted for you: leaf hash and author's scope claim)"
                if report.redacted
                else ""
            )
            click.echo(
                f"ok: {report.size} entries verified{held}, root {report.root.hex()[:16]} "
                f"matches signed checkpoint {report.checkpoint_size}"
            )
    if not report.ok:
        raise SecurityError(
            f"{db}: {len(report.problems)} problem(s) found; the copy does not match its "
            "verified log (delete it and sync again)"
        )


@click.command(
    "security-report",
    help="Show the security failures a sync found (and kept as evidence); "
    "--acknowledge lets syncs run again.",
)
@COPY_OPTION
@click.option("--acknowledge", is_flag=True, help="Mark every open failure as reviewed.")
@click.option("--all", "show_all", is_flag=True, help="Include acknowledged ones.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def security_report(db: Path, acknowledge: bool, show_all: bool, as_json: bool) -> None:
    from .cli_gossip import witness_summary
    from .store import LocalStore
    from .sync import LEAK

    with LocalStore(db) as store:
        items = store.evidence(include_acknowledged=show_all)
        acknowledged = store.acknowledge_evidence() if acknowledge else 0
        summary = witness_summary(store)
        redacted = store.redacted()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": x.id,
                        "detected_unix_ms": x.detected_unix_ms,
                        "what": x.what,
                        "index": x.entry_index,
                        "message": x.message,
                        "stored_checkpoint": (x.stored_checkpoint or b"").decode(
                            "utf-8", "replace"
                        ),
                        "served_checkpoint": (x.served_checkpoint or b"").decode(
                            "utf-8", "replace"
                        ),
                        "proof": [h.hex() for h in x.proof],
                        "entry": (x.entry or b"").hex(),
                        "acknowledged": x.acknowledged_unix_ms is not None,
                    }
                    for x in items
                ]
            )
        )
    else:
        if summary:
            click.echo(f"verified checkpoint {summary}")
        if not items:
            click.echo("no open security failures")
        for x in items:
            where = f" at index {x.entry_index}" if x.entry_index is not None else ""
            note = " (reported; does not block syncs)" if x.what == LEAK else ""
            click.echo(f"#{x.id} {x.what}{where}{note}: {x.message}")
            for label, cp in (("stored", x.stored_checkpoint), ("served", x.served_checkpoint)):
                if cp:
                    first = cp.decode("utf-8", "replace").splitlines()[:2]
                    click.echo(f"    {label} checkpoint: {' size '.join(first)}")
            if x.proof:
                click.echo(f"    proof: {len(x.proof)} hashes")
            if x.entry:
                click.echo(f"    offending entry: {len(x.entry)} bytes kept")
        if redacted:
            by_group = Counter(g for _, _, g, _ in redacted)
            groups = ", ".join(f"{g} ({n})" for g, n in sorted(by_group.items()))
            click.echo(
                f"{len(redacted)} entries held redacted (verified: leaf hash and the author's "
                f"scope claim, for groups you were not in): {groups}"
            )
    if acknowledge:
        click.echo(f"acknowledged {acknowledged}; syncs may run again", err=True)


COMMANDS = (sync, verify, security_report)
