"""The bulk layout of a :class:`~forum_client.match.pdq_index.PDQIndex`: every bucket, every
crowded bucket already split into its bands, in one pass per chunk (vectorised).

Splitting the crowded buckets one by one after a plain layout (what :meth:`PDQIndex.add`
does when a bucket grows past ``split_at``) costs ~15 numpy calls per bucket and a compaction
of the pool afterwards; at 1M realistic hashes split from 64 rows that is ~24,000 buckets and
took longer than the rest of the build. Here each chunk's rows are sorted by (chunk value,
band) with two radix sorts, and the pool is written once, in that order: a bucket's rows, or
a split bucket's bands one after the other, each with the same slack as a bucket.

The result is the same index as splitting one by one (the same pivots, from the same
sample of rows), so queries, adds and removals behave the same afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, cast

import numpy as np
import numpy.typing as npt

CHUNKS: Final = 16
CHUNK_VALUES: Final = 1 << 16
NUM_BUCKETS: Final = CHUNKS * CHUNK_VALUES
FAR: Final = 64  # distances to a pivot of 64 or more share a split bucket's last band
EXACT: Final = 16  # a band per distance below this (a cluster's rows: removals scan few)...
WIDE_SHIFT: Final = 4  # ...then bands 16 wide (16-31, 32-47, 48-63), then one for 64 and more
BANDS: Final = EXACT + ((FAR - EXACT) >> WIDE_SHIFT) + 1  # 20
PIVOT_SAMPLE: Final = 15  # a pivot is the bitwise majority of this many of its rows
_SLAB_ROWS: Final = 1 << 18  # rows (or sampled rows) handled per round: bounds temporaries


@dataclass(frozen=True)
class Layout:
    """Bucket heads (start, length) int32, capacities, the pool, how much of it is used,
    and each split bucket's pivot (in split order)."""

    heads: npt.NDArray[np.int32]
    caps: npt.NDArray[np.int32]
    pool: npt.NDArray[np.int32]
    used: int
    pivots: npt.NDArray[np.uint64]


def with_slack(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    """Bucket capacities: room for a few adds (~3%, at least one) before a bucket has to
    move; an empty bucket gets none (its first add moves it: O(1))."""
    return (counts + (counts + 31) // 32).astype(np.int32)


def ranges(starts: npt.NDArray[np.integer], lens: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    """Concatenation of ``arange(s, s + l)`` for every (s, l), vectorised (``lens`` >= 0)."""
    ends = np.cumsum(lens, dtype=np.int64)
    total = int(ends[-1]) if ends.size else 0
    return np.repeat(starts - (ends - lens), lens) + np.arange(total, dtype=np.int64)


def distances(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint32]:
    """Exact Hamming weight of each row of ``x`` (k, 4), 0..256: the four per-word counts of
    one ``bitwise_count``, read as one uint32 and multiplied by 0x01010101, sum into the top
    byte (mod 256: the all-ones row, four counts of 64, is set to 256 afterwards)."""
    counts = np.bitwise_count(x).view(np.uint32).reshape(-1)
    dist = cast(npt.NDArray[np.uint32], (counts * 0x01010101) >> 24)
    dist[counts == 0x40404040] = 256
    return dist


def bands(dist: npt.NDArray[np.integer]) -> npt.NDArray[np.integer]:
    """The band of each distance (>= 0) to a split bucket's pivot (see :func:`band_of`)."""
    near = np.minimum(dist, FAR)
    out = np.where(near < EXACT, near, EXACT + ((near - EXACT) >> WIDE_SHIFT))
    return cast(npt.NDArray[np.integer], out)


def band_of(dist: int) -> int:
    """The band of a distance (>= 0) to a split bucket's pivot: the distance itself below
    16, then one band per 16 distances up to 63, then the last band for 64 or more."""
    near = min(dist, FAR)
    return near if near < EXACT else EXACT + ((near - EXACT) >> WIDE_SHIFT)


def band_reach(band: int) -> int:
    """The largest distance to its pivot that a row in ``band`` (below the last) can have;
    -1 for band -1 (none)."""
    return band if band < EXACT else EXACT + ((band - EXACT + 1) << WIDE_SHIFT) - 1


def sampled(
    offsets: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Positions (g, 15) of the rows sampled for the pivots of ``g`` buckets, spread evenly
    over each bucket (repeated in a bucket of fewer rows)."""
    spread = np.arange(PIVOT_SAMPLE, dtype=np.int64)[None, :] * lengths[:, None] // PIVOT_SAMPLE
    out: npt.NDArray[np.int64] = offsets[:, None] + spread
    return out


def majority(samples: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """The bitwise majority (g, 15, 4) -> (g, 4) of each bucket's 15 sampled hashes: its
    pivot. The votes are counted bit-sliced (a 4-bit counter per bit, in uint64 words), so
    the majority, 8 or more of 15, is the counter's top bit."""
    c0, c1, c2, c3 = (np.zeros(samples.shape[::2], np.uint64) for _ in range(4))
    for i in range(PIVOT_SAMPLE):
        x = samples[:, i]
        carry = c0 & x
        c0 ^= x
        x = carry
        carry = c1 & x
        c1 ^= x
        x = carry
        carry = c2 & x
        c2 ^= x
        c3 |= carry  # 15 votes never overflow the fourth bit
    return c3


def build_layout(words: npt.NDArray[np.uint64], split_at: int) -> Layout:
    """Every bucket of the hashes ``words`` (n, 4), those of more than ``split_at`` rows
    split into their bands (see module doc)."""
    n = len(words)
    chunks = words.view("<u2")  # (n, 16): a view, no copy
    counts = np.stack([np.bincount(chunks[:, c], minlength=CHUNK_VALUES) for c in range(CHUNKS)])
    crowded = counts > split_at  # (16, 65536)
    n_split = int(crowded.sum())
    # The pool's size: each split bucket's bands can need up to one slot of slack each
    # beyond the bucket's own (never-written room costs no resident memory).
    bound = int(with_slack(counts.reshape(-1).astype(np.int64)).sum(dtype=np.int64))
    pool = np.zeros(bound + BANDS * n_split + bound // 32 + 1024, np.int32)
    heads = np.zeros((NUM_BUCKETS + n_split * BANDS, 2), np.int32)
    caps = np.zeros(NUM_BUCKETS + n_split * BANDS, np.int32)
    pivots = np.zeros((n_split, 4), np.uint64)
    used = 0
    which = 0
    rank = np.arange(n, dtype=np.int32)
    for c in range(CHUNKS):
        values = chunks[:, c]
        order = np.argsort(values, kind="stable")  # a radix sort
        count = counts[c].astype(np.int64)
        hot = np.flatnonzero(crowded[c])
        g = len(hot)
        if g:
            offsets = np.cumsum(count) - count  # where each value's rows start in ``order``
            row_bands = _bands_of_groups(words, order, offsets[hot], count[hot], pivots, which)
            # Sort each crowded value's rows by band (stable: as the one-by-one split does).
            inside = ranges(offsets[hot], count[hot])
            group = np.repeat(np.arange(g, dtype=np.uint16), count[hot])
            by_band = np.argsort(row_bands, kind="stable")
            by_band = by_band[np.argsort(group[by_band], kind="stable")]
            order[inside] = order[inside][by_band]
            per_band = np.bincount(
                group.astype(np.int64) * BANDS + row_bands, minlength=g * BANDS
            ).reshape(g, BANDS)
        # Segments in pool order: one per plain value, BANDS per crowded one.
        segs_per_value = np.where(crowded[c], BANDS, 1)
        first_seg = np.cumsum(segs_per_value) - segs_per_value
        seg_count = np.zeros(int(segs_per_value.sum()), np.int64)
        plain = np.flatnonzero(~crowded[c])
        seg_count[first_seg[plain]] = count[plain]
        if g:
            seg_count[(first_seg[hot][:, None] + np.arange(BANDS)).reshape(-1)] = per_band.reshape(
                -1
            )
        seg_cap = with_slack(seg_count)
        seg_start = used + np.cumsum(seg_cap, dtype=np.int64) - seg_cap
        # int32 positions (the pool is int32-addressed): half the memory traffic of int64.
        at = np.repeat((seg_start - (np.cumsum(seg_count) - seg_count)).astype(np.int32), seg_count)
        at += rank
        pool[at] = order
        del order, at
        used = int(seg_start[-1] + seg_cap[-1])
        base = c * CHUNK_VALUES
        heads[base + plain, 0] = seg_start[first_seg[plain]]
        heads[base + plain, 1] = count[plain]
        caps[base + plain] = seg_cap[first_seg[plain]]
        if g:
            heads[base + hot, 1] = -1 - np.arange(which, which + g)
            subs = NUM_BUCKETS + (np.arange(which, which + g)[:, None] * BANDS + np.arange(BANDS))
            band_segs = first_seg[hot][:, None] + np.arange(BANDS)
            heads[subs.reshape(-1), 0] = seg_start[band_segs.reshape(-1)]
            heads[subs.reshape(-1), 1] = per_band.reshape(-1)
            caps[subs.reshape(-1)] = seg_cap[band_segs.reshape(-1)]
            which += g
    return Layout(heads, caps, pool, used, pivots)


def _bands_of_groups(
    words: npt.NDArray[np.uint64],
    order: npt.NDArray[np.intp],
    offsets: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    pivots: npt.NDArray[np.uint64],
    first: int,
) -> npt.NDArray[np.uint8]:
    """For crowded groups of rows (``order[offsets[i] : offsets[i] + lengths[i]]``): write
    each group's pivot into ``pivots[first + i]`` and return every row's band, group after
    group. Handled a slab of groups at a time, so temporaries stay bounded."""
    out = np.empty(int(lengths.sum()), np.uint8)
    done = 0
    lo = 0
    while lo < len(lengths):
        hi = lo + 1
        rows_in = int(lengths[lo])
        while hi < len(lengths) and rows_in + int(lengths[hi]) <= _SLAB_ROWS:
            rows_in += int(lengths[hi])
            hi += 1
        slab_pivots = majority(words[order[sampled(offsets[lo:hi], lengths[lo:hi])]])
        pivots[first + lo : first + hi] = slab_pivots
        # Bands: each row's distance to its group's pivot.
        rows = order[ranges(offsets[lo:hi], lengths[lo:hi])]
        near = words[rows] ^ np.repeat(slab_pivots, lengths[lo:hi], axis=0)
        out[done : done + rows_in] = bands(distances(near))
        done += rows_in
        lo = hi
    return out
