"""Merkle tree hashing and proofs of RFC 9162 (same tree as RFC 6962), over SHA-256.

The forum's log is an append-only list of leaf hashes.  The server keeps a :class:`MerkleTree`
and serves roots and proofs; the client keeps only a :class:`CompactRange` (one hash per set
bit of the size) and checks every proof it is shown.  Verification never returns a boolean:
it returns ``None`` or raises :class:`~forum_client.errors.VerificationError` saying what
failed, including for a served index or size that cannot be right (an index past the tree).
The server's own tree raises ``ValueError`` for bad arguments (a size that is not there).

>>> from forum_client import merkle
>>> leaves = [merkle.leaf_hash(data) for data in (b"a", b"b", b"c")]
>>> tree = merkle.MerkleTree.from_leaf_hashes(leaves)
>>> root = tree.root()
>>> merkle.verify_inclusion(leaves[2], 2, 3, tree.inclusion_proof(2, 3), root)
>>> merkle.verify_consistency(2, 3, tree.consistency_proof(2, 3), tree.root(2), root)
>>> synced = merkle.CompactRange.empty()
>>> synced.extend(leaves)
>>> synced.root() == root
True
>>> merkle.verify_inclusion(leaves[1], 2, 3, tree.inclusion_proof(2, 3), root)
Traceback (most recent call last):
forum_client.errors.VerificationError: inclusion proof: computed root does not match
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from forum_client.errors import VerificationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_MAX_SIZE = 2**64 - 1


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right).  Raises ``ValueError`` unless both are 32 bytes."""
    _check_hash(left, "left")
    _check_hash(right, "right")
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hash(value: bytes, what: str, error: type[Exception] = ValueError) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise error(f"{what}: expected a {HASH_SIZE}-byte hash, got {size}")
    return bytes(value)


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Root of perfect subtree roots listed largest first (the right spine folds first)."""
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = hashlib.sha256(b"\x01" + left + root).digest()
    return root


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over the given leaf hashes; ``EMPTY_ROOT`` for none.  ``ValueError`` on a bad hash."""
    compact = CompactRange.empty()
    compact.extend(hashes)
    return compact.root()


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 section 2.1.3.2).

    Raises ``VerificationError`` unless ``0 <= index < size``, if a hash is not 32 bytes or
    the proof has the wrong number of hashes for that index and size.
    """
    if not 0 <= index < size <= _MAX_SIZE:
        raise VerificationError(f"inclusion proof: need 0 <= index < size, got {index} and {size}")
    node = _check_hash(leaf_hash, "inclusion proof: leaf hash", VerificationError)
    path = [_check_hash(h, f"inclusion proof[{i}]", VerificationError) for i, h in enumerate(proof)]
    inner = (index ^ (size - 1)).bit_length()
    expected = inner + (index >> inner).bit_count()
    if len(path) != expected:
        raise VerificationError(
            f"inclusion proof: {len(path)} hashes, expected {expected} "
            f"for index {index} in a tree of size {size}"
        )
    fn, sn = index, size - 1
    for sibling in path:
        if fn & 1 or fn == sn:
            node = hashlib.sha256(b"\x01" + sibling + node).digest()
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = hashlib.sha256(b"\x01" + node + sibling).digest()
        fn, sn = fn >> 1, sn >> 1
    return node


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    Raises ``VerificationError`` if it is not, or unless ``0 <= index < size``.
    """
    expected = _check_hash(root, "inclusion proof: root", VerificationError)
    if root_from_inclusion_proof(leaf_hash, index, size, proof) != expected:
        raise VerificationError("inclusion proof: computed root does not match")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree (``size1``, ``root1``) is a prefix of (``size2``, ``root2``).

    RFC 9162 section 2.1.4.2.  Raises ``VerificationError`` if it is not (including an empty
    tree whose root is not ``EMPTY_ROOT``), or unless ``0 <= size1 <= size2``.
    """
    if not 0 <= size1 <= size2 <= _MAX_SIZE:
        raise VerificationError(
            f"consistency proof: need 0 <= size1 <= size2, got {size1}, {size2}"
        )
    first = _check_hash(root1, "consistency proof: root1", VerificationError)
    second = _check_hash(root2, "consistency proof: root2", VerificationError)
    path = [
        _check_hash(h, f"consistency proof[{i}]", VerificationError) for i, h in enumerate(proof)
    ]
    if size1 in (0, size2):
        if path:
            raise VerificationError(f"consistency proof: expected no hashes, got {len(path)}")
        if size1 == 0 and first != EMPTY_ROOT:
            raise VerificationError("consistency proof: root1 of the empty tree is not EMPTY_ROOT")
        if size1 == size2 and first != second:
            raise VerificationError("consistency proof: equal sizes but different roots")
        return  # every tree extends the empty tree
    shift = (size1 & -size1).bit_length() - 1  # trailing zero bits of size1
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length() - shift
    border = ((size1 - 1) >> shift >> inner).bit_count()
    starts_with_root1 = size1 == 1 << shift
    expected = inner + border + (0 if starts_with_root1 else 1)
    if len(path) != expected:
        raise VerificationError(
            f"consistency proof: {len(path)} hashes, expected {expected} "
            f"from size {size1} to size {size2}"
        )
    if starts_with_root1:
        path.insert(0, first)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if fn & 1 or fn == sn:
            fr = hashlib.sha256(b"\x01" + c + fr).digest()
            sr = hashlib.sha256(b"\x01" + c + sr).digest()
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = hashlib.sha256(b"\x01" + sr + c).digest()
        fn, sn = fn >> 1, sn >> 1
    if fr != first:
        raise VerificationError("consistency proof: computed root1 does not match")
    if sr != second:
        raise VerificationError("consistency proof: computed root2 does not match")


def verify_prefix(
    size: int, root: bytes, checkpoint_size: int, checkpoint_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (``size``, ``root``) is the signed tree (``checkpoint_size``,
    ``checkpoint_root``) or a prefix of it: equal roots when the sizes are equal, else
    ``proof`` must be a consistency proof between the two.

    The one check behind every "these entries are in the signed log" (the sync's commits,
    its checkpoint updates and the offline audit).  Raises ``VerificationError``.
    """
    if size == checkpoint_size:
        if root != checkpoint_root:
            raise VerificationError(f"the root of the {size} entries is not the checkpoint's")
        return
    verify_consistency(size, checkpoint_size, proof, root, checkpoint_root)


class CompactRange:
    """The compact range [0, size): one perfect-subtree root per set bit of size, largest first.

    The client's whole view of the log: ``extend`` it with each new leaf hash during sync and
    compare ``root()`` with the signed checkpoint.
    """

    def __init__(self, size: int, hashes: Sequence[bytes]) -> None:
        """Raises ``ValueError`` unless there is one 32-byte hash per set bit of ``size``."""
        if not 0 <= size <= _MAX_SIZE:
            raise ValueError(f"compact range: size {size} out of range")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"compact range: size {size} needs {size.bit_count()} hashes, got {len(hashes)}"
            )
        self._size = size
        self._hashes = [_check_hash(h, "compact range hash") for h in hashes]

    @classmethod
    def empty(cls) -> CompactRange:
        return cls(0, [])

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash (``ValueError`` unless 32 bytes)."""
        self.extend((leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add each leaf hash in order, in one loop (a sync hashes a stream message's
        leaves at once); ``ValueError`` at the first that is not 32 bytes."""
        sha256 = hashlib.sha256
        hashes = self._hashes
        size = self._size
        for h in leaf_hashes:
            node = h if type(h) is bytes and len(h) == HASH_SIZE else _check_hash(h, "leaf hash")
            n = size
            while n & 1:
                node = sha256(b"\x01" + hashes.pop() + node).digest()
                n >>= 1
            hashes.append(node)
            size += 1
            self._size = size

    def root(self) -> bytes:
        return _fold(self._hashes)

    def copy(self) -> CompactRange:
        return CompactRange(self._size, self._hashes)

    def to_bytes(self) -> bytes:
        """8-byte big-endian size, then the hashes concatenated."""
        return self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        """Inverse of :meth:`to_bytes`; ``ValueError`` if malformed or the hash count is wrong."""
        if len(data) < 8 or (len(data) - 8) % HASH_SIZE:
            raise ValueError(f"compact range: {len(data)} bytes is not 8 + a multiple of 32")
        body = data[8:]
        hashes = [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)]
        return cls(int.from_bytes(data[:8], "big"), hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


class MerkleTree:
    """The server's append-only tree over leaf hashes, with every perfect subtree kept.

    Level k is one bytearray of the 32-byte roots of the aligned subtrees of 2**k leaves
    (level 0 holds the leaf hashes), so any perfect subtree is an O(1) slice and roots and
    proofs for any size up to ``size`` cost O(log n) hashes.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Iterable[bytes]) -> MerkleTree:
        """Rebuild a tree (e.g. on restart).  ``ValueError`` on a hash that is not 32 bytes."""
        tree = cls()
        tree.extend(leaf_hashes)
        return tree

    @property
    def size(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash (``ValueError`` unless 32 bytes)."""
        node = _check_hash(leaf_hash, "leaf hash")
        levels = self._levels
        levels[0] += node
        index, level = self.size - 1, 0
        while index & 1:
            left = levels[level][(index - 1) * HASH_SIZE : index * HASH_SIZE]
            node = hashlib.sha256(b"\x01" + left + node).digest()
            level += 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += node
            index >>= 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes, hashing each level in one pass (fast for bulk loads)."""
        new = [_check_hash(h, f"leaf hash {i}") for i, h in enumerate(leaf_hashes)]
        levels = self._levels
        levels[0] += b"".join(new)
        sha256, step = hashlib.sha256, 2 * HASH_SIZE
        for level in range(64):
            below = levels[level]
            if len(below) < step:
                break
            if level + 1 == len(levels):
                levels.append(bytearray())
            above = levels[level + 1]
            start, stop = 2 * len(above), len(below) - len(below) % step
            if start == stop:
                break
            above += b"".join(
                sha256(b"\x01" + below[i : i + step]).digest() for i in range(start, stop, step)
            )

    def leaf_hash_at(self, index: int) -> bytes:
        """The leaf hash at ``index``; ``ValueError`` unless ``0 <= index < size``."""
        if not 0 <= index < self.size:
            raise ValueError(f"leaf index {index} out of range for size {self.size}")
        return self._perfect(0, index)

    def root(self, size: int | None = None) -> bytes:
        """Root of the first ``size`` leaves (default: all); ``ValueError`` if out of range."""
        size = self.size if size is None else size
        self._check_size(size)
        return self._range_hash(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 6962 section 2.1.1, leaf level first."""
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"inclusion proof: need 0 <= index < size, got {index} and {size}")
        top_down: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = 1 << ((hi - lo - 1).bit_length() - 1)
            if index < lo + k:
                top_down.append(self._range_hash(lo + k, hi))
                hi = lo + k
            else:
                top_down.append(self._range_hash(lo, lo + k))
                lo += k
        return top_down[::-1]

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """PROOF(size1, D[0:size2]) of RFC 6962 section 2.1.2 (empty if size1 is 0 or size2)."""
        self._check_size(size2)
        if not 0 <= size1 <= size2:
            raise ValueError(f"consistency proof: need 0 <= size1 <= size2, got {size1}, {size2}")
        if size1 in (0, size2):
            return []
        top_down: list[bytes] = []
        lo, hi, m, complete = 0, size2, size1, True
        while m != hi - lo:
            k = 1 << ((hi - lo - 1).bit_length() - 1)
            if m <= k:
                top_down.append(self._range_hash(lo + k, hi))
                hi = lo + k
            else:
                top_down.append(self._range_hash(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        if not complete:
            top_down.append(self._range_hash(lo, hi))
        return top_down[::-1]

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"size {size} out of range for a tree of {self.size} leaves")

    def _perfect(self, level: int, index: int) -> bytes:
        return bytes(self._levels[level][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def _range_hash(self, begin: int, end: int) -> bytes:
        """MTH of leaves [begin, end), where begin is aligned to the largest power of two
        below end - begin (true of every subtree RFC 6962 defines)."""
        parts: list[bytes] = []
        count = end - begin
        for level in range(count.bit_length() - 1, -1, -1):
            if count >> level & 1:
                parts.append(self._perfect(level, begin >> level))
                begin += 1 << level
        return _fold(parts)
