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
  the query's (80% each way by default, frames within ``threshold``). It follows the sync
  exactly as the PDQ index does (below), in its own file (``FILE.vpdqidx.npz``) and from its
  own journal (``vpdq_changes``).
- Retracted signals (no active descriptor left, :mod:`forum_client.rules`) and signals the
  operator published on the benign list never match. Every candidate is re-checked against
  the store's snapshot, so this holds even for a moment when the index lags the store.

The index follows the sync without a rebuild and without re-reading the log. It is saved next
to the database (``FILE.pdqidx.npz``) with the log size it reflects and the hash of the last
leaf it saw. Once an index has been opened over a copy (:meth:`LocalStore.follow_journal`), the
sync journals every PDQ value the entries it applies submit, retract or benign-list
(``pdq_changes``, written in the sync's own transaction; a copy nobody matches against carries
no journal); on open, and before each match, the index reads the values journaled since its
size, re-checks them against the view (:meth:`LocalStore.changes_since`) and adds or removes
them, so a follow-mode sync in another process is seen at the next match. The index is rebuilt
from the store only when the file is missing, unreadable, belongs to another copy (its last
leaf differs), or is older than the journal's start. The video
index does all of this the same way (one class, :class:`_Followed`, holds the logic; the video
file also checks its frame lists against its PDQ index when it loads), so a ``forum-client
match`` loads it instead of parsing every shared video again: with 10,000 shared videos of 60
frames that build took ~1.8 s of CPU (see ``docs/benchmarks.md``).

Index ids are the first 8 bytes of the hash (a signed int64); the rare hash whose prefix is
taken by another gets a free id recorded in a small overflow table saved with the index.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator, Sized
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, TypeVar

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
    MIN_FRAME_QUALITY,
    VideoIndex,
    check_shares,
    frame_arrays_of_normal_value,
)
from ..signals import get_signal_type, normalize
from ..signals.vpdq import parse_frames
from .records import MatchResult, PdqDelta
from .schema import PDQ, VPDQ

_I = TypeVar("_I", bound=Sized)

if TYPE_CHECKING:
    from .local import LocalStore

INDEX_SUFFIX: Final = ".pdqidx.npz"
"""The index file lives at ``<database path>`` + this suffix."""
VIDEO_INDEX_SUFFIX: Final = ".vpdqidx.npz"
"""The video index file lives at ``<database path>`` + this suffix."""

_FORMAT: Final = 1


def index_path_for(db_path: str | os.PathLike[str]) -> Path:
    """Where the PDQ index of the database at ``db_path`` is kept."""
    return Path(os.fspath(db_path) + INDEX_SUFFIX)


def video_index_path_for(db_path: str | os.PathLike[str]) -> Path:
    """Where the video (vPDQ) index of the database at ``db_path`` is kept."""
    return Path(os.fspath(db_path) + VIDEO_INDEX_SUFFIX)


class _Followed(Generic[_I]):
    """The index of one type's active, non-benign values, following the store (see the module
    docstring): loaded from its file and caught up from the type's journal
    (:meth:`LocalStore.changes_since`), rebuilt from the store when the file is missing,
    unreadable, of another format or of another copy, and saved when it lags by
    ``save_lag_entries``. Subclasses say how the index is built, changed, written and read."""

    type: ClassVar[str]
    what: ClassVar[str]  # in error messages
    REBUILD_MIN: ClassVar[int] = 4096
    REBUILD_SHARE: ClassVar[int] = 6
    """A tail that touches at least ``REBUILD_MIN`` values and a ``1 / REBUILD_SHARE`` share
    of the index is caught up by a rebuild: a PDQ hash costs ~7 us in a build and ~45 us
    added alone (200,000 realistic hashes, docs/benchmarks.md, issue 16)."""
    meta_fields: ClassVar[int] = 0  # ints of their own saved after (format, size) in "meta"

    def __init__(
        self, store: LocalStore, path: Path, *, persist: bool, save_lag_entries: int
    ) -> None:
        self.store = store
        self.path = path
        self.persist = persist
        self.save_lag_entries = save_lag_entries
        self.index: _I | None = None
        self.size = 0  # log size the in-memory index reflects
        self.saved_size = -1  # log size of the file on disk (-1: none written by us)
        self.tail = b""  # SHA-256 of the leaf at size - 1
        self.rebuilt = False  # whether the last open had to rebuild (for tests and the CLI)

    def close(self) -> None:
        """Save the index if its file lags the in-memory one."""
        if self.index is not None and self.persist and self.saved_size != self.size:
            self.save()

    def refresh(self) -> _I:
        """Open the index (load, or rebuild if needed) and apply the store's new entries."""
        if self.index is None:
            self._open()
        delta = self.store.changes_since(self.type, self.size, self.tail)
        if delta is None:  # the copy was replaced under us
            self._rebuild()
        elif delta.size > self.size:
            touched = len(delta.touched)
            if touched >= self.REBUILD_MIN and touched * self.REBUILD_SHARE >= len(self._index):
                self._rebuild()  # faster than adding a large tail one value at a time
            else:
                self._apply(delta)
                self.size, self.tail = delta.size, delta.tail
        if self.persist and self.size - max(self.saved_size, 0) >= self.save_lag_entries:
            self.save()
        return self._index

    @property
    def _index(self) -> _I:
        index = self.index
        assert index is not None
        return index

    def save(self) -> None:
        """Write the index and the log size it reflects (atomically) to :attr:`path`."""
        if self.index is None:
            return
        meta = np.array([_FORMAT, self.size, *self._meta()], np.int64)
        tail = np.frombuffer(self.tail.ljust(32, b"\0"), np.uint8)
        try:
            self._write({"meta": meta, "tail": tail, **self._extra()})
        except OSError as exc:
            raise StoreError(f"cannot save the {self.what} {self.path}: {exc}") from exc
        self.saved_size = self.size

    def _open(self) -> None:
        if self.persist and self._load():
            return
        self._rebuild()

    def _load(self) -> bool:
        """Read the file; False (and nothing kept) unless it is whole, of this format, and
        reflects a prefix of this copy."""
        self.store.follow_journal(self.type)  # catching up needs the journal (see _rebuild)
        try:
            extra = self._read()
            meta, tail = extra["meta"], extra["tail"]
            if (
                meta.dtype != np.int64
                or meta.shape != (2 + self.meta_fields,)
                or int(meta[0]) != _FORMAT
                or int(meta[1]) < 0
                or tail.shape != (32,)
            ):
                raise PDQIndexFileError(f"{self.path}: not a matcher index")
            self._restore(meta[2:], extra)
        except (OSError, KeyError, ValueError, IndexError):  # PDQIndexFileError is a ValueError
            self.index = None
            return False
        self.size = self.saved_size = int(meta[1])
        self.tail = tail.tobytes() if self.size else b""
        if self.store.has_prefix(self.size, self.tail):
            return True
        self.index = None
        return False

    def _rebuild(self) -> None:
        """Build the index from the store's active, non-benign values of the type."""
        # Before the index reads anything: from here on every sync journals this type, so
        # whatever commits after the snapshot the index is built at is in the journal (an
        # index older than the journal's start is rebuilt: LocalStore.changes_since).
        self.store.follow_journal(self.type)
        size, tail, values = self.store.indexed_values(self.type)
        self._build(values)
        self.size, self.tail = size, tail
        self.saved_size = -1
        self.rebuilt = True
        if self.persist:
            self.save()

    # What a kind of index does (all set or use self.index).
    def _build(self, values: list[str]) -> None:
        raise NotImplementedError

    def _apply(self, delta: PdqDelta) -> None:
        raise NotImplementedError

    def _meta(self) -> list[int]:
        return []

    def _extra(self) -> dict[str, npt.NDArray[Any]]:
        return {}

    def _write(self, extra: dict[str, npt.NDArray[Any]]) -> None:
        raise NotImplementedError

    def _read(self) -> dict[str, npt.NDArray[Any]]:
        raise NotImplementedError

    def _restore(self, meta: npt.NDArray[np.int64], extra: dict[str, npt.NDArray[Any]]) -> None:
        """Check and take the subclass's own saved state (PDQIndexFileError if bad)."""


class _PdqIndex(_Followed[PDQIndex]):
    """The PDQ index; its ids are hash prefixes, with an overflow table for collisions."""

    type = PDQ
    what = "PDQ index"
    meta_fields = 1  # the next overflow id

    def __init__(
        self, store: LocalStore, path: Path, *, persist: bool, save_lag_entries: int
    ) -> None:
        super().__init__(store, path, persist=persist, save_lag_entries=save_lag_entries)
        self._overflow: dict[bytes, int] = {}
        self._next_overflow = 0

    def _build(self, values: list[str]) -> None:
        hashes = np.frombuffer(bytes.fromhex("".join(values)), np.uint8).reshape(-1, HASH_BYTES)
        ids = _prefix_ids(hashes)
        self._overflow, self._next_overflow = {}, 0
        self.index = None
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
        self.index = PDQIndex.build(ids, hashes)

    def _apply(self, delta: PdqDelta) -> None:
        index = self.index
        assert index is not None
        for value in delta.touched:
            h = bytes.fromhex(value)
            if value in delta.active:
                self._add(index, h)
            else:
                self._remove(index, h)

    def _meta(self) -> list[int]:
        return [self._next_overflow]

    def _extra(self) -> dict[str, npt.NDArray[Any]]:
        over_hashes = np.frombuffer(b"".join(self._overflow), np.uint8).reshape(-1, HASH_BYTES)
        return {
            "over_hashes": over_hashes,
            "over_ids": np.array(list(self._overflow.values()), np.int64),
        }

    def _write(self, extra: dict[str, npt.NDArray[Any]]) -> None:
        assert self.index is not None
        self.index.save(self.path, extra=extra)

    def _read(self) -> dict[str, npt.NDArray[Any]]:
        self.index, extra = PDQIndex.load_with_extra(self.path)
        return extra

    def _restore(self, meta: npt.NDArray[np.int64], extra: dict[str, npt.NDArray[Any]]) -> None:
        over_hashes, over_ids = extra["over_hashes"], extra["over_ids"]
        if (
            over_hashes.dtype != np.uint8
            or over_hashes.ndim != 2
            or over_hashes.shape[1] != HASH_BYTES
            or over_ids.shape != (len(over_hashes),)
        ):
            raise PDQIndexFileError(f"{self.path}: not a matcher index")
        self._next_overflow = int(meta[0])
        self._overflow = {
            h.tobytes(): int(i) for h, i in zip(over_hashes, over_ids.tolist(), strict=True)
        }

    def _free_overflow_id(self, taken: set[int] | None = None) -> int:
        index = self.index
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


class _VideoIndex(_Followed[VideoIndex[str]]):
    """The vPDQ index, keyed by the signal value (the values come from the verified copy,
    already normal, so they are read with the fast parser)."""

    type = VPDQ
    what = "video index"

    def _build(self, values: list[str]) -> None:
        self.index = VideoIndex.build((v, frame_arrays_of_normal_value(v)) for v in values)

    def _apply(self, delta: PdqDelta) -> None:
        index = self.index
        assert index is not None
        for value in delta.touched:
            if value not in delta.active:
                index.remove(value)
            elif value not in index:
                index.add(value, frame_arrays_of_normal_value(value))

    def _write(self, extra: dict[str, npt.NDArray[Any]]) -> None:
        assert self.index is not None
        self.index.save(self.path, extra=extra)

    def _read(self) -> dict[str, npt.NDArray[Any]]:
        self.index, extra = VideoIndex.load_with_extra(self.path)
        return extra

    def _restore(self, meta: npt.NDArray[np.int64], extra: dict[str, npt.NDArray[Any]]) -> None:
        if self.index is None or self.index.min_quality != MIN_FRAME_QUALITY:
            raise PDQIndexFileError(f"{self.path}: made with another frame quality filter")


class Matcher:
    """Exact, PDQ and vPDQ matching over one :class:`LocalStore` (see the module docstring).

    ``index_path``: where the PDQ index is saved (default ``FILE.pdqidx.npz``);
    ``video_index_path``: where the video index is (default ``FILE.vpdqidx.npz``); with
    ``persist=False`` both are kept in memory only. ``save_lag_entries``: an index file is
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
        video_index_path: str | os.PathLike[str] | None = None,
        persist: bool = True,
        save_lag_entries: int = 256,
    ) -> None:
        self.store = store
        self.persist = persist
        self.save_lag_entries = save_lag_entries
        self._pdq = _PdqIndex(
            store,
            Path(index_path) if index_path else index_path_for(store.path),
            persist=persist,
            save_lag_entries=save_lag_entries,
        )
        self._videos = _VideoIndex(
            store,
            Path(video_index_path) if video_index_path else video_index_path_for(store.path),
            persist=persist,
            save_lag_entries=save_lag_entries,
        )

    def __enter__(self) -> Matcher:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Save each index whose file lags the in-memory one."""
        try:
            self._pdq.close()
        finally:
            self._videos.close()

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
        caught up with the store (loaded from its file, or rebuilt, on first use)."""
        return self._videos.refresh()

    def match_many(
        self, queries: Iterable[tuple[str, str]], threshold: int = DEFAULT_THRESHOLD
    ) -> Iterator[tuple[str, str, list[MatchResult]]]:
        """``(type, normalised value, results)`` for each ``(type, value)``, streamed."""
        for type_, value in queries:
            yield type_, normalize(type_, value), self.match(type_, value, threshold)

    def _results(self, type: str, candidates: list[tuple[str, int]]) -> list[MatchResult]:
        return self.store.matches(type, candidates) if candidates else []

    # ---------------------------------------------------------------- the indexes

    @property
    def index(self) -> PDQIndex:
        """The PDQ index, caught up with the store."""
        return self.refresh()

    @property
    def index_path(self) -> Path:
        """Where the PDQ index is saved."""
        return self._pdq.path

    @property
    def video_index_path(self) -> Path:
        """Where the video index is saved."""
        return self._videos.path

    @property
    def size(self) -> int:
        """The log size the PDQ index reflects."""
        return self._pdq.size

    @property
    def rebuilt(self) -> bool:
        """Whether opening the PDQ index had to rebuild it (for tests and the CLI)."""
        return self._pdq.rebuilt

    @property
    def video_rebuilt(self) -> bool:
        """Whether opening the video index had to rebuild it."""
        return self._videos.rebuilt

    def refresh(self) -> PDQIndex:
        """Open the PDQ index (load, or rebuild if needed) and apply the store's new entries."""
        return self._pdq.refresh()

    def save(self) -> None:
        """Write both indexes that are open, and the log size each reflects (atomically)."""
        self._pdq.save()
        self._videos.save()


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
    "VIDEO_INDEX_SUFFIX",
    "MatchResult",
    "Matcher",
    "index_path_for",
    "video_index_path_for",
]
