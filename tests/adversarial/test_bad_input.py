"""Bad input to the server, through raw gRPC stubs on a member's real mTLS channel.

Every case must get a precise status code with ``google.rpc`` details (read with
``grpc_status.rpc_status.from_call``) naming the field or the reason, change nothing (the
signed checkpoint is the same afterwards), and leave the server healthy (a health check and
a normal submission succeed afterwards).

The content rules of submission, retraction and opinion bodies (unknown types, bad hex,
labels, batch limits, ...) are covered field by field in
``tests/integration/test_submissions.py::test_bad_inputs_get_the_right_code_and_field_and_change_nothing``;
this file covers the envelope and wire level, identity, replay and privileges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from forum_client import entries as e
from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client._proto.forum.v1 import forum_pb2_grpc as pb_grpc
from forum_client.envelope import Envelope, SigningKey, pae
from forum_client.transport import open_channel
from forum_client.wire import envelope_to_pb
from forum_server.config import ServerConfig
from forum_server.testing import LocalForum, local_forum

pytestmark = pytest.mark.adversarial

PUB = "behaviour:terrorist-publication"
SUBMISSION = e.PAYLOAD_TYPES[e.Submission]
OPINION = e.PAYLOAD_TYPES[e.Opinion]


@pytest.fixture(scope="module")
def forum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalForum]:
    config = ServerConfig(max_message_bytes=1024 * 1024)
    with local_forum(
        tmp_path_factory.mktemp("bad"),
        members=["alice", "bob", "dave"],
        observers=["carol"],
        config=config,
    ) as f:
        with f.client("alice") as c:
            c.submit([e.SignalItem("md5", "1" * 32, (PUB,))], f.members["alice"].signing_key)
        yield f


@dataclass
class Raw:
    """Raw stubs on one member's mTLS channel."""

    channel: grpc.Channel
    forum: pb_grpc.ForumStub
    admin: pb_grpc.AdminStub

    def submit_bytes(self, data: bytes) -> Any:
        method = self.channel.unary_unary("/forum.v1.Forum/Submit")  # bytes in, bytes out
        return method(data, timeout=10)


@pytest.fixture(scope="module")
def raw(forum: LocalForum) -> Callable[[str], Raw]:
    opened: dict[str, Raw] = {}

    def get(member: str) -> Raw:
        if member not in opened:
            ch = open_channel(forum.members[member].bundle, forum.address)
            opened[member] = Raw(ch, pb_grpc.ForumStub(ch), pb_grpc.AdminStub(ch))
        return opened[member]

    yield get  # type: ignore[misc]
    for r in opened.values():
        r.channel.close()


def rejected(fn: Callable[[], Any]) -> tuple[grpc.StatusCode, set[str], set[str]]:
    """Call ``fn``; return (code, fields named in BadRequest, ErrorInfo reasons)."""
    with pytest.raises(grpc.RpcError) as caught:
        fn()
    exc: Any = caught.value
    status = rpc_status.from_call(exc)
    fields: set[str] = set()
    reasons: set[str] = set()
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields |= {v.field for v in bad.field_violations}
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.add(info.reason)
    return exc.code(), fields, reasons


def state(forum: LocalForum) -> tuple[int, bytes, int]:
    seq = forum.running.handle.sequencer
    return seq.size, seq.checkpoint_note, forum.running.stored_view().signal_count()


def healthy(forum: LocalForum, raw: Callable[[str], Raw], value: str) -> None:
    """Health says SERVING and a normal submission still succeeds."""
    health = health_pb2_grpc.HealthStub(raw("alice").channel)
    response = health.Check(health_pb2.HealthCheckRequest(service="forum.v1.Forum"), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    with forum.client("alice") as c:
        c.submit([e.SignalItem("md5", value, (PUB,))], forum.members["alice"].signing_key)


def _next_seq(forum: LocalForum, key: SigningKey) -> int:
    return forum.running.handle.sequencer.state.last_sequence.get(key.key_id, 0) + 1


def body(
    forum: LocalForum, member: str, key: SigningKey, value: str = "2" * 32, **header: Any
) -> bytes:
    h = e.Header(
        header.get("origin", forum.trust_root.origin),
        header.get("member_id", member),
        header.get("key_id", key.key_id),
        header.get("sequence", _next_seq(forum, key)),
        int(time.time() * 1000),
    )
    return e.encode(e.Submission(h, (e.SignalItem("md5", value, (PUB,), "image"),)))


def entry(payload_type: str, data: bytes, key_id: bytes, signature: bytes) -> pb.SubmitRequest:
    return pb.SubmitRequest(
        entry=pb.Entry(payload_type=payload_type, body=data, key_id=key_id, signature=signature)
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


NOT_CANONICAL = ("INVALID_ARGUMENT", "invalid-body")


def _non_minimal(body: bytes) -> bytes:
    """The header's length written as two varint bytes instead of one."""
    assert body[0] == 0x0A and body[1] < 0x80
    return body[:1] + bytes([body[1] | 0x80, 0]) + body[2:]


def _out_of_order(body: bytes) -> bytes:
    """The header (field 1) moved after the signals (field 2)."""
    header_end = 2 + body[1]
    return body[header_end:] + body[:header_end]


def envelope_cases(forum: LocalForum) -> list[tuple[str, pb.SubmitRequest | bytes, str, str]]:
    """(name, request, expected code, expected field or reason) for alice's channel."""
    key = forum.members["alice"].signing_key
    good = body(forum, "alice", key)
    sig = key.sign_raw(pae(SUBMISSION, good))
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    garbage = b"\xff\xfe\x00garbage\x80\x80\x80"
    bob = forum.members["bob"].signing_key
    return [
        ("empty request", pb.SubmitRequest(), "INVALID_ARGUMENT", "entry.payload_type"),
        (
            "garbage body, well signed",
            entry(SUBMISSION, garbage, key.key_id, key.sign_raw(pae(SUBMISSION, garbage))),
            "INVALID_ARGUMENT",
            "invalid-body",
        ),
        (
            "garbage body, not signed",
            entry(SUBMISSION, garbage, key.key_id, sig),
            "INVALID_ARGUMENT",
            "bad-signature",
        ),
        (
            "empty body, well signed",
            entry(SUBMISSION, b"", key.key_id, key.sign_raw(pae(SUBMISSION, b""))),
            "INVALID_ARGUMENT",
            "invalid-body",
        ),
        (
            "unknown payload type",
            entry(
                "application/x-evil",
                good,
                key.key_id,
                key.sign_raw(pae("application/x-evil", good)),
            ),
            "INVALID_ARGUMENT",
            "invalid-body",
        ),
        (
            "opinion type over a submission body",
            entry(OPINION, good, key.key_id, key.sign_raw(pae(OPINION, good))),
            "INVALID_ARGUMENT",
            "invalid-body",
        ),
        (
            "flipped signature bit",
            entry(SUBMISSION, good, key.key_id, flipped),
            "INVALID_ARGUMENT",
            "bad-signature",
        ),
        (
            "signature under another PAE type",
            entry(SUBMISSION, good, key.key_id, key.sign_raw(pae(OPINION, good))),
            "INVALID_ARGUMENT",
            "bad-signature",
        ),
        (
            "signature over the raw body, not PAE",
            entry(SUBMISSION, good, key.key_id, key.sign_raw(good)),
            "INVALID_ARGUMENT",
            "bad-signature",
        ),
        (
            "signature of 63 bytes",
            entry(SUBMISSION, good, key.key_id, sig[:63]),
            "INVALID_ARGUMENT",
            "bad-signature",
        ),
        (
            "signature of 65 bytes",
            entry(SUBMISSION, good, key.key_id, sig + b"\0"),
            "INVALID_ARGUMENT",
            "bad-signature",
        ),
        (
            "empty signature",
            entry(SUBMISSION, good, key.key_id, b""),
            "INVALID_ARGUMENT",
            "bad-signature",
        ),
        (
            "signature of 300 bytes",
            entry(SUBMISSION, good, key.key_id, sig * 5),
            "INVALID_ARGUMENT",
            "signature",
        ),
        (
            "key id of 31 bytes",
            entry(SUBMISSION, good, key.key_id[:31], sig),
            "PERMISSION_DENIED",
            "unknown-key",
        ),
        ("empty key id", entry(SUBMISSION, good, b"", sig), "PERMISSION_DENIED", "unknown-key"),
        (
            "key id of 300 bytes",
            entry(SUBMISSION, good, key.key_id * 10, sig),
            "INVALID_ARGUMENT",
            "key_id",
        ),
        (
            "another member's key id",
            entry(SUBMISSION, good, bob.key_id, sig),
            "INVALID_ARGUMENT",
            "bad-signature",
        ),
        (
            "header names another key",
            _signed(key, body(forum, "alice", key, key_id=bob.key_id)),
            "PERMISSION_DENIED",
            "not-permitted",
        ),
        (
            "header names another member",
            _signed(key, body(forum, "alice", key, member_id="bob")),
            "PERMISSION_DENIED",
            "not-permitted",
        ),
        (
            "header of another forum",
            _signed(key, body(forum, "alice", key, origin="x.example")),
            "INVALID_ARGUMENT",
            "wrong-origin",
        ),
        (
            "sequence 0",
            _signed(key, body(forum, "alice", key, sequence=0)),
            "FAILED_PRECONDITION",
            "stale-sequence",
        ),
        (
            "sequence 2**63",
            _signed(key, body(forum, "alice", key, sequence=2**63)),
            "FAILED_PRECONDITION",
            "stale-sequence",
        ),
        (
            "sequence 2**64-1",
            _signed(key, body(forum, "alice", key, sequence=2**64 - 1)),
            "FAILED_PRECONDITION",
            "stale-sequence",
        ),
        (
            "sequence jumping more than the step bound (one entry would use up the key)",
            _signed(key, body(forum, "alice", key, sequence=_next_seq(forum, key) + 2**20)),
            "FAILED_PRECONDITION",
            "stale-sequence",
        ),
        ("body with an unknown field", _signed(key, good + _field(99, b"x")), *NOT_CANONICAL),
        ("body with a repeated header", _signed(key, good + _field(1, b"")), *NOT_CANONICAL),
        ("body with a non-minimal varint", _signed(key, _non_minimal(good)), *NOT_CANONICAL),
        ("body with fields out of order", _signed(key, _out_of_order(good)), *NOT_CANONICAL),
        (
            "body without a header",
            _signed(
                key,
                pb.Submission(
                    signals=[pb.SignalItem(type="md5", value="2" * 32)]
                ).SerializeToString(),
            ),
            "INVALID_ARGUMENT",
            "invalid-body",
        ),
        (
            "opinion kind out of range",
            _signed(key, _bad_opinion(forum, key), OPINION),
            "INVALID_ARGUMENT",
            "invalid-body",
        ),
        # refused by gRPC itself before any handler runs: a precise code and message, but
        # no google.rpc details (documented in docs/security.md)
        (
            "request over the size limit",
            entry(SUBMISSION, b"\0" * (2 * 1024 * 1024), key.key_id, sig),
            "RESOURCE_EXHAUSTED",
            "",
        ),
    ]


def _signed(key: SigningKey, data: bytes, payload_type: str = SUBMISSION) -> pb.SubmitRequest:
    env = key.sign(payload_type, data)
    return pb.SubmitRequest(entry=envelope_to_pb(env))


def _bad_opinion(forum: LocalForum, key: SigningKey) -> bytes:
    msg = pb.Opinion()
    msg.header.origin = forum.trust_root.origin
    msg.header.member_id = "alice"
    msg.header.key_id = key.key_id
    msg.header.sequence = _next_seq(forum, key)
    msg.signal.type, msg.signal.value = "md5", "1" * 32
    msg.kind = 99  # type: ignore[assignment]
    return msg.SerializeToString()


def test_every_bad_envelope_gets_a_precise_status_and_changes_nothing(
    forum: LocalForum, raw: Callable[[str], Raw]
) -> None:
    """Checks: forum_server/services/forum.py:envelope_from_request, the Envelope
    constructor's field sizes, forum_client/verifier.py:LogState.check and _check_header,
    forum_server/sequencer.py:Sequencer._commit (author == mTLS member), mapped to codes in
    forum_server/services/_calls.py:status_for."""
    alice = raw("alice")
    before = state(forum)
    problems = []
    for name, request, code, expect in envelope_cases(forum):
        call = (
            (lambda r=request: alice.submit_bytes(r))
            if isinstance(request, bytes)
            else (lambda r=request: alice.forum.Submit(r, timeout=10))
        )
        got, fields, reasons = rejected(call)
        named = fields | reasons
        if (
            got.name != code
            or (expect and not named)
            or (expect not in ("*", "") and expect not in named)
        ):
            problems.append(f"{name}: {got.name} {sorted(named)}, expected {code} {expect}")
    assert state(forum) == before
    assert not problems, "\n".join(problems)
    healthy(forum, raw, "3" * 32)


def test_undecodable_requests_get_invalid_argument(
    forum: LocalForum, raw: Callable[[str], Raw]
) -> None:
    """Check: forum_server/services/_calls.py, the request decoder (``Undecodable``) and
    ``_check_decoded`` in the guard: INVALID_ARGUMENT with a BadRequest detail."""
    key = forum.members["alice"].signing_key
    good = body(forum, "alice", key)
    sig = key.sign_raw(pae(SUBMISSION, good))
    not_utf8 = _field(
        1,
        _field(1, b"application/\xff\xfe")
        + _field(2, good)
        + _field(3, key.key_id)
        + _field(4, sig),
    )
    before = state(forum)
    codes = []
    for data in (b"\x0a\xff\xff\xff\xff\x0f\x00", not_utf8):
        got, fields, reasons = rejected(lambda d=data: raw("alice").submit_bytes(d))
        codes.append((got.name, bool(fields | reasons)))
    assert state(forum) == before
    healthy(forum, raw, "8" * 32)  # healthy either way
    assert codes == [("INVALID_ARGUMENT", True)] * 2


def test_identity_suspension_and_privileges(
    forum: LocalForum, raw: Callable[[str], Raw], tmp_path: Path
) -> None:
    """The mTLS member must be the body's member; a suspended member is refused at the door;
    members cannot call Admin RPCs; observers cannot write.

    Checks: forum_server/sequencer.py:Sequencer._commit (``body.header.member_id !=
    item.author``), forum_server/auth.py:Authenticator.identify (status), and the role sets
    of forum_server/services/_calls.py (OPERATOR, WRITERS)."""
    alice_key = forum.members["alice"].signing_key
    signed_by_alice = _signed(alice_key, body(forum, "alice", alice_key, "4" * 32))
    before = state(forum)
    cases: list[tuple[str, Callable[[], Any], str, str]] = [
        (
            "alice's entry sent by bob",
            lambda: raw("bob").forum.Submit(signed_by_alice, timeout=10),
            "PERMISSION_DENIED",
            "entry.body.header.member_id",
        ),
        (
            "alice's entry sent by observer carol",
            lambda: raw("carol").forum.Submit(signed_by_alice, timeout=10),
            "PERMISSION_DENIED",
            "*",
        ),
        (
            "member appends an operator entry",
            lambda: raw("alice").admin.AppendOperatorEntry(
                pb.AppendOperatorEntryRequest(entry=signed_by_alice.entry), timeout=10
            ),
            "PERMISSION_DENIED",
            "*",
        ),
        (
            "member registers a credential",
            lambda: raw("alice").admin.RegisterCredential(
                pb.RegisterCredentialRequest(member_id="alice", certificate_sha256=bytes(32)),
                timeout=10,
            ),
            "PERMISSION_DENIED",
            "*",
        ),
        (
            "member lists members",
            lambda: raw("alice").admin.ListMembers(pb.ListMembersRequest(), timeout=10),
            "PERMISSION_DENIED",
            "*",
        ),
        (
            "member reads the audit log",
            lambda: raw("alice").admin.ListAudit(pb.ListAuditRequest(), timeout=10),
            "PERMISSION_DENIED",
            "*",
        ),
    ]
    problems = []
    for name, fn, code, expect in cases:
        got, fields, reasons = rejected(fn)
        named = fields | reasons
        if got.name != code or not named or (expect != "*" and expect not in named):
            problems.append(f"{name}: {got.name} {sorted(named)}, expected {code} {expect}")
    assert state(forum) == before

    with forum.operator() as op:
        op.set_status("dave", e.MemberStatus.SUSPENDED, "adversarial test")
    dave = forum.members["dave"].signing_key
    suspended = state(forum)
    for name, fn in [
        (
            "suspended member submits",
            lambda: raw("dave").forum.Submit(
                _signed(dave, body(forum, "dave", dave, "5" * 32)), timeout=10
            ),
        ),
        (
            "suspended member reads",
            lambda: raw("dave").forum.GetCheckpoint(pb.GetCheckpointRequest(), timeout=10),
        ),
    ]:
        got, fields, reasons = rejected(fn)
        if got.name != "PERMISSION_DENIED" or not (fields | reasons):
            problems.append(f"{name}: {got.name} {sorted(fields | reasons)}")
    assert state(forum) == suspended
    assert not problems, "\n".join(problems)
    healthy(forum, raw, "6" * 32)


def test_read_rpcs_with_bad_ranges(forum: LocalForum, raw: Callable[[str], Raw]) -> None:
    """Checks: the range checks of forum_server/services/forum.py (GetEntries,
    GetInclusionProof, GetConsistencyProof)."""
    r = raw("carol").forum
    top = 2**64 - 1
    size = forum.running.handle.sequencer.size
    cases: list[tuple[str, Callable[[], Any], str]] = [
        (
            "entries end < start",
            lambda: list(r.GetEntries(pb.GetEntriesRequest(start=5, end=2), timeout=10)),
            "end",
        ),
        (
            "entries end beyond the log",
            lambda: list(r.GetEntries(pb.GetEntriesRequest(start=0, end=top), timeout=10)),
            "end",
        ),
        (
            "inclusion index beyond",
            lambda: r.GetInclusionProof(
                pb.GetInclusionProofRequest(index=top, tree_size=0), timeout=10
            ),
            "index",
        ),
        (
            "inclusion tree beyond",
            lambda: r.GetInclusionProof(
                pb.GetInclusionProofRequest(index=0, tree_size=top), timeout=10
            ),
            "index",
        ),
        (
            "consistency size1 > size2",
            lambda: r.GetConsistencyProof(
                pb.GetConsistencyProofRequest(size1=size, size2=1), timeout=10
            ),
            "size2",
        ),
        (
            "consistency size2 beyond",
            lambda: r.GetConsistencyProof(
                pb.GetConsistencyProofRequest(size1=1, size2=top), timeout=10
            ),
            "size2",
        ),
    ]
    before = state(forum)
    problems = []
    for name, fn, field in cases:
        got, fields, _ = rejected(fn)
        if got.name != "INVALID_ARGUMENT" or field not in fields:
            problems.append(f"{name}: {got.name} {sorted(fields)}")
    # a start beyond the log is simply an empty range
    assert list(r.GetEntries(pb.GetEntriesRequest(start=top), timeout=10)) == []
    assert state(forum) == before
    assert not problems, "\n".join(problems)


def test_replay_into_another_forum_is_refused(forum: LocalForum, tmp_path: Path) -> None:
    """An entry accepted by forum A is replayed into forum B, where the same member holds
    the very same signing key (registered in B with its own proof of possession): the
    signature verifies, the origin bound in the body does not.

    Check: forum_client/verifier.py:LogState._check_header (``h.origin != self.origin``,
    REJECT_ORIGIN)."""
    key = forum.members["alice"].signing_key
    with forum.client("alice") as a:
        a.submit([e.SignalItem("md5", "7" * 32, (PUB,))], key)
        accepted = [env for _, env in a.entries(0) if env.key_id == key.key_id][-1]
    with local_forum(tmp_path / "b", members=["alice"], observers=[], name="Other forum") as b:
        assert b.trust_root.origin != forum.trust_root.origin
        path = tmp_path / "alice-in-b.key"
        key.save(path, possession=[(b.trust_root.origin, "alice")])
        with b.operator() as op:
            op.rotate_key("alice", f"{path}.pub")
        before = state(b)
        ch = open_channel(b.members["alice"].bundle, b.address)
        try:
            got, fields, reasons = rejected(
                lambda: pb_grpc.ForumStub(ch).Submit(
                    pb.SubmitRequest(entry=envelope_to_pb(accepted)), timeout=10
                )
            )
        finally:
            ch.close()
        assert got == grpc.StatusCode.INVALID_ARGUMENT and "wrong-origin" in reasons
        assert "header.origin" in fields
        assert state(b) == before
        assert Envelope.verify(accepted, key.public_bytes) is None  # the signature itself is fine
