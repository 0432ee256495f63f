"""Comparing checkpoints between members: how a split view (a fork) is caught.

A server holding the log key could show two members two different histories, each one
consistent on its own, so neither member's sync can tell.  Members catch it by comparing
the signed checkpoints they hold (over any channel: mail, a chat, a witness):

* the same size with different roots is a fork, proven by the two signed notes alone;
* different sizes are consistent only if the larger tree extends the smaller one: proven
  by a consistency proof (which a forked server cannot produce), or, for a member with a
  verified local copy, by recomputing the root at the smaller size from its own stored
  leaves (no server involved).

    >>> from forum_client.envelope import SigningKey
    >>> from forum_client.checkpoint import Checkpoint, sign_checkpoint
    >>> log = SigningKey.generate()
    >>> root = TrustRoot("forum.test", log.public_bytes, log.public_bytes, "forum.test")
    >>> a = sign_checkpoint(Checkpoint("forum.test", 3, bytes(32)), "forum.test", log)
    >>> b = sign_checkpoint(Checkpoint("forum.test", 3, bytes(31) + b"1"), "forum.test", log)
    >>> compare_checkpoints(a, a, root).how
    'same checkpoint'
    >>> try:
    ...     compare_checkpoints(a, b, root)
    ... except ForkError as exc:
    ...     print(exc)
    fork: two checkpoints of size 3 signed by the log key with different roots

Every function raises VerificationError when a note's signature does not verify,
:class:`ForkError` (a SecurityError) when the two are inconsistent, InvalidInputError when
sizes differ and no proof or local copy can decide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .checkpoint import Checkpoint
from .errors import InvalidInputError, SecurityError, VerificationError
from .merkle import CompactRange, verify_consistency
from .receipts import verify_checkpoint_note
from .verifier import TrustRoot

if TYPE_CHECKING:
    from .store import LocalStore


class ForkError(SecurityError):
    """Two checkpoints signed by the log key that cannot both be true: the forum forked.
    ``note_a`` and ``note_b`` are the evidence (keep both)."""

    def __init__(self, message: str, note_a: bytes, note_b: bytes) -> None:
        super().__init__(f"fork: {message}")
        self.note_a = note_a
        self.note_b = note_b


@dataclass(frozen=True)
class Comparison:
    """Two checkpoints found consistent, and how that was established."""

    size_a: int
    size_b: int
    how: str


def compare_checkpoints(
    note_a: bytes,
    note_b: bytes,
    trust_root: TrustRoot,
    proof: Sequence[bytes] | None = None,
) -> Comparison:
    """Check two signed checkpoints of the same forum against each other.

    Equal sizes need equal roots.  Different sizes need ``proof``, a consistency proof from
    the smaller to the larger (fetch it from the forum: a forked one cannot make a valid one).
    """
    a = verify_checkpoint_note(note_a, trust_root)
    b = verify_checkpoint_note(note_b, trust_root)
    if a.size == b.size:
        if a.root != b.root:
            raise ForkError(
                f"two checkpoints of size {a.size} signed by the log key with different roots",
                note_a,
                note_b,
            )
        return Comparison(a.size, b.size, "same checkpoint")
    if proof is None:
        raise InvalidInputError.field(
            "proof",
            f"checkpoints of sizes {a.size} and {b.size}: a consistency proof (or a local "
            "copy holding the smaller one) is needed to compare them",
        )
    small, large = (a, b) if a.size < b.size else (b, a)
    try:
        verify_consistency(small.size, large.size, list(proof), small.root, large.root)
    except VerificationError as exc:
        raise ForkError(
            f"checkpoint {large.size} does not extend checkpoint {small.size}: {exc}",
            note_a,
            note_b,
        ) from None
    return Comparison(a.size, b.size, "consistency proof")


UNREACHABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "UNKNOWN"})
"""Transport failures that say nothing about the forum's history (it was not reached)."""


def fetch_proof_or_evidence(
    fetch: Callable[[int, int], Sequence[bytes]],
    note_a: bytes,
    note_b: bytes,
    trust_root: TrustRoot,
) -> Sequence[bytes]:
    """The consistency proof between the two notes' sizes from ``fetch`` (the forum).

    The forum signed both checkpoints, so an honest one can always prove the smaller is a
    prefix of the larger: a forum that answers but refuses is itself evidence of a fork
    (:class:`ForkError`).  A forum that cannot be reached raises TransportError.
    """
    from .errors import TransportError

    a = verify_checkpoint_note(note_a, trust_root)
    b = verify_checkpoint_note(note_b, trust_root)
    small, large = sorted((a.size, b.size))
    try:
        return fetch(small, large)
    except TransportError as exc:
        if exc.code in UNREACHABLE:
            raise
        raise ForkError(
            f"the forum signed checkpoints {small} and {large} but refuses to prove one extends "
            f"the other ({exc.code}: {exc})",
            note_a,
            note_b,
        ) from None


def compare_with_store(
    store: LocalStore,
    note: bytes,
    fetch_proof: Callable[[int, int], Sequence[bytes]] | None = None,
) -> Comparison:
    """Check another member's signed checkpoint against a verified local copy.

    When ``note`` is no larger than the copy, its root is recomputed from the stored
    (verified) leaves: no server is asked.  A larger one needs a consistency proof from
    the copy's size, asked of ``fetch_proof`` (the forum); without it InvalidInputError.
    The note is verified with the trust root the copy is pinned to.  Raises StoreError
    when the copy cannot be read.
    """
    trust_root = store.trust_root()
    mine = store.sync_state()
    if trust_root is None or mine.checkpoint_note is None:
        raise InvalidInputError.field("db", f"{store.path} holds no verified checkpoint yet")
    other: Checkpoint = verify_checkpoint_note(note, trust_root)
    if other.size > mine.size:
        proof = None
        if fetch_proof is not None:
            proof = fetch_proof_or_evidence(fetch_proof, mine.checkpoint_note, note, trust_root)
        return compare_checkpoints(mine.checkpoint_note, note, trust_root, proof)
    rng = CompactRange.empty()
    for _index, h in store.leaf_hashes(0, other.size):
        rng.append(h)
    if rng.size != other.size:
        raise InvalidInputError.field("db", f"{store.path} holds only {rng.size} entries")
    if rng.root() != other.root:
        raise ForkError(
            f"checkpoint {other.size} is not the root of this copy's first {other.size} "
            "verified entries",
            mine.checkpoint_note,
            note,
        )
    return Comparison(mine.size, other.size, "recomputed from the local copy")


__all__ = [
    "Comparison",
    "ForkError",
    "compare_checkpoints",
    "compare_with_store",
    "fetch_proof_or_evidence",
]
