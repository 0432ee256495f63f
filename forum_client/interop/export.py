"""``forum-client export``: the verified local copy as CSV, JSON Lines, STIX 2.1, a MISP event
or a MISP feed directory.

Streamed: :meth:`LocalStore.scan <forum_client.store.LocalStore.scan>` reads one page of
signals at a time and each writer writes as it goes, so memory stays flat at millions of
signals (``scripts/bench export`` measures it).  Every format carries the forum's provenance:
the origin, each signal's log indexes, and the verified log size and root the export was read
at (with the signed checkpoint note the copy verified).

>>> import io, tempfile, pathlib
>>> from forum_client.store import LocalStore
>>> with tempfile.TemporaryDirectory() as d, LocalStore(pathlib.Path(d) / "f.db") as store:
...     export(store, io.StringIO(), "csv")
Traceback (most recent call last):
...
forum_client.errors.StoreError: ...f.db has never been synced: run forum-client sync first

Raises :class:`~forum_client.errors.StoreError` for a copy that was never synced or cannot be
read, :class:`~forum_client.errors.InvalidInputError` for an unknown format or a negative
``since``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import InvalidInputError, StoreError
from ..store import LocalStore
from ..store.scan import SignalRecord
from .provenance import Provenance

FORMATS = ("csv", "jsonl", "stix", "misp")
"""Formats written to one stream (:func:`export`)."""
DIRECTORY_FORMATS = ("misp-feed",)
"""Formats written to a directory (:func:`export_feed`)."""


def provenance(store: LocalStore) -> Provenance:
    """The provenance of ``store`` now.  Raises StoreError if it was never synced."""
    root = store.trust_root()
    state = store.sync_state()
    if root is None or state.checkpoint_note is None or state.size == 0:
        raise StoreError(f"{store.path} has never been synced: run forum-client sync first")
    return Provenance(
        root.origin,
        state.size,
        state.compact_range.root().hex(),
        state.checkpoint_note.decode("utf-8", "replace"),
        store.now_ms(),
    )


@dataclass(frozen=True)
class ExportResult:
    signals: int
    """Signals written."""
    objects: int
    """Objects written (STIX: indicators, identities and opinions; otherwise = signals)."""
    provenance: Provenance


Writer = Callable[[Iterator[SignalRecord], IO[str], Provenance], int]


def record_doc(record: SignalRecord) -> dict[str, Any]:
    """One signal as a flat JSON object (the JSON Lines row; CSV joins the lists with ``;``)."""
    s = record.signal
    active = [d for d in s.descriptors if d.active]
    labels = s.labels
    return {
        "type": s.type,
        "value": s.value,
        "status": s.status,
        "benign": record.benign,
        "labels": list(labels),
        "incidents": [x for x in labels if x.startswith("incident:")],
        "content_types": sorted({d.content_type for d in active if d.content_type}),
        "members": [d.member_id for d in active],
        "quality": max((d.quality for d in active if d.quality is not None), default=None),
        "scopes": sorted({d.scope for d in active if d.scope}),
        "tlp": sorted({d.tlp for d in active if d.tlp}),
        "opinions": {
            "positive": s.rollup.positive,
            "negative": s.rollup.negative,
            "seen": s.rollup.seen,
            "verdict": s.rollup.verdict,
        },
        "first_index": s.first_index,
        "last_index": record.last_index,
    }


_CSV_COLUMNS = (
    "type",
    "value",
    "status",
    "benign",
    "labels",
    "incidents",
    "content_types",
    "members",
    "quality",
    "scopes",
    "tlp",
    "positive",
    "negative",
    "seen",
    "verdict",
    "first_index",
    "last_index",
    "origin",
    "log_size",
    "root",
)


def write_csv(records: Iterator[SignalRecord], out: IO[str], prov: Provenance) -> int:
    """CSV with a header row; list columns are ``;``-separated."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    count = 0
    for record in records:
        doc = record_doc(record)
        opinions = doc.pop("opinions")
        doc.update(opinions)
        doc.update(origin=prov.origin, log_size=prov.log_size, root=prov.root)
        row = []
        for column in _CSV_COLUMNS:
            value = doc[column]
            if isinstance(value, list):
                value = ";".join(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            elif value is None:
                value = ""
            row.append(value)
        writer.writerow(row)
        count += 1
    return count


def write_jsonl(records: Iterator[SignalRecord], out: IO[str], prov: Provenance) -> int:
    """A first line ``{"provenance": {...}}``, then one signal object per line."""
    out.write(json.dumps({"provenance": prov.__dict__}, sort_keys=True) + "\n")
    encode = json.JSONEncoder(separators=(",", ":")).encode
    count = 0
    for record in records:
        out.write(encode(record_doc(record)) + "\n")
        count += 1
    return count


def _writer(fmt: str) -> Writer:
    if fmt == "csv":
        return write_csv
    if fmt == "jsonl":
        return write_jsonl
    if fmt == "stix":
        from .stix import write_stix

        return write_stix
    if fmt == "misp":
        from .misp import write_misp

        return write_misp
    raise InvalidInputError.field("format", f"{fmt!r}: one of {', '.join(FORMATS)}")


def export(
    store: LocalStore,
    out: IO[str],
    fmt: str,
    *,
    since: int = 0,
    include_retracted: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Write the signals of ``store`` to ``out`` in ``fmt`` (one of :data:`FORMATS`).

    ``since``: only signals changed by an entry at or after that log index.  Retracted
    signals are left out unless ``include_retracted`` (STIX: ``revoked``; MISP: ``deleted``;
    CSV/JSON Lines: ``status``).  ``progress`` is called with the running signal count.
    """
    writer = _writer(fmt)
    prov, counter, records = _read(store, since, include_retracted, progress)
    objects = writer(records, out, prov)
    return ExportResult(counter.count, objects, prov)


def export_feed(
    store: LocalStore,
    directory: Path,
    *,
    since: int = 0,
    include_retracted: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Write the signals of ``store`` as a MISP feed into the existing, empty ``directory``
    (:func:`forum_client.interop.misp.write_misp_feed`); the options are :func:`export`'s."""
    from .misp import write_misp_feed

    prov, counter, records = _read(store, since, include_retracted, progress)
    objects = write_misp_feed(records, directory, prov)
    return ExportResult(counter.count, objects, prov)


def _read(
    store: LocalStore, since: int, include_retracted: bool, progress: Callable[[int], None] | None
) -> tuple[Provenance, _Counter, Iterator[SignalRecord]]:
    if type(since) is not int or since < 0:
        raise InvalidInputError.field("since", f"must be a log index >= 0, got {since!r}")
    prov = provenance(store)
    counter = _Counter(progress)
    records = counter.wrap(store.scan(since=since, include_retracted=include_retracted))
    return prov, counter, records


class _Counter:
    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.count = 0
        self.progress = progress

    def wrap(self, records: Iterator[SignalRecord]) -> Iterator[SignalRecord]:
        for record in records:
            self.count += 1
            if self.progress is not None and self.count % 10_000 == 0:
                self.progress(self.count)
            yield record
        if self.progress is not None:
            self.progress(self.count)


__all__ = [
    "DIRECTORY_FORMATS",
    "FORMATS",
    "ExportResult",
    "Provenance",
    "export",
    "export_feed",
    "provenance",
    "record_doc",
    "write_csv",
    "write_jsonl",
]
