"""PDQIndex as a state machine: random adds, re-adds, removes and queries, each query equal
to a brute-force scan, answered both in numpy and by the compiled probe (when numba, the
``fast`` extra, is installed)."""

from __future__ import annotations

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

    @rule(id_=st.integers(0, 35))
    def remove(self, id_: int) -> None:
        assert self.index.remove(id_) == (id_ in self.model)
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
