"""One :class:`~forum_client.match.pdq_index.PDQIndex` query's bucket probes, compiled with
numba (the optional ``fast`` extra; ``pdq_index`` imports this module only when a big index
is first queried, and answers in numpy without it).

The numpy path pays ~1 us per call for ~25 calls a miss, and each call waits on its own
cache misses. Here one compiled function does the same work in passes that are each a run
of independent loads the processor overlaps: the 272 bucket heads (16 chunks x 17 probes at
the default threshold); the bands of the split buckets met (the same triangle-inequality
test as ``PDQIndex._near_sub_buckets``, with the same reach); then the candidates, 1,024 at
a time: their row numbers, then their hashes copied, then compared (comparing each hash
where it lies, or without the copy, kept fewer loads in flight: uniform misses were 1.3x
slower than that). At 1M hashes a miss takes about half the time of the numpy path on
realistic data and 0.8 of it on uniform data (``scripts/bench_pdq.py``).

It returns the matches it found, each row as often as it was met (up to once per chunk:
the caller de-duplicates), or :data:`CROWDED` when the probed buckets hold more candidates
than the caller allows (a hit inside a big cluster, which the numpy path answers better),
or :data:`FULL` when the caller's output arrays are full.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from forum_client.match._pdq_layout import BANDS, CHUNK_VALUES, CHUNKS, FAR, NUM_BUCKETS, band_of

CROWDED: Final = -1
FULL: Final = -2
_LAST: Final = BANDS - 1
_HALF: Final = 0xFFFF
_BLOCK: Final = 1024  # candidate rows copied, then compared, at a time


@intrinsic
def _popcount(typingctx: Any, x: Any) -> Any:
    """The number of set bits of a uint64 (one instruction: LLVM's ctpop)."""
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return sig, codegen


_band = njit(cache=True, nogil=True)(band_of)  # the band of a distance to a pivot


@njit(cache=True, nogil=True)
def _distance(words: Any, row: int, q0: Any, q1: Any, q2: Any, q3: Any) -> int:
    """The Hamming distance of ``words[row]`` (4 uint64) to the query's 4 words."""
    return int(
        _popcount(q0 ^ words[row, 0])
        + _popcount(q1 ^ words[row, 1])
        + _popcount(q2 ^ words[row, 2])
        + _popcount(q3 ^ words[row, 3])
    )


@njit(cache=True, nogil=True)
def probe(
    heads: Any,
    pool: Any,
    words: Any,
    pivots: Any,
    reach: Any,
    query: Any,
    flips: Any,
    limit: int,
    max_candidates: int,
    out_rows: Any,
    out_dist: Any,
) -> int:
    """Matches of ``query`` (4 uint64 words) within ``limit`` bits, written to ``out_rows``
    and ``out_dist``; returns how many, or CROWDED or FULL (see the module doc).

    ``heads`` is the index's packed heads (start | length << 32, the length ``-1 - which``
    for split bucket ``which``), ``flips`` the 16-bit masks probed around each chunk value
    (``PDQIndex``'s ``_FLIPS`` for ``limit // 16``)."""
    q0, q1, q2, q3 = query[0], query[1], query[2], query[3]
    n_flips = len(flips)
    probed = np.empty(CHUNKS * n_flips, np.int64)
    split = 0
    for c in range(CHUNKS):
        value = (query[c >> 2] >> np.uint64((c & 3) * 16)) & np.uint64(_HALF)
        base = c * CHUNK_VALUES
        for f in range(n_flips):
            head = heads[base + (np.int64(value) ^ flips[f])]
            probed[c * n_flips + f] = head
            if head < 0:
                split += 1
    bands = np.empty(split * BANDS, np.int64)
    n_bands = 0
    if split:
        for i in range(len(probed)):
            length = probed[i] >> 32
            if length >= 0:
                continue
            probed[i] = 0  # a split bucket's own head reads nothing; its bands do
            which = -1 - length
            to_pivot = _distance(pivots, which, q0, q1, q2, q3)
            first = NUM_BUCKETS + which * BANDS
            if to_pivot - limit > reach[which]:  # only the last band can hold a match
                if to_pivot + limit >= FAR:
                    bands[n_bands] = heads[first + _LAST]
                    n_bands += 1
            else:
                for b in range(_band(max(to_pivot - limit, 0)), _band(to_pivot + limit) + 1):
                    bands[n_bands] = heads[first + b]
                    n_bands += 1
    total = 0
    for i in range(len(probed)):
        total += probed[i] >> 32
    for i in range(n_bands):
        total += bands[i] >> 32
    if total > max_candidates:
        return CROWDED
    rows = np.empty(_BLOCK, np.int32)
    near = np.empty((_BLOCK, 4), np.uint64)
    found = taken = 0
    for i in range(len(probed) + n_bands):
        head = probed[i] if i < len(probed) else bands[i - len(probed)]
        start = head & 0xFFFFFFFF
        for at in range(start, start + (head >> 32)):
            rows[taken] = pool[at]
            taken += 1
            if taken == _BLOCK:
                found = _compare(rows, taken, near, words, query, limit, out_rows, out_dist, found)
                if found < 0:
                    return FULL
                taken = 0
    last: int = _compare(rows, taken, near, words, query, limit, out_rows, out_dist, found)
    return last


@njit(cache=True, nogil=True)
def _compare(
    rows: Any,
    taken: int,
    near: Any,
    words: Any,
    query: Any,
    limit: int,
    out_rows: Any,
    out_dist: Any,
    found: int,
) -> int:
    """Append the ``rows[:taken]`` within ``limit`` of ``query`` to the output after the
    ``found`` there; the new count, or FULL. Their hashes are copied first, in a loop of
    nothing but independent loads (so the processor has many in flight), then compared."""
    for i in range(taken):
        row = rows[i]
        near[i, 0] = words[row, 0]
        near[i, 1] = words[row, 1]
        near[i, 2] = words[row, 2]
        near[i, 3] = words[row, 3]
    q0, q1, q2, q3 = query[0], query[1], query[2], query[3]
    for i in range(taken):
        dist = _distance(near, i, q0, q1, q2, q3)
        if dist <= limit:
            if found == len(out_rows):
                return FULL
            out_rows[found] = rows[i]
            out_dist[found] = dist
            found += 1
    return found
