"""Verified sync against a real forum (port 0, real mTLS): view, resume after kill -9,
follow mode, offline verify, the SDK's docstring example."""

from __future__ import annotations

import doctest
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forum_client import sync as sync_module
from forum_client.entries import OpinionKind, SignalItem, SignalRef
from forum_client.source import GrpcSource
from forum_client.store import LocalStore, verify_store
from forum_client.sync import SyncConfig, Syncer
from forum_server.testing import LocalForum, local_forum

pytestmark = pytest.mark.integration

PUB = "behaviour:terrorist-publication"
ISIL = "entity:isil"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA = "a" * 64


@pytest.fixture
def forum(tmp_path: Path) -> Iterator[LocalForum]:
    with local_forum(tmp_path, members=["alice", "bob"], observers=["carol"]) as f:
        yield f


def _submit(forum: LocalForum, member: str, items: list[SignalItem]) -> None:
    with forum.client(member) as c:
        c.submit(items, forum.members[member].signing_key)


def _server_root(forum: LocalForum) -> tuple[int, bytes]:
    with forum.client("carol") as c:
        cp = c.checkpoint()
    return cp.size, cp.root


def test_observer_sees_signals_descriptors_rollups_and_retractions(
    forum: LocalForum, tmp_path: Path
) -> None:
    _submit(forum, "alice", [SignalItem("md5", MD5, (PUB,)), SignalItem("sha256", SHA, (ISIL,))])
    _submit(forum, "bob", [SignalItem("md5", MD5.upper(), (ISIL, PUB), "video")])
    with forum.client("bob") as bob:
        bob.opine(SignalRef("md5", MD5), "agree", forum.members["bob"].signing_key)
    with forum.client("alice") as alice:
        key = forum.members["alice"].signing_key
        alice.opine(SignalRef("md5", MD5), OpinionKind.FALSE_POSITIVE, key)
        alice.opine(SignalRef("sha256", SHA), "agree", key)

    with forum.client("carol") as carol, LocalStore(tmp_path / "carol.db") as store:
        first = carol.sync(store)
        assert first.size == _server_root(forum)[0] and first.signals == 3
        md5 = store.lookup("md5", MD5.upper())
        assert md5 is not None and md5.status == "active"
        assert [
            (d.member_id, d.labels, d.content_type, d.scope, d.tlp) for d in md5.descriptors
        ] == [
            ("alice", (PUB,), "other", "", "TLP:GREEN"),
            ("bob", (ISIL, PUB), "video", "", "TLP:GREEN"),
        ]
        assert (md5.rollup.positive, md5.rollup.negative, md5.rollup.verdict) == (
            1,
            1,
            "disputed",
        )
        sha = store.lookup("sha256", SHA)
        assert sha is not None and sha.rollup.verdict == "positive" and sha.labels == (ISIL,)

        # alice retracts both: md5 stays active through bob, sha256 goes out of the view
        with forum.client("alice") as alice:
            alice.retract(
                [SignalRef("md5", MD5), SignalRef("sha256", SHA)],
                forum.members["alice"].signing_key,
                reason="false positive",
            )
        second = carol.sync(store)
        assert second.entries == 1 and second.size == first.size + 1
        md5 = store.lookup("md5", MD5)
        sha = store.lookup("sha256", SHA)
        assert md5 is not None and sha is not None
        assert md5.status == "active" and md5.labels == (PUB, ISIL)
        assert [d.active for d in md5.descriptors] == [False, True]
        assert sha.status == "retracted" and not sha.active

        # bob's retraction takes md5 out; a later resubmission brings it back
        with forum.client("bob") as bob:
            bob.retract([SignalRef("md5", MD5)], forum.members["bob"].signing_key, reason="x")
        carol.sync(store)
        md5 = store.lookup("md5", MD5)
        assert md5 is not None and md5.status == "retracted"
        _submit(forum, "bob", [SignalItem("md5", MD5, (PUB,))])
        carol.sync(store)
        md5 = store.lookup("md5", MD5)
        assert md5 is not None and md5.status == "active"
        assert store.size == _server_root(forum)[0]
        assert store.sync_state().compact_range.root() == _server_root(forum)[1]
        members = dict(store.con.execute("SELECT member_id, role FROM members"))
        assert members == {
            "operator": "operator",
            "alice": "member",
            "bob": "member",
            "carol": "observer",
        }
    with LocalStore(tmp_path / "carol.db") as store:
        assert verify_store(store, forum.trust_root).problems == ()


def test_sdk_docstring_example_runs(forum: LocalForum, tmp_path: Path) -> None:
    _submit(forum, "alice", [SignalItem("md5", MD5, (PUB,))])
    globs = {"profile": forum.members["carol"].bundle_path, "db_path": tmp_path / "ex.db"}
    parser = doctest.DocTestParser()
    test = parser.get_doctest(sync_module.__doc__ or "", globs, "forum_client.sync", None, 0)
    assert test.examples, "the sync module docstring lost its example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def _fill(forum: LocalForum, entries: int, per_entry: int, seed: int = 4) -> None:
    rng = random.Random(seed)
    with forum.client("alice") as alice:
        key = forum.members["alice"].signing_key
        for _ in range(entries):
            items = [
                SignalItem("sha256", rng.randbytes(32).hex(), (PUB,)) for _ in range(per_entry)
            ]
            alice.submit(items, key)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "forum_client.cli", *args]


@pytest.mark.parametrize(
    "cache", [[], ["--cache-mib", "1"]], ids=["default-cache", "grown-copy-1MiB-cache"]
)
def test_kill_9_at_random_points_always_converges(
    forum: LocalForum, tmp_path: Path, cache: list[str]
) -> None:
    """With a 1 MiB page cache the copy outgrows it: its steps grow with the copy and stage
    their rows in SQLite's TEMP tables, merged sorted at each commit."""
    _fill(forum, entries=40, per_entry=1000)
    size, root = _server_root(forum)
    db = tmp_path / "killed.db"
    profile = str(forum.members["carol"].bundle_path)
    argv = _cli(
        "--profile", profile, "sync", "--db", str(db), "--no-progress", "--commit-every", "3000"
    )
    argv += cache
    rng = random.Random(9)
    sizes = []
    for _ in range(5):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.3, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with LocalStore(db) as store:
            sizes.append(store.size)
            # whatever was committed is a verified prefix, and intact
            assert verify_store(store, forum.trust_root).problems == ()
    assert sizes == sorted(sizes)  # never lost progress
    done = subprocess.run([*argv, "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with LocalStore(db) as store:
        assert store.size == size
        assert store.sync_state().compact_range.root() == root
        assert store.counts()["signals"] == 40_000  # no duplicates, no gaps
        assert [i for i, _ in store.leaves()] == list(range(size))
        assert verify_store(store, forum.trust_root).problems == ()


def test_a_grown_copy_stages_large_steps_and_holds_the_same_view(
    forum: LocalForum, tmp_path: Path
) -> None:
    """A copy larger than its page cache: steps grow with it (2 staged rows per page of the
    copy), their signal rows are staged in SQLite and merged in key order; the view is the
    one a copy with a large cache holds, and the audit's recomputation agrees."""
    _fill(forum, entries=30, per_entry=1000)
    with forum.client("alice") as alice:  # a retraction mid-log: a lookup inside a step
        first = random.Random(4).randbytes(32).hex()  # the first signal _fill submitted
        alice.retract([SignalRef("sha256", first)], forum.members["alice"].signing_key, "x")
    _fill(forum, entries=10, per_entry=1000, seed=5)
    seen: list[tuple[bool, int, int]] = []
    small = tmp_path / "small.db"
    with forum.client("carol") as carol, LocalStore(small, cache_mib=1) as store:
        config = SyncConfig(commit_every_rows=2000)
        syncer = Syncer(GrpcSource(carol.stub, 60), store, forum.trust_root, config, reader="carol")

        def watch(_: object) -> None:
            txn = syncer.txn
            if txn is not None:
                seen.append((txn.grown, txn.spilled, txn.copy_pages))

        syncer.progress = watch
        syncer.sync()
        assert verify_store(store, forum.trust_root).problems == ()
        small_view = _view_rows(store)
    assert any(grown and spilled for grown, spilled, _ in seen)  # the staged path ran
    # and its steps outgrew commit_every
    assert max(pages for *_, pages in seen) * config.rows_per_copy_page > 2000
    with forum.client("carol") as carol, LocalStore(tmp_path / "large.db") as store:
        carol.sync(store)
        assert _view_rows(store) == small_view


def _view_rows(store: LocalStore) -> list[object]:
    con = store.con
    return [
        list(con.execute(f"SELECT * FROM {table} ORDER BY {order}"))
        for table, order in [
            ("signals", "type, value"),
            ("descriptors", "type, value, member_id"),
            ("retractions", "entry_index, position"),
            ("entries", "idx"),
        ]
    ]


def test_follow_applies_new_entries_within_a_second(forum: LocalForum, tmp_path: Path) -> None:
    db = tmp_path / "follow.db"
    with forum.client("carol") as carol, LocalStore(db) as store:
        syncer = Syncer(
            GrpcSource(carol.stub, 30),
            store,
            carol.trust_root,
            SyncConfig(backoff_initial_seconds=0.05),
            reader="carol",
        )
        commits: list[int] = []
        thread = threading.Thread(target=syncer.follow, args=(lambda r: commits.append(r.size),))
        thread.start()
        try:
            # Bounds for a loaded machine: latency is measured by scripts/bench_follow.py.
            deadline = time.monotonic() + 60
            while not commits:
                assert time.monotonic() < deadline, "follow mode did not catch up"
                time.sleep(0.01)
            with LocalStore(db) as reader:
                for n in range(3):
                    value = f"{n:032x}"
                    _submit(forum, "bob", [SignalItem("md5", value, (PUB,))])
                    t0 = time.monotonic()
                    while reader.lookup("md5", value) is None:
                        assert time.monotonic() - t0 < 60, "follow mode did not apply it"
                        time.sleep(0.01)
        finally:
            syncer.stop()
            thread.join(60)
        assert not thread.is_alive()
        assert store.size == _server_root(forum)[0]


def test_verify_catches_a_tampered_row(forum: LocalForum, tmp_path: Path) -> None:
    _submit(forum, "alice", [SignalItem("md5", MD5, (PUB,)), SignalItem("sha256", SHA, (PUB,))])
    db = tmp_path / "t.db"
    profile = str(forum.members["carol"].bundle_path)
    ok = subprocess.run(
        _cli("--profile", profile, "sync", "--db", str(db), "--json"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    clean = subprocess.run(_cli("verify", "--db", str(db)), capture_output=True, text=True)
    assert clean.returncode == 0 and "ok:" in clean.stdout
    with sqlite3.connect(db) as con:
        con.execute("UPDATE descriptors SET labels = '[\"entity:isil\"]' WHERE type = 'md5'")
        con.execute("UPDATE signals SET status = 'retracted' WHERE type = 'sha256'")
    bad = subprocess.run(_cli("verify", "--db", str(db)), capture_output=True, text=True)
    assert bad.returncode == 5
    assert "descriptors: row ('md5'" in bad.stdout and "entity:isil" in bad.stdout
    assert "signals: row ('sha256'" in bad.stdout
    with sqlite3.connect(db) as con:  # a tampered entry breaks the signature replay
        con.execute(
            "UPDATE entries SET leaf = substr(leaf, 1, length(leaf) - 1) || "
            "CASE WHEN substr(leaf, -1) = x'00' THEN x'01' ELSE x'00' END "  # always a change
            "WHERE idx = (SELECT MAX(idx) FROM entries)"
        )
    worse = subprocess.run(
        _cli("verify", "--db", str(db), "--json"), capture_output=True, text=True
    )
    assert worse.returncode == 5 and "does not verify" in worse.stdout


def test_sync_help_texts() -> None:
    for command in ("sync", "verify", "security-report"):
        out = subprocess.run(_cli(command, "--help"), capture_output=True, text=True)
        assert out.returncode == 0 and "--db" in out.stdout


def test_opinion_kinds_are_stored_by_name(forum: LocalForum, tmp_path: Path) -> None:
    _submit(forum, "alice", [SignalItem("md5", MD5, (PUB,))])
    with forum.client("bob") as bob:
        bob.opine(SignalRef("md5", MD5), OpinionKind.SEEN, forum.members["bob"].signing_key)
        bob.opine(SignalRef("md5", MD5), "disagree", forum.members["bob"].signing_key)
    with forum.client("carol") as carol, LocalStore(tmp_path / "o.db") as store:
        carol.sync(store)
        assert store.opinions("md5", MD5) == [("bob", "disagree", "")]
        signal_ = store.lookup("md5", MD5)
        assert signal_ is not None and signal_.rollup.verdict == "negative"


def test_the_pdq_journal_starts_with_the_first_match_and_the_audit_holds_it(
    forum: LocalForum, tmp_path: Path
) -> None:
    """A synced copy carries no PDQ journal until an index follows it; from then on the sync
    journals every PDQ change, the index catches up from it without a rebuild, and the offline
    audit recomputes exactly that journal (a row taken out of it is reported)."""
    pdq = ["%064x" % (0x1234567 * (i + 1) ** 7) for i in range(4)]
    _submit(forum, "alice", [SignalItem("pdq", pdq[0], (PUB,)), SignalItem("pdq", pdq[1], (PUB,))])
    db = tmp_path / "carol.db"
    with forum.client("carol") as carol, LocalStore(db) as store:
        carol.sync(store)
        assert store.con.execute("SELECT COUNT(*) FROM pdq_changes").fetchone() == (0,)
        assert [r.value for r in store.match("pdq", pdq[1], threshold=0)] == [pdq[1]]
        start = store.size
        assert store.con.execute("SELECT * FROM journal_from").fetchall() == [("pdq", start)]
        _submit(
            forum, "bob", [SignalItem("pdq", pdq[2], (PUB,)), SignalItem("pdq", pdq[3], (PUB,))]
        )
        with forum.client("alice") as alice:
            alice.retract([SignalRef("pdq", pdq[0])], forum.members["alice"].signing_key, "x")
        carol.sync(store)
        journal = store.con.execute("SELECT * FROM pdq_changes ORDER BY 1, 2").fetchall()
        assert journal == [(start, pdq[2]), (start, pdq[3]), (start + 1, pdq[0])]
        assert verify_store(store, forum.trust_root).problems == ()
    with LocalStore(db) as store:
        matcher = store.matcher()
        assert [r.value for r in store.match("pdq", pdq[3], threshold=0)] == [pdq[3]]
        assert store.match("pdq", pdq[0], threshold=0) == []
        assert not matcher.rebuilt  # caught up from the journal
        store.con.execute("DELETE FROM pdq_changes WHERE value = ?", (pdq[2],))
        problems = verify_store(store, forum.trust_root).problems
        assert len(problems) == 1 and problems[0].startswith("pdq_changes: row (")
        assert problems[0].endswith(" missing") and repr(pdq[2]) in problems[0]
