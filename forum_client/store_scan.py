"""Streaming reads of the whole view, for exports and exchanges (``LocalStore.scan`` and
``LocalStore.changed``).

A scan pages through ``signals`` in primary-key order, ``page`` signals at a time, and reads
the descriptors, opinions, retractions and benign rows of one page with one range query per
table (each table's primary key or index starts with ``(type, value)``), so memory stays at one
page whatever the size of the copy and the cost is a handful of queries per page, not per
signal.  Everything runs inside one read transaction: the scan sees one verified state.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import entries as e
from .envelope import Envelope
from .store import Descriptor, Rollup, Signal

DEFAULT_PAGE = 1000


@dataclass(frozen=True)
class OpinionRecord:
    """One member's latest opinion on a signal."""

    member_id: str
    kind: str
    note: str
    entry_index: int


@dataclass(frozen=True)
class SignalRecord:
    """A signal with everything the copy knows about it, for export.

    ``last_index`` is the log index of the last entry that changed it (submission, retraction,
    opinion or benign listing); ``benign`` says the operator lists it as known-benign.
    """

    signal: Signal
    opinions: tuple[OpinionRecord, ...]
    benign: bool
    last_index: int

    @property
    def deleted(self) -> bool:
        """Retracted or benign: a consumer that mirrors the forum should drop it."""
        return self.benign or not self.signal.active


_Key = tuple[str, str]


def scan(con: sqlite3.Connection, since: int, page: int) -> Iterator[SignalRecord]:
    """Every signal whose ``last_index >= since``, in ``(type, value)`` order."""
    after: _Key = ("", "")
    while True:
        rows = con.execute(
            "SELECT type, value, status, first_index FROM signals WHERE (type, value) > (?, ?) "
            "ORDER BY type, value LIMIT ?",
            (*after, page),
        ).fetchall()
        if not rows:
            return
        first: _Key = (rows[0][0], rows[0][1])
        last: _Key = (rows[-1][0], rows[-1][1])
        yield from _page_records(con, rows, first, last, since)
        after = last


def records(con: sqlite3.Connection, keys: Iterable[_Key]) -> Iterator[SignalRecord]:
    """The records of ``keys`` (signals the copy does not hold are skipped), in that order."""
    for key in keys:
        row = con.execute(
            "SELECT type, value, status, first_index FROM signals WHERE type = ? AND value = ?",
            key,
        ).fetchone()
        if row is not None:
            yield from _page_records(con, [row], key, key, 0)


def changed_keys(leaves: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, _Key]]:
    """``(index, (type, value))`` of every signal the entries in ``leaves`` touch."""
    for index, leaf in leaves:
        envelope = Envelope.from_leaf_bytes(leaf)
        if envelope.payload_type not in _TOUCHING:
            continue
        body = e.decode(envelope.payload_type, envelope.body)
        refs: Iterable[e.SignalItem | e.SignalRef]
        if isinstance(body, e.Submission | e.Retraction):
            refs = body.signals
        elif isinstance(body, e.Opinion):
            refs = (body.signal,)
        elif isinstance(body, e.BenignList):
            refs = itertools.chain(body.add, body.remove)
        else:  # pragma: no cover - filtered by payload type above
            continue
        for ref in refs:
            yield index, (ref.type, ref.value)


_TOUCHING = frozenset(
    payload_type
    for payload_type, cls in e.BODY_TYPES.items()
    if cls in (e.Submission, e.Retraction, e.Opinion, e.BenignList)
)


def _grouped(
    con: sqlite3.Connection, sql: str, first: _Key, last: _Key
) -> defaultdict[_Key, list[tuple[Any, ...]]]:
    out: defaultdict[_Key, list[tuple[Any, ...]]] = defaultdict(list)
    for row in con.execute(sql, (*first, *last)):
        out[(row[0], row[1])].append(tuple(row[2:]))
    return out


_RANGE = "WHERE (type, value) >= (?, ?) AND (type, value) <= (?, ?)"


def _page_records(
    con: sqlite3.Connection,
    rows: list[tuple[str, str, str, int]],
    first: _Key,
    last: _Key,
    since: int,
) -> Iterator[SignalRecord]:
    descriptors = _grouped(
        con,
        "SELECT type, value, member_id, labels, content_type, quality, scope, active, "
        f"entry_index FROM descriptors {_RANGE} ORDER BY type, value, member_id",
        first,
        last,
    )
    opinions = _grouped(
        con,
        f"SELECT type, value, member_id, kind, note, entry_index FROM opinions {_RANGE} "
        "ORDER BY type, value, member_id",
        first,
        last,
    )
    retracted = _grouped(
        con,
        f"SELECT type, value, MAX(entry_index) FROM retractions {_RANGE} GROUP BY type, value",
        first,
        last,
    )
    benign = _grouped(con, f"SELECT type, value, entry_index FROM benign {_RANGE}", first, last)
    for type_, value, status, first_index in rows:
        key = (type_, value)
        ds = tuple(
            Descriptor(str(m), tuple(json.loads(str(lb))), str(ct), q, str(sc), bool(a), int(i))
            for m, lb, ct, q, sc, a, i in descriptors.get(key, ())
        )
        ops = tuple(
            OpinionRecord(str(m), str(k), str(n), int(i)) for m, k, n, i in opinions.get(key, ())
        )
        positive = sum(o.kind == "agree" for o in ops)
        negative = sum(o.kind in ("disagree", "false_positive") for o in ops)
        seen = sum(o.kind == "seen" for o in ops)
        indexes = [int(first_index)]
        indexes += [d.entry_index for d in ds]
        indexes += [o.entry_index for o in ops]
        indexes += [int(r[0]) for r in retracted.get(key, ())]
        listed = benign.get(key)
        if listed:
            indexes.append(int(listed[0][0]))
        last_index = max(indexes)
        if last_index < since:
            continue
        signal = Signal(
            type_, value, status, int(first_index), ds, Rollup(positive, negative, seen)
        )
        yield SignalRecord(signal, ops, bool(listed), last_index)


__all__ = ["DEFAULT_PAGE", "OpinionRecord", "SignalRecord", "changed_keys", "records", "scan"]
