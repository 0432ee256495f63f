"""Tests for forum_client.merkle: shared RFC 9162 vectors, RFC 6962 roots, and properties
checked against naive recursive definitions written straight from RFC 6962 section 2.1."""

from __future__ import annotations

import base64
import doctest
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forum_client import merkle
from forum_client.errors import SecurityError, VerificationError
from forum_client.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# tests/ has no __init__.py, so pytest (rootdir-relative "prepend" import mode) puts tests/ on
# sys.path and registers its conftest as the top-level module ``conftest``.
from tests.conftest import shared_dir

# ---------------------------------------------------------------- naive RFC 6962 reference


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def ref_mth(d: list[bytes]) -> bytes:
    """MTH over leaf hashes, recursively as in RFC 6962 section 2.1."""
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _split(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1."""
    if len(d) == 1:
        return []
    k = _split(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 6962 section 2.1.2."""
    if m == len(d):
        return [] if complete else [ref_mth(d)]
    k = _split(len(d))
    if m <= k:
        return [*ref_subproof(m, d[:k], complete), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def leaves(n: int, seed: bytes = b"") -> list[bytes]:
    return [leaf_hash(seed + i.to_bytes(4, "big")) for i in range(n)]


def flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


REJECTED = (VerificationError, ValueError)

# ---------------------------------------------------------------- RFC 6962 test tree

RFC_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
# transparency-dev/merkle testonly.RootHashes(): roots of the first 1..8 RFC 6962 test leaves.
RFC_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
RFC_TREE = MerkleTree.from_leaf_hashes(leaf_hash(x) for x in RFC_LEAVES)


@pytest.mark.parametrize("size", range(1, 9))
def test_rfc6962_roots(size: int) -> None:
    hashes = [leaf_hash(x) for x in RFC_LEAVES[:size]]
    want = bytes.fromhex(RFC_ROOTS[size - 1])
    assert RFC_TREE.root(size) == want
    assert root_from_leaf_hashes(hashes) == want
    assert ref_mth(hashes) == want
    compact = CompactRange.empty()
    compact.extend(hashes)
    assert compact.root() == want


def test_hash_primitives() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_from_leaf_hashes([]) == EMPTY_ROOT == MerkleTree().root()
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    with pytest.raises(ValueError, match="32-byte"):
        node_hash(a, b[:31])
    assert issubclass(VerificationError, SecurityError)


def test_module_docstring_example_runs() -> None:
    result = doctest.testmod(merkle, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# ---------------------------------------------------------------- shared RFC 9162 vectors


def _vector_files() -> list[Path]:
    base = shared_dir() / "testdata" / "merkle"
    if not base.is_dir():
        return []
    return sorted(p for kind in ("inclusion", "consistency") for p in (base / kind).rglob("*.json"))


VECTORS = _vector_files()
# 12-byte dummy roots, wantErr false: we reject every hash that is not 32 bytes (a root of the
# wrong length cannot come from a SHA-256 tree), so this one case must be refused here.
DUMMY_ROOT_CASE = "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def test_vectors_are_present(shared_testdata: Path) -> None:
    base = shared_testdata / "merkle"
    assert (base / "inclusion").is_dir() and (base / "consistency").is_dir()
    assert len(VECTORS) > 100


def _check_vector(kind: str, case: dict[str, Any]) -> None:
    proof = [_b64(h) for h in case["proof"] or []]
    if kind == "inclusion":
        args = (case["leafIdx"], case["treeSize"], proof)
        verify_inclusion(_b64(case["leafHash"]), *args, _b64(case["root"]))
    else:
        size1, size2 = case["size1"], case["size2"]
        verify_consistency(size1, size2, proof, _b64(case["root1"]), _b64(case["root2"]))


@pytest.mark.parametrize("path", VECTORS, ids=[str(p.relative_to(p.parents[2])) for p in VECTORS])
def test_shared_vector(path: Path) -> None:
    kind = path.relative_to(shared_dir() / "testdata" / "merkle").parts[0]
    case = json.loads(path.read_text())
    if path.as_posix().endswith(DUMMY_ROOT_CASE):
        with pytest.raises(VerificationError, match="32-byte"):
            _check_vector(kind, case)
    elif case["wantErr"]:
        with pytest.raises(REJECTED):
            _check_vector(kind, case)
    else:
        _check_vector(kind, case)
        _check_against_rfc_tree(kind, case)


def _check_against_rfc_tree(kind: str, case: dict[str, Any]) -> None:
    """A good vector over the RFC 6962 test tree must be exactly the proof we serve."""
    proof = [_b64(h) for h in case["proof"] or []]
    if kind == "inclusion":
        index, size, root = case["leafIdx"], case["treeSize"], _b64(case["root"])
        if size <= RFC_TREE.size and RFC_TREE.root(size) == root:
            assert RFC_TREE.inclusion_proof(index, size) == proof
    else:
        size1, size2, root2 = case["size1"], case["size2"], _b64(case["root2"])
        if size2 <= RFC_TREE.size and RFC_TREE.root(size2) == root2:
            assert RFC_TREE.consistency_proof(size1, size2) == proof


# ---------------------------------------------------------------- MerkleTree vs naive MTH

TREE_300 = MerkleTree.from_leaf_hashes(leaves(300))


def test_root_matches_naive_mth_for_every_size() -> None:
    hashes = leaves(300)
    for n in range(301):
        assert TREE_300.root(n) == ref_mth(hashes[:n]), n
    assert TREE_300.root() == TREE_300.root(300)


def test_proofs_match_rfc6962_definitions() -> None:
    hashes = leaves(40)
    tree = MerkleTree.from_leaf_hashes(hashes)
    for n in range(1, 41):
        for m in range(n):
            assert tree.inclusion_proof(m, n) == ref_path(m, hashes[:n]), (m, n)
        for m in range(1, n + 1):
            assert tree.consistency_proof(m, n) == ref_subproof(m, hashes[:n], True), (m, n)
    assert tree.consistency_proof(0, 7) == []


@given(seed=st.binary(max_size=8), chunks=st.lists(st.integers(0, 40), max_size=12))
@settings(max_examples=50, deadline=None)
def test_append_and_extend_build_the_same_tree(seed: bytes, chunks: list[int]) -> None:
    hashes = leaves(sum(chunks), seed)
    tree, pos = MerkleTree(), 0
    for i, count in enumerate(chunks):
        chunk = hashes[pos : pos + count]
        if i % 2:
            tree.extend(chunk)
        else:
            for h in chunk:
                tree.append(h)
        pos += count
    assert tree.size == len(hashes)
    assert [tree.leaf_hash_at(i) for i in range(tree.size)] == hashes
    for n in range(0, tree.size + 1, 7):
        assert tree.root(n) == ref_mth(hashes[:n])


def test_merkle_tree_rejects_misuse() -> None:
    tree = MerkleTree.from_leaf_hashes(leaves(5))
    with pytest.raises(ValueError, match="32-byte"):
        tree.append(b"\x00" * 31)
    with pytest.raises(ValueError, match="32-byte"):
        tree.extend([leaf_hash(b"ok"), b"short"])
    assert tree.size == 5  # a rejected batch adds nothing
    for call in (
        lambda: tree.root(6),
        lambda: tree.root(-1),
        lambda: tree.leaf_hash_at(5),
        lambda: tree.inclusion_proof(5, 5),
        lambda: tree.inclusion_proof(0, 6),
        lambda: tree.consistency_proof(3, 2),
        lambda: tree.consistency_proof(2, 6),
    ):
        with pytest.raises(ValueError):
            call()


# ---------------------------------------------------------------- inclusion properties


@st.composite
def _inclusion_case(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, 300))
    return draw(st.integers(0, size - 1)), size


@given(case=_inclusion_case(), bit=st.integers(0, 2**16), other=st.integers(0, 299))
@settings(max_examples=300, deadline=None)
def test_inclusion_proofs_verify_and_tampering_fails(
    case: tuple[int, int], bit: int, other: int
) -> None:
    index, size = case
    leaf, root = TREE_300.leaf_hash_at(index), TREE_300.root(size)
    proof = TREE_300.inclusion_proof(index, size)
    verify_inclusion(leaf, index, size, proof, root)
    assert root_from_inclusion_proof(leaf, index, size, proof) == root
    if proof:
        at = bit % len(proof)
        bad = [*proof[:at], flip(proof[at], bit), *proof[at + 1 :]]
        with pytest.raises(VerificationError):
            verify_inclusion(leaf, index, size, bad, root)
        with pytest.raises(VerificationError):
            verify_inclusion(leaf, index, size, proof[:-1], root)
    with pytest.raises(VerificationError):
        verify_inclusion(leaf, index, size, [*proof, root], root)
    with pytest.raises(VerificationError):
        verify_inclusion(leaf, index, size, proof, flip(root, bit))
    with pytest.raises(VerificationError):
        verify_inclusion(flip(leaf, bit), index, size, proof, root)
    if size > 1:
        wrong_index = (index + 1 + other % (size - 1)) % size
        with pytest.raises(VerificationError):
            verify_inclusion(leaf, wrong_index, size, proof, root)


def test_verify_inclusion_rejects_misuse_and_malformed_hashes() -> None:
    leaf, root = TREE_300.leaf_hash_at(3), TREE_300.root(8)
    proof = TREE_300.inclusion_proof(3, 8)
    for index, size in ((8, 8), (-1, 8), (0, 0)):  # served values: a verification failure
        with pytest.raises(VerificationError, match="need 0 <= index < size"):
            verify_inclusion(leaf, index, size, proof, root)
    with pytest.raises(VerificationError, match="32-byte"):
        verify_inclusion(leaf, 3, 8, [*proof[:2], proof[2] + b"\x00"], root)
    with pytest.raises(VerificationError, match="32-byte"):
        verify_inclusion(leaf[:16], 3, 8, proof, root)
    with pytest.raises(VerificationError, match="32-byte"):
        verify_inclusion(leaf, 3, 8, proof, root[:31])


# ---------------------------------------------------------------- consistency properties


@st.composite
def _consistency_case(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(0, 300))
    return draw(st.integers(0, size2)), size2


@given(case=_consistency_case(), bit=st.integers(0, 2**16))
@settings(max_examples=300, deadline=None)
def test_consistency_proofs_verify_and_tampering_fails(case: tuple[int, int], bit: int) -> None:
    size1, size2 = case
    root1, root2 = TREE_300.root(size1), TREE_300.root(size2)
    proof = TREE_300.consistency_proof(size1, size2)
    verify_consistency(size1, size2, proof, root1, root2)
    if proof:
        at = bit % len(proof)
        bad = [*proof[:at], flip(proof[at], bit), *proof[at + 1 :]]
        with pytest.raises(VerificationError):
            verify_consistency(size1, size2, bad, root1, root2)
        with pytest.raises(VerificationError):
            verify_consistency(size1, size2, proof[:-1], root1, root2)
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, [*proof, root2], root1, root2)
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, proof, flip(root1, bit), root2)
    if size1 > 0:  # any tree extends the empty tree, so root2 is only bound when size1 > 0
        with pytest.raises(VerificationError):
            verify_consistency(size1, size2, proof, root1, flip(root2, bit))
    if 0 < size1 < size2:  # the proof is bound to the sizes it was made for
        with pytest.raises(VerificationError):
            verify_consistency(size1, size2, proof, root2, root1)


def test_verify_consistency_rejects_misuse() -> None:
    root = TREE_300.root(4)
    with pytest.raises(VerificationError, match="size1 <= size2"):
        verify_consistency(5, 4, [], root, root)
    with pytest.raises(VerificationError, match="size1 <= size2"):
        verify_consistency(-1, 4, [], root, root)
    with pytest.raises(VerificationError, match="EMPTY_ROOT"):
        verify_consistency(0, 4, [], root, root)
    with pytest.raises(VerificationError, match="expected 3"):
        verify_consistency(3, 4, [], TREE_300.root(3), root)


# ---------------------------------------------------------------- CompactRange


@given(seed=st.binary(max_size=8), size=st.integers(0, 300))
@settings(max_examples=30, deadline=None)
def test_compact_range_matches_tree_for_every_prefix(seed: bytes, size: int) -> None:
    hashes = leaves(size, seed)
    tree = MerkleTree.from_leaf_hashes(hashes)
    compact = CompactRange.empty()
    assert compact.root() == EMPTY_ROOT
    for n, h in enumerate(hashes, start=1):
        compact.append(h)
        assert compact.size == n
        assert compact.root() == tree.root(n)
    assert CompactRange.from_bytes(compact.to_bytes()) == compact


@given(size=st.integers(0, 300))
@settings(max_examples=100, deadline=None)
def test_compact_range_bytes_round_trip(size: int) -> None:
    compact = CompactRange.empty()
    compact.extend(leaves(size))
    data = compact.to_bytes()
    assert len(data) == 8 + 32 * size.bit_count()
    assert int.from_bytes(data[:8], "big") == size
    restored = CompactRange.from_bytes(data)
    assert restored == compact
    assert restored.size == size and restored.root() == TREE_300.root(size)
    for bad in (data + b"\x00" * 32, data[:-32] if size else data + b"\x00" * 64, data[:7]):
        with pytest.raises(ValueError):
            CompactRange.from_bytes(bad)
    with pytest.raises(ValueError):
        CompactRange.from_bytes(data + b"\x00")


def test_compact_range_copy_is_independent() -> None:
    compact = CompactRange.empty()
    compact.extend(leaves(5))
    snapshot = compact.copy()
    compact.append(leaf_hash(b"more"))
    assert snapshot.size == 5 and compact.size == 6
    assert snapshot.root() == TREE_300.root(5)
    with pytest.raises(ValueError, match="32-byte"):
        compact.append(b"\x01" * 33)
    with pytest.raises(ValueError):
        CompactRange(3, [leaf_hash(b"only one")])
