"""The operator's ``forum.v1.Admin`` service.  Every call is recorded in the audit log."""

from __future__ import annotations

import time

from forum_client import entries as e
from forum_client.errors import REJECT_EXPIRED, EntryRejectedError, ForumError, InvalidInputError
from forum_client.protocol import messages as pb
from forum_client.protocol import services as pb_grpc
from forum_client.verifier import check_member_id
from forum_client.wire import receipt_to_pb

from ..auth import Authenticator, Caller
from ..config import ServerConfig
from ..sequencer import Sequencer
from ._calls import OPERATOR, Guarded, unary
from .forum import envelope_from_request


def _now_ms() -> int:
    return int(time.time() * 1000)


class AdminService(Guarded, pb_grpc.AdminServicer):  # type: ignore[misc]
    def __init__(self, sequencer: Sequencer, auth: Authenticator, config: ServerConfig) -> None:
        self.sequencer = sequencer
        self.auth = auth
        self.config = config

    def _audit(self, caller: Caller, action: str, target: str, outcome: str, detail: str) -> None:
        self.sequencer.store.record_audit(
            _now_ms(), caller.member_id, action, target, outcome, detail
        )

    @unary(OPERATOR)
    async def AppendOperatorEntry(
        self, request: pb.AppendOperatorEntryRequest, caller: Caller
    ) -> pb.Receipt:
        envelope = envelope_from_request(request.entry, self.config.max_message_bytes)
        action = envelope.payload_type.removeprefix("application/vnd.forum.")
        target = _target_of(envelope.payload_type, envelope.body)
        try:
            _check_not_expired(envelope.payload_type, envelope.body, _now_ms())
            receipt = await self.sequencer.append(envelope, e.BOARD_BODIES, caller.member_id)
        except ForumError as exc:
            self._audit(caller, action, target, "rejected", str(exc))
            raise
        self._audit(caller, action, target, "ok", f"log index {receipt.index}")
        return receipt_to_pb(receipt)

    @unary(OPERATOR)
    async def RegisterCredential(
        self, request: pb.RegisterCredentialRequest, caller: Caller
    ) -> pb.RegisterCredentialResponse:
        check_member_id(request.member_id)
        if len(request.certificate_sha256) != 32:
            raise InvalidInputError.field("certificate_sha256", "must be 32 bytes")
        if request.member_id not in self.sequencer.state.members:
            raise InvalidInputError.field("member_id", f"{request.member_id} is not a member")
        revoked = self.sequencer.store.register_credential(
            request.certificate_sha256, request.member_id, _now_ms(), request.revoke_others
        )
        self._audit(
            caller,
            "credential-register",
            request.member_id,
            "ok",
            f"certificate sha256 {request.certificate_sha256.hex()[:16]}, revoked {revoked}",
        )
        return pb.RegisterCredentialResponse(revoked=revoked)

    @unary(OPERATOR)
    async def ListMembers(
        self, request: pb.ListMembersRequest, caller: Caller
    ) -> pb.ListMembersResponse:
        state = self.sequencer.state
        return pb.ListMembersResponse(
            members=[
                pb.MemberInfo(
                    member_id=m.member_id,
                    display_name=m.display_name,
                    role=e.pb_enum(m.role),
                    status=e.pb_enum(m.status),
                    admitted_at_index=m.admitted_at,
                    active_key_ids=[k.key_id for k in state.active_keys(m.member_id)],
                )
                for m in sorted(state.members.values(), key=lambda m: m.member_id)
            ]
        )

    @unary(OPERATOR)
    async def ListAudit(self, request: pb.ListAuditRequest, caller: Caller) -> pb.ListAuditResponse:
        return pb.ListAuditResponse(
            records=[
                pb.AuditRecord(
                    id=r.id,
                    time_unix_ms=r.time_unix_ms,
                    actor=r.actor,
                    action=r.action,
                    target=r.target,
                    outcome=r.outcome,
                    detail=r.detail,
                )
                for r in self.sequencer.store.audit(request.limit)
            ]
        )


def _check_not_expired(payload_type: str, body: bytes, now_ms: int) -> None:
    """Refuse an operator entry whose signed expiry has passed (a stale proposal)."""
    try:
        expires = e.decode(payload_type, body).header.expires_unix_ms
    except InvalidInputError:
        return  # the log's rules report the undecodable body
    if expires and now_ms > expires:
        raise EntryRejectedError(
            REJECT_EXPIRED,
            "header.expires_unix_ms",
            f"the entry expired {(now_ms - expires) // 1000} s ago: propose it again",
        )


def _target_of(payload_type: str, body: bytes) -> str:
    try:
        decoded = e.decode(payload_type, body)
    except InvalidInputError:
        return "?"
    return str(getattr(decoded, "member_id", "") or getattr(decoded, "incident_id", "") or "-")
