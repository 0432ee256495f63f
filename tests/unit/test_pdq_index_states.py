"""PDQIndex as a state machine: random adds, re-adds, removes and queries, each query equal
to a brute-force scan, answered both in numpy and by the compiled probe (when numba, the
``fast`` extra, is installed)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from forum_client.match import pdq_index
from forum_client.match.pdq_index import PDQIndex
from tests.unit.test_pdq_index import _brute, _flip

_DEFAULT_MIN_ROWS = pdq_index._COMPILED_MIN_ROWS
# _COMPILED_MIN_ROWS values: never compiled, then always (numba installed)
_PATHS = (2**62, 0) if pdq_index.compiled_probe() else (2**62,)

hashes_st = st.binary(min_size=32, max_size=32)


class IndexMatchesBruteForce(RuleBasedStateMachine):
    """Random add / re-add / remove sequences; the index must equal a scan at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.index = PDQIndex()
        self.model: dict[int, bytes] = {}

    @rule(id_=st.integers(0, 30), h=hashes_st)
    def add(self, id_: int, h: bytes) -> None:
        self.index.add(id_, h)
        self.model[id_] = h

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), id_=st.integers(0, 30), d=st.integers(0, 40))
    def add_near(self, data: st.DataObject, id_: int, d: int) -> None:
        src = data.draw(st.sampled_from(sorted(self.model)))
        bits = data.draw(st.lists(st.integers(0, 255), min_size=d, max_size=d, unique=True))
        h = _flip(self.model[src], bits)
        self.index.add(id_, h)
        self.model[id_] = h

    @rule(id_=st.integers(0, 35), in_slices=st.booleans())
    def remove(self, id_: int, in_slices: bool) -> None:
        """``in_slices``: as in a big cluster, the row is looked up bucket by bucket (binary
        search, else a scan, here of blocks of 3 rows) instead of gathered."""
        gather, block = pdq_index._GATHER_SLOTS, pdq_index._SCAN_BLOCK
        if in_slices:
            pdq_index._GATHER_SLOTS, pdq_index._SCAN_BLOCK = -1, 3
        try:
            assert self.index.remove(id_) == (id_ in self.model)
        finally:
            pdq_index._GATHER_SLOTS, pdq_index._SCAN_BLOCK = gather, block
        self.model.pop(id_, None)

    @rule(data=st.data(), threshold=st.integers(0, 64))
    def query(self, data: st.DataObject, threshold: int) -> None:
        if self.model and data.draw(st.booleans()):
            src = self.model[data.draw(st.sampled_from(sorted(self.model)))]
            d = data.draw(st.integers(0, 40))
            q = _flip(
                src, data.draw(st.lists(st.integers(0, 255), min_size=d, max_size=d, unique=True))
            )
        else:
            q = data.draw(hashes_st)
        expected = _brute(self.model, q, threshold)
        for min_rows in _PATHS:
            pdq_index._COMPILED_MIN_ROWS = min_rows
            if not min_rows:  # loaded (a test may have cleared it), so used at once
                assert pdq_index.compiled_probe() is not None
            try:
                assert self.index.query(q, threshold) == expected
            finally:
                pdq_index._COMPILED_MIN_ROWS = _DEFAULT_MIN_ROWS

    @invariant()
    def membership(self) -> None:
        assert len(self.index) == len(self.model)
        for i in range(36):
            assert (i in self.index) == (i in self.model)

    @invariant()
    def buckets_hold_exactly_the_live_rows(self) -> None:
        """Each live row once in each of its 16 buckets, and nothing else in any bucket (a
        removal that took out the wrong slot shows here at once)."""
        index = self.index
        lens = np.maximum(index._heads[:, 1], 0)
        assert int(lens.sum()) == 16 * len(self.model)
        for id_ in self.model:
            row = index._map.get(id_)
            for bucket in index._row_buckets(row).tolist():
                start, length = (int(x) for x in index._heads[bucket])
                assert int(np.count_nonzero(index._pool[start : start + length] == row)) == 1


IndexMatchesBruteForce.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestIndexMatchesBruteForce = IndexMatchesBruteForce.TestCase


class ClusteredIndexMatchesBruteForce(IndexMatchesBruteForce):
    """The same state machine with tiny split_at: most buckets split, and near-copies
    (``add_near``) keep landing in split buckets."""

    def __init__(self) -> None:
        super().__init__()
        self.index = PDQIndex(split_at=2)


ClusteredIndexMatchesBruteForce.TestCase.settings = IndexMatchesBruteForce.TestCase.settings
TestClusteredIndexMatchesBruteForce = ClusteredIndexMatchesBruteForce.TestCase
