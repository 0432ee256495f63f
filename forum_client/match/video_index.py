"""Matching videos by vPDQ: the share of frames that match, each way, through the PDQ index.

vPDQ's rule (Meta's reference and python-threatexchange's ``VPDQSignal``): two videos match
when at least ``query_match`` percent of the query's frames have a frame of the shared video
within PDQ distance ``threshold``, and at least ``compared_match`` percent of the shared
video's frames have one in the query. Before comparing, each side keeps only frames of PDQ
quality :data:`MIN_FRAME_QUALITY` (50) or better and each distinct hash once. Defaults are the
reference's: distance 31, 80 percent each way. (python-threatexchange's own index defaults the
shared side to 0 percent: ``compared_match=0`` reproduces it.)

:class:`VideoIndex` puts every distinct frame hash of every shared video once into a
:class:`~forum_client.match.pdq_index.PDQIndex`, so a query costs one PDQ lookup per query
frame, whatever the number of shared videos::

    >>> from forum_client.signals.vpdq import Frame
    >>> a = [Frame(f"{i:02x}" * 32, 100, float(i)) for i in range(10)]
    >>> index = VideoIndex()
    >>> index.add("video-a", a)
    >>> [(m.key, m.query_match, m.compared_match) for m in index.query(a[:9])]
    [('video-a', 100.0, 90.0)]
    >>> index.query(a[:5])       # half of video-a's frames: below the 80% rule
    []
    >>> index.remove("video-a"), len(index)
    (True, 0)

Keys are whatever the caller uses to name a shared video (the store uses the signal value).
An index with ``str`` keys is saved with :meth:`VideoIndex.save` and read back with
:meth:`VideoIndex.load_with_extra`: the file is a PDQ index file
(:meth:`~forum_client.match.pdq_index.PDQIndex.save`: uncompressed ``.npz``, a CRC-32 per
array, replaced atomically) whose extra arrays hold the videos' keys, frame lists and owners.
Loading checks them against each other and against the PDQ index, so a truncated, corrupt or
inconsistent file raises :class:`~forum_client.match.pdq_index.PDQIndexFileError` instead of
giving wrong matches. Not thread-safe.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from forum_client.errors import InvalidInputError
from forum_client.match.pdq_index import DEFAULT_THRESHOLD, PDQIndex, PDQIndexFileError
from forum_client.signals.vpdq import Frame

MIN_FRAME_QUALITY: Final = 50
"""Frames of lower PDQ quality take no part in matching (the reference's quality filter)."""
DEFAULT_QUERY_MATCH: Final = 80.0
"""Percent of the query's frames that must match (reference default)."""
DEFAULT_COMPARED_MATCH: Final = 80.0
"""Percent of the shared video's frames that must match (reference default)."""

K = TypeVar("K", bound=Hashable)

_Hashes = npt.NDArray[np.uint8]
FrameArrays = tuple[_Hashes, npt.NDArray[np.int64]]
"""A video's frames as arrays: hashes (n, 32) uint8 and qualities (n,)."""
_FREE: Final = -2  # _owner: the frame id is no longer indexed
_SHARED: Final = -1  # _owner: several videos hold the frame (see _shared)
_FILE_FORMAT: Final = 1
_FILE_PREFIX: Final = "v_"  # the video structures' names among a saved PDQ index's extras
_FILE_ARRAYS: Final = (
    "meta",
    "key_bytes",
    "key_ends",
    "frame_ids",
    "frame_ends",
    "owner",
    "shared",
)


@dataclass(frozen=True)
class VideoMatch(Generic[K]):
    """One shared video that matched: both shares in percent, and the closest frame pair."""

    key: K
    query_match: float
    compared_match: float
    distance: int


def frame_arrays(frames: Iterable[Frame]) -> FrameArrays:
    """Frames as arrays (see :data:`FrameArrays`)."""
    listed = list(frames)
    hashes = np.frombuffer(bytes.fromhex("".join(f.pdq for f in listed)), np.uint8)
    return hashes.reshape(-1, 32), np.array([f.quality for f in listed], np.int64)


def frame_arrays_of_normal_value(value: str) -> FrameArrays:
    """The frames of a vpdq value that is already in normal form, parsed without checking it
    (about 20x faster than :func:`~forum_client.signals.vpdq.parse_frames`). Only for values
    read back from the verified local copy, where every value passed normalisation; anything
    else goes through ``parse_frames``."""
    items = json.loads(value)
    hashes = np.frombuffer(bytes.fromhex("".join([s[:64] for s in items])), np.uint8)
    qualities = np.array([int(s[65 : s.index(",", 65)]) for s in items], np.int64)
    return hashes.reshape(-1, 32), qualities


def _unique_rows(hashes: _Hashes) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """``(first, inverse)``: the row where each distinct hash first stands (in sorted order
    of the hashes), and for every row the number of its distinct hash. A lexicographic sort
    of the four 64-bit words: about 10x faster than ``np.unique`` on 32-byte rows."""
    words = np.ascontiguousarray(hashes).view("<u8")
    order = np.lexsort(words.T[::-1])
    ordered = words[order]
    starts = np.ones(len(order), bool)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    inverse = np.empty(len(order), np.intp)
    inverse[order] = np.cumsum(starts) - 1
    return order[starts], inverse


def _distinct(hashes: _Hashes) -> _Hashes:
    """The distinct rows of ``hashes``."""
    if len(hashes) < 2:
        return hashes
    first, _ = _unique_rows(hashes)
    return hashes[first]


def _as_arrays(frames: Iterable[Frame] | FrameArrays) -> FrameArrays:
    if isinstance(frames, tuple) and len(frames) == 2 and isinstance(frames[0], np.ndarray):
        return frames
    return frame_arrays(frames)


def matchable(frames: Iterable[Frame], min_quality: int = MIN_FRAME_QUALITY) -> list[bytes]:
    """The distinct 32-byte hashes of the frames of quality ``min_quality`` or better (what
    both sides of a comparison count), sorted."""
    hashes, qualities = frame_arrays(frames)
    return [row.tobytes() for row in _distinct(hashes[qualities >= min_quality])]


def check_shares(query_match: float, compared_match: float) -> None:
    """Raises InvalidInputError unless both shares are percentages from 0 to 100."""
    for name, share in (("query_match", query_match), ("compared_match", compared_match)):
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 100:
            raise InvalidInputError.field(name, "must be a percentage from 0 to 100")


class VideoIndex(Generic[K]):
    """The frames of many shared videos, for vPDQ matching (see the module docstring).

    Layout: every distinct frame hash is one id in a PDQ index. Most frames belong to one
    video, so ``_owner[frame id]`` is that video's number; the few frames several videos share
    are listed in ``_shared``. Each video keeps the array of its distinct frame ids (its
    denominator for the shared-side percentage, and what removing it takes out). A frame added
    later is recognised as already indexed by an exact (distance 0) PDQ lookup.
    """

    def __init__(self, min_quality: int = MIN_FRAME_QUALITY) -> None:
        self.min_quality = min_quality
        self._pdq = PDQIndex()
        self._keys: list[K | None] = []  # video number -> key (None once removed)
        self._number: dict[K, int] = {}
        self._frames_of: dict[int, npt.NDArray[np.int64]] = {}
        self._owner = np.empty(0, np.int64)  # frame id -> video number, _SHARED or _FREE
        self._shared: dict[int, set[int]] = {}
        self._next_frame = 0

    @classmethod
    def build(
        cls,
        videos: Iterable[tuple[K, Iterable[Frame] | FrameArrays]],
        min_quality: int = MIN_FRAME_QUALITY,
    ) -> VideoIndex[K]:
        """An index of ``(key, frames)`` pairs (frames as :class:`Frame` objects or
        :data:`FrameArrays`), built in a few vectorised passes; a repeated key keeps its last
        frames."""
        index: VideoIndex[K] = cls(min_quality)
        kept: dict[K, _Hashes] = {}
        for key, frames in videos:
            hashes, qualities = _as_arrays(frames)
            kept.pop(key, None)
            rows = hashes[qualities >= min_quality]
            if len(rows):
                kept[key] = rows
        if not kept:
            return index
        index._number = {key: n for n, key in enumerate(kept)}
        index._keys = list(kept)
        sizes = np.array([len(rows) for rows in kept.values()])
        every = np.ascontiguousarray(np.concatenate(list(kept.values())))
        first, inverse = _unique_rows(every)
        distinct = len(first)
        owners = np.repeat(np.arange(len(kept), dtype=np.int64), sizes)
        pairs = np.sort(owners * distinct + inverse)
        pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]  # distinct (video, frame)
        video, frame = np.divmod(pairs, distinct)
        bounds = np.searchsorted(video, np.arange(len(kept) + 1))
        index._frames_of = {n: frame[bounds[n] : bounds[n + 1]] for n in range(len(kept))}
        holders = np.bincount(frame, minlength=distinct)
        index._owner = np.full(distinct, _SHARED, np.int64)
        alone = holders[frame] == 1
        index._owner[frame[alone]] = video[alone]
        for f, v in zip(frame[~alone].tolist(), video[~alone].tolist(), strict=True):
            index._shared.setdefault(f, set()).add(v)
        index._next_frame = distinct
        index._pdq = PDQIndex.build(np.arange(distinct, dtype=np.int64), every[first])
        return index

    def __len__(self) -> int:
        return len(self._number)

    def __contains__(self, key: object) -> bool:
        return key in self._number

    @property
    def frame_count(self) -> int:
        """Distinct frame hashes indexed."""
        return len(self._pdq)

    def add(self, key: K, frames: Iterable[Frame] | FrameArrays) -> None:
        """Index one shared video (replacing an earlier one under the same key)."""
        self.remove(key)
        hashes, qualities = _as_arrays(frames)
        rows = _distinct(hashes[qualities >= self.min_quality])
        if not len(rows):
            return
        number = len(self._keys)
        self._keys.append(key)
        self._number[key] = number
        ids = []
        for row in rows:
            h = row.tobytes()
            exact = self._pdq.query(h, 0)
            if exact:
                frame_id = exact[0][0]
                owner = int(self._owner[frame_id])
                if owner >= 0:
                    self._shared[frame_id] = {owner, number}
                    self._owner[frame_id] = _SHARED
                else:
                    self._shared[frame_id].add(number)
            else:
                frame_id = self._new_frame(number)
                self._pdq.add(frame_id, h)
            ids.append(frame_id)
        self._frames_of[number] = np.array(sorted(ids), np.int64)

    def _new_frame(self, owner: int) -> int:
        frame_id = self._next_frame
        self._next_frame += 1
        if frame_id >= len(self._owner):
            grown = np.full(max(64, 2 * len(self._owner)), _FREE, np.int64)
            grown[: len(self._owner)] = self._owner
            self._owner = grown
        self._owner[frame_id] = owner
        return frame_id

    def remove(self, key: K) -> bool:
        """Drop one shared video; returns whether it was indexed."""
        number = self._number.pop(key, None)
        if number is None:
            return False
        self._keys[number] = None
        for frame_id in self._frames_of.pop(number).tolist():
            owner = int(self._owner[frame_id])
            if owner == number:
                self._owner[frame_id] = _FREE
                self._pdq.remove(frame_id)
            elif owner == _SHARED:
                holders = self._shared[frame_id]
                holders.discard(number)
                if len(holders) == 1:
                    self._owner[frame_id] = holders.pop()
                    del self._shared[frame_id]
        return True

    def query(
        self,
        frames: Iterable[Frame] | FrameArrays,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        query_match: float = DEFAULT_QUERY_MATCH,
        compared_match: float = DEFAULT_COMPARED_MATCH,
    ) -> list[VideoMatch[K]]:
        """Every shared video matching the query's frames by vPDQ's rule, best first.

        Raises:
            InvalidInputError: a bad threshold or share, or no query frame of sufficient
                quality (field ``"value"``).
        """
        check_shares(query_match, compared_match)
        hashes, qualities = _as_arrays(frames)
        rows = _distinct(hashes[qualities >= self.min_quality])
        if not len(rows):
            raise InvalidInputError.field(
                "value", f"no frame of the query has PDQ quality {self.min_quality} or better"
            )
        query_hits: defaultdict[int, set[int]] = defaultdict(set)
        shared_hits: defaultdict[int, set[int]] = defaultdict(set)
        closest: dict[int, int] = {}
        for q, hits in enumerate(self._pdq.query_many(rows, threshold)):
            for frame_id, dist in hits:
                owner = int(self._owner[frame_id])
                for number in (owner,) if owner >= 0 else self._shared.get(frame_id, ()):
                    query_hits[number].add(q)
                    shared_hits[number].add(frame_id)
                    if dist < closest.get(number, 257):
                        closest[number] = dist
        out = []
        for number, matched in query_hits.items():
            q_share = 100.0 * len(matched) / len(rows)
            c_share = 100.0 * len(shared_hits[number]) / len(self._frames_of[number])
            key = self._keys[number]
            if key is not None and q_share >= query_match and c_share >= compared_match:
                out.append(VideoMatch(key, q_share, c_share, closest[number]))
        out.sort(key=lambda m: (-min(m.query_match, m.compared_match), m.distance))
        return out

    # ---------------------------------------------------------------- persistence

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        extra: Mapping[str, npt.NDArray[Any]] | None = None,
    ) -> None:
        """Write the index (``str`` keys only) to ``path``, atomically, with the caller's
        ``extra`` arrays (names of ``[a-z0-9_]`` not starting ``v_``), as
        :meth:`PDQIndex.save` does. Raises InvalidInputError for a key that is not a str."""
        live = [n for n, k in enumerate(self._keys) if k is not None]
        keys = [self._keys[n] for n in live]
        if not all(isinstance(k, str) for k in keys):
            raise InvalidInputError.field("key", "only an index with str keys can be saved")
        renumber = np.full(len(self._keys) + 1, -3, np.int64)  # the last slot maps -1 and -2
        renumber[live] = np.arange(len(live))
        owner = self._owner[: self._next_frame]
        owner = np.where(owner >= 0, renumber[owner], owner)
        encoded = [str(k).encode() for k in keys]
        frames = [self._frames_of[n] for n in live]
        pairs = [(f, int(renumber[v])) for f, holders in self._shared.items() for v in holders]
        mine = {
            "meta": np.array([_FILE_FORMAT, self.min_quality, self._next_frame, len(live)]),
            "key_bytes": np.frombuffer(b"".join(encoded), np.uint8),
            "key_ends": np.cumsum([len(b) for b in encoded], dtype=np.int64),
            "frame_ids": np.concatenate(frames) if frames else np.zeros(0, np.int64),
            "frame_ends": np.cumsum([len(f) for f in frames], dtype=np.int64),
            "owner": owner,
            "shared": np.array(sorted(pairs), np.int64).reshape(-1, 2),
        }
        theirs = dict(extra or {})
        if any(k.startswith(_FILE_PREFIX) for k in theirs):
            raise InvalidInputError.field("extra", f"names starting {_FILE_PREFIX!r} are taken")
        mine_named = {_FILE_PREFIX + k: v.astype(np.int64, copy=False) for k, v in mine.items()}
        mine_named[_FILE_PREFIX + "key_bytes"] = mine["key_bytes"]
        self._pdq.save(path, extra={**theirs, **mine_named})

    @classmethod
    def load_with_extra(
        cls, path: str | os.PathLike[str]
    ) -> tuple[VideoIndex[str], dict[str, npt.NDArray[Any]]]:
        """Read an index written by :meth:`save`, and the caller's ``extra`` arrays.

        Raises :class:`PDQIndexFileError` for a file that is not such an index, truncated,
        corrupt, of another format, or whose structures disagree; ``OSError`` if it cannot be
        opened."""
        pdq, extra = PDQIndex.load_with_extra(path)
        names = {_FILE_PREFIX + k for k in _FILE_ARRAYS}
        if not names <= extra.keys():
            raise PDQIndexFileError(f"{path}: not a video index file")
        arrays = {k: extra.pop(_FILE_PREFIX + k) for k in _FILE_ARRAYS}
        return cls._from_arrays(os.fspath(path), pdq, arrays), extra

    @classmethod
    def _from_arrays(
        cls, where: str, pdq: PDQIndex, a: dict[str, npt.NDArray[Any]]
    ) -> VideoIndex[str]:
        def bad(reason: str) -> PDQIndexFileError:
            return PDQIndexFileError(f"{where}: video index: {reason}")

        meta = a["meta"]
        if meta.dtype != np.int64 or meta.shape != (4,) or int(meta[0]) != _FILE_FORMAT:
            raise bad("bad header or another format")
        min_quality, next_frame, n = (int(x) for x in meta[1:])
        if not (0 <= min_quality <= 100 and next_frame >= 0 and n >= 0):
            raise bad("bad header counts")
        for k, dtype, ndim in (
            ("key_bytes", np.uint8, 1),
            ("key_ends", np.int64, 1),
            ("frame_ids", np.int64, 1),
            ("frame_ends", np.int64, 1),
            ("owner", np.int64, 1),
            ("shared", np.int64, 2),
        ):
            if a[k].dtype != dtype or a[k].ndim != ndim:
                raise bad(f"{k}: wrong dtype or rank")
        key_ends, frame_ends, frame_ids = a["key_ends"], a["frame_ends"], a["frame_ids"]
        owner, shared = a["owner"], a["shared"]
        if key_ends.shape != (n,) or frame_ends.shape != (n,) or owner.shape != (next_frame,):
            raise bad("arrays disagree with the header")
        if shared.shape[1:] != (2,):
            raise bad("shared: wrong shape")
        starts = np.r_[0, key_ends[:-1]] if n else key_ends
        if n and (bool(np.any(key_ends < starts)) or int(key_ends[-1]) != a["key_bytes"].size):
            raise bad("key offsets out of range")
        if n == 0 and a["key_bytes"].size:
            raise bad("key offsets out of range")
        data = a["key_bytes"].tobytes()
        try:
            keys = [
                data[s:e].decode() for s, e in zip(starts.tolist(), key_ends.tolist(), strict=True)
            ]
        except UnicodeDecodeError:
            raise bad("a key is not UTF-8") from None
        if len(set(keys)) != n:
            raise bad("a key is repeated")
        # Every video holds at least one frame, its frame ids sorted and distinct.
        firsts = np.r_[0, frame_ends[:-1]] if n else frame_ends
        if n and (bool(np.any(frame_ends <= firsts)) or int(frame_ends[-1]) != frame_ids.size):
            raise bad("frame offsets out of range")
        if n == 0 and frame_ids.size:
            raise bad("frame offsets out of range")
        if frame_ids.size and (int(frame_ids.min()) < 0 or int(frame_ids.max()) >= next_frame):
            raise bad("frame ids out of range")
        video = np.repeat(np.arange(n, dtype=np.int64), frame_ends - firsts)
        steps = np.diff(frame_ids)
        if bool(np.any((steps <= 0) & (np.diff(video) == 0))):
            raise bad("a video's frames are not sorted and distinct")
        if owner.size and (int(owner.min()) < _FREE or int(owner.max()) >= n):
            raise bad("frame owners out of range")
        sf, sv = shared[:, 0], shared[:, 1]
        if shared.size and (
            int(sf.min()) < 0
            or int(sf.max()) >= next_frame
            or int(sv.min()) < 0
            or int(sv.max()) >= n
        ):
            raise bad("shared frames out of range")
        # (video, frame) pairs: the frame lists hold exactly the owners' and the shared ones.
        span = max(n, 1)
        held = np.sort(frame_ids * span + video)
        alone = np.flatnonzero(owner >= 0)
        claimed = np.sort(np.concatenate([alone * span + owner[alone], sf * span + sv]))
        if not np.array_equal(held, claimed):
            raise bad("frame lists disagree with the frame owners")
        is_shared = owner == _SHARED
        holders = np.bincount(sf, minlength=next_frame) if next_frame else np.zeros(0, np.int64)
        if bool(np.any(holders[~is_shared] != 0)) or bool(np.any(holders[is_shared] < 2)):
            raise bad("shared frames disagree with the frame owners")
        indexed = np.flatnonzero(owner != _FREE)
        if len(pdq) != indexed.size or any(
            int(f) not in pdq for f in indexed[:: max(1, indexed.size // 64)][:64].tolist()
        ):
            raise bad("the PDQ index disagrees with the frames")

        index: VideoIndex[str] = cls(min_quality)  # type: ignore[assignment]
        index._pdq = pdq
        index._keys = list(keys)
        index._number = {k: i for i, k in enumerate(keys)}
        index._frames_of = {
            i: frame_ids[s:e]
            for i, (s, e) in enumerate(zip(firsts.tolist(), frame_ends.tolist(), strict=True))
        }
        index._owner = owner
        shared_of: dict[int, set[int]] = {}
        for f, v in zip(sf.tolist(), sv.tolist(), strict=True):
            shared_of.setdefault(f, set()).add(v)
        index._shared = shared_of
        index._next_frame = next_frame
        return index


__all__ = [
    "DEFAULT_COMPARED_MATCH",
    "DEFAULT_QUERY_MATCH",
    "MIN_FRAME_QUALITY",
    "FrameArrays",
    "VideoIndex",
    "VideoMatch",
    "check_shares",
    "frame_arrays",
    "frame_arrays_of_normal_value",
    "matchable",
]
