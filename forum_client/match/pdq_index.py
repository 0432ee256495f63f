"""An exact, updatable PDQ near-duplicate index for millions of hashes (numpy only).

A member matches its own media locally against every PDQ hash in its copy of the forum.
:class:`PDQIndex` maps an integer id (the local signal row) to a 256-bit PDQ hash and answers
"which indexed hashes are within Hamming distance ``threshold`` of this one?" exactly::

    >>> import numpy as np
    >>> from forum_client.match.pdq_index import PDQIndex
    >>> rng = np.random.default_rng(7)
    >>> hashes = rng.integers(0, 256, size=(1000, 32), dtype=np.uint8)
    >>> index = PDQIndex.build(np.arange(1000, dtype=np.int64), hashes)
    >>> near = bytearray(hashes[42].tobytes())
    >>> near[0] ^= 0b111                    # flip three bits
    >>> index.query(bytes(near))            # [(id, distance)], nearest first
    [(42, 3)]
    >>> index.add(5000, bytes(near))        # incremental: O(1), no rebuild
    >>> index.query(bytes(near), threshold=3)
    [(5000, 0), (42, 3)]
    >>> index.remove(42), 42 in index, len(index)
    (True, False, 1000)

``index.save(path)`` / ``PDQIndex.load(path)`` store the arrays and bucket structures as an
uncompressed ``.npz`` with a CRC-32 per array, so start-up loads them instead of rebuilding;
a truncated, corrupt or mismatched file raises :class:`PDQIndexFileError` (a ``ValueError``).

Design (chosen by measurement at 1M hashes on the 2-core reference machine)
----------------------------------------------------------------------------
*Multi-index hashing.* The 256 bits are split into 16 chunks of 16 bits. By pigeonhole, two
hashes at distance ``d`` have some chunk differing in at most ``d // 16`` bits, so probing,
for every chunk, the query's chunk value and all values within ``r = threshold // 16`` bits
finds every hash within ``threshold <= 16 * (r + 1) - 1``. We probe with ``r <= 2``, so the
index is exact up to :data:`MAX_INDEXED_THRESHOLD` (47): 16 x 17 = 272 bucket probes for the
default threshold 31 (~4,100 random candidates at 1M), 2,192 probes at 32..47. Above 47 the
query is a full vectorised popcount scan, so every result is exact whatever the threshold.
Fewer, wider chunks (8 x 32 bits) would need radius-3 probing of 32-bit keys (5,489 probes
per chunk); more, narrower ones (32 x 8 bits) give ~125,000 candidates per query; 12-15
chunks of 17-21 bits with mixed radii give as many random reads (more probes, fewer
candidates) and need 2-4x the bucket heads.

*What a query costs.* A miss is bound by memory and by numpy's per-call cost, not by
arithmetic: ~272 random reads of bucket heads and pool slices and one 32-byte read per
candidate (~1,000 on realistic data, ~4,100 on uniform). So a query does the least of both.
Its probes are one xor of a precomputed (17, 16) table of ``(chunk << 16) ^ flip`` with its
16 chunk values; one int64 per bucket head holds (start, length), gathered by one 1-D take
(a (n, 2) fancy index was 8x slower per call) and read with int64 shifts and masks (strided
int32 views cost ~1.5 us more per miss); the gathers use ``mode="clip"`` (the positions are
in range by construction, and numpy then skips its per-index check: ~10% of a gather);
the candidate rows are one ``take`` of whole
rows (column-major storage cost four cache misses per candidate); the distance is one
``bitwise_count`` of the xor with the query (repeated as bytes: a flat xor is ~3x faster
than broadcasting over rows of four words) and one multiply by 0x01010101 that sums each
row's four word counts in the top byte of a uint32 (mod 256, so the exact complement of the
query, distance 256, is dropped from the hits by its packed counts); a miss then returns on
one ``min``. That is ~15 numpy calls for a miss where the previous form took ~30: 1.2-1.3x
less time per realistic miss, 1.15x per uniform one (in-process, 300 misses, the old and the
new code alternating query by query at load 5-6; 1.4x with the row order below). A
two-stage popcount (word 0 first) was not taken: it still pays the cache miss of every
candidate, which is most of the gather. :meth:`PDQIndex.query_many` answers up to 64
queries per round of calls (fewer when they would gather over 128k candidates, to bound the
temporaries).

*Rows in hash order.* :meth:`build` stores the rows sorted by the hashes' first 8 bytes
(ids are kept beside them, so results do not depend on it). Near-copies of one image share
most chunk values, so they land in neighbouring rows and the candidates of a probe are read
from a few runs of memory instead of one cache line each: on realistic data misses and hits
took 1.2x [1.16-1.3] less time (the same alternation); uniform hashes have no near-copies
to gather. Rows freed by
removals are reused by later adds out of that order, which costs only that locality.

*Crowded buckets are split by distance to a pivot.* Real PDQ lists are far from uniform:
near-copies of one image (re-encodes, crops, captions) share most chunk values, so on
realistic data (``scripts/pdq_data.py``) the biggest buckets hold 10,000-110,000 rows
against ~15 for random hashes, and one probe of such a bucket gathers them all. A bucket of
more than :data:`SPLIT_AT` (64) rows is split into 20 bands (sub-buckets) by each row's
Hamming distance ``e`` to a pivot (the bitwise majority of 15 of its rows, spread over the
bucket): one band per ``e`` from 0 to 15, where a cluster's rows sit (so a removal scans few
rows), then 16-31, 32-47, 48-63, and one band for 64 or more; its head then holds the length
``-1 - which``. A query at distance ``D`` from the pivot can only match rows with
``|D - e| <= threshold`` (triangle inequality), so it reads only those bands. A split bucket is
typically one cluster (its bands below 64) plus a few unrelated hashes that share the chunk
value (the last band), and its *reach*, the largest ``e`` below 64 any of its rows has (kept
as an upper bound: an add widens it, a removal leaves it), lets a miss, far from every
cluster, skip the cluster with one ``int.bit_count`` and read only the last band's head.
Misses meet ~10 split buckets each at 64 (1.4 at the 512 used before), and read ~1,000
candidates instead of ~2,300: 1.27x less time per realistic miss at 1M, 1.46x at 10M
(``scripts/bench_pdq_ab.py``: both versions in one process, alternating); splitting from 32
or 128 rows was no faster. The vectorised form (~20 numpy calls) serves queries that probe
more than 64 split buckets (hits inside clusters) and :meth:`query_many`. A hit inside a
cluster gathers each near-copy from up to 16 buckets: when the candidates outnumber a 16th
of the index they are de-duplicated first, by a scatter into a mask and a scan (no sort),
which also makes the gather read forward. Removal inside the largest cluster reads one band
per chunk, not the cluster (see below for how it finds the row there). :meth:`build` lays
out the crowded buckets already split (``forum_client.match._pdq_layout``: two radix sorts
per chunk, the pool written once), the same layout as splitting them one by one as
:meth:`add` does, ~3x faster than that; builds of realistic data take half the time they
took with the split at 512 (2.2 -> 1.2 s at 1M).

*The compiled probe.* With numba installed (the ``fast`` extra), a query of an index of
65,536 rows or more (once the probe is loaded, see below) runs the same probes, bands and
distance checks as one compiled function (``forum_client.match._pdq_probe``) in passes
that are each a run of independent loads the processor overlaps: the bucket heads, the
bands of the split buckets met, then the candidates 1,024 at a time (their rows, their
hashes copied, then compared). At 1M realistic hashes a miss took 25-27 us against 49-55 us
for the numpy path, at 1M uniform hashes 92-98 us against 112-121 (in-process, 300 misses,
the two paths alternating): of the numpy path's ~50 us per realistic miss, ~33 us were its
~25 calls (the same misses repeated, so warm in the caches) and ~20 us waiting on memory.
Hits inside a big cluster (more candidates than a 16th of the index) and queries with more
matches than its output holds (16,384 with repeats) still take the numpy path. Loading the compiled
function costs ~0.35 s once per process (~1.5 s the first time, when numba compiles and
caches it), ~20 MB of private memory and ~70 MB of shared library pages, which ~15,000
queries earn back: smaller indexes answer in numpy, and a process answers its first 4,096
queries of big ones in numpy before it loads the probe (a one-shot ``forum-client match``
never does); a service that will answer many calls :func:`compiled_probe` at start.

*Buckets with slack instead of a rebuild.* All buckets live in one ``int32`` pool of row
numbers; each bucket has a start, a length and a capacity (built with ~3% slack, at least
one slot, none for an empty bucket). Adding a hash appends its row to its 16 buckets (a
bucket that is full moves to the end of the pool with double capacity: O(1) amortised);
removing swaps the row out of its 16 buckets and puts the row on a free list. To find the
row in a bucket or band of a big cluster (the 1.25M-row cluster of the 10M realistic set has
bands of ~180,000 rows), a removal binary-searches it, checked, since a build and a split
leave every bucket and band in row order and adds of new rows (the highest yet) keep it;
removals' swaps and rows re-used from the free list break that order locally, and a row the
search misses is found by a scan from the end of the band, where both put rows. At 10M
realistic hashes a removal inside that cluster takes 50-60 us instead of ~800
(``scripts/bench_pdq.py``), and ~150 us for rows re-added, then removed again. Nothing is
ever copied in full on add or remove, apart from amortised doubling of the arrays and a
compaction of the pool when more than half of it is abandoned space (both rare, O(n), and
counted as such by the benchmark). We compared this against a compact CSR base plus a
brute-force-scanned delta of recent additions: the delta must be merged by an O(n) rebuild
every few thousand adds to keep queries fast, which makes add latency spiky; the slack
buckets keep every add at ~10-20 us.

*Memory.* Per hash: 32 bytes of hash, 16 x 4 bytes of pool entries (plus their slack, ~7%
on realistic data: at least one slot per non-empty bucket), an ``int32`` id (``int64`` from
the first id that does not fit, for every row) and ~6.7 bytes in the id table (open
addressing over row numbers only, 60% full: a slot's key is read back through ``ids[row]``,
so the ids are not stored twice; a Python dict of 1M ints costs ~100 MB). Whether a row is
live is not stored: the free list names the rows that are not. Per bucket (1M of them): an
int64 head and an int32 capacity; per split bucket (~24,000 on realistic data at 1M, none on
uniform) 20 more heads and capacities, a 32-byte pivot and its Python integer (~5 MB in
all). At 1M realistic hashes that is ~129 MB of arrays (~136 MB with int64 ids, live flags
and an id table of a power of two slots, until 2026-11-30; 10M: ~1,100 MB against ~1,210)
(:attr:`PDQIndex.nbytes`, which also counts headroom that was never written and so is not
resident). Builds keep no per-chunk column copies; a loaded index uses
the arrays read from the file as its storage (no second copy); arrays grow into zeroed
memory, whose untouched pages cost nothing until used.
A build frees ~50-80 MB of temporaries (sorts, repeats) at 1M that glibc keeps in the
process; :meth:`build` ends with ``malloc_trim`` (``forum_client.match._heap``, a no-op
without glibc), so the process holds the index and not its scaffolding.

Thread safety: none; guard an index shared between threads with a lock.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
import tempfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

from forum_client.errors import InvalidInputError, StoreError
from forum_client.match._heap import release_free_heap
from forum_client.match._id_map import MAX_LOAD, MIN_CAPACITY, IdMap
from forum_client.match._pdq_layout import BANDS as _SUBS
from forum_client.match._pdq_layout import FAR as _FAR
from forum_client.match._pdq_layout import (
    Layout,
    band_of,
    band_reach,
    build_layout,
    majority,
    sampled,
)
from forum_client.match._pdq_layout import bands as _bands
from forum_client.match._pdq_layout import distances as _distances
from forum_client.match._pdq_layout import ranges as _ranges
from forum_client.match._pdq_layout import with_slack as _with_slack

HASH_BYTES: Final = 32
"""Length of a PDQ hash in bytes (256 bits)."""
DEFAULT_THRESHOLD: Final = 31
"""The forum's PDQ match threshold (Hamming distance, inclusive)."""
MAX_INDEXED_THRESHOLD: Final = 47
"""Largest threshold answered by bucket probing; above it :meth:`PDQIndex.query` scans."""

_CHUNKS: Final = 16
_CHUNK_VALUES: Final = 1 << 16
_NUM_BUCKETS: Final = _CHUNKS * _CHUNK_VALUES
_MAX_RADIUS: Final = (MAX_INDEXED_THRESHOLD + 1) // _CHUNKS - 1
_CHUNK_BASE: Final = np.arange(_CHUNKS, dtype=np.int64) * _CHUNK_VALUES
_MAX_ROWS: Final = 100_000_000
_MAX_POOL: Final = 2**31 - 1  # bucket starts are int32
SPLIT_AT: Final = 64
"""A bucket holding more rows than this is split by distance to a pivot (see module doc)."""
_LAST: Final = _SUBS - 1  # the band of distances 64 and more
_BLOCK_QUERIES: Final = 64  # query_many probes this many hashes per round of numpy calls...
_BLOCK_CANDIDATES: Final = 1 << 17  # ...or fewer, so one round gathers at most ~this many rows
# A block gathering more candidates than this per query is answered one query at a time:
# so many rows at once leave the caches behind (uniform misses at 1M: ~4,100 each; 1.2x
# slower as a block than one by one), while ~1,000 per realistic miss gain 1.2x as a block.
_BATCH_CANDIDATES_PER_QUERY: Final = 2048
_FEW_SPLIT_PROBES: Final = 64  # up to this many split buckets probed: handled in Python
# Loading the compiled probe (numba) costs ~0.35 s once per process (~1.5 s the first time,
# when it compiles) and saves ~25 us per query: it pays off over ~15,000 queries of a big
# index. So indexes of fewer rows always answer in numpy, and a process answers its first
# queries of big ones in numpy too, loading the probe only once it has answered this many
# (a one-shot `forum-client match` never loads it); compiled_probe() loads it at once.
_COMPILED_MIN_ROWS = 1 << 16
_COMPILED_AFTER = 4096
_COMPILED_ENV: Final = "FORUM_PDQ_COMPILED"  # "0": always answer in numpy
_COMPILED_HITS = 1 << 14  # matches (with repeats) a compiled probe returns at most
# A query gathering more than a 16th of the rows and this many is a hit inside a big cluster.
_CROWDED_SLACK = 4096
# A removal whose 16 buckets hold up to this many rows gathers and compares them at once;
# above, it looks its row up in each (_slot_in), scanning an unordered one this many at a time.
_GATHER_SLOTS = 4096
_SCAN_BLOCK = 1 << 15
_FILE_MAGIC: Final = 0x50445149  # "PDQI"
_FILE_VERSION: Final = 5  # 5: ids int32 or int64, no live flags, id tables of any size
_FILE_ARRAYS: Final = (
    "words",
    "ids",
    "heads",
    "caps",
    "pool",
    "free",
    "map_rows",
    "pivots",
)

_META_FIELDS: Final = 8  # magic, version, rows, live, pool used, garbage, id table used, split_at
_EXTRA_PREFIX: Final = "x_"
_EXTRA_CRC: Final = "extra_crc"
_EXTRA_NAME: Final = re.compile(r"[a-z0-9_]{1,64}")
_COMPLEMENT: Final = 0x40404040  # four per-word popcounts of 64: distance 256 (see _distances)

_I64 = npt.NDArray[np.int64]
_Ids = npt.NDArray[np.int32] | npt.NDArray[np.int64]
_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1
_I32 = npt.NDArray[np.int32]
_U32 = npt.NDArray[np.uint32]
_U64 = npt.NDArray[np.uint64]
_Matches = list[tuple[int, int]]


_log = logging.getLogger(__name__)
_numpy_answers = 0  # queries of big indexes answered in numpy before the probe was loaded
_probe_loaded = False  # compiled_probe() has run (whether or not it found numba)


@functools.cache
def compiled_probe() -> Callable[..., int] | None:
    """The compiled probe (``forum_client.match._pdq_probe``), imported on first use; None
    when numba is not installed (the ``fast`` extra) or ``FORUM_PDQ_COMPILED=0``."""
    global _probe_loaded
    _probe_loaded = True
    if os.environ.get(_COMPILED_ENV, "1") == "0":
        return None
    try:
        from forum_client.match._pdq_probe import probe

        # The first call with each kind of arguments loads its machine code from numba's
        # cache (or compiles it: ~1.5 s): done here, with the kinds a query passes, so no
        # query pays it.
        out = np.empty((2, 1), np.int32)
        empty = np.zeros((1, 4), np.uint64)
        probe(
            *(np.zeros(_NUM_BUCKETS, np.int64), np.zeros(1, np.int32), empty, empty),
            *(np.zeros(1, np.int32), np.frombuffer(bytes(HASH_BYTES), "<u8"), _FLIPS[1]),
            *(DEFAULT_THRESHOLD, 0, out[0], out[1]),
        )
    except ImportError as exc:
        if exc.name != "numba":  # installed but broken (e.g. a numpy it does not support)
            _log.warning("PDQ queries answer in numpy: the compiled probe failed: %s", exc)
        return None
    except Exception as exc:  # numba could not compile or cache it: an accelerator only
        _log.warning("PDQ queries answer in numpy: the compiled probe failed: %s", exc)
        return None
    return cast("Callable[..., int]", probe)


def _probe_for(n_rows: int, queries: int) -> Callable[..., int] | None:
    """The compiled probe to answer ``queries`` queries of an index of ``n_rows`` rows with,
    or None to answer them in numpy (see ``_COMPILED_AFTER``)."""
    global _numpy_answers
    if n_rows < _COMPILED_MIN_ROWS:
        return None
    if not _probe_loaded:  # a flag: cache_info() would cost ~1% of a miss
        _numpy_answers += queries
        if _numpy_answers < _COMPILED_AFTER:
            return None
    return compiled_probe()


class PDQIndexFileError(StoreError, ValueError):
    """A saved index file is truncated, corrupt, of another version or internally
    inconsistent."""


def _flip_masks(radius: int) -> _I64:
    """Every 16-bit mask with at most ``radius`` bits set (radius <= 2)."""
    masks = [0]
    if radius >= 1:
        masks += [1 << i for i in range(16)]
    if radius >= 2:
        masks += [(1 << i) | (1 << j) for i in range(16) for j in range(i + 1, 16)]
    return np.array(masks, dtype=np.int64)


_FLIPS: Final = tuple(_flip_masks(r) for r in range(_MAX_RADIUS + 1))
# The buckets one query probes at each radius, as a (flips, 16) table to xor with its 16
# chunk values: (chunk << 16) ^ flip, since every flip is below 1 << 16.
_PROBES: Final = tuple(
    np.ascontiguousarray(f[:, None] ^ (np.arange(_CHUNKS, dtype=np.int64) << 16)[None, :])
    for f in _FLIPS
)
_ARANGE: Final = np.arange(1 << 16, dtype=np.int64)
_ARANGE.flags.writeable = False


def _arange(total: int) -> _I64:
    return _ARANGE[:total] if total <= len(_ARANGE) else np.arange(total, dtype=np.int64)


def _band_span(to_pivot: int, limit: int) -> tuple[int, int]:
    """The first and last band of a split bucket that can hold a match of a query at
    ``to_pivot`` from its pivot: distances within ``limit`` of it (triangle inequality)."""
    return band_of(max(to_pivot - limit, 0)), band_of(to_pivot + limit)


def _positions(packed: _I64, lens: _I64, ends: _I64, total: int) -> _I64:
    """The pool positions of the probed buckets' rows, one bucket after another: the
    ranges ``[start, start + length)`` of the packed heads (``lens`` their lengths, all >= 0
    here, and ``ends`` the running sum of them)."""
    return np.repeat((packed & 0xFFFFFFFF) - (ends - lens), lens) + _arange(total)


def _ranges_ending(
    starts: npt.NDArray[np.integer], lens: npt.NDArray[np.integer], ends: _I64, total: int
) -> _I64:
    """:func:`_ranges` for a query that has the running ``ends`` of ``lens`` and their
    ``total`` already."""
    return np.repeat(starts - (ends - lens), lens) + _arange(total)


class PDQIndex:
    """Exact Hamming-distance index of PDQ hashes keyed by int64 ids (see module doc).

    Raises :class:`~forum_client.errors.InvalidInputError` (a ``ValueError``) for a hash that
    is not 32 bytes, an id outside int64, or a negative threshold.
    """

    __slots__ = (
        "_caps",
        "_free",
        "_garbage",
        "_heads",
        "_ids",
        "_map",
        "_n_rows",
        "_n_splits",
        "_packed",
        "_pivot_ints",
        "_pivots",
        "_pool",
        "_pool_used",
        "_reach",
        "_split_at",
        "_words",
    )

    def __init__(self, *, split_at: int = SPLIT_AT) -> None:
        """An empty index; use :meth:`build` to load many hashes at once. ``split_at`` is the
        bucket size above which a bucket is split by distance to a pivot (tests lower it)."""
        self._split_at = _check_split_at(split_at)
        self._init_storage(0, 1024)
        self._set_heads(np.zeros((_NUM_BUCKETS, 2), np.int32))
        self._caps: _I32 = np.zeros(_NUM_BUCKETS, np.int32)
        self._pool: _I32 = np.zeros(1 << 16, np.int32)
        self._pool_used = 0
        self._garbage = 0
        self._pivots: _U64 = np.zeros((0, 4), np.uint64)
        self._pivot_ints: list[int] = []
        self._reach: _I32 = np.zeros(0, np.int32)
        self._n_splits = 0
        self._map = IdMap.with_rows(self._ids, np.zeros(0, np.int32))

    def _set_heads(self, heads: _I32) -> None:
        """Bucket heads: (start, length) int32 pairs, also read as one int64 per bucket so a
        query gathers each probed bucket's head with one 1-D take. A split bucket has
        length ``-1 - which`` (``which`` numbers its pivot and its 20 bands)."""
        self._heads = np.ascontiguousarray(heads, np.int32)
        self._packed: _I64 = self._heads.view(np.int64).reshape(-1)

    def _init_storage(self, n_rows: int, capacity: int) -> None:
        # np.zeros maps untouched pages lazily: headroom costs no resident memory until used.
        self._words: _U64 = np.zeros((capacity, 4), np.uint64)
        # int32 while every id fits (a member's signal rows do), int64 from the first that
        # does not: 4 bytes a hash less (see Memory in the module doc).
        self._ids: _Ids = np.zeros(capacity, np.int32)
        self._n_rows = n_rows
        self._free: list[int] = []

    # ---------------------------------------------------------------- bulk construction

    @classmethod
    def build(
        cls, ids: npt.ArrayLike, hashes: npt.ArrayLike, *, split_at: int = SPLIT_AT
    ) -> PDQIndex:
        """An index of ``hashes[i]`` under ``ids[i]``; a repeated id keeps its last hash
        (the same result as calling :meth:`add` in order, ~10x faster)."""
        index = cls._build(ids, hashes, _check_split_at(split_at))
        release_free_heap()  # the build's freed temporaries: ~50-80 MB at 1M (see _heap)
        return index

    @classmethod
    def _build(cls, ids: npt.ArrayLike, hashes: npt.ArrayLike, split_at: int) -> PDQIndex:
        id_arr = np.asarray(ids)
        hash_arr = np.asarray(hashes)
        if id_arr.ndim != 1 or not np.issubdtype(id_arr.dtype, np.integer):
            raise InvalidInputError.field("ids", "must be a 1-D integer array")
        if id_arr.size and (id_arr.dtype == np.uint64 and int(id_arr.max()) > 2**63 - 1):
            raise InvalidInputError.field("ids", "must fit in int64")
        if hash_arr.dtype != np.uint8 or hash_arr.shape != (len(id_arr), HASH_BYTES):
            raise InvalidInputError.field("hashes", "must be a uint8 array of shape (len(ids), 32)")
        if len(id_arr) > _MAX_ROWS:
            raise InvalidInputError.field("ids", f"at most {_MAX_ROWS} hashes")
        id_arr = id_arr.astype(np.int64)
        # Keep the last occurrence of each id, in input order.
        n_in = len(id_arr)
        _, last_from_end = np.unique(id_arr[::-1], return_index=True)
        if len(last_from_end) != n_in:
            keep = np.sort(n_in - 1 - last_from_end)
            id_arr, hash_arr = id_arr[keep], hash_arr[keep]
        del last_from_end
        n = len(id_arr)

        index = cls.__new__(cls)
        index._split_at = split_at
        index._init_storage(n, n + n // 16 + 1024)
        if n:
            index._ids = _ids_holding(index._ids, int(id_arr.min()), int(id_arr.max()))
        # Rows in the order of the hashes' first 8 bytes: near-copies of one image, which
        # share most chunk values, get neighbouring rows, so the candidates of a probe are
        # read from a few runs of memory rather than one cache line each (see module doc).
        words = np.ascontiguousarray(hash_arr).view("<u8")
        order = np.argsort(words[:, 0].byteswap())
        np.take(words, order, axis=0, out=index._words[:n])
        id_arr = id_arr.astype(index._ids.dtype, copy=False)  # fits: checked above
        np.take(id_arr, order, out=index._ids[:n])
        del words, order
        del id_arr, hash_arr
        index._map = IdMap.with_rows(index._ids, np.arange(n, dtype=np.int32))
        index._take_layout(build_layout(index._words[:n], split_at))
        return index

    def _take_layout(self, layout: Layout) -> None:
        """Use a bulk layout (:func:`build_layout`) as the buckets and the pool."""
        if layout.used > _MAX_POOL:
            raise InvalidInputError.field("ids", "too many hashes for one index")
        self._set_heads(layout.heads)
        self._caps = layout.caps
        self._pool, self._pool_used, self._garbage = layout.pool, layout.used, 0
        self._pivots = layout.pivots
        self._n_splits = len(layout.pivots)
        self._pivot_ints = [
            int.from_bytes(p.astype("<u8").tobytes(), "little") for p in layout.pivots
        ]
        self._reach = self._reach_from_heads()

    # ---------------------------------------------------------------- updates

    def add(self, id: int, hash: bytes) -> None:
        """Index ``hash`` under ``id``, replacing the hash ``id`` had. O(1) amortised."""
        key = _check_id(id)
        data = _check_hash(hash)
        row = self._map.get(key)
        if row >= 0:
            self._unlink(row)
        else:
            row = self._new_row()
            ids = _ids_holding(self._ids, key, key)
            if ids is not self._ids:
                self._ids = ids
                self._map.rebind(ids)
            self._ids[row] = key
            self._map.put(key, row)
        self._words[row] = np.frombuffer(data, "<u8")
        self._link(row)

    def remove(self, id: int) -> bool:
        """Drop ``id``; False if it was not indexed."""
        row = self._map.pop(_check_id(id))
        if row < 0:
            return False
        self._unlink(row)
        self._free.append(row)
        return True

    def _new_row(self) -> int:
        if self._free:
            return self._free.pop()
        row = self._n_rows
        if row >= _MAX_ROWS:
            raise InvalidInputError.field("id", f"the index holds at most {_MAX_ROWS} hashes")
        if row == self._ids.shape[0]:
            self._words = _grown(self._words, row)
            self._ids = _grown(self._ids, row)
            self._map.rebind(self._ids)
        self._n_rows = row + 1
        return row

    def _row_buckets(self, row: int) -> _I64:
        """The 16 buckets holding ``row``: per chunk, the chunk's bucket or, if that bucket
        is split, the sub-bucket of the row's distance to its pivot."""
        words = self._words[row]
        buckets: _I64 = _CHUNK_BASE + words.view("<u2")
        lens = self._heads[buckets, 1]
        hot = lens < 0
        if hot.any():
            which = (-1 - lens[hot]).astype(np.int64)
            bands = _bands(_distances(self._pivots[which] ^ words))
            buckets[hot] = _NUM_BUCKETS + which * _SUBS + bands
        return buckets

    def _link(self, row: int) -> None:
        buckets = self._row_buckets(row)
        lens = self._heads[buckets, 1]
        full = np.flatnonzero(lens >= self._caps[buckets])
        for i in full.tolist():
            self._move_bucket(int(buckets[i]))
        self._pool[self._heads[buckets, 0].astype(np.int64) + lens] = row
        self._heads[buckets, 1] = lens + 1
        in_split = buckets[buckets >= _NUM_BUCKETS] - _NUM_BUCKETS
        if in_split.size:
            reach = self._reach
            which, band = np.divmod(in_split, _SUBS)
            for w, b in zip(which.tolist(), band.tolist(), strict=True):
                if b != _LAST:
                    reach[w] = max(reach[w], band_reach(b))
        for i in full.tolist():
            bucket = int(buckets[i])
            if bucket < _NUM_BUCKETS and lens[i] >= self._split_at:
                self._split_bucket(bucket)
        if self._garbage > 1 << 16 and 2 * self._garbage > self._pool_used:
            self._compact_pool()

    def _unlink(self, row: int) -> None:
        buckets = self._row_buckets(row)
        head = self._heads[buckets]
        starts, lens = head[:, 0].astype(np.int64), head[:, 1]
        if int(lens.sum()) <= _GATHER_SLOTS:
            slots = _ranges(starts, lens)
            found = slots[self._pool[slots] == row]
        else:  # a big cluster: look the row up in each slice in place instead of gathering
            found = np.array(
                [
                    self._slot_in(start, length, row)
                    for start, length in zip(starts.tolist(), lens.tolist(), strict=True)
                ],
                np.int64,
            )
            found = found[found >= 0]
        if len(found) != _CHUNKS:  # pragma: no cover - an internal invariant
            raise AssertionError(f"row {row} is in {len(found)} of its 16 buckets")
        self._pool[found] = self._pool[starts + lens - 1]
        self._heads[buckets, 1] = lens - 1

    def _slot_in(self, start: int, length: int, row: int) -> int:
        """Where ``row`` sits in the bucket slice ``pool[start : start + length]`` (-1 if it
        is not there). A build, a split and the adds of new rows keep a slice in row order,
        so a binary search finds it, checked; where removals' swaps and re-used rows have
        broken that order, it is found by a scan that stops at the row: from the end, where
        re-used rows are appended and from where removals move rows."""
        part = self._pool[start : start + length]
        at = int(part.searchsorted(np.int32(row)))  # an int32 key: a Python int would copy ``part``
        if at < length and int(part[at]) == row:
            return start + at
        for hi in range(length, 0, -_SCAN_BLOCK):
            lo = max(0, hi - _SCAN_BLOCK)
            hits = np.flatnonzero(part[lo:hi] == row)
            if hits.size:
                return start + lo + int(hits[0])
        return -1

    def _split_bucket(self, bucket: int) -> None:
        """Split a crowded bucket into its 20 bands by each row's distance to a pivot (the
        bitwise majority of 15 of its rows; see :func:`band_of`) and mark the bucket itself
        split (its length reads ``-1 - which``). :func:`build_layout` does the same for
        every crowded bucket at once."""
        start, length = (int(x) for x in self._heads[bucket])
        rows = np.sort(self._pool[start : start + length])  # bands in row order (_slot_in)
        pivot = majority(self._words[rows[sampled(np.zeros(1, np.int64), np.array([length]))]])[0]
        # uint8: the stable argsort below is then a radix sort (a merge sort on uint32 took
        # twice the time of the whole build of 1M realistic hashes).
        dist = _bands(_distances(self._words[rows] ^ pivot)).astype(np.uint8)
        counts = np.bincount(dist, minlength=_SUBS).astype(np.int64)
        caps = _with_slack(counts)
        first = self._room(int(caps.sum()))  # may compact: the rows stay the same
        sub_starts = first + np.cumsum(caps, dtype=np.int64) - caps
        order = np.argsort(dist, kind="stable")
        at = np.repeat(sub_starts - (np.cumsum(counts) - counts), counts)
        self._pool[at + np.arange(length, dtype=np.int64)] = rows[order]
        self._pool_used = first + int(caps.sum())
        which = self._n_splits
        base = _NUM_BUCKETS + which * _SUBS
        if base + _SUBS > len(self._caps):  # grow by half: amortised O(1) per split
            more = max(_SUBS, (len(self._caps) - _NUM_BUCKETS) // 2 // _SUBS * _SUBS)
            self._set_heads(np.concatenate([self._heads, np.zeros((more, 2), np.int32)]))
            self._caps = np.concatenate([self._caps, np.zeros(more, np.int32)])
            self._pivots = np.concatenate([self._pivots, np.zeros((more // _SUBS, 4), np.uint64)])
            self._reach = np.concatenate([self._reach, np.zeros(more // _SUBS, np.int32)])
        self._pivots[which] = pivot
        self._pivot_ints.append(int.from_bytes(pivot.astype("<u8").tobytes(), "little"))
        near = np.flatnonzero(counts[:_LAST])
        self._reach[which] = band_reach(int(near[-1]) if near.size else -1)
        self._heads[base : base + _SUBS, 0] = sub_starts
        self._heads[base : base + _SUBS, 1] = counts
        self._caps[base : base + _SUBS] = caps
        self._n_splits = which + 1
        self._garbage += int(self._caps[bucket])
        self._heads[bucket] = (0, -1 - which)
        self._caps[bucket] = 0

    def _room(self, size: int) -> int:
        """Reserve ``size`` slots at the end of the pool (compacting it first if the int32
        positions would overflow); the first reserved position."""
        if self._pool_used + size > _MAX_POOL:
            self._compact_pool()
            if self._pool_used + size > _MAX_POOL:
                raise InvalidInputError.field("id", "the index is full")
        first = self._pool_used
        end = first + size
        if end > len(self._pool):
            grown = np.zeros(min(max(end, len(self._pool) * 3 // 2), _MAX_POOL), np.int32)
            grown[:first] = self._pool[:first]
            self._pool = grown
        return first

    def _move_bucket(self, bucket: int) -> None:
        """Move a full bucket to the end of the pool with twice the room."""
        old_cap = int(self._caps[bucket])
        new_cap = max(4, 2 * old_cap)
        first = self._room(new_cap)
        start, length = (int(x) for x in self._heads[bucket])  # after a compaction, if any
        old_cap = int(self._caps[bucket])
        self._pool[first : first + length] = self._pool[start : start + length]
        self._heads[bucket, 0] = first
        self._caps[bucket] = new_cap
        self._pool_used = first + new_cap
        self._garbage += old_cap

    def _compact_pool(self) -> None:
        """Rewrite the pool without abandoned space (O(n); after many adds)."""
        split = self._heads[:, 1] < 0
        lens = np.where(split, 0, self._heads[:, 1])
        caps = _with_slack(lens.astype(np.int64))
        caps[split] = 0
        caps[_NUM_BUCKETS + self._n_splits * _SUBS :] = 0  # rows kept for future splits
        starts = np.zeros(len(caps), np.int64)
        np.cumsum(caps[:-1], out=starts[1:])
        used = int(starts[-1] + caps[-1]) if len(caps) else 0
        pool = np.zeros(used + used // 32 + 1024, np.int32)
        pool[_ranges(starts, lens)] = self._pool[_ranges(self._heads[:, 0].astype(np.int64), lens)]
        self._heads[:, 0] = np.where(split, 0, starts)
        self._caps, self._pool = caps, pool
        self._pool_used, self._garbage = used, 0
        self._reach = self._reach_from_heads()

    def _reach_from_heads(self) -> _I32:
        """Each split bucket's reach from the bands its rows fill now (removals leave the
        kept value an upper bound; this makes it exact again), one int32 per pivot."""
        n = self._n_splits
        lens = self._heads[_NUM_BUCKETS : _NUM_BUCKETS + n * _SUBS, 1].reshape(n, _SUBS)
        filled = lens[:, :_LAST] > 0
        top = np.where(filled.any(axis=1), _LAST - 1 - np.argmax(filled[:, ::-1], axis=1), -1)
        reach = np.zeros(len(self._pivots), np.int32)  # one per pivot, headroom included
        reach[:n] = [band_reach(b) for b in top.tolist()]
        return reach

    # ---------------------------------------------------------------- queries

    def __len__(self) -> int:
        return self._map.live

    def __contains__(self, id: object) -> bool:
        if not isinstance(id, int | np.integer) or not -(2**63) <= int(id) < 2**63:
            return False
        return self._map.get(int(id)) >= 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the index's arrays (what it costs in memory, without allocator
        overhead; headroom that was never written is counted although the OS has not
        mapped it)."""
        arrays = (self._words, self._ids, self._heads, self._caps, self._pool)
        return sum(a.nbytes for a in arrays) + self._map.nbytes + self._pivots.nbytes

    def hash_of(self, id: int) -> bytes | None:
        """The 32-byte hash indexed under ``id``, or None if ``id`` is not indexed."""
        if not isinstance(id, int | np.integer) or not -(2**63) <= int(id) < 2**63:
            return None
        row = self._map.get(int(id))
        return None if row < 0 else self._words[row].astype("<u8").tobytes()

    def query(self, hash: bytes, threshold: int = DEFAULT_THRESHOLD) -> _Matches:
        """Every ``(id, distance)`` with Hamming distance <= ``threshold`` to ``hash``,
        sorted by distance then id. Exact for every threshold (a scan above 47)."""
        data = _check_hash(hash)
        limit = _check_threshold(threshold)
        if limit > MAX_INDEXED_THRESHOLD:
            return self._scan(np.frombuffer(data, "<u8"), limit)
        if probe := _probe_for(self._n_rows, 1):
            return self._probe_compiled(probe, data, limit)
        return self._probe_one(data, limit)

    def query_many(
        self, hashes: npt.ArrayLike, threshold: int = DEFAULT_THRESHOLD
    ) -> list[_Matches]:
        """:meth:`query` for each row of a uint8 array of shape (m, 32), in one list.

        Queries are answered together, up to 64 at a time (fewer when they gather many
        candidates, to bound the temporary memory), so numpy's per-call cost is paid once
        per block instead of once per hash; a block whose queries gather over 2,048
        candidates each (uniform hashes, hits inside clusters) is answered one query at a
        time, which keeps the rows it reads in the caches. Through the compiled probe (see
        the module doc) every query is answered on its own: it costs no numpy calls to
        share."""
        arr = np.asarray(hashes)
        if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != HASH_BYTES:
            raise InvalidInputError.field("hashes", "must be a uint8 array of shape (m, 32)")
        limit = _check_threshold(threshold)
        arr = np.ascontiguousarray(arr)
        if limit > MAX_INDEXED_THRESHOLD:
            return [self._scan(row.view("<u8"), limit) for row in arr]
        if probe := _probe_for(self._n_rows, len(arr)):
            return [self._probe_compiled(probe, row.tobytes(), limit) for row in arr]
        out: list[_Matches] = []
        for lo in range(0, len(arr), _BLOCK_QUERIES):
            out += self._probe(arr[lo : lo + _BLOCK_QUERIES], limit)
        return out

    def _probe_compiled(self, probe: Callable[..., int], data: bytes, limit: int) -> _Matches:
        """Answer one query with the compiled probe (``_pdq_probe``: the same buckets and
        bands as :meth:`_probe_one`, in one function); a hit inside a big cluster, or one
        with more matches than its output holds, is answered by :meth:`_probe_one`."""
        out = np.empty((2, _COMPILED_HITS), np.int32)
        found = probe(
            self._packed,
            self._pool,
            self._words,
            self._pivots,
            self._reach,
            np.frombuffer(data, "<u8"),
            _FLIPS[limit // _CHUNKS],
            limit,
            self._n_rows // 16 + _CROWDED_SLACK,  # more candidates: _probe_one's crowded path
            out[0],
            out[1],
        )
        if found < 0:
            return self._probe_one(data, limit)
        if not found:
            return []
        rows, first = np.unique(out[0, :found], return_index=True)  # met once per chunk
        return self._result(rows, out[1, :found][first])

    def _probe_one(self, data: bytes, limit: int) -> _Matches:
        """Answer one query by bucket probing, in as few numpy calls as a miss allows
        (~15): its probes are one xor of a precomputed table with its chunk values, their
        heads one gather, its candidates' rows and hashes two more, their distances one
        xor with the query repeated (a bytes repetition), one popcount and one multiply; a
        miss then returns on one ``min``."""
        probes = _PROBES[limit // _CHUNKS] ^ np.frombuffer(data, "<u2")
        # One int64 per probe: the start in the low 32 bits, the length (negative for a
        # split bucket) in the high 32, read with int64 arithmetic (no strided views).
        packed = self._packed.take(probes.reshape(-1))
        hot = np.flatnonzero(packed < 0)  # split buckets
        if len(hot):
            if len(hot) <= _FEW_SPLIT_PROBES:  # a miss: a few, in Python
                packed = self._near_sub_buckets(data, limit, packed, hot)
            else:
                one = np.frombuffer(data, np.uint8).reshape(1, HASH_BYTES)
                packed = self._with_sub_buckets(one, limit, packed, len(packed))[0]
                packed[hot] = 0  # the split probes themselves read nothing
        lens = packed >> 32
        ends = lens.cumsum()
        total = int(ends[-1])
        if not total:
            return []
        if total > self._n_rows // 16 + _CROWDED_SLACK:  # a hit in a big cluster
            return self._probe_crowded(data, limit, packed, lens, ends)
        positions = _positions(packed, lens, ends, total)
        rows = self._pool.take(positions, mode="clip")  # in range: no per-index check
        counts, summed = self._packed_counts(rows, data)
        bound = (limit + 1) << 24
        if int(summed.min()) >= bound:
            return []
        hit = np.flatnonzero(summed < bound)
        hit = hit[counts[hit] != _COMPLEMENT]  # all 256 bits differ: read as 0 above
        found, first = np.unique(rows[hit], return_index=True)  # a row is in up to 16 probes
        return self._result(found, summed[hit][first] >> 24)

    def _probe_crowded(
        self, data: bytes, limit: int, packed: _I64, lens: _I64, ends: _I64
    ) -> _Matches:
        """A query inside a big cluster gathers each near-copy from up to 16 buckets (more
        candidates than a 16th of the index): they are de-duplicated first, by a scatter
        into a mask and a scan (no sort), which also makes the gather read forward."""
        positions = _positions(packed, lens, ends, int(ends[-1]))
        seen = np.zeros(self._n_rows, bool)
        seen[self._pool[positions]] = True
        rows = np.flatnonzero(seen)
        counts, summed = self._packed_counts(rows, data)
        hit = np.flatnonzero(summed < (limit + 1) << 24)
        hit = hit[counts[hit] != _COMPLEMENT]
        return self._result(rows[hit], summed[hit] >> 24)

    def _packed_counts(self, rows: npt.NDArray[np.integer], data: bytes) -> tuple[_U32, _U32]:
        """The four word popcounts of ``rows``' hashes xor the query, as one uint32 per row,
        and that times 0x01010101, whose top byte is their sum mod 256 (2 numpy calls instead
        of ~12 for four column passes; the exact complement reads as 0: ``_COMPLEMENT``)."""
        near = self._words.take(rows, axis=0, mode="clip").reshape(-1)  # a line per candidate
        # xor with the query repeated: a flat pass is ~3x faster than broadcasting over rows
        np.bitwise_xor(near, np.frombuffer(data * len(rows), "<u8"), out=near)
        counts = np.bitwise_count(near).view(np.uint32)
        return counts, counts * 0x01010101

    def _probe(self, queries: npt.NDArray[np.uint8], limit: int) -> list[_Matches]:
        """Answer the queries (m, 32) by bucket probing: every bucket of every chunk within
        ``limit // 16`` bits of the query's chunk, one gather of their rows, one popcount."""
        m = len(queries)
        if m == 1:
            return [self._probe_one(queries[0].tobytes(), limit)]
        probes = (_CHUNK_BASE + queries.view("<u2"))[:, :, None] ^ _FLIPS[limit // _CHUNKS]
        per_query = probes.shape[1] * probes.shape[2]
        packed = self._packed[probes.reshape(-1)]  # one int64 per probe: start, length
        lens = packed.view(np.int32)[1::2]
        if int(lens.min()) < 0:
            packed, owners = self._with_sub_buckets(queries, limit, packed, per_query)
            owner_of_probe = cast(_I64, owners)  # an array whenever m > 1
            lens = np.maximum(packed.view(np.int32)[1::2], 0)
        else:
            owner_of_probe = np.repeat(np.arange(m, dtype=np.int64), per_query)
        starts = packed.view(np.int32)[0::2]
        ends = np.cumsum(lens, dtype=np.int64)
        total = int(ends[-1])
        if total > _BATCH_CANDIDATES_PER_QUERY * m:
            return [self._probe_one(q.tobytes(), limit) for q in queries]
        if total > _BLOCK_CANDIDATES:  # bound the temporaries: halve the block
            half = m // 2
            return self._probe(queries[:half], limit) + self._probe(queries[half:], limit)
        if not total:
            return [[] for _ in range(m)]
        rows = self._pool.take(_ranges_ending(starts, lens, ends, total), mode="clip")
        near = self._words.take(rows, axis=0, mode="clip")  # (k, 4): a line per candidate
        owner = np.repeat(owner_of_probe, lens)
        np.bitwise_xor(near, queries.view("<u8")[owner], out=near)
        counts = np.bitwise_count(near).view(np.uint32).reshape(-1)
        summed = counts * 0x01010101
        hit = np.flatnonzero(summed < (limit + 1) << 24)
        if not hit.size:
            return [[] for _ in range(m)]
        hit = hit[counts[hit] != _COMPLEMENT]  # all 256 bits differ: read as 0 above
        dist = summed[hit] >> 24
        key = (owner[hit] << 32) | rows[hit]
        found, first = np.unique(key, return_index=True)
        return self._results(m, found >> 32, found & 0xFFFFFFFF, dist[first])

    def _near_sub_buckets(self, data: bytes, limit: int, packed: _I64, hot: _I64) -> _I64:
        """The probes, then the bands of the split buckets probed (``hot``) that a match can
        be in: those within ``limit`` of the query's distance to the pivot (the triangle
        inequality). A miss is far from the cluster a split bucket holds, beyond its
        ``reach`` (the largest distance below 64 any of its rows has), so of that bucket it
        reads only the last band (rows 64 or more from the pivot: a few unrelated hashes).
        That costs one ``int.bit_count`` and one append per split bucket; their heads are
        then gathered with one ``take``."""
        value = int.from_bytes(data, "little")
        pivots, reach, far, last = self._pivot_ints, self._reach, _FAR, _LAST
        bands: list[int] = []
        for s in (packed[hot] >> 32).tolist():
            which = -1 - s
            base = _NUM_BUCKETS + which * _SUBS
            to_pivot = (value ^ pivots[which]).bit_count()
            if to_pivot - limit > reach[which]:  # only the last band can hold a match
                if to_pivot + limit >= far:
                    bands.append(base + last)
            else:
                lo, hi = _band_span(to_pivot, limit)
                bands.extend(range(base + lo, base + hi + 1))
        packed[hot] = 0  # ``packed`` is the caller's own copy: the split probes read nothing
        return np.concatenate((packed, self._packed.take(bands))) if bands else packed

    def _sub_bucket_heads(self, value: int, split: int, limit: int) -> _I64:
        """The heads of the sub-buckets of split bucket ``split`` that can hold a match of
        the query ``value`` (a 256-bit int): those at distances within ``limit`` of the
        query's distance to the pivot (one ``int.bit_count``, one slice)."""
        to_pivot = (value ^ self._pivot_ints[split]).bit_count()
        base = _NUM_BUCKETS + split * _SUBS
        lo, hi = _band_span(to_pivot, limit)
        return self._packed[base + lo : base + hi + 1]

    def _with_sub_buckets(
        self, queries: npt.NDArray[np.uint8], limit: int, packed: _I64, per_query: int
    ) -> tuple[_I64, _I64 | None]:
        """Add, after the probes, the sub-buckets of every split bucket probed that a match
        can be in: those whose distance to the pivot is within ``limit`` of the query's
        (triangle inequality). The split probes themselves keep a negative length (the
        caller reads it as 0). Returns the probes and, for several queries, the query of
        each probe.

        Up to 64 split buckets probed are handled with Python integers
        (``int.bit_count`` of the xor with the pivot, one slice of the contiguous band heads
        each), which costs less than the ~20 numpy calls of the vectorised form that
        queries probing many split buckets (hits inside clusters) use."""
        m = len(queries)
        lens = packed.view(np.int32)[1::2]
        hot = np.flatnonzero(lens < 0)
        which = -1 - lens[hot].astype(np.int64)
        if len(hot) <= _FEW_SPLIT_PROBES:
            parts = [packed]
            asked, spans = [], []
            values: dict[int, int] = {}
            for probe, split in zip(hot.tolist(), which.tolist(), strict=True):
                q = probe // per_query
                if q not in values:
                    values[q] = int.from_bytes(queries[q].tobytes(), "little")
                parts.append(self._sub_bucket_heads(values[q], split, limit))
                asked.append(q)
                spans.append(len(parts[-1]))
            out = np.concatenate(parts)
            if m == 1:
                return out, None
            extra = np.repeat(np.array(asked, np.int64), spans)
        else:
            asked_arr = hot // per_query
            words = queries.view("<u8")
            to_pivot = _distances(self._pivots[which] ^ words[asked_arr]).astype(np.int64)
            lo = _bands(np.maximum(to_pivot - limit, 0))
            span = _bands(to_pivot + limit) - lo + 1
            subs = self._packed[_ranges(_NUM_BUCKETS + which * _SUBS + lo, span)]
            out = np.concatenate([packed, subs])
            if m == 1:
                return out, None
            extra = np.repeat(asked_arr, span)
        first = np.repeat(np.arange(m, dtype=np.int64), per_query)
        return out, np.concatenate([first, extra])

    def _scan(self, words: _U64, limit: int) -> _Matches:
        n = self._n_rows
        dist = _distances(self._words[:n] ^ words)
        rows = np.flatnonzero(dist <= limit)
        if self._free:  # rows removed and not re-used still hold their old hash
            rows = rows[~np.isin(rows, self._free)]
        return self._result(rows, dist[rows])

    def _result(self, rows: npt.NDArray[np.integer], dist: npt.NDArray[np.integer]) -> _Matches:
        ids = self._ids[rows]
        order = np.lexsort((ids, dist))
        return list(zip(ids[order].tolist(), dist[order].tolist(), strict=True))

    def _results(
        self,
        m: int,
        owner: npt.NDArray[np.integer],
        rows: npt.NDArray[np.integer],
        dist: npt.NDArray[np.integer],
    ) -> list[_Matches]:
        """Matches (query, row, distance) split into one sorted list per query."""
        ids = self._ids[rows]
        order = np.lexsort((ids, dist, owner))
        pairs = list(zip(ids[order].tolist(), dist[order].tolist(), strict=True))
        bounds = np.searchsorted(owner[order], np.arange(m + 1)).tolist()
        return [pairs[a:b] for a, b in itertools.pairwise(bounds)]

    # ---------------------------------------------------------------- persistence

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        extra: Mapping[str, npt.NDArray[Any]] | None = None,
    ) -> None:
        """Write the index to ``path`` (uncompressed npz, replaced atomically).

        ``extra`` arrays (names of ``[a-z0-9_]``, no pickled objects) are stored alongside,
        checksummed too, and returned by :meth:`load_with_extra`: a caller's own metadata
        (such as the log size the index reflects) lands in the same atomic write."""
        extras = {k: np.ascontiguousarray(v) for k, v in sorted((extra or {}).items())}
        for k, v in extras.items():
            if not _EXTRA_NAME.fullmatch(k) or v.dtype.hasobject:
                raise InvalidInputError.field("extra", f"{k!r}: bad name or object array")
        if 2 * self._garbage > self._pool_used:
            self._compact_pool()
        n, used = self._n_rows, self._pool_used
        buckets = _NUM_BUCKETS + self._n_splits * _SUBS
        arrays: dict[str, npt.NDArray[Any]] = {
            "words": self._words[:n],
            "ids": self._ids[:n],
            "heads": self._heads[:buckets],
            "caps": self._caps[:buckets],
            "pool": self._pool[:used],
            "free": np.array(self._free, np.int64),
            "map_rows": self._map.rows,
            "pivots": self._pivots[: self._n_splits],
        }
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        crcs = [zlib.crc32(arrays[k].data) for k in _FILE_ARRAYS]
        head = [_FILE_MAGIC, _FILE_VERSION, n, len(self), used, self._garbage, self._map.used]
        meta = np.array([*head, self._split_at, *crcs], np.int64)
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        try:
            members: dict[str, npt.NDArray[Any]] = {"meta": meta, **arrays}
            if extras:
                members.update({_EXTRA_PREFIX + k: v for k, v in extras.items()})
                members[_EXTRA_CRC] = np.array(
                    [zlib.crc32(v.data) for v in extras.values()], np.int64
                )
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **members)  # type: ignore[arg-type]
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PDQIndex:
        """Read an index written by :meth:`save`.

        Raises :class:`PDQIndexFileError` if the file is unreadable as an index: truncated,
        a checksum mismatch, another format version, or inconsistent structures. Raises
        ``OSError`` if it cannot be opened.
        """
        return cls.load_with_extra(path)[0]

    @classmethod
    def load_with_extra(
        cls, path: str | os.PathLike[str]
    ) -> tuple[PDQIndex, dict[str, npt.NDArray[Any]]]:
        """:meth:`load`, plus the ``extra`` arrays given to :meth:`save` (checksums
        verified; same errors as :meth:`load`)."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                names = set(npz.files)
                extra_names = sorted(
                    k[len(_EXTRA_PREFIX) :] for k in names if k.startswith(_EXTRA_PREFIX)
                )
                expected = {"meta", *_FILE_ARRAYS}
                if extra_names:
                    expected |= {_EXTRA_CRC, *(_EXTRA_PREFIX + k for k in extra_names)}
                meta = npz["meta"] if "meta" in names else None
                if (
                    meta is not None
                    and (meta.dtype, meta.ndim) == (np.int64, 1)
                    and meta.size >= 2
                    and int(meta[1]) != _FILE_VERSION
                ):
                    version = int(meta[1])
                    raise PDQIndexFileError(
                        f"{path}: format version {version}, expected {_FILE_VERSION}"
                    )
                if names != expected or meta is None:
                    raise PDQIndexFileError(f"{path}: not a PDQ index file (wrong members)")
                arrays = {k: npz[k] for k in _FILE_ARRAYS}
                extras = {k: npz[_EXTRA_PREFIX + k] for k in extra_names}
                crcs = npz[_EXTRA_CRC] if extra_names else np.zeros(0, np.int64)
        except PDQIndexFileError:
            raise
        except OSError:
            raise
        except Exception as exc:  # zipfile.BadZipFile, ValueError, EOFError, ...
            raise PDQIndexFileError(f"{path}: unreadable index file: {exc}") from exc
        if crcs.shape != (len(extras),) or any(
            zlib.crc32(np.ascontiguousarray(v).data) != int(c)
            for v, c in zip(extras.values(), crcs.tolist(), strict=True)
        ):
            raise PDQIndexFileError(f"{path}: extra arrays: checksum mismatch (corrupt file)")
        return cls._from_arrays(str(path), meta, arrays), extras

    @classmethod
    def _from_arrays(
        cls, where: str, meta: npt.NDArray[Any], a: dict[str, npt.NDArray[Any]]
    ) -> PDQIndex:
        def bad(reason: str) -> PDQIndexFileError:
            return PDQIndexFileError(f"{where}: {reason}")

        if meta.dtype != np.int64 or meta.shape != (_META_FIELDS + len(_FILE_ARRAYS),):
            raise bad("bad header")
        magic, version, n, count, used, garbage, map_used, split_at = (
            int(x) for x in meta[:_META_FIELDS]
        )
        if magic != _FILE_MAGIC:
            raise bad("not a PDQ index file")
        if version != _FILE_VERSION:
            raise bad(f"format version {version}, expected {_FILE_VERSION}")
        if not (
            0 <= count <= n <= _MAX_ROWS and 0 <= garbage <= used <= _MAX_POOL and split_at >= 1
        ):
            raise bad("bad header counts")
        splits = int(a["pivots"].shape[0]) if a["pivots"].ndim == 2 else -1
        n_buckets = _NUM_BUCKETS + max(splits, 0) * _SUBS
        ids_dtype = np.int32 if a["ids"].dtype == np.int32 else np.int64
        expect: dict[str, tuple[type[np.generic], tuple[int, ...] | None]] = {
            "words": (np.uint64, (n, 4)),
            "ids": (ids_dtype, (n,)),
            "heads": (np.int32, (n_buckets, 2)),
            "caps": (np.int32, (n_buckets,)),
            "pool": (np.int32, (used,)),
            "free": (np.int64, (n - count,)),
            "map_rows": (np.int32, None),
            "pivots": (np.uint64, (max(splits, 0), 4)),
        }
        for k, (dtype, shape) in expect.items():
            arr = a[k]
            if arr.dtype != np.dtype(dtype) or arr.ndim != (1 if shape is None else len(shape)):
                raise bad(f"{k}: wrong dtype or rank")
            if shape is not None and arr.shape != shape:
                raise bad(f"{k}: shape {arr.shape}, expected {shape}")
        for k, crc in zip(_FILE_ARRAYS, meta[_META_FIELDS:].tolist(), strict=True):
            if zlib.crc32(np.ascontiguousarray(a[k]).data) != crc:
                raise bad(f"{k}: checksum mismatch (corrupt file)")

        ids, heads = a["ids"], a["heads"]
        caps, pool, free, map_rows = a["caps"], a["pool"], a["free"], a["map_rows"]
        starts, lens = heads[:, 0].astype(np.int64), heads[:, 1]
        split = lens[:_NUM_BUCKETS] < 0
        which = -1 - lens[:_NUM_BUCKETS][split]
        cap = map_rows.shape[0]
        if not MIN_CAPACITY <= cap < 2**32:
            raise bad("id table: bad capacity")
        if free.size and (int(free.min()) < 0 or int(free.max()) >= n or _has_repeats(free)):
            raise bad("free list: a row out of range or twice")
        alive = np.ones(n, bool)  # the header's n - count rows are free, the others live
        alive[free] = False
        if (
            not np.array_equal(np.sort(which), np.arange(splits))
            or bool(np.any(caps[:_NUM_BUCKETS][split]))
            or bool(np.any(lens[_NUM_BUCKETS:] < 0))
        ):
            raise bad("split buckets inconsistent")
        sized = np.maximum(lens, 0)
        if lens.size and (
            bool(np.any(sized > caps)) or int(starts.min()) < 0 or int((starts + caps).max()) > used
        ):
            raise bad("bucket bounds out of range")
        if int(sized.sum(dtype=np.int64)) != _CHUNKS * count:
            raise bad("buckets disagree with the number of hashes")
        if pool.size and (int(pool.min()) < 0 or int(pool.max()) >= max(n, 1)):
            raise bad("bucket entries out of range")
        live_rows = map_rows[map_rows >= 0]
        if (
            int(map_rows.min()) < -2
            or live_rows.size != count
            or (live_rows.size and int(live_rows.max()) >= n)
            or not bool(np.all(alive[live_rows]))
            or _has_repeats(ids[live_rows])
            or not live_rows.size <= map_used <= MAX_LOAD * cap
        ):
            raise bad("id table disagrees with the rows")

        index = cls.__new__(cls)
        index._split_at = split_at
        index._pivots, index._n_splits = a["pivots"], splits
        # The loaded arrays are the storage (no copy): the first add past them grows them.
        index._words, index._ids, index._n_rows = a["words"], ids, n
        index._free = free.tolist()
        index._set_heads(heads)
        index._caps = caps
        index._pivot_ints = [
            int.from_bytes(p.astype("<u8").tobytes(), "little") for p in a["pivots"]
        ]
        index._reach = index._reach_from_heads()
        index._pool = pool
        index._pool_used, index._garbage = used, garbage
        index._map = IdMap(map_rows, ids, count, map_used)
        # Spot-check that sampled rows really sit in the buckets of their hash, and that
        # the id table finds them.
        sample = np.flatnonzero(alive)[:: max(1, count // 64)][:64]
        for row in sample.tolist():
            if index._map.get(int(ids[row])) != row:
                raise bad("id table does not find its rows")
            buckets = index._row_buckets(row)
            slots = _ranges(starts[buckets], lens[buckets])
            if int(np.count_nonzero(pool[slots] == row)) != _CHUNKS:
                raise bad("buckets do not match the stored hashes")
        return index


def _grown(arr: npt.NDArray[Any], used: int) -> npt.NDArray[Any]:
    """``arr`` with room for half as many rows again (its first ``used`` rows copied; the
    new room is never-written zero pages, which cost no resident memory until used)."""
    out = np.zeros((used + used // 2 + 1024, *arr.shape[1:]), arr.dtype)
    out[:used] = arr[:used]
    return out


def _ids_holding(ids: _Ids, lo: int, hi: int) -> _Ids:
    """``ids``, widened to int64 if ``lo`` or ``hi`` does not fit in its int32."""
    if ids.dtype == np.int64 or (lo >= _INT32_MIN and hi <= _INT32_MAX):
        return ids
    return ids.astype(np.int64)


def _has_repeats(values: _I64) -> bool:
    """Whether any value occurs twice (a sort: numpy 2's hash-based ``unique`` took 3 s and
    ~50 MB of scratch for 1M ids)."""
    ordered = np.sort(values)
    return bool(np.any(ordered[1:] == ordered[:-1]))


def _check_id(value: int) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise InvalidInputError.field("id", "must be an int")
    key = int(value)
    if not -(2**63) <= key < 2**63:
        raise InvalidInputError.field("id", "must fit in int64")
    return key


def _check_threshold(value: int) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
        raise InvalidInputError.field("threshold", "must be a non-negative int")
    return int(value)


def _check_split_at(value: int) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise InvalidInputError.field("split_at", "must be a positive int")
    return int(value)


def _check_hash(value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidInputError.field("hash", "must be 32 bytes")
    data = bytes(value)
    if len(data) != HASH_BYTES:
        raise InvalidInputError.field("hash", f"must be 32 bytes, got {len(data)}")
    return data


__all__ = [
    "DEFAULT_THRESHOLD",
    "HASH_BYTES",
    "MAX_INDEXED_THRESHOLD",
    "PDQIndex",
    "PDQIndexFileError",
]
