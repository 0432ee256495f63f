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

from .. import entries as e
from ..envelope import Envelope
from .records import Descriptor, Rollup, Signal

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
    """Every signal whose ``last_index >= since``, in ``(type, value)`` order.

    Pages never span two types, so each range query is ``type = ? AND value BETWEEN ? AND ?``,
    a prefix-and-range probe of each table's ``(type, value, ...)`` key (a row-value range
    over both columns was not used as an index range by SQLite: 4k signals/s).
    """
    types = [row[0] for row in con.execute("SELECT DISTINCT type FROM signals ORDER BY type")]
    for type_ in types:
        after = ""
        first_page = True
        while True:
            rows = con.execute(
                "SELECT type, value, status, first_index FROM signals "
                "WHERE type = ? AND value > ? ORDER BY value LIMIT ?"
                if not first_page
                else "SELECT type, value, status, first_index FROM signals "
                "WHERE type = ? AND value >= ? ORDER BY value LIMIT ?",
                (type_, after, page),
            ).fetchall()
            if not rows:
                break
            first_page = False
            yield from _page_records(con, rows, _RANGE, (type_, rows[0][1], rows[-1][1]), since)
            after = rows[-1][1]


def records(con: sqlite3.Connection, keys: Iterable[_Key]) -> Iterator[SignalRecord]:
    """The records of ``keys`` (signals the copy does not hold are skipped), by type and value,
    ``_IN_BATCH`` values of one type per query of each table (not a query per signal)."""
    by_type: defaultdict[str, set[str]] = defaultdict(set)
    for type_, value in keys:
        by_type[type_].add(value)
    for type_ in sorted(by_type):
        values = sorted(by_type[type_])
        for at in range(0, len(values), _IN_BATCH):
            batch = values[at : at + _IN_BATCH]
            where = f"WHERE type = ? AND value IN ({','.join('?' * len(batch))})"
            params = (type_, *batch)
            rows = con.execute(
                f"SELECT type, value, status, first_index FROM signals {where} ORDER BY value",
                params,
            ).fetchall()
            if rows:
                yield from _page_records(con, rows, where, params, 0)


_IN_BATCH = 500
"""Values bound in one ``IN (...)`` query (SQLite allows 32,766 parameters)."""


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
    con: sqlite3.Connection, sql: str, params: tuple[str, ...]
) -> defaultdict[_Key, list[tuple[Any, ...]]]:
    out: defaultdict[_Key, list[tuple[Any, ...]]] = defaultdict(list)
    for row in con.execute(sql, params):
        out[(row[0], row[1])].append(tuple(row[2:]))
    return out


_RANGE = "WHERE type = ? AND value BETWEEN ? AND ?"


def _page_records(
    con: sqlite3.Connection,
    rows: list[tuple[str, str, str, int]],
    where: str,
    params: tuple[str, ...],
    since: int,
) -> Iterator[SignalRecord]:
    """The records of ``rows`` (signals of one type), reading each table once with ``where``
    (which selects at least those signals)."""
    type_ = rows[0][0] if rows else ""
    descriptors = _grouped(
        con,
        "SELECT type, value, member_id, labels, content_type, quality, scope, active, "
        f"entry_index, tlp FROM descriptors {where} ORDER BY type, value, member_id",
        params,
    )
    opinions = _grouped(
        con,
        f"SELECT type, value, member_id, kind, note, entry_index FROM opinions {where} "
        "ORDER BY type, value, member_id",
        params,
    )
    retracted = _grouped(
        con,
        f"SELECT type, value, MAX(entry_index) FROM retractions {where} GROUP BY type, value",
        params,
    )
    benign = _grouped(con, f"SELECT type, value, entry_index FROM benign {where}", params)
    labels_of = _LABELS_CACHE
    no_rollup = _NO_ROLLUP
    for _, value, status, first_index in rows:
        key = (type_, value)
        ds_rows = descriptors.get(key, ())
        ds = []
        last_index = first_index
        for m, lb, ct, q, sc, a, i, tlp in ds_rows:
            labels = labels_of.get(lb)
            if labels is None:
                if len(labels_of) > 10_000:
                    labels_of.clear()
                labels = labels_of[lb] = tuple(json.loads(lb))
            ds.append(Descriptor(m, labels, ct, q, sc, bool(a), i, tlp))
            last_index = max(last_index, i)
        op_rows = opinions.get(key)
        ops: tuple[OpinionRecord, ...] = ()
        rollup = no_rollup
        if op_rows:
            ops = tuple(OpinionRecord(m, k, n, i) for m, k, n, i in op_rows)
            rollup = Rollup(
                sum(o.kind == "agree" for o in ops),
                sum(o.kind in ("disagree", "false_positive") for o in ops),
                sum(o.kind == "seen" for o in ops),
            )
            last_index = max(last_index, *(o.entry_index for o in ops))
        retraction = retracted.get(key)
        if retraction:
            last_index = max(last_index, retraction[0][0])
        listed = benign.get(key)
        if listed:
            last_index = max(last_index, listed[0][0])
        if last_index < since:
            continue
        signal = Signal(type_, value, status, first_index, tuple(ds), rollup)
        yield SignalRecord(signal, ops, bool(listed), last_index)


_LABELS_CACHE: dict[str, tuple[str, ...]] = {}
"""Parsed ``labels`` JSON by its text: a handful of distinct label sets cover a whole copy."""
_NO_ROLLUP = Rollup()


__all__ = ["DEFAULT_PAGE", "OpinionRecord", "SignalRecord", "changed_keys", "records", "scan"]
