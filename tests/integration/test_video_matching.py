"""vPDQ end to end: a real forum (port 0, mTLS); alice hashes a video and submits its vPDQ
with the CLI, bob syncs a verified copy and matches his own edited copies of the video, then
retraction and the benign list take it out of matching."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from forum_client.cli import main as client_main
from forum_client.match.lookup import Matcher, video_index_path_for
from forum_client.store import LocalStore
from forum_server.testing import LocalForum, local_forum

pytest.importorskip("av")
from tests.videos import make_video, reencode

pytestmark = pytest.mark.integration

PUB = "behaviour:terrorist-publication"


@pytest.fixture(scope="module")
def forum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalForum]:
    with local_forum(tmp_path_factory.mktemp("forum"), members=["alice", "bob"]) as f:
        yield f


def cli(forum: LocalForum, member: str, *args: str) -> int:
    m = forum.members[member]
    base = ["--profile", str(m.bundle_path), "--server", forum.address]
    return client_main([*base, *args])


def sync(forum: LocalForum, db: Path) -> None:
    with forum.client("bob") as client, LocalStore(db) as store:
        client.sync(store)


def test_a_shared_video_is_found_in_edited_copies_and_leaves_with_retraction(
    forum: LocalForum, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = make_video(tmp_path / "attack.mp4", seed=7, seconds=8)
    copies = [
        reencode(original, tmp_path / "reupload.mp4", bit_rate=150_000, size=(240, 180)),
        reencode(original, tmp_path / "clip.mp4", skip_seconds=1),
    ]
    unrelated = make_video(tmp_path / "cats.mp4", seed=8, seconds=8)

    assert client_main(["hash", str(original)]) == 0
    hashed = json.loads(capsys.readouterr().out)
    key = ["--key", str(forum.members["alice"].key_path)]
    # A malformed frame is refused before anything is signed or sent.
    with forum.client("alice") as alice:
        size = alice.checkpoint().size
        broken = json.loads(hashed["vpdq"])
        broken[3] = broken[3].replace(",", ";", 1)
        args = ["submit", *key, "--type", "vpdq", "--value", json.dumps(broken)]
        assert cli(forum, "alice", *args) == 2
        assert "vpdq frame 4: expected 'hex,quality,timestamp'" in capsys.readouterr().err
        assert alice.checkpoint().size == size
    args = ["submit", *key, "--type", "vpdq", "--value", hashed["vpdq"], "--label", PUB]
    assert cli(forum, "alice", *args, "--json") == 0
    assert json.loads(capsys.readouterr().out)["signals"] == 1

    db = tmp_path / "bob.db"
    sync(forum, db)
    with LocalStore(db) as store:
        [d] = store.descriptors("vpdq", hashed["vpdq"])
        assert (d.member_id, d.labels, d.content_type) == ("alice", (PUB,), "video")

    files = [str(p) for p in (*copies, unrelated)]
    assert client_main(["match", "--db", str(db), *files]) == 0
    reupload, clip, cats = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    for found in (reupload, clip):
        [hit] = found["matches"]
        assert (hit["query_type"], hit["value"]) == ("vpdq", hashed["vpdq"])
        assert hit["members"][0]["member_id"] == "alice"
        assert hit["query_match_percent"] >= 80 and hit["compared_match_percent"] >= 80
    assert cats["matches"] == []
    # The same through --type vpdq --value, with the shares the member asks for.
    args = ["match", "--db", str(db), "--type", "vpdq", "--value", clip["vpdq"]]
    assert client_main([*args, "--compared-match", "100"]) == 0
    assert json.loads(capsys.readouterr().out)["matches"] == []  # 7 of 8 shared frames
    assert client_main([*args, "--query-match", "101"]) == 2
    assert "--query-match" in capsys.readouterr().err

    assert video_index_path_for(db).is_file()  # the first match saved the video index

    # Retracted: matches no more.
    args = ["retract", *key, "--type", "vpdq", "--value", hashed["vpdq"], "--reason", "mistake"]
    assert cli(forum, "alice", *args) == 0
    sync(forum, db)
    capsys.readouterr()
    assert client_main(["match", "--db", str(db), str(copies[0])]) == 0
    assert json.loads(capsys.readouterr().out)["matches"] == []
    # That match loaded the saved index and caught it up from the sync's journal.
    with LocalStore(db) as store, Matcher(store) as matcher:
        assert len(matcher.video_index()) == 0 and not matcher.video_rebuilt


def test_a_benign_listed_video_never_matches(forum: LocalForum, tmp_path: Path) -> None:
    video = make_video(tmp_path / "news.mp4", seed=9, seconds=4)
    with forum.client("bob") as bob:
        from forum_client.match.video import vpdq_of_video

        value = vpdq_of_video(video).value
        bob.submit(
            [{"type": "vpdq", "value": value, "labels": [PUB]}], forum.members["bob"].signing_key
        )
    db = tmp_path / "copy.db"
    sync(forum, db)
    with LocalStore(db) as store:
        assert [r.value for r in store.match("vpdq", value)] == [value]
    with forum.operator() as op:
        op.publish_benign(add=[{"type": "vpdq", "value": value}])
    sync(forum, db)
    with LocalStore(db) as store:
        assert store.match("vpdq", value) == []
