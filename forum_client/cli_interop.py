"""``forum-client export``: the verified local copy in the formats other tools read, and the
``submit --format stix|misp`` import helper (a thin shell over :mod:`forum_client.interop`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from .cli_files import LOCAL_COPY, OUTPUT_FILE_OR_DIR
from .errors import InvalidInputError

if TYPE_CHECKING:  # loaded when a command runs, so that --help stays light
    from .interop.export import ExportResult
    from .interop.importing import ImportResult

# interop.export.FORMATS + DIRECTORY_FORMATS (a test keeps them equal), here so that --help
# stays light.
FORMATS = ("csv", "jsonl", "stix", "misp", "misp-feed")


class _Progress:
    """A self-rewriting count on stderr (``enabled``: only when stderr is a terminal) and the
    closing summary line (``chatty``: unless --quiet)."""

    def __init__(self, enabled: bool, chatty: bool = True) -> None:
        self.enabled = enabled
        self.chatty = chatty
        self.started = time.monotonic()

    def __call__(self, count: int) -> None:
        if self.enabled:
            rate = count / max(time.monotonic() - self.started, 1e-9)
            click.echo(f"\rexported {count:,} signals, {rate:,.0f}/s", err=True, nl=False)


@click.command(
    "export",
    help="Export the verified local copy (--db, filled by `forum-client sync`) as CSV, JSON "
    "Lines, a STIX 2.1 bundle, a MISP event or a MISP feed directory (misp-feed: "
    "manifest.json, the event file and hashes.csv; needs -o DIR), streamed (flat memory "
    "at millions of signals), with the forum's provenance: origin, log indexes, and the "
    "verified log size and root. Retracted signals are left out unless --include-retracted. "
    "Reads only the local copy: run `forum-client sync` first for the latest state.",
)
@click.option(
    "--db",
    "db",
    required=True,
    type=LOCAL_COPY,
    help="The local SQLite copy.",
)
@click.option(
    "--format", "fmt", required=True, type=click.Choice(FORMATS), help="The output format."
)
@click.option(
    "--since",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Only signals changed by a log entry at or after this index.",
)
@click.option(
    "--include-retracted",
    is_flag=True,
    help="Also export retracted signals (STIX revoked, MISP deleted, status column).",
)
@click.option(
    "--output",
    "-o",
    type=OUTPUT_FILE_OR_DIR,
    help="Write to this file (default: standard output), or for misp-feed this directory "
    "(new, or a feed this command wrote, which is replaced). Written to FILE.partial, then "
    "renamed, so an interrupted export never leaves a truncated FILE.",
)
@click.option(
    "--quiet",
    is_flag=True,
    help="Nothing on stderr but errors (the progress line is shown only on a terminal anyway).",
)
@click.pass_context
def export_command(
    ctx: click.Context,
    db: Path,
    fmt: str,
    since: int,
    include_retracted: bool,
    output: Path | None,
    quiet: bool,
) -> None:
    from .cli_context import show_progress

    chatty = not quiet and not (ctx.find_root().obj or {}).get("quiet")
    # the count rewrites itself on a terminal's stderr, unless the export itself goes there
    live = chatty and show_progress(ctx) and (output is not None or not sys.stdout.isatty())
    progress = _Progress(live, chatty)
    from .interop.export import export
    from .store import LocalStore

    if fmt == "misp-feed":
        result = _export_feed(db, output, since, include_retracted, progress)
        _report(result, fmt, progress)
        return
    if output is not None and output.is_dir():
        raise InvalidInputError.field("output", f"{output} is a directory (only misp-feed is)")
    with LocalStore(db) as store:
        if output is None:
            result = export(
                store,
                sys.stdout,
                fmt,
                since=since,
                include_retracted=include_retracted,
                progress=progress,
            )
        else:
            partial = output.with_name(output.name + ".partial")
            try:
                with partial.open("w", encoding="utf-8", newline="") as out:
                    result = export(
                        store,
                        out,
                        fmt,
                        since=since,
                        include_retracted=include_retracted,
                        progress=progress,
                    )
                partial.replace(output)
            finally:
                partial.unlink(missing_ok=True)
    _report(result, fmt, progress)


def _report(result: ExportResult, fmt: str, progress: _Progress) -> None:
    if progress.enabled:
        click.echo("", err=True)
    if not progress.chatty:
        return
    click.echo(
        f"exported {result.signals:,} signals ({result.objects:,} {fmt} objects) from "
        f"{result.provenance.origin} at verified log size {result.provenance.log_size}",
        err=True,
    )


def _export_feed(
    db: Path, output: Path | None, since: int, include_retracted: bool, progress: _Progress
) -> ExportResult:
    """Write the feed into DIR.partial, then put it in DIR's place (replacing a feed that
    an earlier export wrote there, never anything else)."""
    import shutil

    from .interop.export import export_feed
    from .interop.misp import FEED_FILES
    from .store import LocalStore

    if output is None:
        raise InvalidInputError.field("output", "misp-feed writes a directory: give -o DIR")
    if output.exists():
        names = {p.name for p in output.iterdir()} if output.is_dir() else None
        if names is None or not (not names or set(FEED_FILES) <= names):
            raise InvalidInputError.field(
                "output", f"{output} exists and is not a MISP feed this command wrote"
            )
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with LocalStore(db) as store:
            result = export_feed(
                store, partial, since=since, include_retracted=include_retracted,
                progress=progress,
            )  # fmt: skip
        if output.exists():
            shutil.rmtree(output)
        partial.rename(output)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return result


def read_import(path: Path, fmt: str) -> ImportResult:
    """Read a STIX bundle or MISP event for ``submit --format stix|misp``."""
    if fmt == "stix":
        from .interop.stix import read_stix

        return read_stix(path)
    from .interop.misp import read_misp

    return read_misp(path)


def report_import(result: ImportResult, out: IO[str] | None = None) -> None:
    """Print per object what was skipped and why, and the label notes, on stderr."""
    for item in result.skipped:
        click.echo(f"skipped {item.object}: {item.reason}", err=True, file=out)
    for item in result.notes:
        click.echo(f"note {item.object}: {item.reason}", err=True, file=out)
    click.echo(
        f"{result.objects} indicator object(s): {len(result.signals)} signal(s) to submit, "
        f"{len(result.skipped)} skipped",
        err=True,
        file=out,
    )


COMMANDS = [export_command]
