"""PDQIndex: exact against a brute-force scan through adds, removes, re-adds, build, save/load."""

from __future__ import annotations

import doctest
import functools
import sys
import types
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from forum_client.errors import InvalidInputError
from forum_client.match import pdq_index
from forum_client.match.pdq_index import (
    MAX_INDEXED_THRESHOLD,
    SPLIT_AT,
    PDQIndex,
    PDQIndexFileError,
)


@pytest.fixture(autouse=True, params=["numpy", "compiled"])
def query_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs twice: queries answered in numpy, then by the compiled probe (numba,
    the ``fast`` extra) at every index size; without numba the second run is skipped."""
    if request.param == "numpy":
        monkeypatch.setattr(pdq_index, "_COMPILED_MIN_ROWS", 2**62)
    elif pdq_index.compiled_probe() is None:
        pytest.skip("numba (the fast extra) is not installed")
    else:
        monkeypatch.setattr(pdq_index, "_COMPILED_MIN_ROWS", 0)
    return str(request.param)


def _flip(hash_: bytes, bits: list[int]) -> bytes:
    out = bytearray(hash_)
    for b in bits:
        out[b // 8] ^= 1 << (b % 8)
    return bytes(out)


def _at_distance(hash_: bytes, d: int, rng: np.random.Generator) -> bytes:
    return _flip(hash_, rng.choice(256, size=d, replace=False).tolist())


def _distance(a: bytes, b: bytes) -> int:
    return int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())


def _brute(model: dict[int, bytes], q: bytes, threshold: int) -> list[tuple[int, int]]:
    hits = [(i, _distance(h, q)) for i, h in model.items()]
    return sorted(((i, d) for i, d in hits if d <= threshold), key=lambda x: (x[1], x[0]))


def test_module_example_runs() -> None:
    result = doctest.testmod(pdq_index)
    assert result.attempted > 0 and result.failed == 0


def test_default_threshold_boundary_31_matches_32_does_not() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    index = PDQIndex()
    index.add(31, _at_distance(base, 31, rng))
    index.add(32, _at_distance(base, 32, rng))
    assert index.query(base) == [(31, 31)]
    assert index.query(base, threshold=32) == [(31, 31), (32, 32)]
    assert index.query(base, threshold=30) == []


def test_every_distance_and_threshold_up_to_scan() -> None:
    """Hashes at exact distances 0..64 from a base, all thresholds 0..64 (probe radii 0-2
    and the scan above MAX_INDEXED_THRESHOLD), with the bits spread over all chunks or
    packed into as few chunks as possible."""
    rng = np.random.default_rng(2)
    base = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    model = {d: _at_distance(base, d, rng) for d in range(65)}
    model.update({100 + d: _flip(base, list(range(d))) for d in range(65)})  # packed
    model.update(
        {200 + d: _flip(base, [(16 * i) % 256 + i // 16 for i in range(d)]) for d in range(65)}
    )
    for i in range(300, 400):  # unrelated background
        model[i] = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    ids = np.array(list(model), np.int64)
    index = PDQIndex.build(ids, np.frombuffer(b"".join(model.values()), np.uint8).reshape(-1, 32))
    for threshold in range(65):
        assert index.query(base, threshold) == _brute(model, base, threshold), threshold
    assert MAX_INDEXED_THRESHOLD == 47


def test_build_equals_sequential_adds_including_duplicate_ids() -> None:
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 256, size=(400, 32), dtype=np.uint8)
    hashes[200:] = hashes[:200] ^ (rng.random((200, 32)) < 0.06).astype(np.uint8)  # near pairs
    ids = rng.integers(0, 300, 400).astype(np.int64)  # repeats: the last one wins
    built = PDQIndex.build(ids, hashes)
    added = PDQIndex()
    for i, h in zip(ids.tolist(), hashes, strict=True):
        added.add(i, h.tobytes())
    assert len(built) == len(added) == len(set(ids.tolist()))
    for q in hashes[::7]:
        for threshold in (0, 15, 31, 40, 60):
            assert built.query(q.tobytes(), threshold) == added.query(q.tobytes(), threshold)


def test_many_adds_and_removes_move_and_compact_buckets() -> None:
    """Enough churn in few buckets to force bucket moves, pool growth and compaction."""
    rng = np.random.default_rng(4)
    base = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    index = PDQIndex()
    model: dict[int, bytes] = {}
    for step in range(6000):
        i = int(rng.integers(0, 3000))
        if rng.random() < 0.3:
            assert index.remove(i) == (i in model)
            model.pop(i, None)
        else:
            model[i] = _at_distance(base, int(rng.integers(0, 8)), rng)
            index.add(i, model[i])
        if step % 1000 == 0:
            assert index.query(base, 31) == _brute(model, base, 31)
    assert index.query(base, 31) == _brute(model, base, 31)
    assert index.query(base, 3) == _brute(model, base, 3)


def test_save_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 256, size=(500, 32), dtype=np.uint8)
    index = PDQIndex.build(np.arange(500, dtype=np.int64) * 7, hashes)
    for i in range(0, 500, 5):
        assert index.remove(i * 7)
    index.add(10_000, hashes[3].tobytes())
    path = tmp_path / "pdq.npz"
    index.save(path)
    loaded = PDQIndex.load(path)
    assert len(loaded) == len(index) and 10_000 in loaded and 0 not in loaded
    for q in hashes[:50]:
        assert loaded.query(q.tobytes()) == index.query(q.tobytes())
    loaded.add(20_000, hashes[0].tobytes())  # still updatable after loading
    assert loaded.query(hashes[0].tobytes(), 0) == [(20_000, 0)]
    assert PDQIndex.load(path).query(hashes[0].tobytes(), 0) == []
    empty = tmp_path / "empty.npz"
    PDQIndex().save(empty)
    assert len(PDQIndex.load(empty)) == 0


def test_corrupt_or_mismatched_file_rejected(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    index = PDQIndex.build(
        np.arange(300, dtype=np.int64), rng.integers(0, 256, size=(300, 32), dtype=np.uint8)
    )
    path = tmp_path / "pdq.npz"
    index.save(path)
    raw = path.read_bytes()

    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x01  # a bit flip inside an array
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "junk.npz").write_bytes(b"not an index at all")
    with np.load(path) as npz:
        members = {k: npz[k] for k in npz.files}
    members["ids"] = members["ids"][::-1].copy()  # consistent checksum, wrong structure
    meta = members["meta"].copy()
    import zlib

    meta[pdq_index._META_FIELDS + pdq_index._FILE_ARRAYS.index("ids")] = zlib.crc32(
        members["ids"].data
    )
    members["meta"] = meta
    np.savez(tmp_path / "mismatch.npz", **members)
    members["meta"] = meta.copy()
    members["meta"][1] = 99
    np.savez(tmp_path / "version.npz", **members)
    index.remove(5)
    index.remove(9)
    index.save(path)
    with np.load(path) as npz:
        members = {k: npz[k] for k in npz.files}
    members["free"] = np.array([5, 5], np.int64)  # row 9 would count as live, 5 re-used twice
    members["meta"][pdq_index._META_FIELDS + pdq_index._FILE_ARRAYS.index("free")] = zlib.crc32(
        members["free"].data
    )
    np.savez(tmp_path / "free.npz", **members)
    with pytest.raises(PDQIndexFileError, match="free list"):
        PDQIndex.load(tmp_path / "free.npz")

    for name in ("flip", "trunc", "junk", "mismatch", "version", "free"):
        with pytest.raises(ValueError):
            PDQIndex.load(tmp_path / f"{name}.npz")
        with pytest.raises(PDQIndexFileError):
            PDQIndex.load(tmp_path / f"{name}.npz")


def test_remove_unknown_and_bad_input() -> None:
    index = PDQIndex()
    assert index.remove(12345) is False
    index.add(1, bytes(32))
    assert index.remove(1) is True and index.remove(1) is False
    assert 1 not in index and "x" not in index and len(index) == 0
    with pytest.raises(InvalidInputError):
        index.add(2, bytes(31))
    with pytest.raises(InvalidInputError):
        index.add(2**63, bytes(32))
    with pytest.raises(InvalidInputError):
        index.query(bytes(32), threshold=-1)
    with pytest.raises(InvalidInputError):
        PDQIndex.build(np.arange(3), np.zeros((3, 31), np.uint8))
    assert index.query_many(np.zeros((2, 32), np.uint8)) == [[], []]


@pytest.mark.parametrize("wide", [2**31, -(2**31) - 1, 2**63 - 1, -(2**63)])
def test_ids_are_int32_until_one_does_not_fit(tmp_path: Path, wide: int) -> None:
    """Ids are stored in 4 bytes while they fit (the int32 bounds included) and widened, in
    place of the index's ids, by the first that does not: from then on, and through save and
    load, every id is found, answered and removed exactly as before."""
    rng = np.random.default_rng(8)
    hashes = rng.integers(0, 256, size=(300, 32), dtype=np.uint8)
    ids = np.arange(300, dtype=np.int64) * 7_000_001 - 2**31  # spread over int32
    ids[:2] = (-(2**31), 2**31 - 1)
    index = PDQIndex.build(ids, hashes)
    assert index._ids.dtype == np.int32
    model = _model_of(ids, hashes)
    queries = [_at_distance(h.tobytes(), 5, rng) for h in hashes[:10]]
    before = [index.query(q) for q in queries]
    assert before == [_brute(model, q, 31) for q in queries]
    assert all(type(i) is int for found in before for i, _ in found)
    index.add(wide, hashes[0].tobytes())
    model[wide] = hashes[0].tobytes()
    assert index._ids.dtype == np.int64
    assert wide in index and all(int(i) in index for i in ids)
    assert [index.query(q) for q in queries] == [_brute(model, q, 31) for q in queries]
    path = tmp_path / "wide.npz"
    index.save(path)
    loaded = PDQIndex.load(path)
    assert loaded._ids.dtype == np.int64 and loaded.hash_of(wide) == hashes[0].tobytes()
    for i in (wide, int(ids[0]), int(ids[1])):
        assert loaded.remove(i) and i not in loaded
        del model[i]
    assert [loaded.query(q) for q in queries] == [_brute(model, q, 31) for q in queries]
    assert PDQIndex.build(np.array([0, wide]), hashes[:2])._ids.dtype == np.int64
    PDQIndex.build(ids[:50], hashes[:50]).save(path)  # and an int32 one as int32
    assert PDQIndex.load(path)._ids.dtype == np.int32


def test_the_id_table_is_sized_to_its_rows_and_rebuilt_as_adds_fill_it() -> None:
    """The id table is built 60% full (any number of slots, not a power of two), rebuilt
    with room once adds and removals have used 70% of it, and always finds exactly the ids
    the index holds."""
    rng = np.random.default_rng(9)
    hashes = rng.integers(0, 256, size=(1000, 32), dtype=np.uint8)
    ids = rng.choice(2**40, size=1000, replace=False).astype(np.int64)
    index = PDQIndex.build(ids, hashes)
    assert len(index._map.rows) == 1667  # ceil(1000 / 0.6)
    model = dict(zip(ids.tolist(), (h.tobytes() for h in hashes), strict=True))
    sizes = {len(index._map.rows)}
    for step in range(4000):
        i = int(rng.choice(ids)) if rng.random() < 0.4 else int(rng.integers(-(2**62), 2**62))
        if i in model and rng.random() < 0.5:
            assert index.remove(i)
            del model[i]
        else:
            model[i] = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
            index.add(i, model[i])
        sizes.add(len(index._map.rows))
        if step % 500 == 0:
            assert index._map.used <= 0.7 * len(index._map.rows)
    assert len(sizes) > 1  # rebuilt as it filled
    assert len(index) == len(model)
    assert all(index.hash_of(i) == h for i, h in model.items())
    assert not any(int(i) in index for i in ids if int(i) not in model)


def test_a_full_scan_above_47_bits_leaves_out_removed_rows() -> None:
    """Thresholds above MAX_INDEXED_THRESHOLD scan every row: a removed row keeps its old
    hash until it is re-used, and must not be answered."""
    rng = np.random.default_rng(10)
    base = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    model = {i: _at_distance(base, int(rng.integers(0, 60)), rng) for i in range(200)}
    hashes = np.frombuffer(b"".join(model.values()), np.uint8).reshape(-1, 32)
    index = PDQIndex.build(np.arange(200, dtype=np.int64), hashes)
    for victim in range(0, 200, 3):
        assert index.remove(victim)
        del model[victim]
    for threshold in (48, 64, 256):
        assert index.query(base, threshold) == _brute(model, base, threshold)
    index.add(1000, base)  # re-uses a freed row
    model[1000] = base
    assert index.query(base, 64) == _brute(model, base, 64)


# ---------------------------------------------------------------- split (crowded) buckets


def _clustered(rng: np.random.Generator, clusters: int, per: int, flips: int) -> np.ndarray:
    """``clusters`` centres with ``per`` near-copies each (0..flips bits flipped), plus as
    many uniform hashes: the shape real PDQ lists have (a few huge buckets)."""
    centres = rng.integers(0, 256, size=(clusters, 32), dtype=np.uint8)
    out = [rng.integers(0, 256, size=(clusters * per, 32), dtype=np.uint8)]
    for c in centres:
        copies = np.repeat(c[None, :], per, axis=0)
        for row in copies:
            for b in rng.choice(256, size=int(rng.integers(0, flips + 1)), replace=False):
                row[b // 8] ^= 1 << (b % 8)
        out.append(copies)
    return np.concatenate(out)


def _model_of(index_ids: np.ndarray, hashes: np.ndarray) -> dict[int, bytes]:
    return {int(i): h.tobytes() for i, h in zip(index_ids, hashes, strict=True)}


def _queries(model: dict[int, bytes], rng: np.random.Generator, k: int) -> list[bytes]:
    keys = sorted(model)
    near = [
        _at_distance(model[keys[int(rng.integers(len(keys)))]], int(rng.integers(0, 40)), rng)
        for _ in range(k)
    ]
    return near + [rng.integers(0, 256, 32, dtype=np.uint8).tobytes() for _ in range(k)]


def test_split_buckets_equal_brute_force_on_clustered_data_through_removals() -> None:
    rng = np.random.default_rng(11)
    hashes = _clustered(rng, clusters=4, per=150, flips=12)
    ids = np.arange(len(hashes), dtype=np.int64) * 3
    index = PDQIndex.build(ids, hashes, split_at=16)
    assert index._n_splits > 0  # the clusters' buckets really were split
    model = _model_of(ids, hashes)
    for q in _queries(model, rng, 40):
        for threshold in (0, 8, 31, 40, 47, 50):
            assert index.query(q, threshold) == _brute(model, q, threshold)
    for victim in rng.choice(ids, size=400, replace=False).tolist():
        assert index.remove(victim)
        del model[victim]
    for q in _queries(model, rng, 40):
        for threshold in (0, 31, 47):
            assert index.query(q, threshold) == _brute(model, q, threshold)


def test_buckets_split_while_adding_equal_brute_force_and_build() -> None:
    """Adds grow buckets past split_at one by one (splits happen during add), with removes
    and re-adds in between; the result equals brute force and a fresh build."""
    rng = np.random.default_rng(12)
    hashes = _clustered(rng, clusters=3, per=200, flips=10)
    order = rng.permutation(len(hashes))
    index = PDQIndex(split_at=20)
    model: dict[int, bytes] = {}
    for step, i in enumerate(order.tolist()):
        index.add(i, hashes[i].tobytes())
        model[i] = hashes[i].tobytes()
        if step % 5 == 4:
            victim = sorted(model)[int(rng.integers(len(model)))]
            assert index.remove(victim)
            del model[victim]
        if step % 7 == 0:  # re-add an id with another hash
            again = sorted(model)[int(rng.integers(len(model)))]
            model[again] = hashes[int(rng.integers(len(hashes)))].tobytes()
            index.add(again, model[again])
    assert index._n_splits > 0
    built = PDQIndex.build(
        np.array(list(model), np.int64),
        np.frombuffer(b"".join(model.values()), np.uint8).reshape(-1, 32),
        split_at=20,
    )
    for q in _queries(model, rng, 40):
        for threshold in (0, 31, 45):
            want = _brute(model, q, threshold)
            assert index.query(q, threshold) == want
            assert built.query(q, threshold) == want


def test_split_index_save_load_round_trip_and_corrupt_split_rejected(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    hashes = _clustered(rng, clusters=2, per=120, flips=8)
    ids = np.arange(len(hashes), dtype=np.int64)
    index = PDQIndex.build(ids, hashes, split_at=10)
    for victim in range(0, len(hashes), 9):
        index.remove(victim)
    path = tmp_path / "split.npz"
    index.save(path)
    loaded = PDQIndex.load(path)
    assert loaded._n_splits == index._n_splits > 0 and len(loaded) == len(index)
    for q in hashes[::13]:
        assert loaded.query(q.tobytes(), 31) == index.query(q.tobytes(), 31)
    loaded.add(10**6, hashes[1].tobytes())  # still updatable (and splittable) after loading
    assert (10**6, 0) in loaded.query(hashes[1].tobytes(), 0)

    import zlib

    with np.load(path) as npz:
        members = {k: npz[k] for k in npz.files}
    heads = members["heads"].copy()
    forgotten = np.flatnonzero(heads[: pdq_index._NUM_BUCKETS, 1] < 0)[0]
    heads[forgotten, 1] = 0  # a split bucket forgotten: its rows unreachable
    members["heads"] = heads
    meta = members["meta"].copy()
    meta[pdq_index._META_FIELDS + pdq_index._FILE_ARRAYS.index("heads")] = zlib.crc32(heads.data)
    members["meta"] = meta
    np.savez(tmp_path / "bad.npz", **members)
    with pytest.raises(PDQIndexFileError, match="split"):
        PDQIndex.load(tmp_path / "bad.npz")
    with pytest.raises(InvalidInputError):
        PDQIndex(split_at=0)


# ---------------------------------------------------------------- batches and query paths


def _brute_many(
    model: dict[int, bytes], queries: list[bytes], threshold: int
) -> list[list[tuple[int, int]]]:
    """The brute-force answer for every query, vectorised over the model."""
    ids = np.array(list(model), np.int64)
    bits = np.unpackbits(np.frombuffer(b"".join(model.values()), np.uint8).reshape(-1, 32), 1)
    out = []
    for q in queries:
        dist = (bits != np.unpackbits(np.frombuffer(q, np.uint8))).sum(axis=1)
        keep = np.flatnonzero(dist <= threshold)
        found = zip(ids[keep].tolist(), dist[keep].tolist(), strict=True)
        out.append(sorted(found, key=lambda x: (x[1], x[0])))
    return out


@pytest.mark.parametrize(
    ("few_split_probes", "batch_per_query"),
    [(0, 10**9), (10**6, 10**9), (10**6, 64)],
    ids=["vectorised", "python", "block-to-single-queries"],
)
def test_query_many_equals_brute_force_on_random_and_clustered_data_through_removals(
    monkeypatch: pytest.MonkeyPatch, few_split_probes: int, batch_per_query: int
) -> None:
    """query_many (blocks of queries, halved when they gather too many candidates, or
    answered one by one when they gather many per query) and query give the brute-force
    answer on uniform and clustered hashes, before and after removals and re-adds, with
    split buckets handled by either the per-probe Python path or the vectorised one."""
    monkeypatch.setattr(pdq_index, "_FEW_SPLIT_PROBES", few_split_probes)
    monkeypatch.setattr(pdq_index, "_BATCH_CANDIDATES_PER_QUERY", batch_per_query)
    monkeypatch.setattr(pdq_index, "_BLOCK_CANDIDATES", 3000)  # force the halving too
    rng = np.random.default_rng(21)
    hashes = _clustered(rng, clusters=3, per=300, flips=10)
    ids = rng.permutation(len(hashes)).astype(np.int64) * 5 - 1000
    index = PDQIndex.build(ids, hashes, split_at=24)
    assert index._n_splits > 0
    model = _model_of(ids, hashes)
    for _ in range(3):
        queries = _queries(model, rng, 25)
        arr = np.frombuffer(b"".join(queries), np.uint8).reshape(-1, 32)
        for threshold in (0, 9, 31, 47, 52):
            want = _brute_many(model, queries, threshold)
            assert index.query_many(arr, threshold) == want
            assert [index.query(q, threshold) for q in queries] == want
        for victim in rng.choice(sorted(model), size=len(model) // 4, replace=False).tolist():
            assert index.remove(victim)
            del model[victim]
        for i in rng.choice(sorted(model), size=50, replace=False).tolist():
            model[i] = _at_distance(model[i], int(rng.integers(0, 20)), rng)
            index.add(i, model[i])
    assert index.query_many(np.zeros((0, 32), np.uint8)) == []


def test_hits_in_a_big_cluster_equal_brute_force() -> None:
    """A query inside a cluster gathers each near-copy from up to 16 buckets (more candidate
    rows than a 16th of the index): those are de-duplicated before the distance check."""
    rng = np.random.default_rng(22)
    hashes = _clustered(rng, clusters=2, per=800, flips=4)
    ids = np.arange(len(hashes), dtype=np.int64)
    model = _model_of(ids, hashes)
    for split_at in (SPLIT_AT, 40):
        index = PDQIndex.build(ids, hashes, split_at=split_at)
        queries = [_at_distance(hashes[-1].tobytes(), d, rng) for d in (0, 3, 12)]
        for threshold in (4, 31):
            want = _brute_many(model, queries, threshold)
            assert [index.query(q, threshold) for q in queries] == want
            arr = np.frombuffer(b"".join(queries), np.uint8).reshape(-1, 32)
            assert index.query_many(arr, threshold) == want
        assert len(index.query(queries[0])) > 700


def _slices_in_row_order(index: PDQIndex) -> list[bool]:
    """For each bucket or band of more than one row: are its rows in row order?"""
    return [
        bool(np.all(np.diff(index._pool[start : start + length]) > 0))
        for start, length in index._heads.tolist()
        if length > 1
    ]


@pytest.mark.parametrize("split_at", [SPLIT_AT, 10**6])
def test_removals_inside_a_big_cluster_equal_brute_force_in_and_out_of_row_order(
    split_at: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A removal whose 16 buckets hold many rows finds the row in each by a checked binary
    search while the bucket (or band) is in row order, as a build leaves it, and by a scan
    from the end once removals' swaps and re-used rows have broken that order. Both ways,
    through removals, re-adds and new ids, the index answers as brute force does."""
    monkeypatch.setattr(pdq_index, "_SCAN_BLOCK", 37)  # scans of several uneven blocks
    rng = np.random.default_rng(41)
    hashes = _clustered(rng, clusters=1, per=1600, flips=3)
    ids = np.arange(len(hashes), dtype=np.int64) * 5 + 1
    index = PDQIndex.build(ids, hashes, split_at=split_at)
    assert (index._n_splits > 0) == (split_at == SPLIT_AT)
    assert all(_slices_in_row_order(index))  # what the binary search relies on
    model = _model_of(ids, hashes)
    cluster = ids[1600:]  # _clustered puts the uniform hashes first
    row = index._map.get(int(cluster[0]))
    assert int(index._heads[index._row_buckets(row), 1].sum()) > pdq_index._GATHER_SLOTS
    for round_ in range(3):
        for victim in rng.choice(sorted(set(cluster.tolist()) & set(model)), 150, False):
            assert index.remove(int(victim))
            del model[int(victim)]
            assert not index.remove(int(victim))
        for i in rng.choice(cluster, size=60, replace=False).tolist():  # re-used rows
            centre = model.get(i) or hashes[1600].tobytes()
            model[i] = _at_distance(centre, int(rng.integers(0, 4)), rng)
            index.add(i, model[i])
        queries = [_at_distance(hashes[1600].tobytes(), d, rng) for d in (0, 2, 5)]
        queries += _queries(model, rng, 10)
        for threshold in (3, 31):
            assert [index.query(q, threshold) for q in queries] == _brute_many(
                model, queries, threshold
            ), round_
        assert len(index) == len(model)
    assert not all(_slices_in_row_order(index))  # the scan really was needed


def test_a_row_added_far_from_a_split_buckets_pivot_is_found_through_that_bucket() -> None:
    """A query skips a split bucket when it is farther from the pivot than the bucket's
    reach plus the threshold, so adding a row beyond the reach must widen it. Here the
    only chunk in which the query is within one bit of the added row is a split bucket's:
    the row is found through that bucket or not at all."""
    rng = np.random.default_rng(41)
    base = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    cluster = [base] * 30 + [_at_distance(base, 2, rng) for _ in range(10)]
    ids = np.arange(len(cluster), dtype=np.int64)
    hashes = np.frombuffer(b"".join(cluster), np.uint8).reshape(-1, 32)
    model = _model_of(ids, hashes)
    for reopen in (False, True):
        index = PDQIndex.build(ids, hashes, split_at=16)
        assert index._n_splits == 16  # every chunk's bucket of the cluster is split
        # 40 bits off the pivot (8 in each of chunks 0-4): in the split buckets of 5-15.
        far = _flip(base, [16 * c + j for c in range(5) for j in range(8)])
        index.add(1000, far)
        model[1000] = far
        # 30 bits off that row, 2 in each chunk but 15: 70 from the pivot.
        query = _flip(far, [16 * c + 8 + j for c in range(15) for j in range(2)])
        if reopen:
            index.remove(1000)
            index.add(1000, far)  # a stale reach stays an upper bound; the add widens it
        assert index.query(query) == _brute(model, query, 31) == [(1000, 30)]
        assert index.query_many(np.frombuffer(query, np.uint8)[None, :]) == [[(1000, 30)]]
        del model[1000]


def test_the_complement_of_a_stored_hash_is_at_distance_256() -> None:
    """Distances are summed from four per-word counts mod 256: the exact complement (all
    256 bits differ) must not read as distance 0."""
    rng = np.random.default_rng(23)
    base = rng.integers(0, 256, 32, dtype=np.uint8)
    index = PDQIndex.build(np.array([1, 2]), np.stack([base, ~base]))
    assert index.query(base.tobytes(), 31) == [(1, 0)]
    assert index.query_many(base[None, :], 47) == [[(1, 0)]]
    assert index.query(base.tobytes(), 256) == [(1, 0), (2, 256)]
    assert index.query((~base).tobytes(), 0) == [(2, 0)]


# ---------------------------------------------------------------- row order and the heap


@pytest.mark.parametrize("split_at", [SPLIT_AT, 24])
def test_build_orders_rows_by_hash_and_equals_brute_force_through_removals_and_re_adds(
    split_at: int,
) -> None:
    """build() stores rows in the order of the hashes' first 8 bytes, not in input order:
    the same hashes built from two input orders, and added one by one, answer every query
    as brute force does, on uniform and clustered data, before and after removals and
    re-adds (which reuse freed rows out of that order)."""
    rng = np.random.default_rng(31)
    hashes = _clustered(rng, clusters=3, per=200, flips=10)
    ids = rng.permutation(len(hashes)).astype(np.int64) * 7 + 3
    built = PDQIndex.build(ids, hashes, split_at=split_at)
    shuffle = rng.permutation(len(hashes))
    reordered = PDQIndex.build(ids[shuffle], hashes[shuffle], split_at=split_at)
    added = PDQIndex(split_at=split_at)
    for i, h in zip(ids.tolist(), hashes, strict=True):
        added.add(i, h.tobytes())
    first8 = np.ascontiguousarray(hashes).view(">u8")[:, 0]
    assert np.all(np.diff(built._words[: len(hashes), 0].byteswap()) >= 0)  # really ordered
    assert not np.array_equal(built._ids[: len(hashes)], ids)  # ...and not in input order
    assert sorted(first8.tolist()) == built._words[: len(hashes), 0].byteswap().tolist()
    model = _model_of(ids, hashes)
    indexes = (built, reordered, added)
    for round_ in range(3):
        queries = _queries(model, rng, 20)
        arr = np.frombuffer(b"".join(queries), np.uint8).reshape(-1, 32)
        for threshold in (0, 12, 31, 47):
            want = _brute_many(model, queries, threshold)
            for index in indexes:
                assert [index.query(q, threshold) for q in queries] == want, round_
                assert index.query_many(arr, threshold) == want, round_
        for victim in rng.choice(sorted(model), size=len(model) // 5, replace=False).tolist():
            for index in indexes:
                assert index.remove(victim)
            del model[victim]
        for i in rng.choice(sorted(model), size=40, replace=False).tolist():
            model[i] = _at_distance(model[i], int(rng.integers(0, 25)), rng)
            for index in indexes:
                index.add(i, model[i])
        for i in range(10**6, 10**6 + 30):  # new ids: freed rows are reused
            model[i] = _at_distance(model[sorted(model)[0]], int(rng.integers(0, 25)), rng)
            for index in indexes:
                index.add(i, model[i])


def test_single_query_paths_equal_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    """A single query answers misses (early return on the smallest distance), hits, hits
    whose rows come up in several probes, and the exact complement the same as brute
    force, with split buckets expanded in Python or vectorised."""
    rng = np.random.default_rng(32)
    hashes = _clustered(rng, clusters=2, per=150, flips=6)
    ids = np.arange(len(hashes), dtype=np.int64)
    model = _model_of(ids, hashes)
    complement = (~hashes[5]).tobytes()
    queries = [complement, hashes[5].tobytes(), hashes[-1].tobytes(), *_queries(model, rng, 30)]
    for few in (0, 10**6):
        monkeypatch.setattr(pdq_index, "_FEW_SPLIT_PROBES", few)
        index = PDQIndex.build(ids, hashes, split_at=8)
        for q in queries:
            for threshold in (0, 1, 16, 31, 32, 47):
                assert index.query(q, threshold) == _brute(model, q, threshold)


def test_release_free_heap_trims_where_glibc_is() -> None:
    import platform

    from forum_client.match._heap import release_free_heap

    assert release_free_heap() is (platform.libc_ver()[0] == "glibc")


@pytest.mark.parametrize("split_at", [8, 24])
def test_bulk_layout_equals_splitting_buckets_one_by_one(split_at: int) -> None:
    """build() lays out crowded buckets already split (_pdq_layout): the same pivots, the
    same rows in every bucket and band, in the same order, as a plain layout whose crowded
    buckets are then split one at a time as add() splits them."""
    rng = np.random.default_rng(42)
    hashes = np.concatenate(
        [_clustered(rng, clusters=3, per=120, flips=10), rng.integers(0, 256, (300, 32), np.uint8)]
    )
    ids = np.arange(len(hashes), dtype=np.int64)
    bulk = PDQIndex.build(ids, hashes, split_at=split_at)
    one_by_one = PDQIndex.build(ids, hashes, split_at=10**9)
    assert one_by_one._n_splits == 0
    one_by_one._split_at = split_at
    crowded = np.flatnonzero(one_by_one._heads[: pdq_index._NUM_BUCKETS, 1] > split_at)
    for bucket in crowded.tolist():
        one_by_one._split_bucket(bucket)
    assert bulk._n_splits == one_by_one._n_splits == len(crowded) > 16
    n = bulk._n_splits
    assert np.array_equal(bulk._pivots[:n], one_by_one._pivots[:n])
    assert np.array_equal(bulk._reach[:n], one_by_one._reach[:n])
    heads = pdq_index._NUM_BUCKETS + n * pdq_index._SUBS
    assert np.array_equal(bulk._heads[:heads, 1], one_by_one._heads[:heads, 1])
    for index in (bulk, one_by_one):
        lens = np.maximum(index._heads[:heads, 1], 0)
        assert np.all(lens <= index._caps[:heads])
    rows = [
        [
            index._pool[s : s + ln].tolist()
            for s, ln in zip(
                index._heads[:heads, 0].tolist(), index._heads[:heads, 1].tolist(), strict=True
            )
            if ln > 0
        ]
        for index in (bulk, one_by_one)
    ]
    assert rows[0] == rows[1]


def test_the_compiled_probe_answers_misses_and_hands_crowded_or_full_hits_to_numpy(
    query_path: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The compiled probe answers a query itself (0 or more matches, rows repeated across
    chunks de-duplicated), or says CROWDED (more candidates than the numpy path's crowded
    bound) or FULL (more matches than its output holds), and numpy answers those: every
    answer equals brute force at every threshold it probes (radius 0, 1 and 2)."""
    if query_path != "compiled":
        pytest.skip("about the compiled probe")
    probe = pdq_index.compiled_probe()
    assert probe is not None
    said: list[int] = []

    def counted(*args: object) -> int:
        said.append(probe(*args))
        return said[-1]

    monkeypatch.setattr(pdq_index, "compiled_probe", functools.cache(lambda: counted))
    monkeypatch.setattr(pdq_index, "_COMPILED_AFTER", 0)
    monkeypatch.setattr(pdq_index, "_COMPILED_HITS", 8)
    monkeypatch.setattr(pdq_index, "_CROWDED_SLACK", 0)  # a cluster's hits are crowded
    rng = np.random.default_rng(77)
    hashes = np.concatenate(
        [_clustered(rng, clusters=2, per=200, flips=8), rng.integers(0, 256, (400, 32), np.uint8)]
    )
    ids = np.arange(len(hashes), dtype=np.int64)
    model = _model_of(ids, hashes)
    index = PDQIndex.build(ids, hashes, split_at=16)
    queries = [hashes[0].tobytes(), hashes[450].tobytes(), *_queries(model, rng, 40)]
    for q in queries:
        for threshold in (0, 15, 16, 31, 32, 47):
            assert index.query(q, threshold) == _brute(model, q, threshold)
    assert index.query_many(np.frombuffer(b"".join(queries), np.uint8).reshape(-1, 32)) == [
        _brute(model, q, 31) for q in queries
    ]
    from forum_client.match._pdq_probe import CROWDED, FULL

    assert {0, CROWDED, FULL} <= set(said) and max(said) > 1
    # Built, grown by adds and loaded indexes pass the kinds of arrays compiled_probe()
    # loaded the machine code for: no query compiles anything.
    grown = PDQIndex()
    for i, h in enumerate(hashes[:300]):
        grown.add(i, h.tobytes())
    index.save(tmp_path / "i.npz")
    for other in (grown, PDQIndex.load(tmp_path / "i.npz")):
        for q in queries[:5]:
            other.query(q)
    assert len(cast(Any, probe).signatures) == 1


def test_a_process_loads_the_compiled_probe_after_answering_many_queries_in_numpy(
    query_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading the compiled probe costs ~0.35 s: a process answers its first queries of big
    indexes in numpy (query and query_many count alike) and loads the probe only after
    _COMPILED_AFTER of them; the answers are the same before and after."""
    if query_path != "compiled":
        pytest.skip("about the compiled probe")
    monkeypatch.setattr(pdq_index, "_COMPILED_AFTER", 10)
    monkeypatch.setattr(pdq_index, "_numpy_answers", 0)
    monkeypatch.setattr(pdq_index, "_probe_loaded", False)
    pdq_index.compiled_probe.cache_clear()
    compiled: list[bytes] = []
    answer = PDQIndex._probe_compiled

    def counted(self: PDQIndex, probe: Any, data: bytes, limit: int) -> list[tuple[int, int]]:
        compiled.append(data)
        return answer(self, probe, data, limit)

    monkeypatch.setattr(PDQIndex, "_probe_compiled", counted)
    rng = np.random.default_rng(5)
    hashes = _clustered(rng, clusters=2, per=100, flips=6)
    ids = np.arange(len(hashes), dtype=np.int64)
    model = _model_of(ids, hashes)
    index = PDQIndex.build(ids, hashes, split_at=16)
    queries = _queries(model, rng, 14)
    for q in queries[:6]:
        assert index.query(q) == _brute(model, q, 31)
    batch = np.frombuffer(b"".join(queries[6:9]), np.uint8).reshape(-1, 32)
    assert index.query_many(batch) == [_brute(model, q, 31) for q in queries[6:9]]
    assert not compiled and not pdq_index.compiled_probe.cache_info().currsize
    for q in queries[9:]:  # the 10th query loads it
        assert index.query(q) == _brute(model, q, 31)
    assert compiled == queries[9:]


def test_a_compiled_probe_that_cannot_load_leaves_queries_to_numpy_with_a_warning(
    query_path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """numba installed but broken (an import error other than numba missing), or unable
    to compile or cache the probe: a warning, and every query is answered in numpy."""
    if query_path != "compiled":
        pytest.skip("about the compiled probe")

    def cannot_compile(*args: object) -> int:
        raise RuntimeError("cannot cache function 'probe': no locator available")

    broken = types.ModuleType("forum_client.match._pdq_probe")
    broken.probe = cannot_compile  # type: ignore[attr-defined]
    rng = np.random.default_rng(9)
    hashes = rng.integers(0, 256, (200, 32), np.uint8)
    ids = np.arange(200, dtype=np.int64)
    model = _model_of(ids, hashes)
    index = PDQIndex.build(ids, hashes)
    q = _at_distance(hashes[3].tobytes(), 9, rng)
    for module in (None, broken):  # None: importing it raises ImportError
        monkeypatch.setitem(sys.modules, "forum_client.match._pdq_probe", module)
        pdq_index.compiled_probe.cache_clear()
        caplog.clear()
        with caplog.at_level("WARNING", logger="forum_client.match.pdq_index"):
            assert pdq_index.compiled_probe() is None
            assert index.query(q) == _brute(model, q, 31)
        assert "the compiled probe failed" in caplog.text
    monkeypatch.undo()
    pdq_index.compiled_probe.cache_clear()
    assert pdq_index.compiled_probe() is not None  # loaded again for the tests after this one
