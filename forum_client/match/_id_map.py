"""int64 id -> int32 row for :class:`~forum_client.match.pdq_index.PDQIndex`, in one numpy array.

Open addressing with linear probing. The table stores only row numbers; the key of a slot is
read back from the index's own ``ids`` array (``ids[row]``), so the ids are not stored twice:
at 1M hashes the table is 8 MB (2M slots of ``int32``) instead of 24 MB with a key column.
``rows`` holds -1 for a never-used slot and -2 for a deleted one. A table is (re)built at
most half full and rebuilt once live + deleted slots pass 70%, so a lookup reads a few slots.

The owner must call :meth:`IdMap.rebind` whenever it replaces its ``ids`` array (growth).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

_I64 = npt.NDArray[np.int64]
_I32 = npt.NDArray[np.int32]

EMPTY: Final = -1
DELETED: Final = -2
_GOLDEN: Final = 0x9E3779B97F4A7C15
_MASK64: Final = (1 << 64) - 1


class IdMap:
    """Row of each live id, keyed through the owner's ``ids`` array (see module doc)."""

    __slots__ = ("_ids", "_mask", "_shift", "live", "rows", "used")

    def __init__(self, rows: _I32, ids: _I64, live: int, used: int) -> None:
        capacity = int(rows.shape[0])
        self.rows = rows
        self._ids = ids
        self.live = live
        self.used = used
        self._mask = capacity - 1
        self._shift = 64 - (capacity.bit_length() - 1)

    @classmethod
    def with_rows(cls, ids: _I64, rows: _I32) -> IdMap:
        """A table holding ``rows`` (whose ids ``ids[rows]`` are unique), built with
        vectorised probing rounds."""
        capacity = 1 << max(4, (2 * len(rows)).bit_length())
        table = cls(np.full(capacity, EMPTY, np.int32), ids, 0, 0)
        table._insert_unique(rows)
        return table

    @property
    def nbytes(self) -> int:
        return int(self.rows.nbytes)

    def rebind(self, ids: _I64) -> None:
        """The owner's ``ids`` array was replaced (grown); read keys from the new one."""
        self._ids = ids

    def _home(self, keys: _I64) -> _I64:
        mixed = keys.view(np.uint64) * np.uint64(_GOLDEN)
        return (mixed >> np.uint64(self._shift)).astype(np.int64)

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
            slot[pending] = (slot[pending] + 1) & self._mask
        self.live += len(rows)
        self.used += len(rows)

    def _slot_of(self, key: int) -> int:
        return (((key & _MASK64) * _GOLDEN) & _MASK64) >> self._shift

    def _find(self, key: int) -> int:
        """Slot holding ``key``, or -1."""
        i = self._slot_of(key)
        rows, ids, mask = self.rows, self._ids, self._mask
        while True:
            row = rows.item(i)
            if row == EMPTY:
                return -1
            if row >= 0 and ids.item(row) == key:
                return i
            i = (i + 1) & mask

    def get(self, key: int) -> int:
        """Row of ``key``, or -1."""
        i = self._find(key)
        return -1 if i < 0 else int(self.rows.item(i))

    def put(self, key: int, row: int) -> None:
        """Insert ``key`` (which must be absent) at ``row``; the owner has already written
        ``ids[row] = key``."""
        if 10 * (self.used + 1) > 7 * len(self.rows):
            self._rehash()
        i = self._slot_of(key)
        while self.rows.item(i) >= 0:
            i = (i + 1) & self._mask
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
        fresh = IdMap.with_rows(self._ids, self.rows[self.rows >= 0])
        self.rows, self.live, self.used = fresh.rows, fresh.live, fresh.used
        self._mask, self._shift = fresh._mask, fresh._shift
