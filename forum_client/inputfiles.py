"""Reading signals from CSV and JSON Lines files, streamed, with line numbers in every error.

CSV: a header row naming the columns ``type,value`` and optionally ``labels`` (``;``-separated
label ids), ``content_type`` and ``quality``.  JSON Lines: one object per line with the same
keys (``labels`` a list or a ``;``-separated string); blank lines are skipped.  Every value is
normalised as it is read, so a bad one is reported as ``FILE:LINE``.

>>> import io
>>> rows = read_signals(io.StringIO("type,value,labels\\nmd5,D41D8CD98F00B204E9800998ECF8427E,"
...                                 "entity:isil\\n"), "csv", name="in.csv")
>>> next(rows).value
'd41d8cd98f00b204e9800998ecf8427e'
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .client import normalize_item
from .entries import SignalItem
from .errors import InvalidInputError, Violation

FORMATS = ("csv", "jsonl")
MAX_LINE_CHARS = 1024 * 1024
"""The longest input line read (a signal row is far below it); a longer one is an error, so
a file with one huge line never has to fit in memory."""
COLUMNS = ("type", "value", "labels", "content_type", "quality")


def detect_format(path: Path) -> str:
    """``csv`` for ``*.csv``, ``jsonl`` for ``*.jsonl``/``*.ndjson``/``*.json``."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise InvalidInputError.field(
        "input", f"{path}: cannot tell the format from the name; use --format csv|jsonl"
    )


def _bad(where: str, reason: str) -> InvalidInputError:
    return InvalidInputError(f"{where}: {reason}", [Violation(where, reason)])


def bounded_lines(stream: IO[str], name: str, limit: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The lines of ``stream``, each read with at most ``limit`` characters in memory.

    Raises:
        InvalidInputError: ``name:LINE``, for a line longer than ``limit`` characters.
    """
    number = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit:
            raise _bad(
                f"{name}:{number}",
                f"line longer than {limit:,} characters (is this the right file and format?)",
            )
        yield line


def _rows(stream: IO[str], fmt: str, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if fmt == "csv":
        reader = csv.DictReader(bounded_lines(stream, name))
        try:
            header = [h.strip().lower() for h in reader.fieldnames or []]
            missing = [c for c in ("type", "value") if c not in header]
            if missing:
                raise _bad(
                    f"{name}:1",
                    f"the CSV header must name the columns type,value "
                    f"(missing {', '.join(missing)}; optional: "
                    f"labels, content_type, quality)",
                )
            unknown = [h for h in header if h not in COLUMNS]
            if unknown:
                raise _bad(
                    f"{name}:1",
                    f"unknown column(s) {', '.join(unknown)}: the columns are {', '.join(COLUMNS)}",
                )
            reader.fieldnames = header
            for row in reader:
                where = f"{name}:{reader.line_num}"
                if None in row:
                    raise _bad(
                        where,
                        f"{len(header) + len(row[None])} fields, the header has {len(header)}",
                    )
                yield where, row
        except csv.Error as exc:  # e.g. a stray carriage return, an oversize field
            raise _bad(f"{name}:{reader.line_num}", f"not valid CSV: {exc}") from None
    elif fmt == "jsonl":
        for number, line in enumerate(bounded_lines(stream, name), 1):
            if not line.strip():
                continue
            where = f"{name}:{number}"
            try:
                doc = json.loads(line)
            except ValueError as exc:
                raise _bad(where, f"not JSON: {exc}") from None
            if not isinstance(doc, dict):
                raise _bad(where, "each line must be a JSON object with type and value")
            unknown = [k for k in doc if k not in COLUMNS]
            if unknown:
                raise _bad(
                    where, f"unknown key(s) {', '.join(unknown)}: the keys are {', '.join(COLUMNS)}"
                )
            yield where, doc
    else:
        raise InvalidInputError.field("format", f"{fmt!r}: one of {', '.join(FORMATS)}")


def read_signals(stream: IO[str], fmt: str, *, name: str = "input") -> Iterator[SignalItem]:
    """Yield normalised signals from ``stream``; raise InvalidInputError at the first bad
    line, naming ``name:LINE`` and the field."""
    for where, row in _rows(stream, fmt, name):
        if not row.get("type") or not row.get("value"):
            raise _bad(where, "type and value are required")
        try:
            yield normalize_item(row, where)
        except InvalidInputError as exc:
            v = exc.violations[0] if exc.violations else Violation(where, str(exc))
            raise _bad(v.field, v.reason) from None
