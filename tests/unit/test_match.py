"""forum_client.match.lookup: exact and PDQ matching over a LocalStore, and the PDQ index
following the store (persisted, caught up from the log tail, rebuilt only when needed)."""

from __future__ import annotations

import doctest
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forum_client import entries as e
from forum_client.cli import main as client_main
from forum_client.envelope import Envelope
from forum_client.errors import InvalidInputError
from forum_client.match.lookup import Matcher, index_path_for
from forum_client.store import LocalStore, matching
from forum_client.store.view import ViewWriter

ORIGIN = "test.forum/match"


def rand_pdq(rng: np.random.Generator) -> bytes:
    return rng.integers(0, 256, 32, dtype=np.uint8).tobytes()


def flip(h: bytes, n: int, start: int = 0) -> bytes:
    """``h`` with bits start..start+n-1 flipped (distance exactly n)."""
    bits = np.unpackbits(np.frombuffer(h, np.uint8))
    bits[start : start + n] ^= 1
    return np.packbits(bits).tobytes()


class FakeLog:
    """Writes a store the way the sync does (entries + view rows + size), without a server:
    bodies are real, signatures are dummies (the matcher trusts what the store holds)."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.size = store.size
        self.seq = 0

    def _header(self, member: str) -> e.Header:
        self.seq += 1
        return e.Header(ORIGIN, member, b"k" * 32, self.seq, 0)

    def _append(self, body: e.Body, apply: bool = True) -> None:
        env = Envelope(e.payload_type_of(body), e.encode(body), b"k" * 32, b"s" * 64)
        with self.store.write() as con:
            view = ViewWriter(con)
            view.add_entry(self.size, env.leaf_bytes())
            if apply:
                view.apply(self.size, body, None)  # type: ignore[arg-type]
            view.flush()
            self.size += 1
            con.execute(
                "INSERT OR REPLACE INTO sync_state VALUES (1, ?, x'', x'', x'', '{}', 0)",
                (self.size,),
            )

    def genesis(self) -> None:
        self._append(e.Incident(self._header("operator"), "x", "t", True), apply=False)

    def submit(
        self,
        member: str,
        values: list[tuple[str, str]],
        labels: tuple[str, ...] = ("behaviour:terrorist-publication",),
        content_type: str = "image",
    ) -> None:
        items = tuple(e.SignalItem(t, v, labels, content_type, 90) for t, v in values)
        self._append(e.Submission(self._header(member), items, "scope-a"))

    def retract(self, member: str, values: list[tuple[str, str]]) -> None:
        """A member's retraction of its own descriptors (the store's semantics)."""
        body = e.Retraction(
            self._header(member), tuple(e.SignalRef(t, v) for t, v in values), "mistake"
        )
        env = Envelope(e.payload_type_of(body), e.encode(body), b"k" * 32, b"s" * 64)
        refs = [(t, v) for t, v in values]
        with self.store.write() as con:
            con.execute("INSERT INTO entries VALUES (?, ?)", (self.size, env.leaf_bytes()))
            con.executemany(
                "UPDATE descriptors SET active = 0 WHERE type = ? AND value = ? AND member_id = ?",
                [(t, v, member) for t, v in refs],
            )
            con.executemany(
                "UPDATE signals SET status = CASE WHEN EXISTS (SELECT 1 FROM descriptors d "
                "WHERE d.type = signals.type AND d.value = signals.value AND d.active = 1) "
                "THEN 'active' ELSE 'retracted' END WHERE type = ? AND value = ?",
                refs,
            )
            for t, table in (("pdq", "pdq_changes"), ("vpdq", "vpdq_changes")):
                con.executemany(  # the journals ViewWriter keeps for the PDQ and video indexes
                    f"INSERT INTO {table} VALUES (?, ?)",
                    [(self.size, v) for u, v in refs if u == t],
                )
            self.size += 1
            con.execute("UPDATE sync_state SET size = ?", (self.size,))

    def benign(
        self, add: Sequence[tuple[str, str]] = (), remove: Sequence[tuple[str, str]] = ()
    ) -> None:
        def refs(xs: Sequence[tuple[str, str]]) -> tuple[e.SignalRef, ...]:
            return tuple(e.SignalRef(t, v) for t, v in xs)

        self._append(e.BenignList(self._header("operator"), refs(add), refs(remove)))

    def opine(self, member: str, t: str, v: str, kind: e.OpinionKind) -> None:
        self._append(e.Opinion(self._header(member), e.SignalRef(t, v), kind))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "copy.db") as s:
        yield s


@pytest.fixture
def log(store: LocalStore) -> FakeLog:
    fake = FakeLog(store)
    fake.genesis()
    return fake


def test_module_example_runs() -> None:
    result = doctest.testmod(matching)
    assert result.attempted > 0 and result.failed == 0


def test_default_threshold_boundary_31_matches_32_does_not(store: LocalStore, log: FakeLog) -> None:
    rng = np.random.default_rng(1)
    base = rand_pdq(rng)
    log.submit("alice", [("pdq", base.hex())])
    assert [r.distance for r in store.match("pdq", flip(base, 31).hex())] == [31]
    assert store.match("pdq", flip(base, 32).hex()) == []
    assert [r.distance for r in store.match("pdq", flip(base, 32).hex(), threshold=32)] == [32]
    assert store.match("pdq", flip(base, 5).hex(), threshold=4) == []
    assert [r.value for r in store.match("pdq", base.hex(), threshold=0)] == [base.hex()]


def test_hex_in_any_case_and_exact_types(store: LocalStore, log: FakeLog) -> None:
    rng = np.random.default_rng(2)
    pdq = rand_pdq(rng).hex()
    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    log.submit("alice", [("pdq", pdq), ("md5", md5), ("url", "http://example.com/a")])
    assert [r.value for r in store.match("pdq", " " + pdq.upper() + " ")] == [pdq]
    assert [r.value for r in store.match("md5", md5.upper())] == [md5]
    assert [r.distance for r in store.match("md5", md5)] == [0]
    assert [r.value for r in store.match("url", "HTTP://EXAMPLE.com:80/a")] == [
        "http://example.com/a"
    ]
    assert store.match("md5", "0" * 32) == []
    with pytest.raises(InvalidInputError):
        store.match("md5", "xyz")
    with pytest.raises(InvalidInputError):
        store.match("nosuchtype", "abc")
    with pytest.raises(InvalidInputError):
        store.match("pdq", pdq, threshold=-1)


def test_results_carry_members_labels_rollup_and_incidents(store: LocalStore, log: FakeLog) -> None:
    pdq = rand_pdq(np.random.default_rng(3)).hex()
    log.submit("alice", [("pdq", pdq)], labels=("behaviour:terrorist-publication", "incident:x"))
    log.submit("bob", [("pdq", pdq)], labels=("entity:isil",), content_type="video")
    log.opine("bob", "pdq", pdq, e.OpinionKind.AGREE)
    log.opine("carol", "pdq", pdq, e.OpinionKind.FALSE_POSITIVE)
    [result] = store.match("pdq", pdq)
    assert [(d.member_id, d.labels, d.content_type) for d in result.descriptors] == [
        ("alice", ("behaviour:terrorist-publication", "incident:x"), "image"),
        ("bob", ("entity:isil",), "video"),
    ]
    assert result.incidents == ("incident:x",)
    assert (result.rollup.positive, result.rollup.negative, result.rollup.verdict) == (
        1,
        1,
        "disputed",
    )
    doc = result.to_json()
    assert doc["rollup"]["verdict"] == "disputed"
    assert doc["incidents"] == ["incident:x"]
    assert [m["member_id"] for m in doc["members"]] == ["alice", "bob"]
    json.dumps(doc)  # JSON-ready

    # A member that retracts its own descriptor drops out; the signal still matches.
    log.retract("bob", [("pdq", pdq)])
    [result] = store.match("pdq", pdq)
    assert [d.member_id for d in result.descriptors] == ["alice"]


def test_retracted_and_benign_signals_never_match(store: LocalStore, log: FakeLog) -> None:
    rng = np.random.default_rng(4)
    a, b = rand_pdq(rng), rand_pdq(rng)
    md5 = "0123456789abcdef0123456789abcdef"
    log.submit("alice", [("pdq", a.hex()), ("pdq", b.hex()), ("md5", md5)])
    matcher = Matcher(store)
    assert len(matcher.match("pdq", flip(a, 3).hex())) == 1
    assert len(matcher.match("md5", md5)) == 1

    log.retract("alice", [("pdq", a.hex()), ("md5", md5)])
    assert matcher.match("pdq", flip(a, 3).hex()) == []
    assert matcher.match("pdq", a.hex(), threshold=0) == []
    assert matcher.match("md5", md5) == []
    assert a not in {matcher.index.hash_of(i) for i, _ in matcher.index.query(a)}

    log.benign(add=[("pdq", b.hex())])
    assert matcher.match("pdq", b.hex()) == []
    assert len(matcher.index) == 0
    log.benign(remove=[("pdq", b.hex())])
    assert [r.value for r in matcher.match("pdq", flip(b, 7).hex())] == [b.hex()]

    # Re-submitted after its retraction: it matches again.
    log.submit("bob", [("pdq", a.hex())])
    assert [r.value for r in matcher.match("pdq", a.hex())] == [a.hex()]
    # Benign exact hashes never match either.
    log.submit("bob", [("md5", md5)])
    assert len(matcher.match("md5", md5)) == 1
    log.benign(add=[("md5", md5)])
    assert matcher.match("md5", md5) == []


def test_index_is_saved_loaded_and_caught_up_without_a_rebuild(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    hashes = [rand_pdq(rng) for _ in range(50)]
    with LocalStore(tmp_path / "c.db") as store:
        log = FakeLog(store)
        log.genesis()
        log.submit("alice", [("pdq", h.hex()) for h in hashes[:40]])
        with Matcher(store) as m:
            assert len(m.index) == 40 and m.rebuilt
        assert index_path_for(store.path).is_file()
        log.submit("bob", [("pdq", h.hex()) for h in hashes[40:]])
        log.retract("alice", [("pdq", hashes[0].hex())])
        log.benign(add=[("pdq", hashes[1].hex())])

    with LocalStore(tmp_path / "c.db") as store, Matcher(store) as m:
        index = m.index
        assert not m.rebuilt, "a saved index is loaded and caught up, not rebuilt"
        assert m.size == store.size
        assert len(index) == 48
        assert m.match("pdq", hashes[45].hex())[0].value == hashes[45].hex()
        assert m.match("pdq", hashes[0].hex()) == []
        assert m.match("pdq", hashes[1].hex()) == []

    # A corrupt file is rebuilt from the store.
    path = index_path_for(tmp_path / "c.db")
    path.write_bytes(b"garbage")
    with LocalStore(tmp_path / "c.db") as store, Matcher(store) as m:
        assert len(m.index) == 48 and m.rebuilt


def _journal(store: LocalStore) -> list[tuple[int, str]]:
    return [(int(i), v) for i, v in store.con.execute("SELECT * FROM pdq_changes ORDER BY 1, 2")]


def test_the_journal_starts_when_the_first_index_opens(tmp_path: Path) -> None:
    """A copy nobody matches against carries no journal; the first index records where the
    journal starts, and from there every change the sync applies is journaled."""
    rng = np.random.default_rng(8)
    hashes = [rand_pdq(rng).hex() for _ in range(6)]
    with LocalStore(tmp_path / "c.db") as store:
        log = FakeLog(store)
        log.genesis()
        log.submit("alice", [("pdq", h) for h in hashes[:3]])
        assert _journal(store) == []
        assert store.con.execute("SELECT * FROM journal_from").fetchall() == []
        with Matcher(store) as m:
            assert len(m.index) == 3 and m.rebuilt
        assert store.con.execute("SELECT * FROM journal_from").fetchall() == [("pdq", 2)]
        assert store.follow_journal("pdq") == 2  # kept, not moved
        log.submit("bob", [("pdq", h) for h in hashes[3:]])
        log.benign(add=[("pdq", hashes[0])])
        assert _journal(store) == sorted([(2, h) for h in hashes[3:]] + [(3, hashes[0])])
    with LocalStore(tmp_path / "c.db") as store, Matcher(store) as m:
        assert len(m.index) == 5 and not m.rebuilt


def test_an_index_older_than_the_journal_is_rebuilt(tmp_path: Path) -> None:
    """Entries applied while no journal was kept (here: the journal's start moved past a
    saved index) are not in the journal: catching up from it would miss them, so the index
    is rebuilt instead."""
    rng = np.random.default_rng(9)
    a, b = rand_pdq(rng).hex(), rand_pdq(rng).hex()
    with LocalStore(tmp_path / "c.db") as store:
        log = FakeLog(store)
        log.genesis()
        log.submit("alice", [("pdq", a)])
        with Matcher(store) as m:
            m.refresh()
        store.con.execute("DELETE FROM journal_from")  # journaling stops...
        log.submit("bob", [("pdq", b)])  # ...so this entry is not journaled
        assert _journal(store) == []
    with LocalStore(tmp_path / "c.db") as store, Matcher(store) as m:
        assert [r.value for r in m.match("pdq", b, threshold=0)] == [b]
        assert m.rebuilt
        assert store.follow_journal("pdq") == 3


def test_an_index_opened_while_a_sync_writes_is_rebuilt_once_it_commits(tmp_path: Path) -> None:
    """The first index over a copy cannot start the journal while a sync holds the write
    lock (past the busy timeout): it is built without one, and rebuilt when the copy grew."""
    rng = np.random.default_rng(10)
    a, b = rand_pdq(rng).hex(), rand_pdq(rng).hex()
    db = tmp_path / "c.db"
    with LocalStore(db) as writer, LocalStore(db, busy_timeout_seconds=0.05) as reader:
        log = FakeLog(writer)
        log.genesis()
        log.submit("alice", [("pdq", a)])
        writer.con.execute("BEGIN IMMEDIATE")  # a sync step in progress
        m = Matcher(reader)
        assert len(m.index) == 1 and m.rebuilt
        assert reader.con.execute("SELECT * FROM journal_from").fetchall() == []
        writer.con.execute("ROLLBACK")
        log.submit("bob", [("pdq", b)])  # not journaled: no index had started the journal
        # the copy grew and there is no journal to catch up from: rebuilt, so b is found
        assert [r.value for r in m.match("pdq", b, threshold=0)] == [b]
        m.close()  # and the rebuild started the journal, at the size it was built at
        assert reader.con.execute("SELECT * FROM journal_from").fetchall() == [("pdq", 3)]


def test_a_large_tail_is_caught_up_by_a_rebuild(tmp_path: Path) -> None:
    """A tail touching at least REBUILD_MIN values and a sixth of the index is rebuilt (a
    build costs a hash far less than adding it alone); a smaller one is applied."""
    rng = np.random.default_rng(11)
    hashes = [rand_pdq(rng).hex() for _ in range(matching._PdqIndex.REBUILD_MIN + 200)]
    small, large = hashes[:100], hashes[100:]
    with LocalStore(tmp_path / "c.db") as store:
        log = FakeLog(store)
        log.genesis()
        log.submit("alice", [("pdq", h) for h in small[:50]])
        with Matcher(store) as m:
            m.refresh()
        log.submit("alice", [("pdq", h) for h in small[50:]])
        with Matcher(store) as m:
            assert len(m.index) == 100 and not m.rebuilt
        log.submit("bob", [("pdq", h) for h in large])
        log.retract("alice", [("pdq", small[0])])
        with Matcher(store) as m:
            assert len(m.index) == len(hashes) - 1 and m.rebuilt and m.size == store.size
            assert m.match("pdq", small[0], threshold=0) == []
            assert [r.value for r in m.match("pdq", large[-1], threshold=0)] == [large[-1]]


def test_an_index_of_another_copy_is_not_trusted(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    a, b = rand_pdq(rng), rand_pdq(rng)
    with LocalStore(tmp_path / "one.db") as store:
        log = FakeLog(store)
        log.genesis()
        log.submit("alice", [("pdq", a.hex())])
        with Matcher(store) as m:
            m.refresh()
    with LocalStore(tmp_path / "two.db") as store:
        log = FakeLog(store)
        log.genesis()
        log.submit("bob", [("pdq", b.hex())])
    # Copy one's index next to copy two (same size, different log).
    index_path_for(tmp_path / "two.db").write_bytes(
        index_path_for(tmp_path / "one.db").read_bytes()
    )
    with LocalStore(tmp_path / "two.db") as store, Matcher(store) as m:
        assert [r.value for r in m.match("pdq", b.hex())] == [b.hex()]
        assert m.match("pdq", a.hex()) == []
        assert m.rebuilt


def test_prefix_collisions_get_distinct_ids(store: LocalStore, log: FakeLog) -> None:
    rng = np.random.default_rng(7)
    base = rand_pdq(rng)
    same_prefix = [base[:8] + rand_pdq(rng)[8:] for _ in range(4)]
    log.submit("alice", [("pdq", h.hex()) for h in [base, *same_prefix[:2]]])
    m = Matcher(store)
    for h in [base, *same_prefix[:2]]:
        assert [r.value for r in m.match("pdq", h.hex(), threshold=0)] == [h.hex()]
    log.submit("bob", [("pdq", same_prefix[2].hex())])
    log.retract("alice", [("pdq", base.hex())])
    log.submit("bob", [("pdq", same_prefix[3].hex())])
    assert m.match("pdq", base.hex(), threshold=0) == []
    for h in same_prefix:
        assert [r.value for r in m.match("pdq", h.hex(), threshold=0)] == [h.hex()]
    m.close()
    m2 = Matcher(store)  # the overflow table survives a save and load
    for h in same_prefix:
        assert [r.value for r in m2.match("pdq", h.hex(), threshold=0)] == [h.hex()]
    assert not m2.rebuilt


def test_cli_match_single_and_bulk(
    store: LocalStore, log: FakeLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(8)
    pdq = rand_pdq(rng)
    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    log.submit("alice", [("pdq", pdq.hex()), ("md5", md5)])
    db = str(store.path)
    assert (
        client_main(["match", "--db", db, "--type", "pdq", "--value", flip(pdq, 10).hex().upper()])
        == 0
    )
    [doc] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(m["value"], m["distance"]) for m in doc["matches"]] == [(pdq.hex(), 10)]

    csv_in = tmp_path / "q.csv"
    csv_in.write_text(f"type,value\npdq,{flip(pdq, 40).hex()}\nmd5,{md5.upper()}\nmd5,zz\n")
    assert client_main(["match", "--db", db, "--input", str(csv_in), "--threshold", "40"]) == 2
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [len(x.get("matches", [])) for x in lines] == [1, 1, 0]
    assert lines[0]["matches"][0]["distance"] == 40
    assert "error" in lines[2] and lines[2]["line"].endswith("q.csv:4")

    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text(json.dumps({"type": "md5", "value": md5}) + "\n\n")
    assert client_main(["match", "--db", db, "--input", str(jsonl)]) == 0
    [doc] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert doc["matches"][0]["members"][0]["member_id"] == "alice"

    assert (
        client_main(["match", "--db", str(tmp_path / "none.db"), "--type", "md5", "--value", md5])
        == 2
    )
    assert client_main(["match", "--db", db]) == 2


ops = st.lists(
    st.tuples(
        st.sampled_from(["submit", "retract", "benign+", "benign-", "reopen", "drop-file"]),
        st.lists(st.integers(0, 23), min_size=1, max_size=6, unique=True),
        st.sampled_from(["alice", "bob"]),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops)
def test_store_following_index_equals_a_brute_force_scan(
    tmp_path: Path, steps: list[tuple[str, list[int], str]]
) -> None:
    """Through random submissions, retractions, benign-list changes, reopenings and lost
    index files, every match equals a brute-force scan of the store's view."""
    rng = np.random.default_rng(9)
    base = [rand_pdq(rng) for _ in range(8)]
    # Near neighbours and prefix collisions among the 24 values.
    pool = base + [flip(h, 20, 100) for h in base] + [h[:8] + rand_pdq(rng)[8:] for h in base]
    db = tmp_path / f"h{rng.integers(1 << 30)}.db"
    store = LocalStore(db)
    log = FakeLog(store)
    log.genesis()
    matcher = Matcher(store, save_lag_entries=3)
    try:
        for op, which, member in steps:
            refs = [("pdq", pool[i].hex()) for i in which]
            if op == "submit":
                log.submit(member, refs)
            elif op == "retract":
                log.retract(member, refs)
            elif op == "benign+":
                log.benign(add=refs)
            elif op == "benign-":
                log.benign(remove=refs)
            elif op == "reopen":
                matcher.close()
                matcher = Matcher(store, save_lag_entries=3)
            else:
                index_path_for(db).unlink(missing_ok=True)
                matcher = Matcher(store, save_lag_entries=3)
            expected_set = _brute_force_active(store.con)
            for q in [pool[which[0]], flip(pool[which[0]], 25, 3)]:
                got = [(r.value, r.distance) for r in matcher.match("pdq", q.hex())]
                want = sorted(
                    ((v, _dist(q, bytes.fromhex(v))) for v in expected_set),
                    key=lambda x: (x[1], x[0]),
                )
                want = [x for x in want if x[1] <= 31]
                assert sorted(got, key=lambda x: (x[1], x[0])) == want
            assert len(matcher.index) == len(expected_set)
    finally:
        matcher.close()
        store.close()


def _brute_force_active(con: sqlite3.Connection) -> set[str]:
    return {
        v
        for (v,) in con.execute(
            "SELECT value FROM signals s WHERE type = 'pdq' AND EXISTS (SELECT 1 FROM "
            "descriptors d WHERE d.type = s.type AND d.value = s.value AND d.active = 1) "
            "AND NOT EXISTS (SELECT 1 FROM benign b WHERE b.type = 'pdq' AND b.value = s.value)"
        )
    }


def _dist(a: bytes, b: bytes) -> int:
    return int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())
