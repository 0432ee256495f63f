"""The storage conformance suite: every ``ServerStore`` engine behaves the same.

One suite, parametrised over the engines (SQLite in a temporary file; PostgreSQL in a schema
of its own, see ``forum_server.testing.postgres_url``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from forum_client.errors import StoreError
from forum_client.scopes import ScopeClaim
from forum_server.storage import (
    OP_DESCRIPTOR,
    OP_OPINION,
    OP_REFRESH_STATUS,
    OP_RETRACT_ALL,
    OP_RETRACT_MEMBER,
    OP_SIGNAL,
    ServerStore,
    StoredLeaf,
    ViewDelta,
    open_store,
)

Opener = Callable[[], ServerStore]


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the same store again each call (to check what survives a reopen)."""
    if request.param == "sqlite":
        location = str(tmp_path / "forum.db")
    else:
        location = request.getfixturevalue("postgres_url")
    opened: list[ServerStore] = []

    def open_() -> ServerStore:
        store = open_store(location)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def _leaves(start: int, n: int) -> list[StoredLeaf]:
    out = []
    for i in range(start, start + n):
        body = f"leaf {i}".encode()
        out.append(StoredLeaf(i, body, hashlib.sha256(b"\0" + body).digest()))
    return out


def test_a_new_store_is_empty(engine: Opener) -> None:
    store = engine()
    assert store.size() == 0
    assert store.view_size() == 0
    assert store.latest_checkpoint() is None
    assert store.signal_count() == 0
    assert list(store.leaves(0, 10)) == []
    assert store.audit() == []


def test_append_stores_leaves_checkpoint_and_view_together(engine: Opener) -> None:
    store = engine()
    view = ViewDelta()
    view.add(OP_SIGNAL, [("md5", "a" * 32, 1)])
    view.add(OP_DESCRIPTOR, [("md5", "a" * 32, "alice", "x;y", "image", 80, "", 1)])
    store.append(_leaves(0, 2), 2, b"note 2", view)
    store.append(_leaves(2, 3), 5, b"note 5")
    again = engine()
    assert again.size() == 5
    assert again.view_size() == 5
    assert again.latest_checkpoint() == (5, b"note 5")
    assert list(again.leaves(1, 4)) == _leaves(1, 3)
    assert again.signal_status("md5", "a" * 32) == "active"
    assert again.signal_exists("md5", "a" * 32)
    assert not again.signal_exists("md5", "b" * 32)
    assert again.signal_status("md5", "b" * 32) is None
    (d,) = again.descriptors("md5", "a" * 32)
    assert (d.member_id, d.labels, d.content_type, d.quality, d.active, d.index) == (
        "alice",
        ("x", "y"),
        "image",
        80,
        True,
        1,
    )
    assert again.has_active_descriptor("alice", "md5", "a" * 32)


def test_scope_claims_and_scoped_lookups(engine: Opener) -> None:
    """Issue #10: claims are stored with their leaves; lookups answer within one scope."""
    store = engine()
    claim = ScopeClaim("g", b"k" * 32, b"s" * 64)
    leaves = _leaves(0, 3)
    leaves[1] = StoredLeaf(1, leaves[1].leaf_bytes, leaves[1].leaf_hash, claim)
    view = ViewDelta()
    view.add(OP_SIGNAL, [("md5", "a" * 32, 1)])
    view.add(OP_DESCRIPTOR, [("md5", "a" * 32, "alice", "", "image", None, "g", 1)])
    store.append(leaves, 3, b"note 3", view)
    again = engine()
    assert list(again.scope_claims()) == [(1, claim)]
    assert list(again.scope_claims(2)) == []
    assert again.signal_exists("md5", "a" * 32, "g")
    assert not again.signal_exists("md5", "a" * 32)  # not forum-wide
    assert again.has_active_descriptor("alice", "md5", "a" * 32, "g")
    assert not again.has_active_descriptor("alice", "md5", "a" * 32, "h")


def test_a_failed_append_writes_nothing(engine: Opener) -> None:
    store = engine()
    store.append(_leaves(0, 2), 2, b"note 2")
    view = ViewDelta()
    view.add(OP_SIGNAL, [("md5", "c" * 32, 2)])
    with pytest.raises(StoreError):
        store.append([*_leaves(2, 1), *_leaves(1, 1)], 4, b"note 4", view)  # index 1 again
    assert store.size() == 2
    assert store.latest_checkpoint() == (2, b"note 2")
    assert not store.signal_exists("md5", "c" * 32)
    assert store.view_size() == 2


@pytest.mark.parametrize("rows", [3, 200])  # row by row, and the bulk path
def test_view_operations(engine: Opener, rows: int) -> None:
    store = engine()
    values = [f"{i:032x}" for i in range(rows)]
    view = ViewDelta()
    view.add(OP_SIGNAL, [("md5", v, 1) for v in values])
    view.add(OP_DESCRIPTOR, [("md5", v, "alice", "a", "image", None, "", 1) for v in values])
    view.add(OP_DESCRIPTOR, [("md5", v, "bob", "", "video", 50, "eu", 2) for v in values[:2]])
    view.add(OP_OPINION, [("md5", values[0], "bob", 2, "seen it", 2)])
    store.append(_leaves(0, 3), 3, b"n3", view)
    assert store.signal_count() == rows
    # alice retracts hers: values[0] stays active (bob's), values[2] is retracted
    view = ViewDelta()
    view.add(OP_RETRACT_MEMBER, [("md5", v, "alice") for v in values[:3]])
    view.add(OP_REFRESH_STATUS, [("md5", v) for v in values[:3]])
    view.add(OP_OPINION, [("md5", values[0], "bob", 1, "changed", 3)])
    store.append(_leaves(3, 1), 4, b"n4", view)
    assert store.signal_status("md5", values[0]) == "active"
    assert store.signal_status("md5", values[2]) == "retracted"
    assert not store.has_active_descriptor("alice", "md5", values[0])
    assert [o.note for o in store.opinions("md5", values[0])] == ["changed"]
    # the operator retracts everything on values[0]; a resubmission reactivates values[2]
    view = ViewDelta()
    view.add(OP_RETRACT_ALL, [("md5", values[0])])
    view.add(OP_REFRESH_STATUS, [("md5", values[0])])
    view.add(OP_SIGNAL, [("md5", values[2], 4)])
    view.add(OP_DESCRIPTOR, [("md5", values[2], "bob", "", "image", None, "", 4)])
    store.write_view(view, 4)
    assert store.signal_status("md5", values[0]) == "retracted"
    assert [d.active for d in store.descriptors("md5", values[0])] == [False, False]
    assert store.signal_status("md5", values[2]) == "active"
    # a retracted descriptor keeps the index of the submission that set it
    assert [(d.member_id, d.active, d.index) for d in store.descriptors("md5", values[2])] == [
        ("alice", False, 1),
        ("bob", True, 4),
    ]


def test_a_run_that_repeats_a_key_applies_in_order(engine: Opener) -> None:
    store = engine()
    rows = [("md5", f"{i:032x}", "alice", "a", "image", None, "", 1) for i in range(40)]
    rows.append(("md5", f"{0:032x}", "alice", "later", "video", 10, "", 2))
    view = ViewDelta()
    view.add(OP_DESCRIPTOR, rows)
    store.append(_leaves(0, 1), 1, b"n", view)
    (d,) = store.descriptors("md5", f"{0:032x}")
    assert (d.labels, d.content_type, d.index) == (("later",), "video", 2)


def test_credentials_and_audit(engine: Opener) -> None:
    store = engine()
    assert store.register_credential(b"1" * 32, "acme", 10, False) == 0
    assert store.register_credential(b"2" * 32, "acme", 20, False) == 0
    assert store.register_credential(b"3" * 32, "acme", 30, True) == 2
    assert store.register_credential(b"3" * 32, "acme", 40, True) == 0  # idempotent
    one = store.credential(b"1" * 32)
    assert one is not None and one.revoked_unix_ms == 30 and one.member_id == "acme"
    three = store.credential(b"3" * 32)
    assert three is not None and three.revoked_unix_ms is None and three.created_unix_ms == 30
    assert store.credential(b"4" * 32) is None
    for i in range(5):
        store.record_audit(i, "operator", "act", f"t{i}", "ok", "")
    assert [r.target for r in store.audit()] == ["t0", "t1", "t2", "t3", "t4"]
    assert [r.target for r in engine().audit(2)] == ["t3", "t4"]


def test_long_reads_come_back_in_order(engine: Opener) -> None:
    store = engine()
    for start in range(0, 5000, 1000):
        store.append(_leaves(start, 1000), start + 1000, f"n{start}".encode())
    assert [x.index for x in store.leaves(0, 5000)] == list(range(5000))
    assert [x.index for x in store.leaves(4990, 9000)] == list(range(4990, 5000))


def test_postgres_schema_migrates_from_its_first_version_and_refuses_a_newer_one(
    postgres_url: str,
) -> None:
    """The PostgreSQL schema is versioned: a database left at version 1 by an older server
    is migrated on open with its rows kept (the lease moves to a row of its own), and one
    newer than this code is refused, not written to."""
    import psycopg

    from forum_server.storage import postgres

    with psycopg.connect(postgres_url, autocommit=True) as holder:  # the old leader's
        holder.execute(postgres.MIGRATIONS[1])
        holder.execute("INSERT INTO forum_meta VALUES ('schema_version', '1')")
        holder.execute("INSERT INTO leaves VALUES (0, 'leaf', 'hash')")
        holder.execute("INSERT INTO checkpoints VALUES (1, 'note 1')")
        holder.execute(
            "INSERT INTO leadership VALUES "
            "(1, 7, 'old:1:2', pg_backend_pid(), now() + interval '1 hour')"
        )
        store = postgres.PostgresStore(postgres_url)
        try:
            assert store.schema_version() == postgres.SCHEMA_VERSION
            assert store.size() == 1 and store.latest_checkpoint() == (1, b"note 1")
            assert store.leader() == (7, "old:1:2")
            # its live lease carried over: nobody takes the leadership from it
            assert store.try_lead("new", 3.0) is None
        finally:
            store.close()
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute("UPDATE forum_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema 99 is newer than this server"):
        postgres.PostgresStore(postgres_url)
