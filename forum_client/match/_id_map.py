"""int64 id -> int32 row for :class:`~forum_client.match.pdq_index.PDQIndex`, in one numpy array.

Open addressing with linear probing. The table stores only row numbers; the key of a slot is
read back from the index's own ``ids`` array (``ids[row]``), so the ids are not stored twice:
at 1M hashes the table is 6.7 MB (1.67M slots of ``int32``) instead of 24 MB with a key
column. ``rows`` holds -1 for a never-used slot and -2 for a deleted one. A table is built
60% full (:data:`BUILD_LOAD`; any number of slots, a key's home slot is its multiplicative
hash scaled to the table, so the size need not be a power of two), rebuilt once live +
deleted slots pass 70%, then with room to grow (:data:`GROW_LOAD`); so a lookup reads a few
slots. (Tables of a power of two slots filled 25-50%: 8 MB at 1M hashes, 128 MB at 10M.)

The owner must call :meth:`IdMap.rebind` whenever it replaces its ``ids`` array (growth).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

_I64 = npt.NDArray[np.int64]
_I32 = npt.NDArray[np.int32]
_Ids = npt.NDArray[np.int32] | npt.NDArray[np.int64]

EMPTY: Final = -1
DELETED: Final = -2
BUILD_LOAD: Final = 0.6  # live slots of a table built for a set of rows
GROW_LOAD: Final = 0.45  # ...and of one rebuilt because adds filled it
MAX_LOAD: Final = 0.7  # live + deleted slots that trigger the rebuild
MIN_CAPACITY: Final = 16
_GOLDEN: Final = 0x9E3779B97F4A7C15
_MASK64: Final = (1 << 64) - 1


class IdMap:
    """Row of each live id, keyed through the owner's ``ids`` array (see module doc)."""

    __slots__ = ("_capacity", "_ids", "live", "rows", "used")

    def __init__(self, rows: _I32, ids: _Ids, live: int, used: int) -> None:
        self.rows = rows
        self._ids = ids
        self.live = live
        self.used = used
        self._capacity = int(rows.shape[0])

    @classmethod
    def with_rows(cls, ids: _Ids, rows: _I32, load: float = BUILD_LOAD) -> IdMap:
        """A table holding ``rows`` (whose ids ``ids[rows]`` are unique) ``load`` full,
        built with vectorised probing rounds."""
        capacity = max(MIN_CAPACITY, math.ceil(len(rows) / load))
        table = cls(np.full(capacity, EMPTY, np.int32), ids, 0, 0)
        table._insert_unique(rows)
        return table

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes)

    def rebind(self, ids: _Ids) -> None:
        """The owner's ``ids`` array was replaced (grown); read keys from the new one."""
        self._ids = ids

    def _home(self, keys: _Ids) -> _I64:
        """Each key's first slot: the top 32 bits of its multiplicative hash, scaled to the
        table (their product fits in 64 bits: tables have fewer than 2**32 slots)."""
        mixed = keys.astype(np.int64, copy=False).view(np.uint64) * np.uint64(_GOLDEN)
        top = mixed >> np.uint64(32)
        return ((top * np.uint64(self._capacity)) >> np.uint64(32)).astype(np.int64)

    def _insert_unique(self, rows: _I32) -> None:
        slot = self._home(self._ids[rows])
        pending = np.arange(len(rows))
        while pending.size:
            at = slot[pending]
            free = np.flatnonzero(self.rows[at] == EMPTY)
            taken_slots, first = np.unique(at[free], return_index=True)
            self.rows[taken_slots] = rows[pending[free[first]]]
            won = np.zeros(len(pending), dtype=bool)
            won[free[first]] = True
            pending = pending[~won]
            slot[pending] = (slot[pending] + 1) % self._capacity
        self.live += len(rows)
        self.used += len(rows)

    def _slot_of(self, key: int) -> int:
        """:meth:`_home` of one key."""
        return (((((key & _MASK64) * _GOLDEN) & _MASK64) >> 32) * self._capacity) >> 32

    def _find(self, key: int) -> int:
        """Slot holding ``key``, or -1."""
        i = self._slot_of(key)
        rows, ids, capacity = self.rows, self._ids, self._capacity
        while True:
            row = rows.item(i)
            if row == EMPTY:
                return -1
            if row >= 0 and ids.item(row) == key:
                return i
            i += 1
            if i == capacity:
                i = 0

    def get(self, key: int) -> int:
        """Row of ``key``, or -1."""
        i = self._find(key)
        return -1 if i < 0 else int(self.rows.item(i))

    def put(self, key: int, row: int) -> None:
        """Insert ``key`` (which must be absent) at ``row``; the owner has already written
        ``ids[row] = key``."""
        if self.used + 1 > MAX_LOAD * self._capacity:
            self._rehash()
        i = self._slot_of(key)
        while self.rows.item(i) >= 0:
            i += 1
            if i == self._capacity:
                i = 0
        if self.rows.item(i) == EMPTY:
            self.used += 1
        self.rows[i] = row
        self.live += 1

    def pop(self, key: int) -> int:
        """Remove ``key``; its row, or -1 if absent."""
        i = self._find(key)
        if i < 0:
            return -1
        row = int(self.rows.item(i))
        self.rows[i] = DELETED
        self.live -= 1
        return row

    def _rehash(self) -> None:
        fresh = IdMap.with_rows(self._ids, self.rows[self.rows >= 0], GROW_LOAD)
        self.rows, self.live, self.used = fresh.rows, fresh.live, fresh.used
        self._capacity = fresh._capacity
