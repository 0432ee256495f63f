"""The sync's hot path: applying verified entries to the local copy's view tables.

:class:`ViewWriter` runs inside an open write transaction (a sync's
:class:`~forum_client.store.transaction.SyncTransaction`, or the audit's scratch copy); it is
also the :class:`~forum_client.rules.SignalLookup` the content rules ask, so it sees the rows
staged earlier in the same transaction.  Once an index follows the copy, every PDQ (vpdq)
value an entry touches is journaled in ``pdq_changes`` (``vpdq_changes``) as it is applied,
which is how the PDQ index (the video index) follows the sync; entries before the size in
:data:`~forum_client.store.schema.JOURNAL_FROM` (all of them, for a type without a row) are
not journaled.
"""

from __future__ import annotations

import sqlite3
from operator import itemgetter
from typing import Any

from .. import entries as e
from ..verifier import LogState
from .schema import PDQ, VPDQ, pdq_values_of

_KEY = itemgetter(0, 1)
"""``(type, value)``: the leading primary-key columns of signal and descriptor rows."""


def _journaled(rows: list[tuple[int, str]], start: int | None) -> list[tuple[int, str]]:
    """The journal rows of the entries from ``start`` on (the offline audit replays a copy
    from entry 0 and must journal exactly what the sync did)."""
    if start is None:
        return []
    return rows if not rows or rows[0][0] >= start else [r for r in rows if r[0] >= start]


def _labels_json(labels: tuple[str, ...]) -> str:
    # Label ids are [a-z0-9:-] (checked by the content rules before this runs), so this is
    # valid JSON without json.dumps' per-call cost.
    return '["' + '","'.join(labels) + '"]' if labels else "[]"


class ViewWriter:
    """Applies verified bodies to the view tables, batching rows for ``executemany``.

    Also the :class:`~forum_client.rules.SignalLookup` the content rules ask, answering from
    the open transaction (pending rows are flushed first).
    """

    SIGNAL_SQL = (
        "INSERT INTO signals (type, value, status, first_index) VALUES (?, ?, 'active', ?) "
        "ON CONFLICT (type, value) DO UPDATE SET status = 'active' WHERE status != 'active'"
    )
    DESCRIPTOR_SQL = "INSERT OR REPLACE INTO descriptors VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)"
    ENTRY_SQL = "INSERT INTO entries (idx, leaf) VALUES (?, ?)"
    PDQ_SQL = "INSERT OR IGNORE INTO pdq_changes VALUES (?, ?)"
    VPDQ_SQL = "INSERT OR IGNORE INTO vpdq_changes VALUES (?, ?)"
    REDACTED_SQL = "INSERT INTO redacted VALUES (?, ?, ?, ?, ?)"

    STAGE_TABLES = (
        "CREATE TEMP TABLE IF NOT EXISTS stage_signals (type, value, first_index)",
        "CREATE TEMP TABLE IF NOT EXISTS stage_descriptors "
        "(type, value, member_id, labels, content_type, quality, scope, entry_index, tlp)",
    )
    # A stable sort by key (rowid: the order rows were staged in, i.e. log order), so a later
    # row for the same key still lands later and the upserts mean what they mean in log order.
    MERGE_SIGNALS_SQL = (
        "INSERT INTO signals (type, value, status, first_index) "
        "SELECT type, value, 'active', first_index FROM temp.stage_signals "
        "WHERE true ORDER BY type, value, rowid "
        "ON CONFLICT (type, value) DO UPDATE SET status = 'active' WHERE status != 'active'"
    )
    MERGE_DESCRIPTORS_SQL = (
        "INSERT OR REPLACE INTO descriptors SELECT type, value, member_id, labels, "
        "content_type, quality, scope, 1, entry_index, tlp FROM temp.stage_descriptors "
        "ORDER BY type, value, rowid"
    )

    def __init__(
        self, con: sqlite3.Connection, key_order: bool = False, spill_rows: int = 0
    ) -> None:
        self.con = con
        # Write signal and descriptor rows in key order: random hash keys otherwise touch a
        # random leaf page of each table per row, and once the tables outgrow the page cache
        # a page can be read, evicted and read again within one commit (2.2x the CPU into a
        # 1M-row table, docs/benchmarks.md #13).  Sorting costs more than it saves while the
        # tables fit in the cache, so the transaction asks for it only then.
        self.key_order = key_order
        # With ``spill_rows`` > 0, pending signal and descriptor rows beyond that many move
        # to unindexed TEMP tables (appended in log order, held by SQLite in a temporary
        # file, not in memory) and go into the view in one sorted pass when flushed, so a
        # step can be far larger than what Python holds: each leaf page of the view is then
        # written once per step, not once per ``spill_rows``.
        self.spill_rows = spill_rows
        self.spilled = 0  # rows in the TEMP stage tables
        self.entry_rows: list[tuple[int, bytes]] = []
        self.redacted_rows: list[tuple[int, bytes, str, bytes, bytes | None]] = []
        self.signal_rows: list[tuple[str, str, int]] = []
        self.descriptor_rows: list[tuple[Any, ...]] = []
        self.pdq_rows: list[tuple[int, str]] = []
        self.vpdq_rows: list[tuple[int, str]] = []
        # The journals' start (JOURNAL_FROM), read in the writer's own transaction: None
        # for a type no index follows yet, whose values are not journaled at all.
        starts = dict(con.execute("SELECT type, size FROM journal_from").fetchall())
        self.pdq_from: int | None = starts.get(PDQ)
        self.vpdq_from: int | None = starts.get(VPDQ)
        self.signals_applied = 0
        self.rows_staged = 0  # entries and signals since this writer began

    @property
    def pending_rows(self) -> int:
        return len(self.signal_rows) + len(self.entry_rows) + len(self.redacted_rows)

    def _spill(self) -> None:
        """Write the pending rows of a large step: entries (and the other tables keyed by
        log index) straight into their tables, where they append; signal and descriptor
        rows into the TEMP stage tables, merged by :meth:`flush`."""
        con = self.con
        self._write_log_ordered()
        if not self.spilled:
            for sql in self.STAGE_TABLES:
                con.execute(sql)
        con.executemany("INSERT INTO temp.stage_signals VALUES (?, ?, ?)", self.signal_rows)
        con.executemany(
            "INSERT INTO temp.stage_descriptors VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self.descriptor_rows,
        )
        self.spilled += len(self.signal_rows)
        self.signal_rows = []
        self.descriptor_rows = []

    def _spill_if_large(self) -> None:
        if self.spill_rows and self.pending_rows >= self.spill_rows:
            self._spill()

    def _write_log_ordered(self) -> None:
        """The pending rows of the tables keyed by log index (they append)."""
        con = self.con
        if self.entry_rows:
            con.executemany(self.ENTRY_SQL, self.entry_rows)
            self.entry_rows = []
        if self.redacted_rows:
            con.executemany(self.REDACTED_SQL, self.redacted_rows)
            self.redacted_rows = []
        if self.pdq_rows:
            con.executemany(self.PDQ_SQL, _journaled(self.pdq_rows, self.pdq_from))
            self.pdq_rows = []
        if self.vpdq_rows:
            con.executemany(self.VPDQ_SQL, _journaled(self.vpdq_rows, self.vpdq_from))
            self.vpdq_rows = []

    def flush(self) -> None:
        """Write every pending row into the view (inside the open transaction)."""
        con = self.con
        self._write_log_ordered()
        if self.spilled:
            if self.signal_rows:
                self._spill()
            con.execute(self.MERGE_SIGNALS_SQL)
            con.execute(self.MERGE_DESCRIPTORS_SQL)
            con.execute("DELETE FROM temp.stage_signals")
            con.execute("DELETE FROM temp.stage_descriptors")
            self.spilled = 0
        elif self.signal_rows:
            if self.key_order:
                # A stable sort: a later row for the same key still lands later, so the
                # upserts mean the same (see ``key_order``).
                self.signal_rows.sort(key=_KEY)
                self.descriptor_rows.sort(key=_KEY)
            con.executemany(self.SIGNAL_SQL, self.signal_rows)
            con.executemany(self.DESCRIPTOR_SQL, self.descriptor_rows)
            self.signal_rows = []
            self.descriptor_rows = []

    # SignalLookup
    def signal_exists(self, type: str, value: str, scope: str = "") -> bool:
        self.flush()
        return (
            self.con.execute(
                "SELECT 1 FROM descriptors WHERE type = ? AND value = ? AND scope = ?",
                (type, value, scope),
            ).fetchone()
            is not None
        )

    def submitted_by(self, member_id: str, type: str, value: str, scope: str = "") -> bool:
        self.flush()
        return (
            self.con.execute(
                "SELECT 1 FROM descriptors WHERE type = ? AND value = ? AND member_id = ? "
                "AND active = 1 AND scope = ?",
                (type, value, member_id, scope),
            ).fetchone()
            is not None
        )

    def add_entry(self, index: int, leaf: bytes) -> None:
        self.entry_rows.append((index, leaf))
        self.rows_staged += 1
        self._spill_if_large()

    def add_redacted(
        self, index: int, leaf_hash: bytes, group_id: str, key_id: bytes, signature: bytes | None
    ) -> None:
        """An entry held as its leaf hash only (``signature`` None: it leaked in full)."""
        self.redacted_rows.append((index, leaf_hash, group_id, key_id, signature))
        self.rows_staged += 1
        self._spill_if_large()

    def add_submissions(
        self,
        leaves: list[tuple[int, bytes]],
        signals: list[tuple[int, str, str, tuple[str, ...], str, str, str]],
    ) -> None:
        """Stage a run of verified forum-wide submissions at once
        (:mod:`~forum_client.replay_bulk`): their ``(index, leaf)`` and each signal as
        ``(index, type, value, labels, content type, member id, TLP label)``.  The same rows
        as :meth:`apply` and :meth:`add_entry` entry by entry."""
        self.entry_rows += leaves
        self.signal_rows += [(t, v, i) for i, t, v, _, _, _, _ in signals]
        labels_json: dict[tuple[str, ...], str] = {}
        self.descriptor_rows += [
            (
                t,
                v,
                member,
                labels_json.get(labels) or labels_json.setdefault(labels, _labels_json(labels)),
                content_type,
                None,
                "",
                i,
                tlp,
            )
            for i, t, v, labels, content_type, member, tlp in signals
        ]
        if self.pdq_from is not None:
            self.pdq_rows += [(i, v) for i, t, v, _, _, _, _ in signals if t == PDQ]
        if self.vpdq_from is not None:
            self.vpdq_rows += [(i, v) for i, t, v, _, _, _, _ in signals if t == VPDQ]
        self.signals_applied += len(signals)
        self.rows_staged += len(leaves) + len(signals)
        self._spill_if_large()

    def apply(self, index: int, body: e.Body, state: LogState) -> None:
        """Apply one verified body (after LogState.apply and the content rules passed)."""
        if isinstance(body, e.Submission):
            member, scope, tlp = body.header.member_id, body.scope, body.tlp.label
            signals = body.signals
            self.signal_rows += [(s.type, s.value, index) for s in signals]
            self.descriptor_rows += [
                (
                    s.type,
                    s.value,
                    member,
                    _labels_json(s.labels),
                    s.content_type,
                    s.quality,
                    scope,
                    index,
                    tlp,
                )
                for s in signals
            ]
            self.signals_applied += len(signals)
            self.rows_staged += len(signals)
            self._spill_if_large()
            if self.pdq_from is not None:
                self.pdq_rows += [(index, s.value) for s in signals if s.type == PDQ]
            if self.vpdq_from is not None:
                self.vpdq_rows += [(index, s.value) for s in signals if s.type == VPDQ]
        elif isinstance(body, e.Retraction):
            self._retract(index, body, state)
            self._journal(index, body)
        elif isinstance(body, e.Opinion):
            self.flush()
            self.con.execute(
                "INSERT OR REPLACE INTO opinions VALUES (?, ?, ?, ?, ?, ?)",
                (
                    body.signal.type,
                    body.signal.value,
                    body.header.member_id,
                    body.kind.name.lower(),
                    body.note,
                    index,
                ),
            )
        elif isinstance(body, e.BenignList):
            self.flush()
            self.con.executemany(
                "INSERT OR REPLACE INTO benign VALUES (?, ?, ?)",
                [(r.type, r.value, index) for r in body.add],
            )
            self.con.executemany(
                "DELETE FROM benign WHERE type = ? AND value = ?",
                [(r.type, r.value) for r in body.remove],
            )
            self._journal(index, body)

    def _journal(self, index: int, body: e.Retraction | e.BenignList) -> None:
        """Journal the PDQ and vpdq values a retraction or a benign list touches."""
        if self.pdq_from is not None:
            self.pdq_rows += [(index, v) for v in pdq_values_of(body)]
        if self.vpdq_from is not None:
            self.vpdq_rows += [(index, v) for v in pdq_values_of(body, VPDQ)]

    def _retract(self, index: int, body: e.Retraction, state: LogState) -> None:
        self.flush()
        author = body.header.member_id
        refs = [(r.type, r.value) for r in body.signals]
        con = self.con
        con.executemany(
            "INSERT INTO retractions VALUES (?, ?, ?, ?, ?, ?)",
            [(index, i, t, v, author, body.reason) for i, (t, v) in enumerate(refs)],
        )
        if state.members[author].role is e.Role.OPERATOR:
            con.executemany("UPDATE descriptors SET active = 0 WHERE type = ? AND value = ?", refs)
        else:
            con.executemany(
                "UPDATE descriptors SET active = 0 WHERE type = ? AND value = ? AND member_id = ?",
                [(t, v, author) for t, v in refs],
            )
        con.executemany(
            "UPDATE signals SET status = CASE WHEN EXISTS (SELECT 1 FROM descriptors d WHERE "
            "d.type = signals.type AND d.value = signals.value AND d.active = 1) "
            "THEN 'active' ELSE 'retracted' END WHERE type = ? AND value = ?",
            refs,
        )
