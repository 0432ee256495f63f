"""Shared by the board tests: a local forum whose operator is a 2-of-3 board."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from forum_client import entries as e
from forum_client.envelope import SigningKey
from forum_server.admin.operator import Operator
from forum_server.admin.proposals import Proposal
from forum_server.testing import LocalForum, local_forum


def new_keys(n: int) -> list[SigningKey]:
    return [SigningKey.generate() for _ in range(n)]


def rotate(op: Operator, signers: list[SigningKey], keys: list[SigningKey], m: int) -> Proposal:
    """Propose the board ``keys`` m-of-n and have ``signers`` sign it (not submitted)."""
    pks = tuple(k.public_bytes for k in keys)
    p = op.propose([lambda h: e.BoardRotation(h, pks, m, "test")], "rotate")
    for key in signers:
        p = p.signed(key, now_ms=p.created_unix_ms)
    return p


@contextlib.contextmanager
def two_of_three(
    tmp_path: Path, members: tuple[str, ...] = ("alice",)
) -> Iterator[tuple[LocalForum, list[SigningKey]]]:
    """A forum whose board was rotated from the 1-of-1 admin key to 2-of-3 new keys."""
    with local_forum(tmp_path, members=members, observers=["carol"]) as forum:
        board = new_keys(3)
        with forum.operator() as op:
            admin = SigningKey.load(forum.operator_profile / "admin.key")
            op.submit(rotate(op, [admin, board[0], board[1]], board, 2))
            assert op.board().threshold == 2
            assert set(op.board().keys) == {k.key_id for k in board}
        yield forum, board
