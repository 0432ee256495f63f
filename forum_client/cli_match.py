"""``forum-client match`` and ``forum-client hash``: local matching, nothing leaves the member.

Every result is one JSON object per line (JSON Lines), so output streams into other tools.
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from .cli_context import show_progress
from .cli_files import LOCAL_COPY, MEDIA_FILE
from .cli_types import SIGNAL_TYPE, FiniteRange, signal_option
from .errors import InvalidInputError
from .match.extra import DEFAULT_MIN_QUALITY
from .match.video import DEFAULT_SECONDS_PER_HASH

if TYPE_CHECKING:
    from .match.lookup import Matcher, MatchResult
    from .match.media import MediaHashes
    from .store import LocalStore

# The library's defaults (match.pdq_index.DEFAULT_THRESHOLD, match.video_index.DEFAULT_*_MATCH;
# a test keeps them equal), written here so that --help and hash need neither numpy nor SQLite.
DEFAULT_THRESHOLD = 31
DEFAULT_QUERY_MATCH = 80.0
DEFAULT_COMPARED_MATCH = 80.0


def _emit(doc: dict[str, Any]) -> None:
    click.echo(json.dumps(doc, separators=(",", ":")))


def _hash_with_progress(path: Path, min_quality: int, seconds_per_hash: float) -> MediaHashes:
    """``hash_file`` with a progress bar on stderr for videos, when stderr is a terminal (and
    not with --quiet). A video whose container does not declare its frame count (Matroska,
    WebM, FLV, MPEG-TS) gets a bar that counts the frames decoded."""
    from .match.media import hash_file

    if not show_progress(click.get_current_context()):
        return hash_file(path, min_quality=min_quality, seconds_per_hash=seconds_per_hash)
    bar: Any = None
    try:

        def progress(done: int, expected: int) -> None:
            nonlocal bar
            if bar is None:
                label = f"hashing {path.name}"
                if expected:
                    bar = click.progressbar(length=expected, label=label, file=sys.stderr)
                else:  # an iterable of unknown length: click then shows the count
                    bar = click.progressbar(
                        itertools.count(), label=label, show_pos=True, file=sys.stderr
                    )
                bar.__enter__()
            bar.update(done - bar.pos)

        return hash_file(
            path, min_quality=min_quality, seconds_per_hash=seconds_per_hash, progress=progress
        )
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


_SECONDS_PER_HASH = click.option(
    "--seconds-per-hash",
    type=FiniteRange(0, 3600),
    default=DEFAULT_SECONDS_PER_HASH,
    show_default=True,
    help="Videos: hash one frame every this many seconds (vPDQ; 0 hashes every frame).",
)


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
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deeply
            doc = None
        if not isinstance(doc, dict):
            yield where, "", ""
            continue
        yield where, str(doc.get("type") or ""), str(doc.get("value") or "")


def _open_store(db: Path) -> LocalStore:
    from .store import LocalStore

    return LocalStore(db)  # checked while parsing (LOCAL_COPY)


@click.command(
    "match",
    help="Match your own content against your verified local copy (nothing is sent): one "
    "signal by --type/--value, many from --input (CSV with a type,value header or JSON Lines; "
    "streamed), or image/video FILES (hashed locally, then matched by MD5, SHA-256 and PDQ for "
    "images or vPDQ for videos). Prints one JSON line per query with its matches: each signal, "
    "its Hamming distance, every member's labels and content type, the opinion roll-up and "
    "incident tags; for vpdq also the percent of the query's frames matched and of the shared "
    "video's frames matched (both must reach --query-match and --compared-match). Retracted "
    "and benign-listed signals never match.",
)
@click.option(
    "--db",
    required=True,
    type=LOCAL_COPY,
    help="The local copy made by `forum-client sync` (its PDQ and video indexes are kept at "
    "FILE.pdqidx.npz and FILE.vpdqidx.npz, and rebuilt if missing or damaged).",
)
@click.option("--type", "type_", type=SIGNAL_TYPE, help="Signal type.")
@click.option(
    "--value",
    help="The signal's value (hex in any case; URLs in any spelling; vpdq: the JSON array of "
    "'hex,quality,timestamp' frames that `forum-client hash` prints).",
)
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
    help="PDQ and vPDQ frames: the largest Hamming distance that matches (inclusive).",
)
@click.option(
    "--query-match",
    type=FiniteRange(0, 100),
    default=DEFAULT_QUERY_MATCH,
    show_default=True,
    help="vPDQ: percent of the query's frames that must match frames of a shared video.",
)
@click.option(
    "--compared-match",
    type=FiniteRange(0, 100),
    default=DEFAULT_COMPARED_MATCH,
    show_default=True,
    help="vPDQ: percent of a shared video's frames that must match frames of the query.",
)
@click.option(
    "--min-quality",
    type=click.IntRange(0, 100),
    default=DEFAULT_MIN_QUALITY,
    show_default=True,
    help="FILES: drop PDQ hashes (images, video frames) of lower quality.",
)
@_SECONDS_PER_HASH
@click.argument("files", nargs=-1, type=MEDIA_FILE)
def match(
    db: Path,
    type_: str | None,
    value: str | None,
    input_path: Path | None,
    fmt: str | None,
    threshold: int,
    query_match: float,
    compared_match: float,
    min_quality: int,
    seconds_per_hash: float,
    files: tuple[Path, ...],
) -> None:
    modes = sum([bool(type_ or value), input_path is not None, bool(files)])
    if modes != 1:
        raise click.UsageError("give --type and --value, or --input FILE, or image FILES")
    if (type_ or value) and not (type_ and value):
        raise click.UsageError("--type and --value go together")
    from .match.lookup import Matcher

    if type_ and value:
        value = signal_option(type_, value).value
    shares = {"query_match": query_match, "compared_match": compared_match}
    with _open_store(db) as store, Matcher(store) as matcher:
        disputes = _disputes_by_signal(store)
        if type_ and value:
            results = matcher.match(type_, value, threshold, **shares)
            _emit({"type": type_, "value": value, "matches": [_json(r, disputes) for r in results]})
        elif input_path is not None:
            _match_input(matcher, input_path, fmt, threshold, shares, disputes)
        else:
            for path in files:
                hashes = _hash_with_progress(path, min_quality, seconds_per_hash)
                found = []
                for t, v in hashes.signals():
                    found += [
                        {"query_type": t, **_json(r, disputes)}
                        for r in matcher.match(t, v, threshold, **shares)
                    ]
                _emit({**hashes.to_json(), "matches": found})


Disputes = dict[tuple[str, str], list[dict[str, str]]]


def _disputes_by_signal(store: LocalStore) -> Disputes:
    out: Disputes = {}
    for d in store.disputes():
        out.setdefault((d.signal_type, d.signal_value), []).append(
            {"dispute_id": d.dispute_id, "status": d.status, "respondent": d.respondent}
        )
    return out


def _json(result: MatchResult, disputes: Disputes) -> dict[str, Any]:
    """A match as printed: with ``disputed`` (an open or answered dispute) and ``disputes``."""
    mine = disputes.get((result.type, result.value), [])
    unsettled = [d for d in mine if d["status"] in ("open", "kept")]
    return {**result.to_json(), "disputed": bool(unsettled), "disputes": mine}


def _match_input(
    matcher: Matcher,
    path: Path,
    fmt: str | None,
    threshold: int,
    shares: dict[str, float],
    disputes: Disputes,
) -> None:
    from .inputfiles import detect_format

    chosen = fmt or detect_format(path)
    errors = 0
    with path.open(newline="", encoding="utf-8") as stream:
        for where, type_, value in _queries(stream, chosen, str(path)):
            try:
                if not type_ or not value:
                    raise InvalidInputError.field("input", "each row needs a type and a value")
                results = matcher.match(type_, value, threshold, **shares)
            except InvalidInputError as exc:
                errors += 1
                _emit({"line": where, "type": type_, "value": value, "error": str(exc)})
                continue
            _emit({"type": type_, "value": value, "matches": [_json(r, disputes) for r in results]})
    if errors:
        raise InvalidInputError.field(
            "input", f"{errors} row(s) could not be matched (each printed with its error)"
        )


@click.command(
    "hash",
    help="Hash media files locally (nothing is sent): one JSON line per file with path, kind, "
    "md5, sha256; for images pdq and its quality; for videos vpdq (one PDQ-hashed frame every "
    "--seconds-per-hash seconds, as a JSON array of 'hex,quality,timestamp' frames that "
    "`forum-client submit --type vpdq --value` takes) and the number of frames kept. PDQ and "
    "vPDQ need the optional media extra (pip install 'shared-signal-forum[media]').",
)
@click.option(
    "--min-quality",
    type=click.IntRange(0, 100),
    default=DEFAULT_MIN_QUALITY,
    show_default=True,
    help="Drop PDQ hashes (images, video frames) of lower quality (an image's pdq is then null; "
    "quality says why).",
)
@_SECONDS_PER_HASH
@click.argument("files", nargs=-1, required=True, type=MEDIA_FILE)
def hash_(min_quality: int, seconds_per_hash: float, files: tuple[Path, ...]) -> None:
    failed = 0
    for path in files:
        try:
            _emit(_hash_with_progress(path, min_quality, seconds_per_hash).to_json())
        except InvalidInputError as exc:  # one undecodable image does not stop the rest
            failed += 1
            _emit({"path": str(path), "error": str(exc)})
    if failed:
        raise InvalidInputError.field("files", f"{failed} file(s) could not be hashed")


COMMANDS: list[click.Command] = [match, hash_]
"""Registered on the ``forum-client`` group by :mod:`forum_client.cli`."""

__all__ = ["COMMANDS"]
