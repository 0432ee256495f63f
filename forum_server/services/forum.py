"""The member-facing ``forum.v1.Forum`` service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from forum_client import entries as e
from forum_client.envelope import Envelope
from forum_client.errors import InvalidInputError
from forum_client.protocol import messages as pb
from forum_client.protocol import services as pb_grpc
from forum_client.wire import (
    envelope_from_pb,
    envelope_into_pb,
    receipt_to_pb,
    scope_claim_to_pb,
)

from ..auth import Authenticator, Caller
from ..config import ServerConfig
from ..cosigner import Cosigner
from ..sequencer import Sequencer
from ..storage import StoredLeaf
from ._calls import EVERYONE, WRITERS, Guarded, stream, unary


def envelope_from_request(entry: pb.Entry, limit: int) -> Envelope:
    if not entry.payload_type:
        raise InvalidInputError.field("entry.payload_type", "missing")
    if len(entry.body) > limit:
        raise InvalidInputError.field("entry.body", f"larger than {limit} bytes")
    return envelope_from_pb(entry)


class ForumService(Guarded, pb_grpc.ForumServicer):  # type: ignore[misc]
    def __init__(
        self,
        sequencer: Sequencer,
        auth: Authenticator,
        config: ServerConfig,
        cosigner: Cosigner,
    ) -> None:
        self.sequencer = sequencer
        self.auth = auth
        self.config = config
        self.cosigner = cosigner

    @unary(EVERYONE)
    async def GetStatus(self, request: pb.GetStatusRequest, caller: Caller) -> pb.GetStatusResponse:
        if not self.sequencer.leading:
            # A follower's copy may lag the leader's commits: the next sequence a member
            # takes from here must be above what the log already holds.
            await self.sequencer.catch_up()
        state = self.sequencer.state
        member = state.member(caller.member_id)
        keys = {
            k.key_id.hex(): state.last_sequence.get(k.key_id, 0)
            for k in state.keys.values()
            if k.member_id == caller.member_id
        }
        return pb.GetStatusResponse(
            member_id=member.member_id,
            role=e.pb_enum(member.role),
            status=e.pb_enum(member.status),
            origin=state.origin,
            forum_name=state.forum_name,
            log_size=self.sequencer.size,
            last_sequence_by_key_id=keys,
            labels=sorted([*state.labels, *(f"incident:{i}" for i in state.incidents)]),
            groups=sorted(
                g.group_id
                for g in state.groups.values()
                if g.closed_at is None and g.member_at(caller.member_id, state.size)
            ),
        )

    @unary(EVERYONE)
    async def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, caller: Caller
    ) -> pb.SignedCheckpoint:
        answer = pb.SignedCheckpoint(note=self.cosigner.checkpoint()[1])
        pending = self.cosigner.pending()
        if pending is not None:  # the log grew beyond what a quorum cosigned: say so
            _size, answer.pending_note, status = pending
            answer.witness_status.update(status)
        return answer

    @stream(EVERYONE)
    async def GetEntries(
        self, request: pb.GetEntriesRequest, caller: Caller
    ) -> AsyncIterator[pb.EntryBatch]:
        batch_size = min(
            request.max_batch or self.config.entries_per_message, self.config.entries_per_message
        )
        start = request.start
        end = request.end
        if end and end < start:
            raise InvalidInputError.field("end", f"end {end} is before start {start}")
        if end and end > self.sequencer.size:
            raise InvalidInputError.field(
                "end", f"end {end} is beyond the log's size {self.sequencer.size}"
            )
        as_leaves = request.leaves
        told_pending = 0  # follow: the pending checkpoint this stream last told about
        while True:
            # size and note change together (no await between them); with witnesses, the
            # newest checkpoint a quorum cosigned
            served_size, note = self.cosigner.checkpoint()
            stop = end or served_size
            while start < stop:
                leaves = await asyncio.to_thread(self._read_batch, start, stop, batch_size)
                batch = pb.EntryBatch()
                # Who reads what follows from the log's group membership now (issue #10).
                state, claims = self.sequencer.state, self.sequencer.claims
                for leaf in leaves:
                    claim = claims.get(leaf.index)
                    if claim is not None and not state.entitled(
                        caller.member_id, claim.group_id, leaf.index
                    ):
                        batch.entries.add(
                            index=leaf.index,
                            leaf_hash=leaf.leaf_hash,
                            scope_claim=scope_claim_to_pb(claim),
                        )
                        continue
                    if as_leaves:  # the stored bytes as they are, not decoded
                        batch.entries.add(index=leaf.index, leaf=leaf.leaf_bytes)
                        continue
                    entry = Envelope.from_leaf_bytes(leaf.leaf_bytes)
                    envelope_into_pb(entry, batch.entries.add(index=leaf.index).entry)
                start += len(leaves)
                if request.follow and start == stop:
                    batch.checkpoint.note = note
                yield batch
            if not request.follow or end:
                return
            pending = self.cosigner.pending()
            if pending is not None and pending[0] > told_pending:
                # The log grew beyond what a quorum cosigned: tell the follower at once
                # (an empty batch carrying both checkpoints, as GetCheckpoint does).
                told_pending = pending[0]
                batch = pb.EntryBatch()
                batch.checkpoint.note = note
                batch.checkpoint.pending_note = pending[1]
                batch.checkpoint.witness_status.update(pending[2])
                yield batch
            await self.cosigner.wait_beyond(
                start, timeout=self.config.follow_poll_seconds, pending_beyond=told_pending
            )

    def _read_batch(self, start: int, stop: int, max_count: int) -> list[StoredLeaf]:
        """Up to ``max_count`` leaves from ``start`` holding at most ``batch_bytes``, or the
        first leaf alone when it is larger: a message never exceeds the larger of
        ``batch_bytes`` and one entry (docs/protocol.md, section 7)."""
        leaves: list[StoredLeaf] = []
        size = 0
        for leaf in self.sequencer.store.leaves(start, min(stop, start + max_count)):
            if leaves and size + len(leaf.leaf_bytes) > self.config.batch_bytes:
                break
            leaves.append(leaf)
            size += len(leaf.leaf_bytes)
        return leaves

    @unary(EVERYONE)
    async def GetInclusionProof(
        self, request: pb.GetInclusionProofRequest, caller: Caller
    ) -> pb.InclusionProof:
        size = request.tree_size or self.sequencer.size
        if size > self.sequencer.size or request.index >= size:
            raise InvalidInputError.field(
                "index", f"index {request.index} is not in a tree of size {size}"
            )
        proof = self.sequencer.tree.inclusion_proof(request.index, size)
        return pb.InclusionProof(index=request.index, tree_size=size, hashes=list(proof))

    @unary(EVERYONE)
    async def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, caller: Caller
    ) -> pb.ConsistencyProof:
        size2 = request.size2 or self.sequencer.size
        if size2 > self.sequencer.size or request.size1 > size2:
            raise InvalidInputError.field(
                "size2",
                f"no consistency proof from {request.size1} to {size2} "
                f"(log size {self.sequencer.size})",
            )
        proof = self.sequencer.tree.consistency_proof(request.size1, size2)
        return pb.ConsistencyProof(size1=request.size1, size2=size2, hashes=list(proof))

    @unary(WRITERS)
    async def Submit(self, request: pb.SubmitRequest, caller: Caller) -> pb.Receipt:
        envelope = envelope_from_request(request.entry, self.config.max_message_bytes)
        receipt = await self.sequencer.append(
            envelope, e.MEMBER_BODIES, caller.member_id, request.scope_claim_signature
        )
        return receipt_to_pb(receipt)
