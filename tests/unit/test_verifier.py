"""LogState: the pure replay rules every entry passes on the server and in the SDK."""

from __future__ import annotations

from typing import Any

import pytest

from forum_client import entries as e
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import EntryRejectedError, VerificationError
from forum_client.verifier import (
    MAX_SEQUENCE_STEP,
    OPERATOR_ID,
    LogState,
    TrustRoot,
    make_genesis,
)

ORIGIN = "test.forum"


class Log:
    """A log built in memory with real keys and signatures."""

    def __init__(self) -> None:
        self.op = SigningKey.generate()
        self.log_key = SigningKey.generate()
        self.root = TrustRoot(ORIGIN, self.op.public_bytes, self.log_key.public_bytes, ORIGIN)
        self.state = LogState.from_genesis(
            make_genesis(self.root, self.op, forum_name="T", created_unix_ms=0), self.root
        )
        self.seq: dict[bytes, int] = {}

    def header(self, key: SigningKey, member: str, seq: int | None = None) -> e.Header:
        n = self.seq.get(key.key_id, 1 if key is self.op else 0) + 1 if seq is None else seq
        self.seq[key.key_id] = n
        return e.Header(ORIGIN, member, key.key_id, n, 0)

    def signed(self, key: SigningKey, body: e.Body) -> Envelope:
        return key.sign(e.payload_type_of(body), e.encode(body))

    def append(self, key: SigningKey, body: e.Body) -> int:
        index = self.state.size
        self.state.apply(index, self.signed(key, body))
        return index

    def admit(self, member: str, role: e.Role = e.Role.MEMBER) -> SigningKey:
        key = SigningKey.generate()
        self.append(
            self.op, e.MemberAdmitted(self.header(self.op, OPERATOR_ID), member, member, role)
        )
        self.add_key(member, key)
        return key

    def add_key(self, member: str, key: SigningKey, replaces: bytes = b"") -> int:
        pop = key.prove_possession(ORIGIN, member)
        return self.append(
            self.op,
            e.KeyAdded(self.header(self.op, OPERATOR_ID), member, key.public_bytes, pop, replaces),
        )

    def submission(self, key: SigningKey, member: str, seq: int | None = None) -> e.Submission:
        item = e.SignalItem("md5", "0" * 32)
        return e.Submission(self.header(key, member, seq), (item,))


def test_genesis_must_match_the_pinned_trust_root() -> None:
    log = Log()
    genesis = make_genesis(log.root, log.op, forum_name="T", created_unix_ms=0)
    other = TrustRoot(ORIGIN, log.op.public_bytes, SigningKey.generate().public_bytes, ORIGIN)
    with pytest.raises(VerificationError, match="pinned trust root"):
        LogState.from_genesis(genesis, other)


def test_member_entries_need_a_registered_active_key() -> None:
    log = Log()
    alice = log.admit("alice")
    log.append(alice, log.submission(alice, "alice"))
    stranger = SigningKey.generate()
    with pytest.raises(EntryRejectedError) as info:
        log.append(stranger, log.submission(stranger, "alice"))
    assert info.value.reason == "unknown-key"


def test_key_validity_is_positional() -> None:
    """A key signs entries after the one that added it, until the one that replaced it."""
    log = Log()
    old = log.admit("alice")
    new = SigningKey.generate()
    early = log.signed(new, log.submission(new, "alice"))
    with pytest.raises(EntryRejectedError) as info:  # at an index before its registration
        log.state.apply(log.state.size, early)
    assert info.value.reason == "unknown-key"
    rotation = log.add_key("alice", new, replaces=old.key_id)
    with pytest.raises(EntryRejectedError) as info:
        log.append(old, log.submission(old, "alice"))
    assert info.value.reason == "key-inactive"
    assert log.state.keys[old.key_id].valid_until == rotation
    log.append(new, log.submission(new, "alice"))


def test_sequence_must_increase_per_key() -> None:
    log = Log()
    alice = log.admit("alice")
    log.append(alice, log.submission(alice, "alice", seq=5))
    with pytest.raises(EntryRejectedError) as info:
        log.append(alice, log.submission(alice, "alice", seq=5))
    assert info.value.reason == "stale-sequence"
    log.append(alice, log.submission(alice, "alice", seq=6))


def test_suspended_members_cannot_write_until_reinstated() -> None:
    log = Log()
    alice = log.admit("alice")
    log.append(
        log.op,
        e.MemberStatusChanged(
            log.header(log.op, OPERATOR_ID), "alice", e.MemberStatus.SUSPENDED, "x"
        ),
    )
    with pytest.raises(EntryRejectedError) as info:
        log.append(alice, log.submission(alice, "alice"))
    assert info.value.reason == "member-suspended"
    log.append(
        log.op,
        e.MemberStatusChanged(
            log.header(log.op, OPERATOR_ID), "alice", e.MemberStatus.ACTIVE, "ok"
        ),
    )
    log.append(alice, log.submission(alice, "alice"))


def test_operator_entries_only_from_the_operator_and_observers_read_only() -> None:
    log = Log()
    alice = log.admit("alice")
    carol = log.admit("carol", e.Role.OBSERVER)
    with pytest.raises(EntryRejectedError) as info:
        log.append(alice, e.MemberAdmitted(log.header(alice, "alice"), "eve", "Eve", e.Role.MEMBER))
    assert info.value.reason == "not-permitted"
    with pytest.raises(EntryRejectedError) as info:
        log.append(carol, log.submission(carol, "carol"))
    assert info.value.reason == "not-permitted"


def test_body_must_name_the_key_owner_and_this_forum() -> None:
    log = Log()
    alice = log.admit("alice")
    log.admit("bob")
    with pytest.raises(EntryRejectedError) as info:
        log.append(alice, log.submission(alice, "bob"))
    assert info.value.reason == "not-permitted"
    body = e.Submission(
        e.Header("other.forum", "alice", alice.key_id, 99, 0), (e.SignalItem("md5", "0" * 32),)
    )
    with pytest.raises(EntryRejectedError) as info:
        log.append(alice, body)
    assert info.value.reason == "wrong-origin"


def test_tampered_signature_is_rejected_and_state_unchanged() -> None:
    log = Log()
    alice = log.admit("alice")
    env = log.signed(alice, log.submission(alice, "alice"))
    bad = Envelope(env.payload_type, env.body + b"\x00", env.key_id, env.signature)
    size = log.state.size
    with pytest.raises(EntryRejectedError) as info:
        log.state.apply(size, bad)
    assert info.value.reason == "bad-signature"
    assert log.state.size == size


def test_key_added_needs_proof_of_possession_for_this_member() -> None:
    log = Log()
    log.admit("alice")
    key = SigningKey.generate()
    wrong = key.prove_possession(ORIGIN, "bob")
    body = e.KeyAdded(log.header(log.op, OPERATOR_ID), "alice", key.public_bytes, wrong)
    with pytest.raises(EntryRejectedError) as info:
        log.append(log.op, body)
    assert info.value.field == "possession_signature"


def test_sequence_is_bounded_and_one_entry_cannot_use_up_a_key() -> None:
    log = Log()
    key = log.admit("acme")
    for seq in (2**63, 2**64 - 1, MAX_SEQUENCE_STEP + 1):
        bad = log.signed(key, log.submission(key, "acme", seq))
        with pytest.raises(EntryRejectedError) as caught:
            log.state.check(log.state.size, bad)
        assert caught.value.reason == "stale-sequence"
    log.append(key, log.submission(key, "acme", MAX_SEQUENCE_STEP))  # the largest step
    log.append(key, log.submission(key, "acme", MAX_SEQUENCE_STEP + 1))


def _nonminimal(body: bytes) -> bytes:
    assert body[0] == 0x0A and body[1] < 0x80
    return body[:1] + bytes([body[1] | 0x80, 0]) + body[2:]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b + b"\xfa\x06\x01x",  # unknown field 111
        lambda b: b + b"\x0a\x00",  # a second (empty) header, which protobuf would merge
        _nonminimal,  # the header's length in two varint bytes
        lambda b: b[2 + b[1] :] + b[: 2 + b[1]],  # header after the signals
    ],
    ids=["unknown-field", "repeated-header", "non-minimal-varint", "out-of-order"],
)
def test_only_canonical_bodies_verify(mangle: Any) -> None:
    """What a member's sync runs on every entry the forum serves, signed by its author."""
    log = Log()
    key = log.admit("acme")
    body = log.submission(key, "acme")
    raw = mangle(e.encode(body))
    assert e.decode(e.payload_type_of(body), raw) == body  # protobuf itself accepts it
    with pytest.raises(EntryRejectedError, match="canonical") as caught:
        log.state.check(log.state.size, key.sign(e.payload_type_of(body), raw))
    assert caught.value.reason == "invalid-body"
