"""The server view: group overlay order, retraction semantics, one transaction with leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from forum_client import entries as e
from forum_client.envelope import SigningKey
from forum_client.errors import EntryRejectedError, InvalidInputError
from forum_client.verifier import LogState, TrustRoot, make_genesis
from forum_server.storage import StoredLeaf
from forum_server.storage.sqlite import SQLiteStore
from forum_server.view import ServerView

MD5 = "a" * 32


@pytest.fixture
def setup(tmp_path: Path) -> tuple[SQLiteStore, LogState]:
    op, log = SigningKey.generate(), SigningKey.generate()
    root = TrustRoot("t.test", op.public_bytes, log.public_bytes, "t.test")
    state = LogState.from_genesis(make_genesis(root, op, forum_name="T", created_unix_ms=0))
    for i, m in enumerate(("alice", "bob"), 1):
        state.members[m] = type(state.members["operator"])(
            m, m, e.Role.MEMBER, e.MemberStatus.ACTIVE, i
        )
    return SQLiteStore(tmp_path / "v.db"), state


def h(member: str) -> e.Header:
    return e.Header("t.test", member, b"k" * 32, 1, 0)


def sub(member: str, *values: str) -> e.Submission:
    return e.Submission(h(member), tuple(e.SignalItem("md5", v) for v in values))


def ret(member: str, *values: str) -> e.Retraction:
    return e.Retraction(h(member), tuple(e.SignalRef("md5", v) for v in values), "why")


def test_later_entries_of_a_group_see_earlier_ones(setup: tuple[SQLiteStore, LogState]) -> None:
    store, state = setup
    group = ServerView(store).group()
    group.check(state, sub("alice", MD5), 5)
    group.apply(state, sub("alice", MD5), 5)
    with pytest.raises(EntryRejectedError):  # bob has no descriptor on alice's signal
        group.check(state, ret("bob", MD5), 6)
    group.check(state, ret("alice", MD5), 6)
    group.apply(state, ret("alice", MD5), 6)
    with pytest.raises(EntryRejectedError):  # retracted: alice no longer holds it
        group.check(state, ret("alice", MD5), 7)
    group.apply(state, sub("alice", MD5), 7)  # resubmitted: active again
    store.append([StoredLeaf(0, b"x", b"h" * 32)], 1, b"note", group.delta)
    assert store.signal_status("md5", MD5) == "active"
    [d] = store.descriptors("md5", MD5)
    assert (d.member_id, d.active, d.index) == ("alice", True, 7)


def test_operator_retraction_resets_every_descriptor(
    setup: tuple[SQLiteStore, LogState],
) -> None:
    store, state = setup
    group = ServerView(store).group()
    group.apply(state, sub("alice", MD5), 3)
    group.apply(state, sub("bob", MD5), 4)
    group.check(state, ret("operator", MD5), 5)
    group.apply(state, ret("operator", MD5), 5)
    assert not group.submitted_by("alice", "md5", MD5)
    group.apply(state, sub("bob", MD5), 6)
    assert group.submitted_by("bob", "md5", MD5)
    assert not group.submitted_by("alice", "md5", MD5)
    store.append([StoredLeaf(0, b"x", b"h" * 32)], 1, b"note", group.delta)
    assert {d.member_id: d.active for d in store.descriptors("md5", MD5)} == {
        "alice": False,
        "bob": True,
    }
    assert store.signal_status("md5", MD5) == "active"


def test_a_failed_write_leaves_neither_leaves_nor_view(
    setup: tuple[SQLiteStore, LogState],
) -> None:
    store, state = setup
    store.append([StoredLeaf(0, b"x", b"h" * 32)], 1, b"note")
    group = ServerView(store).group()
    group.apply(state, sub("alice", MD5), 1)
    with pytest.raises(Exception, match="UNIQUE"):  # leaf 0 again: the transaction fails
        store.append([StoredLeaf(0, b"y", b"i" * 32)], 1, b"note2", group.delta)
    assert store.signal_status("md5", MD5) is None
    assert store.size() == 1 and store.view_size() == 1


def test_opinion_needs_a_signal_and_replaces(setup: tuple[SQLiteStore, LogState]) -> None:
    store, state = setup
    group = ServerView(store).group()
    opinion = e.Opinion(h("bob"), e.SignalRef("md5", MD5), e.OpinionKind.AGREE)
    with pytest.raises(InvalidInputError):
        group.check(state, opinion, 1)
    group.apply(state, sub("alice", MD5), 1)
    group.check(state, opinion, 2)
    group.apply(state, opinion, 2)
    group.apply(state, e.Opinion(h("bob"), e.SignalRef("md5", MD5), e.OpinionKind.SEEN), 3)
    store.append([StoredLeaf(0, b"x", b"h" * 32)], 1, b"note", group.delta)
    [op] = store.opinions("md5", MD5)
    assert (op.member_id, op.kind, op.index) == ("bob", e.OpinionKind.SEEN, 3)
