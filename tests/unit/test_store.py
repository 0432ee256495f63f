"""LocalStore: schema and migrations, the view semantics of forum_client.rules, key state
round trip, evidence, snapshots for readers."""

from __future__ import annotations

import doctest
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils

import forum_client.store as store_package
from forum_client import entries as e
from forum_client.envelope import SigningKey
from forum_client.errors import ConfigError, StoreError
from forum_client.store import MIGRATIONS, LocalStore, Rollup
from forum_client.store.state import state_from_json, state_to_json
from forum_client.store.view import ViewWriter
from forum_client.taxonomy import DEFAULT_LABELS
from forum_client.verifier import LogState, TrustRoot, make_genesis

PUB = "behaviour:terrorist-publication"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def _state() -> tuple[LogState, bytes]:
    op, log_key = SigningKey.generate(), SigningKey.generate()
    root = TrustRoot("forum.test", op.public_bytes, log_key.public_bytes, "forum.test")
    genesis = make_genesis(root, op, forum_name="T", created_unix_ms=0)
    state = LogState.from_genesis(genesis, root)
    state.members["alice"] = state.members["operator"].__class__(
        "alice", "Alice", e.Role.MEMBER, e.MemberStatus.ACTIVE, 1, [(1, e.MemberStatus.ACTIVE)]
    )
    state.members["bob"] = state.members["operator"].__class__(
        "bob", "Bob", e.Role.MEMBER, e.MemberStatus.ACTIVE, 2, [(2, e.MemberStatus.ACTIVE)]
    )
    state.labels = {x.id: x for x in DEFAULT_LABELS}
    state.taxonomy_version = 1
    return state, genesis.leaf_bytes()


def _h(member: str) -> e.Header:
    return e.Header("forum.test", member, b"k" * 32, 1, 0)


def test_schema_is_migrated_once_and_newer_schemas_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with LocalStore(db) as store:
        names = {r[0] for r in store.con.execute("SELECT name FROM sqlite_master")}
        assert {
            "entries",
            "signals",
            "descriptors",
            "retractions",
            "opinions",
            "members",
            "keys",
            "checkpoints",
            "sync_state",
            "security_evidence",
            "signal_rollup",
            "pdq_changes",
            "vpdq_changes",
            "journal_from",
        } <= names
        assert store.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        applied = [
            "m001_initial",
            "m002_scopes",
            "m003_pdq_changes",
            "m004_vpdq_changes",
            "m005_journal_from",
        ]
        assert [m.name for m in MIGRATIONS.applied(store.db)] == applied
    with LocalStore(db) as store:  # reopening applies nothing twice
        assert len(MIGRATIONS.applied(store.db)) == 5
        store.con.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('forum_client.store', 'm999_future', 'now')"
        )
    with pytest.raises(StoreError, match="newer"):
        LocalStore(db)


def test_another_programs_database_is_refused_unchanged(tmp_path: Path) -> None:
    """Opening a SQLite file of another schema (the server's forum.db given as --db) used
    to add the local copy's migrations table to it, then fail; now it is left as it was."""
    other = tmp_path / "forum.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE leaves (idx INTEGER PRIMARY KEY, leaf BLOB)")
    con.commit()
    con.close()
    before = other.read_bytes()
    with pytest.raises(StoreError, match="not a forum local copy"):
        LocalStore(other)
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forum.db"]  # no -wal, no -shm


def test_a_copy_killed_while_it_is_created_reopens(tmp_path: Path) -> None:
    """A sync killed (-9) while it created a new copy used to leave the migrations table and
    no step recorded, which the next open refused as another program's database."""
    db = tmp_path / "new.db"
    killer = (
        "import os, sys\n"
        "from forum_client.store import schema\n"
        "step = schema.MIGRATIONS._migrations[1]\n"
        "def die(db):\n"
        "    db.execute('CREATE TABLE half_made (x)')\n"
        "    os._exit(9)\n"
        "step.fn = die\n"
        "from forum_client.store import LocalStore\n"
        "LocalStore(sys.argv[1])\n"
    )
    done = subprocess.run([sys.executable, "-c", killer, str(db)], check=False)
    assert done.returncode == 9
    con = sqlite3.connect(db)
    assert con.execute("SELECT name FROM sqlite_master").fetchall() == []  # nothing half-made
    con.close()
    with LocalStore(db) as store:
        assert len(MIGRATIONS.applied(store.db)) == len(MIGRATIONS._migrations)

    earlier = tmp_path / "earlier.db"  # what an earlier SDK left: the migrations table alone
    con = sqlite3.connect(earlier)
    MIGRATIONS.ensure_migrations_table(sqlite_utils.Database(con))
    con.close()
    with LocalStore(earlier) as store:
        assert len(MIGRATIONS.applied(store.db)) == len(MIGRATIONS._migrations)


def test_view_follows_the_rules_semantics(tmp_path: Path) -> None:
    state, _ = _state()
    with LocalStore(tmp_path / "v.db") as store:
        store.con.execute("BEGIN")
        view = ViewWriter(store.con)
        view.apply(
            3, e.Submission(_h("alice"), (e.SignalItem("md5", MD5, (PUB,), "image"),)), state
        )
        assert view.signal_exists("md5", MD5) and view.submitted_by("alice", "md5", MD5)
        view.apply(
            4, e.Submission(_h("bob"), (e.SignalItem("md5", MD5, (), "video"),), "eu"), state
        )
        view.apply(5, e.Opinion(_h("bob"), e.SignalRef("md5", MD5), e.OpinionKind.AGREE), state)
        view.apply(
            6, e.Opinion(_h("bob"), e.SignalRef("md5", MD5), e.OpinionKind.FALSE_POSITIVE), state
        )  # replaces bob's
        view.apply(7, e.Retraction(_h("alice"), (e.SignalRef("md5", MD5),), "fp"), state)
        view.flush()
        store.con.execute("COMMIT")
        signal = store.lookup("md5", MD5.upper())
        assert signal is not None and signal.status == "active"  # bob still holds it
        assert [(d.member_id, d.active, d.scope) for d in signal.descriptors] == [
            ("alice", False, ""),
            ("bob", True, "eu"),
        ]
        assert signal.rollup == Rollup(0, 1, 0) and signal.rollup.verdict == "negative"
        store.con.execute("BEGIN")
        ViewWriter(store.con).apply(
            8, e.Retraction(_h("operator"), (e.SignalRef("md5", MD5),), "legal"), state
        )
        store.con.execute("COMMIT")
        signal = store.lookup("md5", MD5)
        assert signal is not None and signal.status == "retracted"
        assert not any(d.active for d in signal.descriptors)
        assert store.con.execute("SELECT COUNT(*) FROM retractions").fetchone()[0] == 2


def test_rollup_verdicts() -> None:
    assert Rollup().verdict == "none"
    assert Rollup(2, 0, 1).verdict == "positive"
    assert Rollup(1, 1).verdict == "disputed"


def test_key_state_round_trips_through_json() -> None:
    state, genesis = _state()
    state.incidents["christchurch"] = True
    state.last_sequence[b"x" * 32] = 7
    again = state_from_json(genesis, state_to_json(state))
    assert state_to_json(again) == state_to_json(state)
    assert again.members["alice"].history == [(1, e.MemberStatus.ACTIVE)]


def test_readers_see_committed_snapshots_only(tmp_path: Path) -> None:
    state, _ = _state()
    db = tmp_path / "r.db"
    with LocalStore(db) as writer, LocalStore(db) as reader:
        writer.con.execute("BEGIN IMMEDIATE")
        view = ViewWriter(writer.con)
        view.apply(3, e.Submission(_h("alice"), (e.SignalItem("md5", MD5, (PUB,)),)), state)
        view.flush()
        assert reader.lookup("md5", MD5) is None  # staged, not committed
        writer.con.execute("COMMIT")
        assert reader.lookup("md5", MD5) is not None


def test_evidence_blocks_until_acknowledged_and_pin_refuses_other_forums(
    tmp_path: Path,
) -> None:
    with LocalStore(tmp_path / "e.db", clock=lambda: 1000.0) as store:
        eid = store.record_evidence(
            "fork", "two roots", entry_index=None, proof=(b"\x01" * 32,), served_checkpoint=b"note"
        )
        [ev] = store.evidence()
        assert (ev.id, ev.what, ev.proof, ev.detected_unix_ms) == (
            eid,
            "fork",
            (b"\x01" * 32,),
            1_000_000,
        )
        assert store.acknowledge_evidence() == 1 and store.evidence() == []
        assert len(store.evidence(include_acknowledged=True)) == 1
        root = TrustRoot("a", b"1" * 32, b"2" * 32, "a")
        store.pin(root)
        store.pin(root)
        with pytest.raises(ConfigError):
            store.pin(TrustRoot("b", b"1" * 32, b"2" * 32, "b"))


def test_unreadable_file_is_a_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError):
        LocalStore(bad)


def test_package_example_runs() -> None:
    """The boundary example in the package docstring (replay into a SyncTransaction)."""
    result = doctest.testmod(store_package)
    assert result.attempted > 0 and result.failed == 0
