"""Matching a member's own content against its local copy of the forum (nothing leaves).

Public as :mod:`forum_client.match.lookup`.

:class:`Matcher` answers "is this hash in the forum, and what do members say about it?" from
a :class:`~forum_client.store.LocalStore`::

    >>> import tempfile, pathlib
    >>> from forum_client.store import LocalStore
    >>> from forum_client.match.lookup import Matcher
    >>> with tempfile.TemporaryDirectory() as d, LocalStore(pathlib.Path(d) / "f.db") as store:
    ...     with Matcher(store) as matcher:
    ...         print(matcher.match("md5", "D41D8CD98F00B204E9800998ECF8427E"),
    ...               matcher.match("pdq", "0" * 64, threshold=31))
    [] []

(``store.match(type, value)`` is the same through the matcher the store keeps.)

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

The index follows the sync without a rebuild and without re-reading the log. It is saved next
to the database (``FILE.pdqidx.npz``) with the log size it reflects and the hash of the last
leaf it saw. As the sync applies entries it journals every PDQ value they submit, retract or
benign-list (``pdq_changes``, written in the sync's own transaction); on open, and before each
match, the index reads the values journaled since its size, re-checks them against the view
(:meth:`LocalStore.pdq_changes_since`) and adds or removes them, so a follow-mode sync in
another process is seen at the next match. The index is rebuilt from the store only when the
file is missing, unreadable, or belongs to another copy (its last leaf differs).

Index ids are the first 8 bytes of the hash (a signed int64); the rare hash whose prefix is
taken by another gets a free id recorded in a small overflow table saved with the index.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from ..errors import InvalidInputError, StoreError
from ..match.pdq_index import (
    DEFAULT_THRESHOLD,
    HASH_BYTES,
    PDQIndex,
    PDQIndexFileError,
)
from ..match.video_index import (
    DEFAULT_COMPARED_MATCH,
    DEFAULT_QUERY_MATCH,
    VideoIndex,
    check_shares,
    frame_arrays_of_normal_value,
)
from ..signals import get_signal_type, normalize
from ..signals.vpdq import parse_frames
from .records import MatchResult
from .schema import PDQ

VPDQ: Final = "vpdq"

if TYPE_CHECKING:
    from .local import LocalStore

INDEX_SUFFIX: Final = ".pdqidx.npz"
"""The index file lives at ``<database path>`` + this suffix."""

_FORMAT: Final = 1


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
        if self._videos is None or self.store.size != self._videos_size:
            size, values = self.store.active_values(VPDQ)
            self._videos = VideoIndex.build((v, frame_arrays_of_normal_value(v)) for v in values)
            self._videos_size = size
        return self._videos

    def match_many(
        self, queries: Iterable[tuple[str, str]], threshold: int = DEFAULT_THRESHOLD
    ) -> Iterator[tuple[str, str, list[MatchResult]]]:
        """``(type, normalised value, results)`` for each ``(type, value)``, streamed."""
        for type_, value in queries:
            yield type_, normalize(type_, value), self.match(type_, value, threshold)

    def _results(self, type: str, candidates: list[tuple[str, int]]) -> list[MatchResult]:
        return self.store.matches(type, candidates) if candidates else []

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
        if self._index is None:
            self._open()
        index = self._index
        assert index is not None
        delta = self.store.pdq_changes_since(self._size, self._tail)
        if delta is None:  # the copy was replaced under us
            self._rebuild()
            index = self._index
            assert index is not None
        elif delta.size > self._size:
            for value in delta.touched:
                h = bytes.fromhex(value)
                if value in delta.active:
                    self._add(index, h)
                else:
                    self._remove(index, h)
            self._size, self._tail = delta.size, delta.tail
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
        return self.store.has_prefix(self._size, self._tail)

    def _rebuild(self) -> None:
        """Build the index from the store's active, non-benign PDQ signals."""
        size, tail, values = self.store.active_pdq_values()
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


def _prefix_id(h: bytes) -> int:
    return int.from_bytes(h[:8], "big", signed=True)


def _prefix_ids(hashes: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    ids: npt.NDArray[np.int64] = (
        np.ascontiguousarray(hashes[:, :8]).view(">i8").ravel().astype(np.int64)
    )
    return ids


def results_json(results: list[MatchResult]) -> str:
    """Results as one JSON array (compact)."""
    return json.dumps([r.to_json() for r in results], separators=(",", ":"))


__all__ = [
    "DEFAULT_THRESHOLD",
    "INDEX_SUFFIX",
    "MatchResult",
    "Matcher",
    "index_path_for",
]
