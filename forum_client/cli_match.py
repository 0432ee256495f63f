"""``forum-client match`` and ``forum-client hash``: local matching, nothing leaves the member.

Every result is one JSON object per line (JSON Lines), so output streams into other tools.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from .cli_types import SIGNAL_TYPE, signal_option
from .errors import InvalidInputError

if TYPE_CHECKING:
    from .match.lookup import Matcher
    from .store import LocalStore

# The library's defaults (match.pdq_index.DEFAULT_THRESHOLD, match.media.DEFAULT_MIN_QUALITY;
# a test keeps them equal), written here so that --help needs neither numpy nor SQLite.
DEFAULT_THRESHOLD = 31
DEFAULT_MIN_QUALITY = 50


def _emit(doc: dict[str, Any]) -> None:
    click.echo(json.dumps(doc, separators=(",", ":")))


def _queries(stream: IO[str], fmt: str, name: str) -> Iterator[tuple[str, str, str]]:
    """``(where, type, value)`` per row of a CSV (header naming type and value; other
    columns ignored) or JSON Lines file, streamed."""
    if fmt == "csv":
        reader = csv.DictReader(stream)
        header = [h.strip().lower() for h in reader.fieldnames or []]
        if "type" not in header or "value" not in header:
            raise InvalidInputError.field(f"{name}:1", "the CSV header must name type and value")
        reader.fieldnames = header
        for row in reader:
            yield (
                f"{name}:{reader.line_num}",
                str(row.get("type") or ""),
                str(row.get("value") or ""),
            )
        return
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            doc = json.loads(line)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            yield where, "", ""
            continue
        yield where, str(doc.get("type") or ""), str(doc.get("value") or "")


def _open_store(db: Path) -> LocalStore:
    from .store import LocalStore

    if not db.is_file():
        raise click.UsageError(f"no local copy at {db} (run `forum-client sync --db {db}`)")
    return LocalStore(db)


@click.command(
    "match",
    help="Match your own content against your verified local copy (nothing is sent): one "
    "signal by --type/--value, many from --input (CSV with a type,value header or JSON Lines; "
    "streamed), or image/video FILES (hashed locally, then matched by PDQ, MD5 and SHA-256). "
    "Prints one JSON line per query with its matches: each signal, its Hamming distance, every "
    "member's labels and content type, the opinion roll-up and incident tags. Retracted and "
    "benign-listed signals never match.",
)
@click.option(
    "--db",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The local copy made by `forum-client sync` (its PDQ index is kept at FILE.pdqidx.npz).",
)
@click.option("--type", "type_", type=SIGNAL_TYPE, help="Signal type.")
@click.option("--value", help="The signal's value (hex in any case; URLs in any spelling).")
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Many queries: a CSV with columns type,value or JSON Lines of {type, value}.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    help="Format of --input (default: from the file name).",
)
@click.option(
    "--threshold",
    type=click.IntRange(0, 256),
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="PDQ: the largest Hamming distance that matches (inclusive).",
)
@click.option(
    "--min-quality",
    type=click.IntRange(0, 100),
    default=DEFAULT_MIN_QUALITY,
    show_default=True,
    help="FILES: drop PDQ hashes of lower quality (then only MD5/SHA-256 are matched).",
)
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False, exists=True))
def match(
    db: Path,
    type_: str | None,
    value: str | None,
    input_path: Path | None,
    fmt: str | None,
    threshold: int,
    min_quality: int,
    files: tuple[Path, ...],
) -> None:
    modes = sum([bool(type_ or value), input_path is not None, bool(files)])
    if modes != 1:
        raise click.UsageError("give --type and --value, or --input FILE, or image FILES")
    if (type_ or value) and not (type_ and value):
        raise click.UsageError("--type and --value go together")
    from .match.lookup import Matcher
    from .match.media import hash_file

    if type_ and value:
        value = signal_option(type_, value).value
    with _open_store(db) as store, Matcher(store) as matcher:
        if type_ and value:
            results = matcher.match(type_, value, threshold)
            _emit({"type": type_, "value": value, "matches": [r.to_json() for r in results]})
        elif input_path is not None:
            _match_input(matcher, input_path, fmt, threshold)
        else:
            for path in files:
                hashes = hash_file(path, min_quality=min_quality)
                found = []
                for t, v in hashes.signals():
                    found += [
                        {"query_type": t, **r.to_json()} for r in matcher.match(t, v, threshold)
                    ]
                _emit({**hashes.to_json(), "matches": found})


def _match_input(matcher: Matcher, path: Path, fmt: str | None, threshold: int) -> None:
    from .inputfiles import detect_format

    chosen = fmt or detect_format(path)
    errors = 0
    with path.open(newline="", encoding="utf-8") as stream:
        for where, type_, value in _queries(stream, chosen, str(path)):
            try:
                if not type_ or not value:
                    raise InvalidInputError.field("input", "each row needs a type and a value")
                results = matcher.match(type_, value, threshold)
            except InvalidInputError as exc:
                errors += 1
                _emit({"line": where, "type": type_, "value": value, "error": str(exc)})
                continue
            _emit({"type": type_, "value": value, "matches": [r.to_json() for r in results]})
    if errors:
        raise InvalidInputError.field(
            "input", f"{errors} row(s) could not be matched (each printed with its error)"
        )


@click.command(
    "hash",
    help="Hash media files locally (nothing is sent): one JSON line per file with path, kind, "
    "md5, sha256, and for images pdq and its quality. PDQ needs the optional media extra "
    "(pip install 'shared-signal-forum[media]'); videos get MD5 and SHA-256 only.",
)
@click.option(
    "--min-quality",
    type=click.IntRange(0, 100),
    default=DEFAULT_MIN_QUALITY,
    show_default=True,
    help="Drop PDQ hashes of lower quality (pdq is then null; quality says why).",
)
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True)
)
def hash_(min_quality: int, files: tuple[Path, ...]) -> None:
    from .match.media import hash_file

    failed = 0
    for path in files:
        try:
            _emit(hash_file(path, min_quality=min_quality).to_json())
        except InvalidInputError as exc:  # one undecodable image does not stop the rest
            failed += 1
            _emit({"path": str(path), "error": str(exc)})
    if failed:
        raise InvalidInputError.field("files", f"{failed} file(s) could not be hashed")


COMMANDS: list[click.Command] = [match, hash_]
"""Registered on the ``forum-client`` group by :mod:`forum_client.cli`."""

__all__ = ["COMMANDS"]
