"""Scopes without a server: TLP parsing, sharing defaults, positional group membership, the
scope rules of the verifier, redacted entries, the key state's JSON, the fast encoder."""

from __future__ import annotations

import pytest

from forum_client import entries as e
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import EntryRejectedError, InvalidInputError
from forum_client.merkle import leaf_hash
from forum_client.scopes import new_salt, sharing, sign_scope_claim
from forum_client.store.state import state_from_json, state_to_json
from forum_client.verifier import LogState, TrustRoot, make_genesis

OP, LOG, ALICE, CAROL = (SigningKey.generate() for _ in range(4))
ROOT = TrustRoot("scopes.test", OP.public_bytes, LOG.public_bytes, "scopes.test")
PUB = "behaviour:terrorist-publication"


def test_tlp_levels_parse_as_tlp_2_writes_them() -> None:
    assert e.Tlp.parse("amber+strict") is e.Tlp.AMBER_STRICT
    assert e.Tlp.parse("TLP:RED") is e.Tlp.RED
    assert e.Tlp.AMBER_STRICT.label == "TLP:AMBER+STRICT"
    for bad in ("", "unspecified", "purple"):
        with pytest.raises(InvalidInputError, match="unknown TLP level"):
            e.Tlp.parse(bad)


def test_sharing_defaults_and_mismatches() -> None:
    assert sharing() == ("", e.Tlp.GREEN)
    assert sharing("", "clear") == ("", e.Tlp.CLEAR)
    assert sharing("g") == ("g", e.Tlp.AMBER)
    assert sharing("g", "red") == ("g", e.Tlp.RED)
    with pytest.raises(InvalidInputError, match="name the group"):
        sharing("", "amber")
    with pytest.raises(InvalidInputError, match="TLP:AMBER"):
        sharing("g", "clear")


def _apply(state: LogState, key: SigningKey, body: e.Body) -> e.Body:
    return state.apply(state.size, key.sign(e.payload_type_of(body), e.encode(body)))


class _Log:
    """A log with alice and carol, group g holding alice from index 5."""

    def __init__(self) -> None:
        genesis = make_genesis(ROOT, OP, forum_name="Scopes", created_unix_ms=0)
        self.state = LogState.from_genesis(genesis, ROOT)
        self.seq = {OP.key_id: 1, ALICE.key_id: 0, CAROL.key_id: 0}
        for who, key in (("alice", ALICE), ("carol", CAROL)):
            self.op(lambda h, who=who: e.MemberAdmitted(h, who, who, e.Role.MEMBER))
            pop = key.prove_possession(ROOT.origin, who)
            self.op(lambda h, w=who, k=key, p=pop: e.KeyAdded(h, w, k.public_bytes, p))
        self.op(lambda h: e.Taxonomy(h, 1, (e.Label(PUB, "behaviour", "P"),)))

    def header(self, who: str, key: SigningKey) -> e.Header:
        self.seq[key.key_id] += 1
        return e.Header(ROOT.origin, who, key.key_id, self.seq[key.key_id], 0)

    def op(self, make: object) -> int:
        index = self.state.size
        _apply(self.state, OP, make(self.header("operator", OP)))  # type: ignore[operator]
        return index

    def submission(self, who: str, key: SigningKey, scope: str, tlp: e.Tlp, salt: bytes) -> bytes:
        item = e.SignalItem("md5", "a" * 32, (PUB,), "image")
        body = e.Submission(self.header(who, key), (item,), scope, tlp, salt)
        return key.sign(e.payload_type_of(body), e.encode(body)).leaf_bytes()


def test_group_membership_is_positional() -> None:
    log = _Log()
    created = log.op(lambda h: e.GroupCreated(h, "g", "G"))
    added = log.op(lambda h: e.GroupMember(h, "g", "alice", True))
    removed = log.op(lambda h: e.GroupMember(h, "g", "alice", False))
    g = log.state.groups["g"]
    assert not g.member_at("alice", added)  # from the next index on, like a key
    assert g.member_at("alice", added + 1) and g.member_at("alice", removed)
    assert not g.member_at("alice", removed + 1)
    assert log.state.entitled("operator", "g", created + 1)
    assert log.state.entitled("carol", "", 0)
    with pytest.raises(EntryRejectedError, match="not in group g"):
        log.op(lambda h: e.GroupMember(h, "g", "alice", False))
    with pytest.raises(EntryRejectedError, match="reads every group"):
        log.op(lambda h: e.GroupMember(h, "g", "operator", True))
    log.op(lambda h: e.GroupClosed(h, "g", "done"))
    with pytest.raises(EntryRejectedError, match="closed"):
        log.op(lambda h: e.GroupMember(h, "g", "carol", True))


@pytest.mark.parametrize(
    ("who", "scope", "tlp", "salt", "message"),
    [
        ("carol", "g", e.Tlp.RED, b"s" * 32, "carol is not a member of group g"),
        ("alice", "nope", e.Tlp.RED, b"s" * 32, "there is no group"),
        ("alice", "g", e.Tlp.GREEN, b"s" * 32, "TLP:AMBER"),
        ("alice", "g", e.Tlp.RED, b"", "32-byte salt"),
        ("alice", "", e.Tlp.RED, b"", "shares with a group"),
        ("alice", "", e.Tlp.GREEN, b"s" * 32, "carries no salt"),
    ],
)
def test_scope_rules(who: str, scope: str, tlp: e.Tlp, salt: bytes, message: str) -> None:
    log = _Log()
    log.op(lambda h: e.GroupCreated(h, "g", "G"))
    log.op(lambda h: e.GroupMember(h, "g", "alice", True))
    key = ALICE if who == "alice" else CAROL
    leaf = log.submission(who, key, scope, tlp, salt)
    with pytest.raises(EntryRejectedError, match=message):
        log.state.check(log.state.size, Envelope.from_leaf_bytes(leaf))


def test_redacted_entries_verify_by_their_claim_and_survive_json() -> None:
    log = _Log()
    log.op(lambda h: e.GroupCreated(h, "g", "G"))
    log.op(lambda h: e.GroupMember(h, "g", "alice", True))
    genesis = make_genesis(ROOT, OP, forum_name="Scopes", created_unix_ms=0).leaf_bytes()
    carol = state_from_json(genesis, state_to_json(log.state))  # carol's replay, resumed
    assert carol.groups["g"].history == log.state.groups["g"].history
    leaf = log.submission("alice", ALICE, "g", e.Tlp.RED, new_salt())
    h = leaf_hash(leaf)
    index = carol.size
    claim = sign_scope_claim(ALICE, ROOT.origin, "g", h)
    assert carol.check_redacted(index, h, claim).group_id == "g"
    assert not carol.entitled("carol", "g", index) and carol.entitled("alice", "g", index)
    for forged in (
        sign_scope_claim(ALICE, ROOT.origin, "g", b"x" * 32),  # another leaf's
        sign_scope_claim(CAROL, ROOT.origin, "g", h),  # not in g
        sign_scope_claim(OP, ROOT.origin, "g", h),  # operator entries are never redacted
    ):
        with pytest.raises(EntryRejectedError):
            carol.check_redacted(index, h, forged)
    carol.skip(index)
    assert carol.size == index + 1
    assert log.state.check(index, Envelope.from_leaf_bytes(leaf)).scope == "g"  # type: ignore[union-attr]


@pytest.mark.parametrize("n", [1, 3, 64])
def test_scoped_bodies_encode_as_the_generated_code(n: int) -> None:
    h = e.Header("o", "alice", b"k" * 32, 1, 0)
    items = tuple(e.SignalItem("md5", f"{i:032x}", (PUB,), "image") for i in range(n))
    for body in (
        e.Submission(h, items, "g", e.Tlp.AMBER_STRICT, new_salt()),
        e.Submission(h, items, "", e.Tlp.GREEN),
    ):
        data = e.encode(body)
        assert data == e._to_message(body).SerializeToString(deterministic=True)
        assert e.decode(e.payload_type_of(body), data) == body
