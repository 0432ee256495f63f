"""Sharing groups, TLP and redacted leaves, end to end (real server on port 0, real mTLS,
the real SDK): alice and bob in group ``g``, carol not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from forum_client import merkle
from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client.entries import SignalItem, SignalRef
from forum_client.errors import TransportError
from forum_client.gossip import compare_with_store
from forum_client.store import LocalStore, verify_store
from forum_client.wire import envelope_from_pb
from forum_server.testing import LocalForum, local_forum

pytestmark = pytest.mark.integration

PUB = "behaviour:terrorist-publication"
RED_PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
LATER_PDQ = "0f0f0f31e0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
OPEN_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


@pytest.fixture
def forum(tmp_path: Path) -> Iterator[LocalForum]:
    with local_forum(tmp_path, members=["alice", "bob", "carol", "dave"], observers=()) as f:
        with f.operator() as op:
            op.create_group("g", "Crisis cell", "worked in a small circle first")
            op.set_group_member("g", "alice", member=True)
            op.set_group_member("g", "bob", member=True)
        yield f


def _share(forum: LocalForum, member: str, value: str, group: str = "g", tlp: str = "red") -> int:
    with forum.client(member) as c:
        item = SignalItem("pdq", value, (PUB,), "image", 90)
        return c.submit([item], forum.members[member].signing_key, group=group, tlp=tlp).index


def _sync(forum: LocalForum, member: str, db: Path) -> tuple[int, bytes]:
    with forum.client(member) as c, LocalStore(db) as store:
        result = c.sync(store)
        return result.size, result.root


def _copy_bytes(db: Path) -> bytes:
    """Every byte the local copy keeps on disk: the database, its WAL, the PDQ index."""
    return b"".join(p.read_bytes() for p in sorted(db.parent.glob(db.name + "*")))


def _body_of(forum: LocalForum, index: int) -> tuple[bytes, bytes]:
    """(body, signature) of the entry at ``index``, as the server stores it."""
    from forum_client.envelope import Envelope

    store = forum.running.handle.sequencer.store
    leaf = next(iter(store.leaves(index, index + 1)))
    env = Envelope.from_leaf_bytes(leaf.leaf_bytes)
    return env.body, env.signature


def test_red_pdq_shared_with_a_group(forum: LocalForum, tmp_path: Path) -> None:
    with forum.client("dave") as dave:
        dave.submit([SignalItem("md5", OPEN_MD5, (PUB,))], forum.members["dave"].signing_key)
    index = _share(forum, "alice", RED_PDQ)

    bob_db, carol_db = tmp_path / "bob.db", tmp_path / "carol.db"
    bob_size, bob_root = _sync(forum, "bob", bob_db)
    carol_size, carol_root = _sync(forum, "carol", carol_db)
    # the same signed log, verified by both
    assert (carol_size, carol_root) == (bob_size, bob_root)

    with LocalStore(bob_db) as bob:
        found = bob.match("pdq", RED_PDQ)
        assert [(r.value, r.distance) for r in found] == [(RED_PDQ, 0)]
        d = found[0].descriptors[0]
        assert (d.member_id, d.scope, d.tlp) == ("alice", "g", "TLP:RED")
        assert bob.redacted() == []

    with LocalStore(carol_db) as carol:
        assert carol.match("pdq", RED_PDQ) == []
        assert carol.lookup("pdq", RED_PDQ) is None
        assert carol.match("md5", OPEN_MD5)  # forum-wide signals still match
        leaf_hash = forum.running.handle.sequencer.tree.leaf_hash_at(index)
        assert carol.redacted() == [(index, leaf_hash, "g", "alice")]
        held = carol.con.execute("SELECT COUNT(*) FROM entries WHERE idx = ?", (index,))
        assert held.fetchone()[0] == 0
        report = verify_store(carol)
        assert report.ok and report.redacted == 1
        # comparing checkpoints recomputes the root from the copy, redacted leaves included
        with LocalStore(bob_db) as bob:
            bob_note = bob.sync_state().checkpoint_note
        assert bob_note is not None
        assert compare_with_store(carol, bob_note).how == "recomputed from the local copy"
    body, signature = _body_of(forum, index)
    on_disk = _copy_bytes(carol_db)
    for secret in (body, signature, body[-32:], RED_PDQ.encode(), RED_PDQ.upper().encode()):
        assert secret not in on_disk
    assert bytes.fromhex(RED_PDQ) not in on_disk
    assert RED_PDQ.encode() in _copy_bytes(bob_db)  # the check above can find it


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE redacted SET group_id = 'h'",
        "UPDATE redacted SET signature = zeroblob(64)",
        "UPDATE redacted SET leaf_hash = zeroblob(32)",
        "DELETE FROM redacted",
    ],
)
def test_verify_finds_a_tampered_redacted_row(
    forum: LocalForum, tmp_path: Path, tamper: str
) -> None:
    """forum-client verify re-checks each redacted row: its leaf hash in the tree and the
    author's claim for it (group, signature), as the sync did."""
    index = _share(forum, "alice", RED_PDQ)
    db = tmp_path / "carol.db"
    _sync(forum, "carol", db)
    with LocalStore(db) as carol:
        assert verify_store(carol).ok
        with carol.con:
            carol.con.execute(tamper)
        problems = verify_store(carol).problems
    assert problems
    if tamper.startswith("DELETE"):  # the last entry gone: the copy is short of its size
        assert problems[0] == f"sync_state.size: {index + 1}, but {index} entries verify"
    else:
        assert problems[0].startswith(f"entries: entry {index} does not verify")


def test_removed_member_gets_later_entries_redacted(forum: LocalForum, tmp_path: Path) -> None:
    early = _share(forum, "alice", RED_PDQ)
    bob_db = tmp_path / "bob.db"
    _sync(forum, "bob", bob_db)
    with forum.operator() as op:
        op.set_group_member("g", "bob", member=False)
    later = _share(forum, "alice", LATER_PDQ, tlp="amber+strict")
    size, root = _sync(forum, "bob", bob_db)
    assert (size, root) == _sync(forum, "carol", tmp_path / "carol.db")
    with LocalStore(bob_db) as bob:
        assert bob.match("pdq", RED_PDQ)  # what bob read stays his
        assert bob.lookup("pdq", LATER_PDQ) is None
        assert [(i, g) for i, _, g, _ in bob.redacted()] == [(later, "g")]
        assert verify_store(bob).ok
    # a fresh copy of bob's gets the same: membership at each entry's index decides
    fresh = tmp_path / "bob-fresh.db"
    _sync(forum, "bob", fresh)
    with LocalStore(fresh) as bob:
        assert bob.lookup("pdq", RED_PDQ) is not None and early < later
        assert [i for i, *_ in bob.redacted()] == [later]
    # bob can no longer share with g
    with pytest.raises(TransportError) as refused:
        _share(forum, "bob", LATER_PDQ)
    assert refused.value.code == "PERMISSION_DENIED" and "group g" in str(refused.value)


def test_a_later_member_sees_only_what_is_shared_after_it_joins(
    forum: LocalForum, tmp_path: Path
) -> None:
    before = _share(forum, "alice", RED_PDQ)
    with forum.operator() as op:
        joined = op.set_group_member("g", "dave", member=True).index
    after = _share(forum, "bob", LATER_PDQ)
    db = tmp_path / "dave.db"
    _sync(forum, "dave", db)
    with LocalStore(db) as dave:
        assert before < joined < after
        assert [i for i, *_ in dave.redacted()] == [before]
        assert dave.lookup("pdq", RED_PDQ) is None
        assert dave.match("pdq", LATER_PDQ)
    # re-sharing an earlier signal is how a group brings a newcomer in: a new entry
    _share(forum, "alice", RED_PDQ)
    _sync(forum, "dave", db)
    with LocalStore(db) as dave:
        assert dave.match("pdq", RED_PDQ)
        assert verify_store(dave).ok


def test_retractions_and_opinions_carry_the_signals_scope(
    forum: LocalForum, tmp_path: Path
) -> None:
    _share(forum, "alice", RED_PDQ)
    ref = SignalRef("pdq", RED_PDQ)
    with forum.client("bob") as bob:
        key = forum.members["bob"].signing_key
        with pytest.raises(TransportError) as unscoped:  # forum-wide it does not exist
            bob.opine(ref, "agree", key)
        assert unscoped.value.code == "INVALID_ARGUMENT"
        bob.opine(ref, "agree", key, group="g", tlp="red")
    with forum.client("alice") as alice:
        key = forum.members["alice"].signing_key
        with pytest.raises(TransportError):
            alice.retract([ref], key, "mistake")
        alice.retract([ref], key, "mistake", group="g", tlp="red")
    bob_db, carol_db = tmp_path / "bob.db", tmp_path / "carol.db"
    assert _sync(forum, "bob", bob_db) == _sync(forum, "carol", carol_db)
    with LocalStore(bob_db) as bob:
        signal = bob.lookup("pdq", RED_PDQ)
        assert signal is not None and signal.status == "retracted"
        assert signal.rollup.positive == 1
    with LocalStore(carol_db) as carol:
        assert carol.counts()["redacted"] == 3
        assert carol.counts()["opinions"] == 0 and carol.counts()["retractions"] == 0


def test_tlp_must_fit_the_scope(forum: LocalForum) -> None:
    from forum_client.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="name the group"):
        _share(forum, "alice", RED_PDQ, group="", tlp="red")
    with pytest.raises(InvalidInputError, match="TLP:AMBER"):
        _share(forum, "alice", RED_PDQ, group="g", tlp="green")
    with pytest.raises(TransportError) as closed:
        with forum.operator() as op:
            op.close_group("g", "done")
        _share(forum, "alice", RED_PDQ)
    assert closed.value.code == "PERMISSION_DENIED" and "closed" in str(closed.value)


def test_the_clis(forum: LocalForum, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """forum-admin group ..., forum-client submit/retract --group --tlp, match, verify and
    security-report on a copy with redacted rows."""
    import json

    from forum_client.cli import main as client_main
    from forum_server.admin.cli import main as admin_main

    admin = ["--profile", str(forum.operator_profile), "--server", forum.address]
    assert admin_main([*admin, "group", "create", "h", "--name", "Second cell"]) == 0
    assert admin_main([*admin, "group", "add", "h", "bob", "carol"]) == 0
    assert admin_main([*admin, "group", "remove", "h", "carol"]) == 0
    assert admin_main([*admin, "group", "add", "h", "nobody"]) != 0
    capsys.readouterr()
    assert admin_main([*admin, "group", "show", "h", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["members"] == ["bob"]
    assert [(h["member_id"], h["member"]) for h in shown["history"]] == [
        ("bob", True),
        ("carol", True),
        ("carol", False),
    ]
    assert admin_main([*admin, "group", "list"]) == 0
    listed = capsys.readouterr().out
    assert "g " in listed and "alice, bob" in listed and "Second cell" in listed

    def member(name: str) -> list[str]:
        m = forum.members[name]
        return ["--profile", str(m.bundle_path)]

    capsys.readouterr()
    assert client_main([*member("bob"), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["groups"] == ["g", "h"]
    key = ["--key", str(forum.members["bob"].key_path)]
    sig = ["--type", "pdq", "--value", RED_PDQ, "--label", PUB]
    assert client_main([*member("bob"), "submit", *key, *sig, "--group", "h", "--tlp", "red"]) == 0
    assert client_main([*member("bob"), "submit", *key, *sig, "--tlp", "red"]) != 0
    carol_key = ["--key", str(forum.members["carol"].key_path)]
    capsys.readouterr()
    assert client_main([*member("carol"), "submit", *carol_key, *sig, "--group", "h"]) != 0
    assert "not a member of group h" in capsys.readouterr().err

    for name in ("bob", "carol"):
        db = ["--db", str(tmp_path / f"{name}.db")]
        assert client_main([*member(name), "sync", *db]) == 0
        capsys.readouterr()
        assert client_main([*member(name), "match", *db, "--type", "pdq", "--value", RED_PDQ]) == 0
        matches = json.loads(capsys.readouterr().out)["matches"]
        if name == "bob":
            assert [(d["scope"], d["tlp"]) for d in matches[0]["members"]] == [("h", "TLP:RED")]
        else:
            assert matches == []
        assert client_main([*member(name), "verify", *db]) == 0
        verified = capsys.readouterr().out
        assert ("1 redacted for you" in verified) is (name == "carol")
        assert client_main(["security-report", *db]) == 0
        report = capsys.readouterr().out
        assert ("1 entries held redacted" in report and "h (1)" in report) is (name == "carol")
    retract = ["retract", *key, "--type", "pdq", "--value", RED_PDQ, "--reason", "wrong"]
    assert client_main([*member("bob"), *retract, "--group", "h", "--tlp", "red"]) == 0


def test_the_transparency_report_is_the_same_for_insiders_outsiders_and_the_server(
    forum: LocalForum, tmp_path: Path
) -> None:
    """Entries shared with a group are counted, not read, by every report, so bob (in g),
    carol (outside, holding them redacted) and the operator compute the same bytes."""
    import datetime as dt

    from forum_client.cli import main as client_main
    from forum_server.admin.cli import main as admin_main

    with forum.client("dave") as dave:
        dave.submit([SignalItem("md5", OPEN_MD5, (PUB,))], forum.members["dave"].signing_key)
    _share(forum, "alice", RED_PDQ)
    _share(forum, "bob", LATER_PDQ)
    now = dt.datetime.now(dt.UTC)
    period = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    out: dict[str, Path] = {}
    for name in ("bob", "carol"):
        db = tmp_path / f"{name}.db"
        _sync(forum, name, db)
        out[name] = tmp_path / f"report-{name}"
        argv = ["report", "--db", str(db), "--period", period, "--no-charts"]
        assert client_main([*argv, "--out", str(out[name])]) == 0
    out["server"] = tmp_path / "report-server"
    admin = ["--profile", str(forum.operator_profile), "--server", forum.address]
    argv = ["report", "--period", period, "--no-charts", "--out", str(out["server"])]
    assert admin_main([*admin, *argv]) == 0
    docs = {k: (v / "report.json").read_bytes() for k, v in out.items()}
    assert docs["bob"] == docs["carol"] == docs["server"]
    import json

    doc = json.loads(docs["carol"])
    assert doc["entries_shared_in_groups"] == 2
    assert doc["signals"]["total"] == 1  # dave's forum-wide md5 only


@pytest.mark.parametrize("leaves", [True, False], ids=["leaves", "entry-messages"])
def test_entries_are_served_as_leaves_when_asked_and_redacted_either_way(
    forum: LocalForum, leaves: bool
) -> None:
    """``GetEntriesRequest.leaves``: each entry the caller may read comes as the leaf the
    server stores (or, not asked, as an ``Entry`` message of the same envelope); an entry
    of a group the caller is not in comes as its leaf hash and scope claim either way."""
    with forum.client("dave") as dave:
        dave.submit([SignalItem("md5", OPEN_MD5, (PUB,))], forum.members["dave"].signing_key)
    index = _share(forum, "alice", RED_PDQ)
    store = forum.running.handle.sequencer.store
    stored = [leaf.leaf_bytes for leaf in store.leaves(0, index + 1)]
    served = {}
    for member in ("bob", "carol"):
        with forum.client(member) as c:
            request = pb.GetEntriesRequest(start=0, leaves=leaves)
            served[member] = [x for b in c.stub.GetEntries(request, timeout=30) for x in b.entries]
    for member, entries in served.items():
        assert [x.index for x in entries] == list(range(index + 1)), member
        for x in entries[:index] if member == "carol" else entries:
            if leaves:
                assert x.WhichOneof("content") == "leaf" and x.leaf == stored[x.index]
            else:
                assert x.WhichOneof("content") == "entry"
                assert envelope_from_pb(x.entry).leaf_bytes() == stored[x.index]
    red = served["carol"][index]
    assert red.WhichOneof("content") == "leaf_hash"
    assert red.leaf_hash == merkle.leaf_hash(stored[index])
    assert (red.scope_claim.group_id, red.scope_claim.key_id) == (
        "g",
        forum.members["alice"].signing_key.key_id,
    )
