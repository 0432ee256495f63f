"""Multi-signature envelopes, the operator board in the pure verifier, and proposals."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

from forum_client import entries as e
from forum_client.envelope import LEAF_PREFIX, MULTI_LEAF_PREFIX, Envelope, SigningKey
from forum_client.errors import EntryRejectedError, InvalidInputError, VerificationError
from forum_client.store.state import state_from_json, state_to_json
from forum_client.verifier import OPERATOR_ID, LogState, TrustRoot, make_genesis
from forum_server.admin import proposals as proposals_module
from forum_server.admin.proposals import Board, Proposal

TYPE = e.PAYLOAD_TYPES[e.Incident]


def keys(n: int) -> list[SigningKey]:
    return sorted((SigningKey.generate() for _ in range(n)), key=lambda k: k.key_id)


def multi(body: bytes, signers: list[SigningKey], payload_type: str = TYPE) -> Envelope:
    return Envelope.with_signatures(
        payload_type, body, [k.sign(payload_type, body).signatures[0] for k in signers]
    )


# ---- envelopes ----


def test_one_signature_keeps_the_v1_leaf_byte_for_byte() -> None:
    [k] = keys(1)
    env = k.sign(TYPE, b"body")
    assert env.leaf_bytes().startswith(LEAF_PREFIX)
    assert Envelope.with_signatures(TYPE, b"body", env.signatures) == env
    assert Envelope.from_leaf_bytes(env.leaf_bytes()) == env


def test_several_signatures_round_trip_in_one_canonical_order() -> None:
    a, b, c = keys(3)
    env = multi(b"body", [c, a, b])
    assert env.signer_ids == (a.key_id, b.key_id, c.key_id)
    leaf = env.leaf_bytes()
    assert (
        leaf.startswith(MULTI_LEAF_PREFIX)
        and leaf[len(MULTI_LEAF_PREFIX) + 2 + len(TYPE) + 4 + 4] == 3
    )
    assert Envelope.from_leaf_bytes(leaf) == env
    for k in (a, b, c):
        env.verify(k.public_bytes)
    with pytest.raises(VerificationError, match="no signature by key"):
        env.verify(SigningKey.generate().public_bytes)


def test_duplicated_or_unordered_signatures_are_refused() -> None:
    a, b = keys(2)
    sig_a = a.sign(TYPE, b"x").signatures[0]
    with pytest.raises(InvalidInputError, match="duplicated signature"):
        Envelope.with_signatures(TYPE, b"x", [sig_a, sig_a])
    with pytest.raises(InvalidInputError, match="duplicated signature"):
        Envelope(TYPE, b"x", sig_a[0], sig_a[1], (sig_a,))
    sig_b = b.sign(TYPE, b"x").signatures[0]
    with pytest.raises(InvalidInputError, match="ascending"):
        Envelope(TYPE, b"x", sig_b[0], sig_b[1], (sig_a,))
    # A v2 leaf with one signature is not canonical (v1 is).
    one = a.sign(TYPE, b"x").leaf_bytes()
    head = one[len(LEAF_PREFIX) : len(LEAF_PREFIX) + 2 + len(TYPE) + 4 + 1]
    forged = MULTI_LEAF_PREFIX + head + b"\x01" + one[len(LEAF_PREFIX) + len(head) :]
    with pytest.raises(InvalidInputError, match="2 or more signatures"):
        Envelope.from_leaf_bytes(forged)
    with pytest.raises(InvalidInputError, match="has signed this entry already"):
        a.sign(TYPE, b"x").cosigned(a)


# ---- the board in the pure verifier ----


class Forum:
    """A genesis with a 2-of-3 board, replayed in a LogState."""

    def __init__(self) -> None:
        self.board = keys(3)
        self.op = self.board[0]
        self.log = SigningKey.generate()
        self.root = TrustRoot("forum.test", self.op.public_bytes, self.log.public_bytes, "f")
        genesis = make_genesis(
            self.root,
            self.op,
            forum_name="F",
            created_unix_ms=0,
            board=tuple(k.public_bytes for k in self.board),
            threshold=2,
        )
        self.state = LogState.from_genesis(genesis, self.root)
        self.seq = 10

    def entry(self, make: object, signers: list[SigningKey]) -> Envelope:
        self.seq += 1
        body = make(e.Header("forum.test", OPERATOR_ID, b"", self.seq, 0))  # type: ignore[operator]
        return multi(e.encode(body), signers, e.payload_type_of(body))


def admit(member: str) -> object:
    return lambda h: e.MemberAdmitted(h, member, member, e.Role.MEMBER)


def test_genesis_names_the_board_and_its_threshold() -> None:
    f = Forum()
    assert f.state.board_threshold == 2 and f.state.board == {k.key_id for k in f.board}
    with pytest.raises(InvalidInputError, match="threshold 4"):
        make_genesis(
            f.root,
            f.op,
            forum_name="F",
            created_unix_ms=0,
            board=tuple(k.public_bytes for k in f.board),
            threshold=4,
        )


def test_threshold_is_enforced_for_every_operator_entry() -> None:
    f = Forum()
    for signers in ([f.board[0]], [f.board[2]]):
        with pytest.raises(EntryRejectedError, match="needs 2 of the 3 board keys, has 1"):
            f.state.check(1, f.entry(admit("acme"), signers))
    f.state.apply(1, f.entry(admit("acme"), [f.board[0], f.board[2]]))
    outsider = SigningKey.generate()
    with pytest.raises(EntryRejectedError, match="not an operator board key"):
        f.state.check(2, f.entry(admit("b2"), [f.board[0], f.board[1], outsider]))
    env = f.entry(admit("b2"), [f.board[0], f.board[1]])
    bad = Envelope(
        env.payload_type,
        env.body,
        env.key_id,
        env.signature,
        ((env.cosignatures[0][0], bytes(64)),),
    )
    with pytest.raises(EntryRejectedError, match="does not verify"):
        f.state.check(2, bad)


def test_a_board_sequence_is_used_once() -> None:
    f = Forum()
    env = f.entry(admit("acme"), f.board[:2])
    f.state.apply(1, env)
    f.seq -= 1
    with pytest.raises(EntryRejectedError, match="already used"):
        f.state.check(2, f.entry(admit("other"), f.board[:2]))


def test_rotation_needs_both_thresholds_and_retires_the_old_keys() -> None:
    f = Forum()
    new = keys(3)
    pks = tuple(k.public_bytes for k in new)

    def rotation(h: e.Header) -> e.Body:
        return e.BoardRotation(h, pks, 2, "")

    with pytest.raises(EntryRejectedError, match="needs 2 of the 3 board keys, has 0"):
        f.state.check(1, f.entry(rotation, new))
    with pytest.raises(EntryRejectedError, match="new board needs 2 of its 3 keys"):
        f.state.check(1, f.entry(rotation, [*f.board, new[0]]))
    f.state.apply(1, f.entry(rotation, [f.board[0], f.board[1], new[1], new[2]]))
    assert f.state.board == {k.key_id for k in new}
    with pytest.raises(EntryRejectedError, match="left the operator board at entry 1"):
        f.state.check(2, f.entry(admit("acme"), f.board))
    f.state.apply(2, f.entry(admit("acme"), new[:2]))
    # The state survives a save and load (a local copy resumes with the board in force).
    saved = state_from_json(
        make_genesis(
            f.root,
            f.op,
            forum_name="F",
            created_unix_ms=0,
            board=tuple(k.public_bytes for k in f.board),
            threshold=2,
        ).leaf_bytes(),
        state_to_json(f.state),
    )
    assert saved.board == f.state.board and saved.board_sequences == f.state.board_sequences
    with pytest.raises(EntryRejectedError, match="left the operator board"):
        saved.check(3, f.entry(admit("x"), f.board))


def test_a_one_key_forum_is_a_one_of_one_board() -> None:
    op, log = SigningKey.generate(), SigningKey.generate()
    root = TrustRoot("forum.test", op.public_bytes, log.public_bytes, "f")
    state = LogState.from_genesis(make_genesis(root, op, forum_name="F", created_unix_ms=0), root)
    assert state.board == {op.key_id} and state.board_threshold == 1
    h = e.Header("forum.test", OPERATOR_ID, op.key_id, 2, 0)
    state.apply(
        1,
        op.sign(
            e.PAYLOAD_TYPES[e.MemberAdmitted],
            e.encode(e.MemberAdmitted(h, "acme", "A", e.Role.MEMBER)),
        ),
    )
    assert "acme" in state.members


# ---- proposals ----


def test_the_module_example_runs() -> None:
    result = doctest.testmod(proposals_module, raise_on_error=False)
    assert result.attempted and not result.failed


def proposal(
    board: list[SigningKey], *, expires: int = 10_000, origin: str = "forum.test"
) -> Proposal:
    b = Board({k.key_id: k.public_bytes for k in board}, 2)
    h = e.Header(origin, OPERATOR_ID, b"", 5, 0, expires)
    return Proposal.create([e.Incident(h, "x", "X", True)], b, "declare x", now_ms=0)


def test_proposal_refusals_name_the_problem(tmp_path: Path) -> None:
    board = keys(3)
    p = proposal(board)
    with pytest.raises(InvalidInputError, match="not in the operator board"):
        p.signed(SigningKey.generate(), now_ms=1)
    once = p.signed(board[0], now_ms=1)
    with pytest.raises(InvalidInputError, match="has signed this proposal already"):
        once.signed(board[0], now_ms=2)
    with pytest.raises(InvalidInputError, match="1 more signature"):
        once.ready(now_ms=2)
    with pytest.raises(InvalidInputError, match="expired"):
        once.signed(board[1], now_ms=10_001)
    done = once.signed(board[1], now_ms=3)
    with pytest.raises(InvalidInputError, match="expired"):
        done.ready(now_ms=10_001)
    assert len(done.ready(now_ms=4)) == 1
    # A file whose signature list repeats one signature is refused on loading.
    path = tmp_path / "p.json"
    done.save(path)
    assert Proposal.load(path) == done
    doc = json.loads(path.read_text())
    doc["entries"][0]["signatures"].append(doc["entries"][0]["signatures"][0])
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInputError, match="duplicated signature"):
        Proposal.load(path)
    # A file whose entries are for another forum than it claims is refused too.
    other = proposal(board, origin="other.forum")
    doc = json.loads(other.to_json())
    doc["origin"] = "forum.test"
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInputError, match=r"for forum 'other\.forum'"):
        Proposal.load(path)
    with pytest.raises(InvalidInputError, match="expire immediately"):
        proposal(board, expires=0)


def test_a_copy_saved_before_the_board_resumes_as_a_one_of_one_board() -> None:
    op, log = SigningKey.generate(), SigningKey.generate()
    root = TrustRoot("forum.test", op.public_bytes, log.public_bytes, "f")
    genesis = make_genesis(root, op, forum_name="F", created_unix_ms=0)
    state = LogState.from_genesis(genesis, root)
    doc = json.loads(state_to_json(state))
    for name in ("board", "board_threshold", "board_sequences", "concluded", "declared"):
        doc.pop(name, None)
    old = state_from_json(genesis.leaf_bytes(), json.dumps(doc))
    assert old.board == {op.key_id} and old.board_threshold == 1
    h = e.Header("forum.test", OPERATOR_ID, op.key_id, 1, 0)  # sequence 1 was genesis's
    body = e.MemberAdmitted(h, "acme", "A", e.Role.MEMBER)
    with pytest.raises(EntryRejectedError, match="already used"):
        old.check(1, op.sign(e.payload_type_of(body), e.encode(body)))
