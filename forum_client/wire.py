"""Conversions between the wire's ``_pb2`` log messages and the SDK's own types.

Entry bodies are converted in :mod:`forum_client.entries`; this module covers what carries
them (signed entries, proofs, receipts), so that no other module handles raw messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._proto.forum.v1 import forum_pb2 as pb
from .envelope import Envelope
from .scopes import ScopeClaim


@dataclass(frozen=True)
class Receipt:
    """Proof that an entry is in the log: verify ``proof`` against ``checkpoint_note``."""

    index: int
    leaf_hash: bytes
    tree_size: int
    checkpoint_note: bytes
    proof: tuple[bytes, ...]


def envelope_to_pb(envelope: Envelope) -> pb.Entry:
    entry = pb.Entry()
    envelope_into_pb(envelope, entry)
    return entry


def envelope_into_pb(envelope: Envelope, target: pb.Entry) -> None:
    """:func:`envelope_to_pb` written into ``target`` (e.g. ``batch.entries.add().entry``),
    without building a message to copy: a server streams many."""
    target.payload_type = envelope.payload_type
    target.body = envelope.body
    target.key_id = envelope.key_id
    target.signature = envelope.signature
    for kid, sig in envelope.cosignatures:
        target.cosignatures.add(key_id=kid, signature=sig)


def envelope_from_pb(entry: pb.Entry) -> Envelope:
    """Raises InvalidInputError for cosignatures out of order or by a key twice."""
    cosignatures = entry.cosignatures
    return Envelope(
        entry.payload_type,
        entry.body,
        entry.key_id,
        entry.signature,
        tuple([(c.key_id, c.signature) for c in cosignatures]) if cosignatures else (),
    )


def scope_claim_to_pb(claim: ScopeClaim) -> pb.ScopeClaim:
    return pb.ScopeClaim(group_id=claim.group_id, key_id=claim.key_id, signature=claim.signature)


def scope_claim_from_pb(message: pb.ScopeClaim) -> ScopeClaim:
    return ScopeClaim(message.group_id, message.key_id, message.signature)


def receipt_to_pb(receipt: Receipt) -> pb.Receipt:
    return pb.Receipt(
        index=receipt.index,
        leaf_hash=receipt.leaf_hash,
        checkpoint=pb.SignedCheckpoint(note=receipt.checkpoint_note),
        proof=pb.InclusionProof(
            index=receipt.index, tree_size=receipt.tree_size, hashes=receipt.proof
        ),
    )


def receipt_from_pb(message: pb.Receipt) -> Receipt:
    return Receipt(
        message.index,
        message.leaf_hash,
        message.proof.tree_size,
        message.checkpoint.note,
        tuple(message.proof.hashes),
    )
