"""The operator board over a real server: a 2-of-3 board, rotations, refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from forum_client import entries as e
from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import InvalidInputError, TransportError
from forum_client.store import LocalStore
from forum_client.wire import envelope_to_pb
from forum_server.admin.cli import main as admin_main
from forum_server.admin.operator import Operator
from forum_server.testing import LocalForum

from ..boards import new_keys, rotate, two_of_three


@pytest.fixture
def board_forum(tmp_path: Path) -> Iterator[tuple[LocalForum, list[SigningKey]]]:
    with two_of_three(tmp_path) as made:
        yield made


def append_raw(op: Operator, envelope: Envelope) -> None:
    request = pb.AppendOperatorEntryRequest(entry=envelope_to_pb(envelope))
    op.admin.AppendOperatorEntry(request, timeout=30)


def one_key_entry(op: Operator, key: SigningKey, body: e.Body) -> Envelope:
    return key.sign(e.payload_type_of(body), e.encode(body))


def header(op: Operator, seq: int) -> e.Header:
    return e.Header(op.origin, "operator", b"", seq, 0)


def test_one_board_key_alone_can_neither_admit_declare_nor_rotate(
    board_forum: tuple[LocalForum, list[SigningKey]],
) -> None:
    forum, board = board_forum
    with forum.operator() as op:
        size = op.forum.status().log_size
        seq = op.log_state().board_last_sequence + 1
        bodies = [
            e.MemberAdmitted(header(op, seq), "mallory", "Mallory", e.Role.MEMBER),
            e.Incident(header(op, seq + 1), "attack", "An attack", True),
            e.BoardRotation(header(op, seq + 2), (board[0].public_bytes,), 1, "take over"),
        ]
        for body in bodies:
            with pytest.raises(grpc.RpcError) as caught:
                append_raw(op, one_key_entry(op, board[0], body))
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "needs 2 of the 3 board keys, has 1" in str(caught.value.details())
        # The old 1-of-1 path with the admin key (no longer on the board) is refused too.
        with pytest.raises(TransportError, match="left the operator board"):
            op.set_incident("attack", open=True, title="An attack")
        # The proposal path refuses below the threshold before anything is sent.
        p = op.propose([lambda h: e.Incident(h, "attack", "An attack", True)], "declare")
        with pytest.raises(InvalidInputError, match="1 more"):
            op.submit(p.signed(board[0], now_ms=p.created_unix_ms))
        assert op.forum.status().log_size == size
        # Two of three: accepted.
        op.submit(
            p.signed(board[0], now_ms=p.created_unix_ms).signed(board[2], now_ms=p.created_unix_ms)
        )
        assert op.log_state().incidents == {"attack": True}


def test_rotation_signed_only_by_the_new_keys_is_refused_and_old_keys_die(
    board_forum: tuple[LocalForum, list[SigningKey]], tmp_path: Path
) -> None:
    forum, board = board_forum
    fresh = new_keys(3)
    with forum.operator() as op:
        size = op.forum.status().log_size
        only_new = rotate(op, [fresh[0], fresh[1], fresh[2]], fresh, 2)
        with pytest.raises(InvalidInputError, match="2 more"):
            op.submit(only_new)
        # Sent anyway (a rogue tool): the server refuses, nothing is appended.
        [raw] = [x for x in only_new.envelopes if isinstance(x, Envelope)]
        with pytest.raises(grpc.RpcError) as caught:
            append_raw(op, raw)
        assert "BoardRotation needs 2 of the 3 board keys, has 0" in str(caught.value.details())
        assert op.forum.status().log_size == size
        # Old threshold without the new one is refused as well.
        half = rotate(op, [board[0], board[1], fresh[0]], fresh, 2)
        [raw] = [x for x in half.envelopes if isinstance(x, Envelope)]
        with pytest.raises(grpc.RpcError) as caught:
            append_raw(op, raw)
        assert "the new board needs 2 of its 3 keys" in str(caught.value.details())
        # Both thresholds: accepted.
        op.submit(rotate(op, [board[0], board[1], fresh[0], fresh[2]], fresh, 2))
        # The old keys, even two of them (a compromised old board), are useless now: the
        # tooling refuses to collect their signatures, and the server refuses the entry.
        p = op.propose(
            [lambda h: e.MemberAdmitted(h, "mallory", "Mallory", e.Role.MEMBER)], "admit"
        )
        with pytest.raises(InvalidInputError, match="not in the operator board"):
            p.signed(board[0], now_ms=p.created_unix_ms)
        [(payload_type, body)] = [x for x in p.envelopes if not isinstance(x, Envelope)]
        raw = Envelope.with_signatures(
            payload_type,
            body,
            [k.sign(payload_type, body).signatures[0] for k in (board[0], board[1])],
        )
        with pytest.raises(grpc.RpcError) as caught:
            append_raw(op, raw)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "left the operator board" in str(caught.value.details())
        assert "mallory" not in op.log_state().members
    # A member's SDK follows the chain of boards and verifies the whole log.
    with forum.client("alice") as alice:
        store = LocalStore(tmp_path / "alice.db")
        alice.sync(store)
        assert store.size == op_size(forum)


def op_size(forum: LocalForum) -> int:
    with forum.operator() as op:
        return int(op.forum.status().log_size)


def test_a_duplicated_signature_does_not_count_twice(
    board_forum: tuple[LocalForum, list[SigningKey]], tmp_path: Path
) -> None:
    """One board key's signature written twice (to pass for a quorum of two): the proposal
    file is refused by ``forum-admin submit`` and ``sign``, the entry sent raw by the server;
    nothing is appended."""
    forum, board = board_forum
    key0 = tmp_path / "board0.key"
    board[0].save(key0)
    with forum.operator() as op:
        size = op.forum.status().log_size
        p = op.propose(
            [lambda h: e.MemberAdmitted(h, "mallory", "Mallory", e.Role.MEMBER)], "admit"
        )
        p = p.signed(board[0], now_ms=p.created_unix_ms)
        [signed] = [x for x in p.envelopes if isinstance(x, Envelope)]
        payload_type, body = signed.payload_type, signed.body
        # The file: the signature repeated in the list.
        path = tmp_path / "admit.json"
        p.save(path)
        doc = json.loads(path.read_text())
        sigs = doc["entries"][0]["signatures"]
        sigs.append(sigs[0])
        path.write_text(json.dumps(doc))
        base = ["--profile", str(forum.operator_profile), "--server", forum.address]
        assert admin_main([*base, "submit", str(path)]) == 2
        assert admin_main(["sign", str(path), "--key", str(key0)]) == 2
        # Raw: the same signature as the entry's signature and as its cosignature.
        [(kid, sig)] = board[0].sign(payload_type, body).signatures
        entry = pb.Entry(payload_type=payload_type, body=body, key_id=kid, signature=sig)
        entry.cosignatures.add(key_id=kid, signature=sig)
        with pytest.raises(grpc.RpcError) as caught:
            op.admin.AppendOperatorEntry(pb.AppendOperatorEntryRequest(entry=entry), timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "duplicated signature" in str(caught.value.details())
        assert op.forum.status().log_size == size
        assert "mallory" not in op.log_state().members
