"""Issue 5 end to end: a real forum (port 0, mTLS), real submissions, retractions and benign
lists, a verified sync into a LocalStore, and matching that follows the sync."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from forum_client.cli import main as client_main
from forum_client.match.lookup import Matcher, MatchResult, index_path_for
from forum_client.source import GrpcSource
from forum_client.store import LocalStore
from forum_client.sync import Syncer
from forum_server.admin.cli import main as admin_main
from forum_server.testing import LocalForum, local_forum

pytestmark = pytest.mark.integration

PUB = "behaviour:terrorist-publication"


def pdq(seed: int) -> str:
    return np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8).tobytes().hex()


def near(value: str, bits: int) -> str:
    b = np.unpackbits(np.frombuffer(bytes.fromhex(value), np.uint8))
    b[:bits] ^= 1
    return np.packbits(b).tobytes().hex()


@pytest.fixture(scope="module")
def forum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalForum]:
    with local_forum(tmp_path_factory.mktemp("forum"), members=["alice", "bob"]) as f:
        yield f


def submit(forum: LocalForum, member: str, values: list[tuple[str, str]], *labels: str) -> None:
    with forum.client(member) as client:
        client.submit(
            [{"type": t, "value": v, "labels": labels or (PUB,)} for t, v in values],
            forum.members[member].signing_key,
        )


def sync(forum: LocalForum, db: Path) -> None:
    with forum.client("carol") as client, LocalStore(db) as store:
        client.sync(store)


def wait_for(check: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def values(results: list[MatchResult]) -> list[str]:
    return [r.value for r in results]


def test_match_follows_sync_retractions_and_the_benign_list(
    forum: LocalForum, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c, d = pdq(1), pdq(2), pdq(3), pdq(4)
    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    with forum.operator() as op:
        op.set_incident("flood-1", open=True, title="a test incident")
    submit(forum, "alice", [("pdq", a.upper()), ("pdq", b), ("md5", md5.upper())])
    submit(forum, "bob", [("pdq", c)], PUB, "incident:flood-1")
    db = tmp_path / "copy.db"
    sync(forum, db)

    reader = LocalStore(db)  # another connection, as another process would have
    matcher = Matcher(reader)
    try:
        [hit] = matcher.match("pdq", near(a, 31))
        assert (hit.value, hit.distance, hit.descriptors[0].member_id) == (a, 31, "alice")
        assert hit.descriptors[0].labels == (PUB,) and hit.descriptors[0].content_type == "image"
        assert matcher.match("pdq", near(a, 32)) == []
        assert matcher.match("pdq", near(c, 4))[0].incidents == ("incident:flood-1",)
        assert values(matcher.match("md5", md5.upper())) == [md5]
        assert matcher.rebuilt  # first open: no index file yet

        # Retraction, benign list, a new signal and an opinion, then a plain sync.
        with forum.client("alice") as client:
            client.retract(
                [{"type": "pdq", "value": a}],
                forum.members["alice"].signing_key,
                "submitted by mistake",
            )
        with forum.client("bob") as client:
            client.opine({"type": "pdq", "value": c}, "agree", forum.members["bob"].signing_key)
        with forum.operator() as op:
            op.publish_benign(add=[{"type": "pdq", "value": b}])
        submit(forum, "bob", [("pdq", d)])
        sync(forum, db)
        assert matcher.match("pdq", a) == []
        assert matcher.match("pdq", near(b, 3)) == []
        assert values(matcher.match("pdq", near(d, 10))) == [d]
        assert matcher.match("pdq", c)[0].rollup.verdict == "positive"
        assert len(matcher.index) == 2  # c and d: a retracted, b benign
    finally:
        matcher.close()
        reader.close()

    # A new matcher loads the saved index and catches up: no rebuild.
    assert index_path_for(db).is_file()
    with forum.operator() as op:
        op.publish_benign(remove=[{"type": "pdq", "value": b}])
    sync(forum, db)
    with LocalStore(db) as store, Matcher(store) as fresh:
        assert values(fresh.match("pdq", near(b, 3))) == [b]
        assert not fresh.rebuilt

    # The operator's CLI publishes benign hashes; the member's CLI matches.
    profile = str(forum.operator_profile)
    args = ["--profile", profile, "--server", forum.address, "benign", "add"]
    assert admin_main([*args, "--type", "pdq", "--value", c.upper()]) == 0
    sync(forum, db)
    capsys.readouterr()
    assert client_main(["match", "--db", str(db), "--type", "pdq", "--value", near(c, 2)]) == 0
    assert json.loads(capsys.readouterr().out)["matches"] == []
    assert client_main(["match", "--db", str(db), "--type", "pdq", "--value", near(d, 2)]) == 0
    assert [m["value"] for m in json.loads(capsys.readouterr().out)["matches"]] == [d]


def test_follow_mode_sync_and_match_see_changes_at_once(forum: LocalForum, tmp_path: Path) -> None:
    e1 = pdq(11)
    db = tmp_path / "follow.db"
    client = forum.client("carol")
    writer = LocalStore(db)
    syncer = Syncer(GrpcSource(client.stub, 30), writer, client.trust_root, reader="carol")
    syncer.sync()
    thread = threading.Thread(target=syncer.follow, daemon=True)
    thread.start()
    reader = LocalStore(db)
    matcher = Matcher(reader)
    try:
        assert matcher.match("pdq", e1) == []
        submit(forum, "bob", [("pdq", e1)])
        wait_for(lambda: values(matcher.match("pdq", near(e1, 20))) == [e1])
        with forum.client("bob") as bob:
            bob.retract([{"type": "pdq", "value": e1}], forum.members["bob"].signing_key, "gone")
        wait_for(lambda: matcher.match("pdq", e1) == [])
        assert e1 not in {
            h.hex()
            for i, _ in matcher.index.query(bytes.fromhex(e1))
            if (h := matcher.index.hash_of(i)) is not None
        }
    finally:
        syncer.stop()
        thread.join(10)
        matcher.close()
        reader.close()
        writer.close()
        client.close()
