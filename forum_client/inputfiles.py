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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


class _BadLine(Exception):
    """A line that cannot be read as a signal; reading goes on with the next line."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.violation = Violation(where, reason)


def _rows(stream: IO[str], fmt: str, name: str) -> Iterator[tuple[str, dict[str, Any] | _BadLine]]:
    """``(FILE:LINE, row)`` per signal row, or ``(FILE:LINE, _BadLine)`` for a row that is not
    one; a bad header (or broken CSV quoting, after which no line number can be trusted)
    raises InvalidInputError."""
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
                    yield (
                        where,
                        _BadLine(
                            where,
                            f"{len(header) + len(row[None])} fields, the header has {len(header)}",
                        ),
                    )
                    continue
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
                yield where, _BadLine(where, f"not JSON: {exc}")
                continue
            except RecursionError:  # "[[[[...": json's decoder recurses per level
                yield where, _BadLine(where, "not JSON: nested too deeply")
                continue
            if not isinstance(doc, dict):
                yield where, _BadLine(where, "each line must be a JSON object with type and value")
                continue
            unknown = [k for k in doc if k not in COLUMNS]
            if unknown:
                yield (
                    where,
                    _BadLine(
                        where,
                        f"unknown key(s) {', '.join(unknown)}: the keys are {', '.join(COLUMNS)}",
                    ),
                )
                continue
            yield where, doc
    else:
        raise InvalidInputError.field("format", f"{fmt!r}: one of {', '.join(FORMATS)}")


def _signals(stream: IO[str], fmt: str, name: str) -> Iterator[tuple[str, SignalItem | _BadLine]]:
    for where, row in _rows(stream, fmt, name):
        if isinstance(row, _BadLine):
            yield where, row
        elif not row.get("type") or not row.get("value"):
            yield where, _BadLine(where, "type and value are required")
        else:
            try:
                yield where, normalize_item(row, where)
            except InvalidInputError as exc:
                v = exc.violations[0] if exc.violations else Violation(where, str(exc))
                yield where, _BadLine(v.field, v.reason)


def read_signals(stream: IO[str], fmt: str, *, name: str = "input") -> Iterator[SignalItem]:
    """Yield normalised signals from ``stream``; raise InvalidInputError at the first bad
    line, naming ``name:LINE`` and the field."""
    for _, item in read_signals_at(stream, fmt, name=name):
        yield item


def read_signals_at(
    stream: IO[str], fmt: str, *, name: str = "input"
) -> Iterator[tuple[str, SignalItem]]:
    """:func:`read_signals`, each signal with its ``name:LINE``."""
    for where, item in _signals(stream, fmt, name):
        if isinstance(item, _BadLine):
            raise _bad(item.violation.field, item.violation.reason)
        yield where, item


@dataclass(frozen=True)
class FileCheck:
    """What :func:`check_signals` found: the signals, the labels they use, every bad line."""

    signals: int
    labels: frozenset[str]
    bad_lines: int
    problems: tuple[Violation, ...]  # the first MAX_REPORTED_LINES bad lines

    def raise_if_bad(self, name: str) -> None:
        if self.bad_lines:
            shown = len(self.problems)
            more = f" (the first {shown} shown)" if shown < self.bad_lines else ""
            raise InvalidInputError(
                f"{name}: {self.bad_lines} bad line(s){more}; nothing was submitted",
                list(self.problems),
            )


MAX_REPORTED_LINES = 100
MAX_DISTINCT_LABELS = 10_000


def check_signals(
    stream: IO[str],
    fmt: str,
    *,
    name: str = "input",
    known_labels: Callable[[str], bool] | None = None,
) -> FileCheck:
    """Read the whole of ``stream`` once, in constant memory, and report every bad line.

    ``known_labels`` (if given) says whether a label may be used; unknown ones are bad lines.
    Raises InvalidInputError only for a bad header or broken CSV quoting.
    """
    count = bad = 0
    labels: set[str] = set()
    problems: list[Violation] = []

    def report(v: Violation) -> None:
        nonlocal bad
        bad += 1
        if len(problems) < MAX_REPORTED_LINES:
            problems.append(v)

    for where, item in _signals(stream, fmt, name):
        if isinstance(item, _BadLine):
            report(item.violation)
            continue
        count += 1
        for label in item.labels:
            if known_labels is not None and not known_labels(label):
                report(Violation(f"{where}", f"label {label!r} is not in the forum's taxonomy"))
                break
            if len(labels) < MAX_DISTINCT_LABELS:
                labels.add(label)
    if count == 0 and not bad:
        report(Violation(name, "holds no signals"))
    return FileCheck(count, frozenset(labels), bad, tuple(problems))
