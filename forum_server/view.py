"""The server's materialised view of the log: signals, descriptors and opinions.

The sequencer checks every member entry with :func:`forum_client.rules.check_content` (the
same rules the SDK applies when it syncs) against this view, and writes the view rows an
accepted entry makes in the same transaction as its leaf and the checkpoint over it: nothing
of a rejected entry is written, and the view never runs ahead of the log.  On its own SQLite
store the sequencer may hold submissions' rows back and write many groups' at once
(:func:`merge_upserts`; see :mod:`forum_server.sequencer`): the stored view then lags the log
until they are written, and the stored ``view_size`` says by how much.

Within one group commit, later entries must see what earlier ones in the same group did
before any of it is stored, so a :class:`GroupView` overlays the group's own changes on the
stored view::

    group = ServerView(store).group()
    group.check(state, body, index)   # rules.check_content against view + overlay; raises
    group.apply(state, body, index)   # only after every other check passed
    store.append(leaves, size, note, group.delta)

Semantics (the contract of :mod:`forum_client.rules`):

- a submission upserts each signal (status ``active``) and the author's descriptor on it;
- a member's retraction deactivates its own descriptors; the operator's deactivates every
  descriptor; either way the signal is ``retracted`` once no active descriptor remains;
- an opinion replaces the author's earlier opinion on the signal;
- other entries (membership, keys, taxonomy, incidents, benign lists) change no view row.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Set
from itertools import pairwise, repeat
from operator import attrgetter, itemgetter

from forum_client import entries as e
from forum_client.rules import check_content
from forum_client.verifier import LogState

from .storage import (
    OP_DESCRIPTOR,
    OP_OPINION,
    OP_REFRESH_STATUS,
    OP_RETRACT_ALL,
    OP_RETRACT_MEMBER,
    OP_SIGNAL,
    UPSERT_KEY_WIDTH,
    Row,
    ServerStore,
    ViewDelta,
    key_ordered,
)

LABEL_SEPARATOR = ";"
_TYPE = attrgetter("type")
_VALUE = attrgetter("value")
_LABELS = attrgetter("labels")
_CONTENT_TYPE = attrgetter("content_type")
_QUALITY = attrgetter("quality")
_VIEW_BODIES = (e.Submission, e.Retraction, e.Opinion)


def merge_upserts(delta: ViewDelta) -> ViewDelta:
    """The signal and descriptor upserts of several groups' submissions (``delta`` holds no
    other rows) as one run per table, each key once and in key order: a signal's first row
    (its first index stands; a later upsert only sets it active, which it is) and a
    descriptor's last (an upsert replaces it).  The same view as the runs in log order,
    written in one pass over each table's b-tree.  Sorted (stable: rows of one key stay in
    log order), then one row kept per run of equal keys: no dictionary of keys, which cost
    ~160 bytes a row while a pass of 1.25M rows was merged.  Marked ``in_key_order``: the
    store writes it as it is (planning bulk statements row by row cost 4 s for 2M rows,
    while a retraction waited for them)."""
    signals: list[Row] = []
    descriptors: list[Row] = []
    for op, rows in delta.runs:
        if op == OP_SIGNAL:
            signals += rows
        elif op == OP_DESCRIPTOR:
            descriptors += rows
        else:
            raise ValueError(f"not an upsert: {op}")
    merged = ViewDelta(in_key_order=True)  # written as it is: no per-row planning
    merged.add(OP_SIGNAL, _one_per_key(signals, UPSERT_KEY_WIDTH[OP_SIGNAL], last=False))
    merged.add(OP_DESCRIPTOR, _one_per_key(descriptors, UPSERT_KEY_WIDTH[OP_DESCRIPTOR], last=True))
    return merged


def _one_per_key(rows: list[Row], width: int, *, last: bool) -> list[Row]:
    """``rows`` in key order, the first (or last) in log order of each key's rows."""
    out: list[Row] = []
    previous: Row | None = None
    for row in key_ordered(rows, width):
        key = row[:width]
        if key != previous:
            out.append(row)
            previous = key
        elif last:
            out[-1] = row
    return out


def key_ranges(merged: ViewDelta, rows_per_range: int) -> list[ViewDelta]:
    """The upserts ``merged`` (from :func:`merge_upserts`: each key once, in key order) cut
    into about ``len(merged) / rows_per_range`` parts; part ``i`` holds the ``i``-th slice of
    each table's rows, so the parts touch disjoint key ranges of each table and written one
    after another they pass over each table's b-tree once, as one key-ordered write would.
    Each part may be written in a transaction of its own, in any order, since no key is in
    two of them."""
    count = max(1, round(len(merged) / max(1, rows_per_range)))
    parts = [ViewDelta(in_key_order=True) for _ in range(count)]
    for op, rows in merged.runs:
        for i, part in enumerate(parts):
            part.add(op, rows[len(rows) * i // count : len(rows) * (i + 1) // count])
    return [part for part in parts if part.runs]


def take_signals(delta: ViewDelta, keys: Set[tuple[str, str]]) -> tuple[ViewDelta, ViewDelta]:
    """``delta``'s rows of the signals ``keys`` names (every view row begins with its
    signal's type and value), and the rest: two deltas whose runs keep the order of
    ``delta``'s, and its ``in_key_order``.  A run without such rows goes to the rest as it
    is, not copied; ``delta`` itself is left unchanged.  The runs of a key-ordered delta (a
    pass's range) are binary-searched for a few keys: scanning one touches every row's
    tuple, scattered in memory by the sort (~130 ns a row in a server holding 1.3M)."""
    values = {value for _, value in keys}
    ordered = sorted(keys) if delta.in_key_order else []
    taken: list[tuple[str, list[Row]]] = []
    rest: list[tuple[str, list[Row]]] = []
    for op, rows in delta.runs:
        if ordered and len(ordered) * SEARCH_SHARE < len(rows):
            hits, left = _take_in_order(rows, ordered)
        else:
            hits = [r for r in rows if r[1] in values and (r[0], r[1]) in keys]
            left = [r for r in rows if r[1] not in values or (r[0], r[1]) not in keys]
        if not hits:
            rest.append((op, rows))
            continue
        taken.append((op, hits))
        if left:
            rest.append((op, left))
    return ViewDelta(taken, delta.in_key_order), ViewDelta(rest, delta.in_key_order)


# A key-ordered run is binary-searched, key by key, when it holds this many rows per key
# or more (a search is ~20 steps of ~100 ns, a scan ~100 ns a row); else scanned.
SEARCH_SHARE = 20
_SIGNAL = itemgetter(0, 1)


def _take_in_order(rows: list[Row], ordered: list[tuple[str, str]]) -> tuple[list[Row], list[Row]]:
    """The rows of the signals ``ordered`` (sorted) names, and the rest; ``rows`` in key
    order.  Without hits the rest is ``rows`` itself."""
    spans: list[tuple[int, int]] = []
    for key in ordered:
        start = end = bisect_left(rows, key, key=_SIGNAL)
        while end < len(rows) and _SIGNAL(rows[end]) == key:
            end += 1
        if end > start:
            spans.append((start, end))
    if not spans:
        return [], rows
    hits = [r for start, end in spans for r in rows[start:end]]
    left = rows[: spans[0][0]]
    for (_, end), (start, _) in pairwise(spans):
        left += rows[end:start]
    left += rows[spans[-1][1] :]
    return hits, left


def row_signals(delta: ViewDelta) -> set[tuple[str, str]]:
    """The signals ``delta``'s rows change, as (type, value)."""
    return {(r[0], r[1]) for _, rows in delta.runs for r in rows}  # type: ignore[misc]


class ServerView:
    """A :class:`~forum_client.rules.SignalLookup` over the stored view tables."""

    def __init__(self, store: ServerStore) -> None:
        self.store = store

    def signal_exists(self, type: str, value: str, scope: str = "") -> bool:
        return self.store.signal_exists(type, value, scope)

    def submitted_by(self, member_id: str, type: str, value: str, scope: str = "") -> bool:
        return self.store.has_active_descriptor(member_id, type, value, scope)

    def descriptor_holders(self, type: str, value: str, scope: str) -> set[str]:
        return self.store.descriptor_holders(type, value, scope)

    def group(self) -> GroupView:
        """A lookup for one group commit: the stored view plus the group's own changes."""
        return GroupView(self)


class GroupView:
    """The stored view overlaid with the changes of the entries accepted so far in a group.

    ``delta`` holds the rows to write, in log order.
    """

    def __init__(self, base: ServerView | GroupView) -> None:
        # The stored view, or (pipelined commits) the group being written under this one.
        self.base = base
        self.delta = ViewDelta()
        # (type, value) -> {member: scope of its descriptor}, for descriptors this group set.
        # A member has one descriptor per signal, so a later submission in another scope moves
        # it: the signal may then no longer exist in the first scope (as the member's view,
        # applying entry by entry, sees it).
        self._scopes: dict[tuple[str, str], dict[str, str]] = {}
        # (member, type, value) -> (active, generation, scope); generation orders it against
        # resets
        self._member: dict[tuple[str, str, str], tuple[bool, int, str]] = {}
        # (type, value) -> generation of the last operator retraction in this group
        self._reset: dict[tuple[str, str], int] = {}
        self._generation = 0
        self._submissions: list[tuple[str, e.Submission, int]] = []

    def group(self) -> GroupView:
        """A lookup for the next group, on top of this one (not yet stored)."""
        return GroupView(self)

    # ---- SignalLookup ----

    def signal_exists(self, type: str, value: str, scope: str = "") -> bool:
        self._materialise()
        if (type, value) not in self._scopes:
            return self.base.signal_exists(type, value, scope)
        return bool(self.descriptor_holders(type, value, scope))

    def descriptor_holders(self, type: str, value: str, scope: str) -> set[str]:
        self._materialise()
        touched = self._scopes.get((type, value), {})
        mine = {m for m, s in touched.items() if s == scope}
        return mine | (self.base.descriptor_holders(type, value, scope) - touched.keys())

    def submitted_by(self, member_id: str, type: str, value: str, scope: str = "") -> bool:
        self._materialise()
        own = self._member.get((member_id, type, value))
        reset = self._reset.get((type, value))
        if own is not None and (reset is None or own[1] > reset):
            return own[0] and own[2] == scope
        if reset is not None:
            return False
        return self.base.submitted_by(member_id, type, value, scope)

    def _materialise(self) -> None:
        """Fold the group's submissions into the overlay, only when a later entry of the
        group asks (most groups are submissions only and never do)."""
        for author, body, gen in self._submissions:
            scope = body.scope
            for s in body.signals:
                self._scopes.setdefault((s.type, s.value), {})[author] = scope
                self._member[(author, s.type, s.value)] = (True, gen, scope)
        self._submissions.clear()

    # ---- the group's entries ----

    def check(self, state: LogState, body: e.Body, index: int) -> None:
        """Apply the content rules; raises InvalidInputError or EntryRejectedError."""
        if isinstance(body, (*_VIEW_BODIES, e.BenignList, e.Dispute)):
            check_content(state, body, self, index)

    def apply(self, state: LogState, body: e.Body, index: int) -> None:
        """Record the view changes of an accepted entry (``state`` before the entry)."""
        self._generation += 1
        gen = self._generation
        author = body.header.member_id
        if isinstance(body, e.Submission):
            # Column by column (the per-signal work stays in C): one joined string per
            # distinct label tuple, the entry's own columns repeated.
            items = body.signals
            types = list(map(_TYPE, items))
            values = list(map(_VALUE, items))
            label_tuples = list(map(_LABELS, items))
            joined = {t: LABEL_SEPARATOR.join(t) for t in set(label_tuples)}
            signals: list[Row] = list(zip(types, values, repeat(index)))
            descriptors: list[Row] = list(
                zip(
                    types,
                    values,
                    repeat(author),
                    map(joined.__getitem__, label_tuples),
                    map(_CONTENT_TYPE, items),
                    map(_QUALITY, items),
                    repeat(body.scope),
                    repeat(index),
                )
            )
            self.delta.add(OP_SIGNAL, signals)
            self.delta.add(OP_DESCRIPTOR, descriptors)
            self._submissions.append((author, body, gen))
        elif isinstance(body, e.Retraction):
            refs = [(r.type, r.value) for r in body.signals]
            self._materialise()  # keep the overlay's order: submissions before this
            if state.members[author].role is e.Role.OPERATOR:
                self.delta.add(OP_RETRACT_ALL, [(t, v) for t, v in refs])
                for key in refs:
                    self._reset[key] = gen
            else:
                self.delta.add(OP_RETRACT_MEMBER, [(t, v, author) for t, v in refs])
                for t, v in refs:
                    self._member[(author, t, v)] = (False, gen, body.scope)
            self.delta.add(OP_REFRESH_STATUS, [(t, v) for t, v in refs])
        elif isinstance(body, e.Opinion):
            ref = body.signal
            self.delta.add(
                OP_OPINION, [(ref.type, ref.value, author, int(body.kind), body.note, index)]
            )
