"""Issue 15: export the verified copy to STIX 2.1 and MISP, validate with the real libraries
(stix2, stix2-validator, PyMISP), import into a second forum, export again: the same signals,
labels and values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from forum_client.cli import main as client_main
from forum_client.store import LocalStore
from forum_server.testing import LocalForum, local_forum

pytestmark = pytest.mark.integration

PUB = "behaviour:terrorist-publication"
GLORY = "behaviour:glorification-terrorist-acts"


def pdq(seed: int) -> str:
    return np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8).tobytes().hex()


A, B, C = pdq(11), pdq(12), pdq(13)
MD5_KEPT = "0" * 31 + "1"
MD5_RETRACTED = "0" * 31 + "2"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
URL = "https://straße.de/a b?q='x'"
DOMAIN = "XN--STRAE-OQA.de"
VPDQ = f'["{"ab" * 32},90,0.0", "{"cd" * 32},80,1.0"]'


def _populate(forum: LocalForum, *, retract: bool = True) -> None:
    with forum.operator() as op:
        op.set_incident("flood-1", open=True, title="a test incident")
    alice, bob = forum.members["alice"], forum.members["bob"]
    with forum.client("alice") as client:
        client.submit(
            [
                {"type": "pdq", "value": A, "labels": [PUB], "content_type": "image"},
                {"type": "md5", "value": MD5_KEPT, "labels": [PUB, GLORY]},
                {"type": "md5", "value": MD5_RETRACTED, "labels": [PUB]},
                {"type": "sha1", "value": SHA1, "labels": [GLORY]},
                {"type": "sha256", "value": SHA256, "labels": [GLORY]},
                {"type": "url", "value": URL, "labels": [PUB]},
                {"type": "domain", "value": DOMAIN, "labels": [PUB]},
                {"type": "vpdq", "value": VPDQ, "labels": [PUB], "content_type": "video"},
            ],
            alice.signing_key,
        )
        if retract:
            client.retract([{"type": "md5", "value": MD5_RETRACTED}], alice.signing_key, "mistake")
    with forum.client("bob") as client:
        client.submit(
            [
                {"type": "pdq", "value": B, "labels": [PUB, "incident:flood-1"]},
                {"type": "pdq", "value": C, "labels": [PUB]},
                {"type": "pdq", "value": A, "labels": [GLORY]},
            ],
            bob.signing_key,
        )
        client.opine({"type": "pdq", "value": A}, "agree", bob.signing_key, "seen it too")
    with forum.client("alice") as client:
        client.opine({"type": "pdq", "value": B}, "false-positive", alice.signing_key)
    with forum.operator() as op:
        op.publish_benign(add=[{"type": "pdq", "value": C}])


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalForum, Path]]:
    with local_forum(tmp_path_factory.mktemp("source")) as forum:
        _populate(forum)
        db = tmp_path_factory.mktemp("copy") / "copy.db"
        with forum.client("carol") as client, LocalStore(db) as store:
            client.sync(store)
        yield forum, db


def export(db: Path, fmt: str, out: Path, *extra: str) -> Path:
    assert client_main(["export", "--db", str(db), "--format", fmt, "-o", str(out), *extra]) == 0
    return out


def rows(db: Path, tmp_path: Path, *extra: str) -> dict[tuple[str, str], dict[str, object]]:
    path = export(db, "jsonl", tmp_path / "rows.jsonl", *extra)
    lines = path.read_text().splitlines()
    assert "provenance" in json.loads(lines[0])
    docs = [json.loads(line) for line in lines[1:]]
    return {(d["type"], d["value"]): d for d in docs}


def test_jsonl_and_csv_carry_the_metadata_and_provenance(
    source: tuple[LocalForum, Path], tmp_path: Path
) -> None:
    forum, db = source
    got = rows(db, tmp_path)
    assert ("md5", MD5_RETRACTED) not in got
    a = got[("pdq", A)]
    assert a["labels"] == [GLORY, PUB] and a["members"] == ["alice", "bob"]
    assert a["content_types"] == ["image"] and a["opinions"]["verdict"] == "positive"
    b = got[("pdq", B)]
    assert b["incidents"] == ["incident:flood-1"] and b["opinions"]["verdict"] == "negative"
    assert got[("pdq", C)]["benign"] is True
    assert ("domain", "xn--strae-oqa.de") in got
    assert ("url", "https://xn--strae-oqa.de/a%20b?q='x'") in got
    with_retracted = rows(db, tmp_path, "--include-retracted")
    assert with_retracted[("md5", MD5_RETRACTED)]["status"] == "retracted"
    # --since: only what entries at or after that index changed (the benign listing is last)
    with LocalStore(db) as store:
        size = store.size
    assert set(rows(db, tmp_path, "--since", str(size - 1))) == {("pdq", C)}
    header, *lines = export(db, "csv", tmp_path / "all.csv").read_text().splitlines()
    assert header.startswith("type,value,status,benign,labels,") and len(lines) == len(got)
    assert forum.trust_root.origin in lines[0]


def test_stix_export_is_valid_under_stix2_and_the_validator(
    source: tuple[LocalForum, Path], tmp_path: Path
) -> None:
    import stix2
    from stix2validator import ValidationOptions, validate_file

    _, db = source
    path = export(db, "stix", tmp_path / "bundle.json", "--include-retracted")
    results = validate_file(str(path), ValidationOptions(version="2.1"))
    errors = [e for obj in results.object_results for e in obj.errors]
    assert results.is_valid and errors == []
    bundle = stix2.parse(path.read_text(), allow_custom=True)
    indicators = {o.pattern: o for o in bundle.objects if o.type == "indicator"}
    assert indicators[f"[file:hashes.PDQ = '{A}']"].labels == [GLORY, PUB]
    assert indicators[f"[file:hashes.'SHA-1' = '{SHA1}']"].indicator_types == ["malicious-activity"]
    assert indicators[f"[file:hashes.PDQ = '{C}']"].indicator_types == ["benign"]
    assert indicators[f"[file:hashes.MD5 = '{MD5_RETRACTED}']"].revoked is True
    assert "[url:value = 'https://xn--strae-oqa.de/a%20b?q=\\'x\\'']" in indicators
    assert "[domain-name:value = 'xn--strae-oqa.de']" in indicators
    assert f"[file:hashes.VPDQ = '{VPDQ}']" in indicators
    identities = {o.id: o.name for o in bundle.objects if o.type == "identity"}
    assert identities[indicators[f"[file:hashes.PDQ = '{B}']"].created_by_ref] == "bob"
    opinions = [o for o in bundle.objects if o.type == "opinion"]
    assert sorted((identities[o.created_by_ref], o.opinion) for o in opinions) == [
        ("alice", "strongly-disagree"),
        ("bob", "agree"),
    ]


def test_misp_export_loads_in_pymisp(source: tuple[LocalForum, Path], tmp_path: Path) -> None:
    from pymisp import MISPEvent

    _, db = source
    path = export(db, "misp", tmp_path / "event.json", "--include-retracted")
    event = MISPEvent()
    event.load_file(str(path))
    by_value = {a.value: a for a in event.attributes}
    assert by_value[MD5_KEPT].type == "md5" and by_value[SHA256].type == "sha256"
    assert by_value["xn--strae-oqa.de"].type == "domain"
    assert by_value[SHA1].type == "sha1"
    assert by_value[A].type == "text" and by_value[VPDQ].type == "text"
    assert 'shared-signal-forum:signal-type="vpdq"' in {t.name for t in by_value[VPDQ].tags}
    tags = {t.name for t in by_value[A].tags}
    assert 'shared-signal-forum:signal-type="pdq"' in tags
    assert 'shared-signal-forum:behaviour="terrorist-publication"' in tags
    assert by_value[MD5_RETRACTED].deleted is True
    assert by_value[C].to_ids is False


def test_misp_feed_is_what_pymisp_makes_of_its_event(
    source: tuple[LocalForum, Path], tmp_path: Path
) -> None:
    """manifest.json and hashes.csv are what PyMISP's MISPEvent.manifest and
    attributes_hashes("md5") give for the event file (as MISP's feed generator writes them)."""
    from pymisp import MISPEvent

    _, db = source
    feed = export(db, "misp-feed", tmp_path / "feed")
    manifest = json.loads((feed / "manifest.json").read_text())
    [uuid] = manifest
    assert sorted(p.name for p in feed.iterdir()) == sorted(
        ["manifest.json", "hashes.csv", f"{uuid}.json"]
    )
    event = MISPEvent()
    event.load_file(str(feed / f"{uuid}.json"))
    assert event.uuid == uuid
    assert manifest == json.loads(json.dumps(event.manifest))
    hashes = (feed / "hashes.csv").read_text().splitlines()
    assert hashes == [f"{h},{uuid}" for h in event.attributes_hashes("md5")]
    assert {a.value for a in event.attributes} >= {MD5_KEPT, SHA256, A}
    # Exporting again replaces the feed it wrote; anything else is refused (exit 2)
    assert export(db, "misp-feed", feed, "--include-retracted") == feed
    assert len((feed / "hashes.csv").read_text().splitlines()) == len(hashes) + 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    args = ["export", "--db", str(db), "--format"]
    assert client_main([*args, "misp-feed", "-o", str(other)]) == 2
    assert client_main([*args, "misp-feed"]) == 2
    assert client_main([*args, "misp", "-o", str(other)]) == 2
    assert (other / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("fmt", ["stix", "misp"])
def test_round_trip_into_a_second_forum(
    source: tuple[LocalForum, Path], tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every signal comes back with its labels, except the benign-listed one: the import
    skips it (an exported benign list is not submitted as terrorist content)."""
    _, db = source
    exported = export(db, fmt, tmp_path / f"out.{fmt}.json")
    before = rows(db, tmp_path)
    with local_forum(tmp_path / "second") as second:
        with second.operator() as op:
            op.set_incident("flood-1", open=True, title="same incident")
        dave = second.members["alice"]
        argv = ["--profile", str(dave.bundle_path), "submit", "--key", str(dave.key_path)]
        capsys.readouterr()
        assert client_main([*argv, "--input", str(exported), "--format", fmt]) == 0
        assert ": benign (" in capsys.readouterr().err
        copy = tmp_path / "second.db"
        with second.client("carol") as client, LocalStore(copy) as store:
            client.sync(store)
        after = rows(copy, tmp_path)
    assert before[("pdq", C)]["benign"] is True
    assert set(after) == set(before) - {("pdq", C)}
    for key, doc in before.items():
        if key != ("pdq", C):
            assert after[key]["labels"] == doc["labels"], key
    assert after[("pdq", A)]["content_types"] == ["image"]
    assert after[("vpdq", VPDQ)]["content_types"] == ["video"]


def test_export_progress_stays_off_a_non_terminal_and_quiet_silences_stderr(
    source: tuple[LocalForum, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Issue 16, failure 9: no ``\\r`` progress frames in a CI log (stderr is not a terminal
    here), and ``--quiet`` (the group's or the command's) leaves stderr to errors."""
    _, db = source
    capfd.readouterr()
    export(db, "csv", tmp_path / "a.csv")
    err = capfd.readouterr().err
    assert "\r" not in err, repr(err)
    assert err.count("exported ") == 1  # the summary line, once
    for argv in (
        ["--quiet", "export", "--db", str(db), "--format", "csv", "-o", str(tmp_path / "b.csv")],
        ["export", "--db", str(db), "--format", "jsonl", "-o", str(tmp_path / "c"), "--quiet"],
        ["--quiet", "export", "--db", str(db), "--format", "misp-feed", "-o", str(tmp_path / "d")],
    ):
        assert client_main(argv) == 0
        assert capfd.readouterr().err == "", argv
