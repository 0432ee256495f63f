"""Matching a member's own content against its local copy of the forum (nothing leaves).

:class:`Matcher` answers "is this hash in the forum, and what do members say about it?" from
a :class:`~forum_client.store.LocalStore`::

    >>> import tempfile, pathlib
    >>> from forum_client.store import LocalStore
    >>> with tempfile.TemporaryDirectory() as d, LocalStore(pathlib.Path(d) / "f.db") as store:
    ...     with Matcher(store) as matcher:
    ...         print(matcher.match("md5", "D41D8CD98F00B204E9800998ECF8427E"),
    ...               matcher.match("pdq", "0" * 64, threshold=31))
    [] []

(``store.match(type, value)`` is the same through a matcher the store keeps.)

- Exact types (md5, sha1, sha256, url, domain) are one primary-key probe after the value is
  normalised, so hex in any case and URLs in any spelling find their signal.
- PDQ is matched by Hamming distance (default :data:`DEFAULT_THRESHOLD` 31, inclusive) through
  a :class:`~forum_client.match.pdq_index.PDQIndex` of every active, non-benign PDQ signal.
- vPDQ (``vpdq``, videos) is matched by vPDQ's rule through a
  :class:`~forum_client.match.video_index.VideoIndex` of every active, non-benign vpdq signal:
  enough of the query's frames match frames of the shared video, and enough of its frames match
  the query's (80% each way by default, frames within ``threshold``). That index is rebuilt
  from the store when the store has grown since the last video query.
- Retracted signals (no active descriptor left, :mod:`forum_client.rules`) and signals the
  operator published on the benign list never match. Every candidate is re-checked against
  the store's snapshot, so this holds even for a moment when the index lags the store.

The index follows the store without a rebuild. It is saved next to the database
(``FILE.pdqidx.npz``) with the log size it reflects and the hash of the last leaf it saw. On
open it is loaded and only the entries appended since that size are read back from the
store's verified ``entries`` table: PDQ values that were submitted, retracted or benign-listed
there (a removal from the benign list deletes its row, so the log, not the view, says what
changed) are re-checked and added to or removed from the index. Each match first catches up
the same way, so a follow-mode sync in another process is seen at the next match. The index
is rebuilt from the store only when the file is missing, unreadable, or belongs to another
copy (its last leaf differs).

Index ids are the first 8 bytes of the hash (a signed int64); the rare hash whose prefix is
taken by another gets a free id recorded in a small overflow table saved with the index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import sqlite3
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from forum_client import entries as e
from forum_client.envelope import Envelope
from forum_client.errors import InvalidInputError, StoreError
from forum_client.match.pdq_index import (
    DEFAULT_THRESHOLD,
    HASH_BYTES,
    PDQIndex,
    PDQIndexFileError,
)
from forum_client.match.video_index import (
    DEFAULT_COMPARED_MATCH,
    DEFAULT_QUERY_MATCH,
    VideoIndex,
    check_shares,
    frame_arrays_of_normal_value,
)
from forum_client.signals import get_signal_type, normalize
from forum_client.signals.vpdq import parse_frames
from forum_client.store import ACTIVE, Descriptor, LocalStore, Rollup

PDQ: Final = "pdq"
VPDQ: Final = "vpdq"
INCIDENT_PREFIX: Final = "incident:"
INDEX_SUFFIX: Final = ".pdqidx.npz"
"""The index file lives at ``<database path>`` + this suffix."""

_SUBMISSION: Final = e.PAYLOAD_TYPES[e.Submission]
_RETRACTION: Final = e.PAYLOAD_TYPES[e.Retraction]
_BENIGN: Final = e.PAYLOAD_TYPES[e.BenignList]
_PDQ_RELEVANT: Final = frozenset({_SUBMISSION, _RETRACTION, _BENIGN})
_FORMAT: Final = 1
_CHUNK: Final = 500  # values per SQL IN (...) statement


@dataclass(frozen=True)
class MatchResult:
    """One forum signal that matched: what it is, how close, and what members say.

    ``descriptors`` are the active ones (a member that retracted its own is left out);
    ``incidents`` are their ``incident:*`` labels.
    """

    type: str
    value: str
    distance: int
    first_index: int
    descriptors: tuple[Descriptor, ...]
    rollup: Rollup
    shares: tuple[float, float] | None = None
    """vpdq only: percent of the query's frames matched, percent of the shared video's."""

    @property
    def labels(self) -> tuple[str, ...]:
        """Every member's labels, each once, sorted."""
        return tuple(sorted({x for d in self.descriptors for x in d.labels}))

    @property
    def incidents(self) -> tuple[str, ...]:
        """Crisis-response incident tags (labels starting ``incident:``)."""
        return tuple(x for x in self.labels if x.startswith(INCIDENT_PREFIX))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``forum-client match`` prints)."""
        return {
            "type": self.type,
            "value": self.value,
            "distance": self.distance,
            "first_index": self.first_index,
            "members": [
                {
                    "member_id": d.member_id,
                    "labels": list(d.labels),
                    "content_type": d.content_type,
                    "quality": d.quality,
                    "scope": d.scope,
                    "tlp": d.tlp,
                    "entry_index": d.entry_index,
                }
                for d in self.descriptors
            ],
            "rollup": {
                "verdict": self.rollup.verdict,
                "positive": self.rollup.positive,
                "negative": self.rollup.negative,
                "seen": self.rollup.seen,
            },
            "incidents": list(self.incidents),
            **(
                {}
                if self.shares is None
                else {
                    "query_match_percent": round(self.shares[0], 2),
                    "compared_match_percent": round(self.shares[1], 2),
                }
            ),
        }


def index_path_for(db_path: str | os.PathLike[str]) -> Path:
    """Where the PDQ index of the database at ``db_path`` is kept."""
    return Path(os.fspath(db_path) + INDEX_SUFFIX)


class Matcher:
    """Exact and PDQ matching over one :class:`LocalStore` (see the module docstring).

    ``index_path``: where the PDQ index is saved (default ``FILE.pdqidx.npz``; ``None`` with
    ``persist=False`` keeps it in memory only). ``save_lag_entries``: the index file is
    rewritten when it is this many log entries behind the store (on a match or on
    :meth:`close`), so that start-up only ever replays a short tail.

    Not thread-safe: guard a shared matcher with a lock. Raises StoreError when the store
    cannot be read, InvalidInputError for a bad type, value or threshold.
    """

    def __init__(
        self,
        store: LocalStore,
        *,
        index_path: str | os.PathLike[str] | None = None,
        persist: bool = True,
        save_lag_entries: int = 256,
    ) -> None:
        self.store = store
        self.persist = persist
        self.index_path = Path(index_path) if index_path else index_path_for(store.path)
        self.save_lag_entries = save_lag_entries
        self._index: PDQIndex | None = None
        self._size = 0  # log size the in-memory index reflects
        self._saved_size = -1  # log size of the file on disk (-1: none written by us)
        self._tail = b""  # SHA-256 of the leaf at _size - 1
        self._overflow: dict[bytes, int] = {}
        self._next_overflow = 0
        self._videos: VideoIndex[str] | None = None
        self._videos_size = -1  # log size the video index reflects
        self.rebuilt = False  # whether the last open had to rebuild (for tests and the CLI)

    def __enter__(self) -> Matcher:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Save the index if its file lags the in-memory one."""
        if self._index is not None and self.persist and self._saved_size != self._size:
            self.save()

    # ---------------------------------------------------------------- matching

    def match(
        self,
        type: str,
        value: str,
        threshold: int = DEFAULT_THRESHOLD,
        *,
        query_match: float = DEFAULT_QUERY_MATCH,
        compared_match: float = DEFAULT_COMPARED_MATCH,
    ) -> list[MatchResult]:
        """Every active, non-benign signal matching ``(type, value)``: for ``pdq`` every one
        within Hamming distance ``threshold`` (nearest first); for ``vpdq`` every shared video
        matching by vPDQ's rule (frames within ``threshold``, ``query_match`` and
        ``compared_match`` percent of frames each way; best first); else the one equal signal
        (distance 0). The value is normalised first (hex in any case)."""
        get_signal_type(type)
        norm = normalize(type, value)
        if type not in (PDQ, VPDQ):
            return self._results(type, [(norm, 0)])
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise InvalidInputError.field("threshold", "must be a non-negative int")
        if type == VPDQ:
            return self._match_video(norm, threshold, query_match, compared_match)
        index = self.refresh()
        found = index.query(bytes.fromhex(norm), threshold)
        candidates = []
        for id_, dist in found:
            h = index.hash_of(id_)
            if h is not None:
                candidates.append((h.hex(), dist))
        return self._results(PDQ, candidates)

    def _match_video(
        self, value: str, threshold: int, query_match: float, compared_match: float
    ) -> list[MatchResult]:
        check_shares(query_match, compared_match)
        found = self.video_index().query(
            parse_frames(value),
            threshold=threshold,
            query_match=query_match,
            compared_match=compared_match,
        )
        shares = {m.key: (m.query_match, m.compared_match) for m in found}
        results = self._results(VPDQ, [(m.key, m.distance) for m in found])
        return [dataclasses.replace(r, shares=shares[r.value]) for r in results]

    def video_index(self) -> VideoIndex[str]:
        """The vPDQ index of the store's active, non-benign vpdq signals (keyed by value),
        rebuilt when the store has grown since it was built."""
        try:
            with self.store.read() as con:
                size = _store_size(con)
                if self._videos is None or size != self._videos_size:
                    values = con.execute(
                        "SELECT value FROM signals WHERE type = ? AND status = ? AND NOT EXISTS "
                        "(SELECT 1 FROM benign b WHERE b.type = signals.type "
                        "AND b.value = signals.value)",
                        (VPDQ, ACTIVE),
                    )
                    self._videos = VideoIndex.build(
                        (v, frame_arrays_of_normal_value(v)) for (v,) in values
                    )
                    self._videos_size = size
        except sqlite3.Error as exc:
            raise StoreError(f"reading {self.store.path} for matching failed: {exc}") from exc
        return self._videos

    def match_many(
        self, queries: Iterable[tuple[str, str]], threshold: int = DEFAULT_THRESHOLD
    ) -> Iterator[tuple[str, str, list[MatchResult]]]:
        """``(type, normalised value, results)`` for each ``(type, value)``, streamed."""
        for type_, value in queries:
            yield type_, normalize(type_, value), self.match(type_, value, threshold)

    def _results(self, type: str, candidates: list[tuple[str, int]]) -> list[MatchResult]:
        if not candidates:
            return []
        out = []
        with self.store.read() as con:
            for value, dist in candidates:
                row = con.execute(
                    "SELECT status, first_index FROM signals WHERE type = ? AND value = ? "
                    "AND NOT EXISTS (SELECT 1 FROM benign b WHERE b.type = signals.type "
                    "AND b.value = signals.value)",
                    (type, value),
                ).fetchone()
                if row is None or row[0] != ACTIVE:
                    continue
                active = tuple(d for d in LocalStore._descriptors(con, type, value) if d.active)
                if not active:
                    continue
                rollup = LocalStore._rollup(con, type, value)
                out.append(MatchResult(type, value, dist, int(row[1]), active, rollup))
        return out

    # ---------------------------------------------------------------- the index

    @property
    def index(self) -> PDQIndex:
        """The PDQ index, caught up with the store."""
        return self.refresh()

    @property
    def size(self) -> int:
        """The log size the index reflects."""
        return self._size

    def refresh(self) -> PDQIndex:
        """Open the index (load, or rebuild if needed) and apply the store's new entries."""
        try:
            if self._index is None:
                self._open()
            index = self._index
            assert index is not None
            with self.store.read() as con:
                size = _store_size(con)
                if size < self._size or (size and self._size and not self._tail_ok(con)):
                    index = None  # the copy was replaced under us
                elif size > self._size:
                    self._apply_tail(con, index, size)
            if index is None:
                self._rebuild()
                index = self._index
                assert index is not None
        except sqlite3.Error as exc:
            raise StoreError(f"reading {self.store.path} for matching failed: {exc}") from exc
        if self.persist and self._size - max(self._saved_size, 0) >= self.save_lag_entries:
            self.save()
        return index

    def save(self) -> None:
        """Write the index and the log size it reflects (atomically) to :attr:`index_path`."""
        if self._index is None:
            return
        over_hashes = np.frombuffer(b"".join(self._overflow), np.uint8).reshape(-1, HASH_BYTES)
        over_ids = np.array(list(self._overflow.values()), np.int64)
        meta = np.array([_FORMAT, self._size, self._next_overflow], np.int64)
        tail = np.frombuffer(self._tail.ljust(32, b"\0"), np.uint8)
        try:
            self._index.save(
                self.index_path,
                extra={
                    "meta": meta,
                    "tail": tail,
                    "over_hashes": over_hashes,
                    "over_ids": over_ids,
                },
            )
        except OSError as exc:
            raise StoreError(f"cannot save the PDQ index {self.index_path}: {exc}") from exc
        self._saved_size = self._size

    def _open(self) -> None:
        if self.persist and self._load():
            return
        self._rebuild()

    def _load(self) -> bool:
        try:
            index, extra = PDQIndex.load_with_extra(self.index_path)
            meta, tail = extra["meta"], extra["tail"]
            over_hashes, over_ids = extra["over_hashes"], extra["over_ids"]
            if (
                meta.shape != (3,)
                or int(meta[0]) != _FORMAT
                or tail.shape != (32,)
                or over_hashes.dtype != np.uint8
                or over_hashes.ndim != 2
                or over_hashes.shape[1] != HASH_BYTES
                or over_ids.shape != (len(over_hashes),)
            ):
                raise PDQIndexFileError(f"{self.index_path}: not a matcher index")
        except (OSError, KeyError, PDQIndexFileError):
            return False
        self._index = index
        self._size = self._saved_size = int(meta[1])
        self._next_overflow = int(meta[2])
        self._tail = tail.tobytes() if self._size else b""
        self._overflow = {
            h.tobytes(): int(i) for h, i in zip(over_hashes, over_ids.tolist(), strict=True)
        }
        with self.store.read() as con:
            if _store_size(con) < self._size or not self._tail_ok(con):
                return False
        return True

    def _tail_ok(self, con: sqlite3.Connection) -> bool:
        if self._size == 0:
            return True
        return _leaf_digest(con, self._size - 1) == self._tail

    def _rebuild(self) -> None:
        """Build the index from the store's active, non-benign PDQ signals."""
        with self.store.read() as con:
            size = _store_size(con)
            values = [
                v
                for (v,) in con.execute(
                    "SELECT value FROM signals WHERE type = 'pdq' AND status = ? AND NOT EXISTS "
                    "(SELECT 1 FROM benign b WHERE b.type = 'pdq' AND b.value = signals.value)",
                    (ACTIVE,),
                )
            ]
            tail = _leaf_digest(con, size - 1) if size else b""
        hashes = np.frombuffer(bytes.fromhex("".join(values)), np.uint8).reshape(-1, HASH_BYTES)
        ids = _prefix_ids(hashes)
        self._overflow, self._next_overflow = {}, 0
        unique, first = np.unique(ids, return_index=True)
        if len(unique) != len(ids):  # prefix collisions: later ones get overflow ids
            clash = np.ones(len(ids), bool)
            clash[first] = False
            taken = set(unique.tolist())
            for row in np.flatnonzero(clash).tolist():
                new_id = self._free_overflow_id(taken)
                taken.add(new_id)
                ids[row] = new_id
                self._overflow[hashes[row].tobytes()] = new_id
        self._index = PDQIndex.build(ids, hashes)
        self._size, self._tail = size, tail
        self._saved_size = -1
        self.rebuilt = True
        if self.persist:
            self.save()

    def _free_overflow_id(self, taken: set[int] | None = None) -> int:
        index = self._index
        while True:
            candidate = self._next_overflow
            self._next_overflow += 1
            if (taken is None or candidate not in taken) and (
                index is None or candidate not in index
            ):
                return candidate

    def _id_of(self, index: PDQIndex, h: bytes) -> int | None:
        over = self._overflow.get(h)
        if over is not None:
            return over
        pid = _prefix_id(h)
        return pid if index.hash_of(pid) == h else None

    def _add(self, index: PDQIndex, h: bytes) -> None:
        if self._id_of(index, h) is not None:
            return
        pid = _prefix_id(h)
        if pid in index:
            pid = self._free_overflow_id()
            self._overflow[h] = pid
        index.add(pid, h)

    def _remove(self, index: PDQIndex, h: bytes) -> None:
        id_ = self._id_of(index, h)
        if id_ is not None:
            index.remove(id_)
            self._overflow.pop(h, None)

    def _apply_tail(self, con: sqlite3.Connection, index: PDQIndex, size: int) -> None:
        """Apply entries [self._size, size) of the store's verified log to the index."""
        touched: dict[str, None] = {}
        for (leaf,) in con.execute(
            "SELECT leaf FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            (self._size, size),
        ):
            for value in _pdq_values(bytes(leaf)):
                touched[value] = None
        values = list(touched)
        wanted: set[str] = set()
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            wanted.update(
                v
                for (v,) in con.execute(
                    f"SELECT value FROM signals WHERE type = 'pdq' AND status = ? "
                    f"AND value IN ({marks}) AND NOT EXISTS (SELECT 1 FROM benign b "
                    "WHERE b.type = 'pdq' AND b.value = signals.value)",
                    (ACTIVE, *chunk),
                )
            )
        for value in values:
            h = bytes.fromhex(value)
            if value in wanted:
                self._add(index, h)
            else:
                self._remove(index, h)
        self._size = size
        self._tail = _leaf_digest(con, size - 1)


def _store_size(con: sqlite3.Connection) -> int:
    row = con.execute("SELECT size FROM sync_state").fetchone()
    return 0 if row is None else int(row[0])


def _leaf_digest(con: sqlite3.Connection, idx: int) -> bytes:
    row = con.execute("SELECT leaf FROM entries WHERE idx = ?", (idx,)).fetchone()
    return b"" if row is None else hashlib.sha256(bytes(row[0])).digest()


def _pdq_values(leaf: bytes) -> Iterator[str]:
    """PDQ values an entry submits, retracts or (un)lists as benign (already verified and
    normalised: the store holds only entries that passed the content rules)."""
    envelope = Envelope.from_leaf_bytes(leaf)
    if envelope.payload_type not in _PDQ_RELEVANT:
        return
    body = e.decode(envelope.payload_type, envelope.body)
    refs: Iterable[e.SignalItem | e.SignalRef]
    if isinstance(body, e.Submission | e.Retraction):
        refs = body.signals
    elif isinstance(body, e.BenignList):
        refs = itertools.chain(body.add, body.remove)
    else:  # pragma: no cover - filtered by payload type above
        return
    for ref in refs:
        if ref.type == PDQ:
            yield ref.value


def _prefix_id(h: bytes) -> int:
    return int.from_bytes(h[:8], "big", signed=True)


def _prefix_ids(hashes: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    ids: npt.NDArray[np.int64] = (
        np.ascontiguousarray(hashes[:, :8]).view(">i8").ravel().astype(np.int64)
    )
    return ids


_MATCHERS: weakref.WeakKeyDictionary[LocalStore, Matcher] = weakref.WeakKeyDictionary()


def matcher_for(store: LocalStore) -> Matcher:
    """The matcher a store keeps for :meth:`LocalStore.match` (made on first use)."""
    matcher = _MATCHERS.get(store)
    if matcher is None:
        matcher = _MATCHERS[store] = Matcher(store)
    return matcher


def results_json(results: list[MatchResult]) -> str:
    """Results as one JSON array (compact)."""
    return json.dumps([r.to_json() for r in results], separators=(",", ":"))


__all__ = [
    "DEFAULT_THRESHOLD",
    "INDEX_SUFFIX",
    "MatchResult",
    "Matcher",
    "index_path_for",
    "matcher_for",
]
