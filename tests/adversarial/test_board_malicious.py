"""A malicious server serves board entries the board did not make.

The forum's operator is a 2-of-3 board.  A compromised server (it holds the log key, so its
checkpoints verify) serves a history that ends with an operator entry signed by one board key
only, or by a key that has left the board.  A member's SDK refuses it: nothing is applied and
the evidence is kept.

Check: forum_client/verifier.py:LogState._check_board_entry (the threshold of the board in
force), reached from forum_client/sync.py, which records REJECTED_ENTRY.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from forum_client import entries as e
from forum_client.envelope import Envelope, SigningKey
from forum_client.store import LocalStore
from forum_client.sync import REJECTED_ENTRY, SyncSecurityError
from forum_server.testing import LocalForum

from ..boards import two_of_three
from .malicious import FakeLog, ServeLog, log_key, malicious_forum, real_leaves

pytestmark = pytest.mark.adversarial


@pytest.fixture
def board_forum(tmp_path: Path) -> Iterator[tuple[LocalForum, list[SigningKey]]]:
    with two_of_three(tmp_path / "f") as made:
        yield made


def forged(forum: LocalForum, signers: list[SigningKey], body_of: object) -> FakeLog:
    """The real log, then one operator entry signed by ``signers`` only."""
    leaves = real_leaves(forum)
    with forum.operator() as op:
        seq = op.log_state().board_last_sequence + 1
        h = e.Header(op.origin, "operator", b"", seq, 0)
    body = body_of(h)  # type: ignore[operator]
    payload_type, data = e.payload_type_of(body), e.encode(body)
    envelope = Envelope.with_signatures(
        payload_type, data, [k.sign(payload_type, data).signatures[0] for k in signers]
    )
    return FakeLog([*leaves, envelope.leaf_bytes()], forum.trust_root, log_key(forum))


@pytest.mark.parametrize(
    "body_of",
    [
        lambda h: e.MemberAdmitted(h, "mallory", "Mallory", e.Role.MEMBER),
        lambda h: e.Incident(h, "fake-crisis", "Fabricated", True),
        lambda h: e.Retraction(h, (e.SignalRef("md5", "0" * 32),), "silenced"),
    ],
    ids=["admit", "incident", "operator-retraction"],
)
def test_a_single_key_operator_entry_is_refused_by_the_sdk(
    board_forum: tuple[LocalForum, list[SigningKey]], tmp_path: Path, body_of: object
) -> None:
    forum, board = board_forum
    store = LocalStore(tmp_path / "c.db")
    with forum.client("carol") as carol:
        carol.sync(store)
    size, counts = store.size, store.counts()
    fake = forged(forum, [board[0]], body_of)
    with (
        malicious_forum(forum, ServeLog(fake)) as evil,
        evil.client("carol") as client,
        pytest.raises(SyncSecurityError) as caught,
    ):
        client.sync(store)
    err = caught.value
    assert err.what == REJECTED_ENTRY and err.index == size
    assert "needs 2 of the 3 board keys, has 1" in str(err)
    assert store.size == size and store.counts() == counts
    assert [x.entry_index for x in store.evidence()] == [size]


def test_an_entry_of_the_replaced_admin_key_is_refused_by_the_sdk(
    board_forum: tuple[LocalForum, list[SigningKey]], tmp_path: Path
) -> None:
    """The old 1-of-1 key (stolen after the board took over) signs an admission."""
    forum, _ = board_forum
    admin = SigningKey.load(forum.operator_profile / "admin.key")
    store = LocalStore(tmp_path / "c.db")
    fake = forged(forum, [admin], lambda h: e.MemberAdmitted(h, "mallory", "M", e.Role.MEMBER))
    with (
        malicious_forum(forum, ServeLog(fake)) as evil,
        evil.client("carol") as client,
        pytest.raises(SyncSecurityError) as caught,
    ):
        client.sync(store)
    assert caught.value.what == REJECTED_ENTRY
    assert "left the operator board" in str(caught.value)
    assert store.size == 0  # a fresh copy: nothing of the forged history is kept
