"""Receipts: proof that an entry this member sent is in the log under a signed checkpoint."""

from __future__ import annotations

from .checkpoint import Checkpoint, verify_checkpoint
from .envelope import Envelope
from .errors import VerificationError
from .merkle import leaf_hash, verify_inclusion
from .verifier import TrustRoot
from .wire import Receipt


def verify_checkpoint_note(note: bytes, root: TrustRoot) -> Checkpoint:
    """Verify a checkpoint note with the pinned log key.  Raises VerificationError."""
    return verify_checkpoint(
        note, origin=root.origin, name=root.log_key_name, public_key=root.log_public_key
    )


def verify_receipt(receipt: Receipt, envelope: Envelope, root: TrustRoot) -> Checkpoint:
    """Check that ``envelope`` (the exact entry sent) is at ``receipt.index`` of the log.

    Returns the verified checkpoint.  Raises VerificationError when the checkpoint's signature,
    its size, the leaf hash or the inclusion proof does not verify.
    """
    cp = verify_checkpoint_note(receipt.checkpoint_note, root)
    if cp.size != receipt.tree_size:
        raise VerificationError(
            f"receipt proof is for size {receipt.tree_size}, its checkpoint for {cp.size}"
        )
    expected = leaf_hash(envelope.leaf_bytes())
    if receipt.leaf_hash != expected:
        raise VerificationError(f"receipt names another entry at index {receipt.index}")
    verify_inclusion(expected, receipt.index, cp.size, receipt.proof, cp.root)
    return cp
