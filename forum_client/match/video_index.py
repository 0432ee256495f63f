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
Not thread-safe.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import numpy as np

from forum_client.errors import InvalidInputError
from forum_client.match.pdq_index import DEFAULT_THRESHOLD, PDQIndex
from forum_client.signals.vpdq import Frame

MIN_FRAME_QUALITY: Final = 50
"""Frames of lower PDQ quality take no part in matching (the reference's quality filter)."""
DEFAULT_QUERY_MATCH: Final = 80.0
"""Percent of the query's frames that must match (reference default)."""
DEFAULT_COMPARED_MATCH: Final = 80.0
"""Percent of the shared video's frames that must match (reference default)."""

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class VideoMatch(Generic[K]):
    """One shared video that matched: both shares in percent, and the closest frame pair."""

    key: K
    query_match: float
    compared_match: float
    distance: int


def matchable(frames: Iterable[Frame], min_quality: int = MIN_FRAME_QUALITY) -> list[bytes]:
    """The distinct 32-byte hashes of the frames of quality ``min_quality`` or better, in
    order of first appearance."""
    seen: dict[bytes, None] = {}
    for f in frames:
        if f.quality >= min_quality:
            seen.setdefault(bytes.fromhex(f.pdq), None)
    return list(seen)


def check_shares(query_match: float, compared_match: float) -> None:
    """Raises InvalidInputError unless both shares are percentages from 0 to 100."""
    for name, share in (("query_match", query_match), ("compared_match", compared_match)):
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 100:
            raise InvalidInputError.field(name, "must be a percentage from 0 to 100")


class VideoIndex(Generic[K]):
    """The frames of many shared videos, for vPDQ matching (see the module docstring)."""

    def __init__(self, min_quality: int = MIN_FRAME_QUALITY) -> None:
        self.min_quality = min_quality
        self._pdq = PDQIndex()
        self._frame_ids: dict[bytes, int] = {}  # distinct frame hash -> PDQ index id
        self._videos_of: dict[int, set[K]] = {}  # frame id -> videos holding that frame
        self._frames_of: dict[K, list[int]] = {}  # video -> its distinct matchable frame ids
        self._next_id = 0

    @classmethod
    def build(
        cls, videos: Iterable[tuple[K, Iterable[Frame]]], min_quality: int = MIN_FRAME_QUALITY
    ) -> VideoIndex[K]:
        """An index of ``(key, frames)`` pairs, built in one pass (faster than :meth:`add`)."""
        index: VideoIndex[K] = cls(min_quality)
        for key, frames in videos:
            index._register(key, frames)
        if index._frame_ids:
            hashes = np.frombuffer(b"".join(index._frame_ids), np.uint8).reshape(-1, 32)
            index._pdq = PDQIndex.build(np.fromiter(index._frame_ids.values(), np.int64), hashes)
        return index

    def __len__(self) -> int:
        return len(self._frames_of)

    def __contains__(self, key: object) -> bool:
        return key in self._frames_of

    @property
    def frame_count(self) -> int:
        """Distinct frame hashes indexed."""
        return len(self._frame_ids)

    def add(self, key: K, frames: Iterable[Frame]) -> None:
        """Index one shared video (replacing an earlier one under the same key)."""
        self.remove(key)
        for h in self._register(key, frames):
            self._pdq.add(self._frame_ids[h], h)

    def _register(self, key: K, frames: Iterable[Frame]) -> list[bytes]:
        """Record ``key``'s frames; return the hashes new to the index."""
        fresh, ids = [], []
        for h in matchable(frames, self.min_quality):
            frame_id = self._frame_ids.get(h)
            if frame_id is None:
                frame_id = self._frame_ids[h] = self._next_id
                self._next_id += 1
                self._videos_of[frame_id] = set()
                fresh.append(h)
            self._videos_of[frame_id].add(key)
            ids.append(frame_id)
        if ids:
            self._frames_of[key] = ids
        return fresh

    def remove(self, key: K) -> bool:
        """Drop one shared video; returns whether it was indexed."""
        ids = self._frames_of.pop(key, None)
        if ids is None:
            return False
        for frame_id in ids:
            holders = self._videos_of[frame_id]
            holders.discard(key)
            if not holders:
                del self._videos_of[frame_id]
                h = self._pdq.hash_of(frame_id)
                self._pdq.remove(frame_id)
                if h is not None:
                    del self._frame_ids[h]
        return True

    def query(
        self,
        frames: Iterable[Frame],
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
        hashes = matchable(frames, self.min_quality)
        if not hashes:
            raise InvalidInputError.field(
                "value", f"no frame of the query has PDQ quality {self.min_quality} or better"
            )
        found = self._pdq.query_many(
            np.frombuffer(b"".join(hashes), np.uint8).reshape(-1, 32), threshold
        )
        query_hits: defaultdict[K, set[int]] = defaultdict(set)
        shared_hits: defaultdict[K, set[int]] = defaultdict(set)
        closest: dict[K, int] = {}
        for q, hits in enumerate(found):
            for frame_id, dist in hits:
                for key in self._videos_of.get(frame_id, ()):
                    query_hits[key].add(q)
                    shared_hits[key].add(frame_id)
                    if dist < closest.get(key, 257):
                        closest[key] = dist
        out = []
        for key, matched in query_hits.items():
            q_share = 100.0 * len(matched) / len(hashes)
            c_share = 100.0 * len(shared_hits[key]) / len(self._frames_of[key])
            if q_share >= query_match and c_share >= compared_match:
                out.append(VideoMatch(key, q_share, c_share, closest[key]))
        out.sort(key=lambda m: (-min(m.query_match, m.compared_match), m.distance))
        return out


__all__ = [
    "DEFAULT_COMPARED_MATCH",
    "DEFAULT_QUERY_MATCH",
    "MIN_FRAME_QUALITY",
    "VideoIndex",
    "VideoMatch",
    "check_shares",
    "matchable",
]
