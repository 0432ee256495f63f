"""Issue 3 end to end: signed submissions, retractions and opinions in the verifiable log.

Real server on port 0, real mTLS, the real SDK and CLIs; the kill -9 test runs the real
``forum-server serve`` in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from forum_client import entries as e
from forum_client.cli import main as client_main
from forum_client.client import ForumClient
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import InvalidInputError, TransportError
from forum_client.receipts import verify_checkpoint_note, verify_receipt
from forum_client.wire import Receipt
from forum_server.admin.cli import main as admin_main
from forum_server.app import ServerPaths
from forum_server.config import ServerConfig
from forum_server.storage import ServerStore, open_store
from forum_server.storage.sqlite import SQLiteStore
from forum_server.testing import LocalForum, local_forum, start_server_process

pytestmark = pytest.mark.integration

PUB = "behaviour:terrorist-publication"


def sha(i: int | str, tag: str = "") -> str:
    return hashlib.sha256(f"{tag}{i}".encode()).hexdigest()


@pytest.fixture(scope="module")
def forum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalForum]:
    with local_forum(
        tmp_path_factory.mktemp("forum"), members=["alice", "bob"], observers=["carol"]
    ) as f:
        yield f


def store_of(forum: LocalForum) -> ServerStore:
    return forum.running.stored_view()


def key_of(forum: LocalForum, member: str) -> SigningKey:
    return forum.members[member].signing_key


def log_size(forum: LocalForum) -> int:
    return forum.running.handle.sequencer.size


def test_ten_thousand_signals_in_one_batch_and_the_same_batch_resent(forum: LocalForum) -> None:
    key = key_of(forum, "alice")
    with forum.client("alice") as client:
        signals = [
            {"type": "sha256", "value": sha(i, "big").upper(), "labels": [PUB]}
            for i in range(10_000)
        ]
        envelope = client.prepare_submission(signals, key)
        receipt = client.submit_envelope(envelope)
        # Verify the receipt independently of the SDK's own check.
        cp = verify_receipt(receipt, envelope, forum.trust_root)
        assert cp.size == receipt.tree_size > receipt.index
        size = log_size(forum)
        again = client.submit_envelope(envelope)
        assert (again.index, again.leaf_hash) == (receipt.index, receipt.leaf_hash)
        assert log_size(forum) == size
    store = store_of(forum)
    assert store.signal_status("sha256", sha(0, "big")) == "active"
    assert store.signal_status("sha256", sha(9_999, "big")) == "active"
    [d] = store.descriptors("sha256", sha(5, "big"))
    assert (d.member_id, d.labels, d.active, d.index) == ("alice", (PUB,), True, receipt.index)


def test_an_old_sequence_is_rejected(forum: LocalForum) -> None:
    key = key_of(forum, "alice")
    with forum.client("alice") as client:
        first = client.submit([{"type": "md5", "value": "0" * 32}], key)
        assert first.index > 0
        last = client.next_sequence(key) - 1
        size = log_size(forum)
        for stale in (last, last - 1):
            envelope = client.prepare_submission(
                [{"type": "md5", "value": "1" * 32}], key, sequence=stale
            )
            with pytest.raises(TransportError) as info:
                client.submit_envelope(envelope)
            assert info.value.code == "FAILED_PRECONDITION"
            assert info.value.violations[0].field == "header.sequence"
        assert log_size(forum) == size
        assert store_of(forum).signal_status("md5", "1" * 32) is None


@pytest.mark.parametrize(
    ("type_", "given", "stored"),
    [
        ("pdq", " " + "AB" * 32 + " ", "ab" * 32),
        ("md5", "D41D8CD98F00B204E9800998ECF8427E", "d41d8cd98f00b204e9800998ecf8427e"),
        (
            "sha1",
            "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709\n",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        ),
        (
            "sha256",
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            "url",
            "HTTP://Example.COM:80/a/./b/../%7euser?x=1#frag",
            "http://example.com/a/~user?x=1",
        ),
        ("url", "https://Bücher.example:443/ä b", "https://xn--bcher-kva.example/%C3%A4%20b"),
        ("domain", " WWW.Example.COM. ", "www.example.com"),
        ("domain", "Bücher.example", "xn--bcher-kva.example"),
    ],
)
def test_each_type_is_normalised_as_documented(
    forum: LocalForum, type_: str, given: str, stored: str
) -> None:
    with forum.client("bob") as client:
        client.submit(
            [{"type": type_.upper(), "value": given, "labels": [PUB]}], key_of(forum, "bob")
        )
    assert store_of(forum).signal_status(type_, stored) == "active"


def _raw(client: ForumClient, key: SigningKey, *items: e.SignalItem) -> e.Submission:
    return e.Submission(client.header(key), tuple(items))


GOOD = e.SignalItem("md5", "2" * 32, (PUB,), "image")


def _bad_cases(client: ForumClient, forum: LocalForum) -> list[tuple[str, e.Body, str, str, str]]:
    """(name, body, signer, expected code, expected field)."""
    a = key_of(forum, "alice")
    h = client.header(a)
    many_labels = tuple(f"incident:x{i}" for i in range(17))
    return [
        (
            "unknown type",
            _raw(client, a, e.SignalItem("crc32", "abcd")),
            "alice",
            "INVALID_ARGUMENT",
            "signals[0].type",
        ),
        (
            "not normalised",
            _raw(client, a, GOOD, e.SignalItem("md5", "A" * 32)),
            "alice",
            "INVALID_ARGUMENT",
            "signals[1].value",
        ),
        (
            "bad hex",
            _raw(client, a, e.SignalItem("sha1", "z" * 40)),
            "alice",
            "INVALID_ARGUMENT",
            "signals[0].value",
        ),
        (
            "unknown label",
            _raw(client, a, e.SignalItem("md5", "3" * 32, ("behaviour:nope",))),
            "alice",
            "INVALID_ARGUMENT",
            "signals[0].labels",
        ),
        (
            "too many labels",
            _raw(client, a, e.SignalItem("md5", "3" * 32, many_labels)),
            "alice",
            "INVALID_ARGUMENT",
            "signals[0].labels",
        ),
        (
            "bad content type",
            _raw(client, a, e.SignalItem("md5", "3" * 32, (), "hologram")),
            "alice",
            "INVALID_ARGUMENT",
            "signals[0].content_type",
        ),
        (
            "quality on md5",
            _raw(client, a, e.SignalItem("md5", "3" * 32, (), "", 50)),
            "alice",
            "INVALID_ARGUMENT",
            "signals[0].quality",
        ),
        (
            "pdq quality > 100",
            _raw(client, a, e.SignalItem("pdq", "c" * 64, (), "", 101)),
            "alice",
            "INVALID_ARGUMENT",
            "signals[0].quality",
        ),
        (
            "twice in a batch",
            _raw(client, a, GOOD, GOOD),
            "alice",
            "INVALID_ARGUMENT",
            "signals[1].value",
        ),
        ("empty batch", e.Submission(h, ()), "alice", "INVALID_ARGUMENT", "signals"),
        (
            "over the batch limit",
            e.Submission(h, tuple(e.SignalItem("sha256", sha(i, "over")) for i in range(10_001))),
            "alice",
            "INVALID_ARGUMENT",
            "signals",
        ),
        (
            "scope too long",
            e.Submission(h, (GOOD,), "x" * 2000),
            "alice",
            "INVALID_ARGUMENT",
            "scope",
        ),
        (
            "another member's id",
            e.Submission(e.Header(h.origin, "bob", h.key_id, h.sequence, 0), (GOOD,)),
            "alice",
            "PERMISSION_DENIED",
            "header.member_id",
        ),
        (
            "wrong origin",
            e.Submission(e.Header("elsewhere", "alice", h.key_id, h.sequence, 0), (GOOD,)),
            "alice",
            "INVALID_ARGUMENT",
            "header.origin",
        ),
        (
            "retraction without reason",
            e.Retraction(h, (e.SignalRef("md5", "2" * 32),), " "),
            "alice",
            "INVALID_ARGUMENT",
            "reason",
        ),
        (
            "retraction of an unknown signal",
            e.Retraction(h, (e.SignalRef("md5", "9" * 32),), "why"),
            "alice",
            "INVALID_ARGUMENT",
            "signals[0]",
        ),
        (
            "opinion on an unknown signal",
            e.Opinion(h, e.SignalRef("md5", "9" * 32), e.OpinionKind.AGREE),
            "alice",
            "INVALID_ARGUMENT",
            "signal",
        ),
        (
            "operator entry through Submit",
            e.Incident(h, "x", "t", True),
            "alice",
            "PERMISSION_DENIED",
            "payload_type",
        ),
    ]


def test_bad_inputs_get_the_right_code_and_field_and_change_nothing(forum: LocalForum) -> None:
    store = store_of(forum)
    with forum.client("alice") as client:
        cases = _bad_cases(client, forum)
        before = (log_size(forum), store.signal_count(), client.checkpoint())
        for name, body, signer, code, field in cases:
            key = key_of(forum, signer)
            with pytest.raises(TransportError) as info:
                client.append(body, key)
            assert info.value.code == code, name
            fields = [v.field for v in info.value.violations]
            assert field in fields, (name, fields)
        assert (log_size(forum), store.signal_count(), client.checkpoint()) == before
        assert store.signal_status("md5", "2" * 32) is None


def test_an_observer_cannot_submit(forum: LocalForum) -> None:
    with forum.client("carol") as client, pytest.raises(TransportError) as info:
        client.submit([GOOD], key_of(forum, "carol"))
    assert info.value.code == "PERMISSION_DENIED"


def test_the_sdk_rejects_bad_signals_before_signing(forum: LocalForum) -> None:
    with forum.client("alice") as client, pytest.raises(InvalidInputError) as info:
        client.submit(
            [{"type": "md5", "value": "x"}, GOOD, {"type": "nope", "value": "1"}],
            key_of(forum, "alice"),
        )
    assert [v.field for v in info.value.violations] == ["signals[0].value", "signals[2].type"]


def test_retraction_and_opinion_rules(forum: LocalForum) -> None:
    shared, alices = (
        {"type": "domain", "value": "shared.example"},
        {"type": "domain", "value": "alice-only.example"},
    )
    a, b = key_of(forum, "alice"), key_of(forum, "bob")
    with forum.client("alice") as alice, forum.client("bob") as bob:
        alice.submit([shared, alices], a)
        bob.submit([{**shared, "labels": [PUB]}], b)
        store = store_of(forum)
        assert [d.member_id for d in store.descriptors("domain", "shared.example")] == [
            "alice",
            "bob",
        ]
        # A member cannot retract another member's signal.
        size = log_size(forum)
        with pytest.raises(TransportError) as info:
            bob.retract([alices], b, "not mine")
        assert info.value.code == "PERMISSION_DENIED"
        assert log_size(forum) == size
        # Retracting one's own descriptor keeps the signal while another member vouches for it.
        alice.retract([shared], a, "mistake")
        assert store.signal_status("domain", "shared.example") == "active"
        with pytest.raises(TransportError) as info:  # already retracted: nothing to retract
            alice.retract([shared], a, "again")
        assert info.value.code == "PERMISSION_DENIED"
        bob.retract([shared], b, "mistake too")
        assert store.signal_status("domain", "shared.example") == "retracted"
        # Resubmitting makes it active again.
        alice.submit([shared], a)
        assert store_of(forum).signal_status("domain", "shared.example") == "active"
        # Opinions: one current opinion per member per signal.
        bob.opine(alices, "agree", b)
        bob.opine(alices, "false-positive", b, note="it is a news site")
        [op] = store.opinions("domain", "alice-only.example")
        assert (op.member_id, op.kind, op.note) == (
            "bob",
            e.OpinionKind.FALSE_POSITIVE,
            "it is a news site",
        )
    # The operator can retract any signal: every descriptor goes.
    with forum.operator() as op_session:
        op_session.forum.retract([alices, shared], op_session.admin_key, "upheld dispute")
    assert store.signal_status("domain", "alice-only.example") == "retracted"
    assert store.signal_status("domain", "shared.example") == "retracted"
    assert not any(d.active for d in store.descriptors("domain", "shared.example"))


def test_taxonomy_and_incidents_through_the_admin_cli(
    forum: LocalForum, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = ["--profile", str(forum.operator_profile), "--server", forum.address]
    assert admin_main([*admin, "taxonomy", "show"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("taxonomy version 1,") and PUB in out
    assert admin_main([*admin, "taxonomy", "show", "--json"]) == 0
    labels = json.loads(capsys.readouterr().out)
    labels.append({"id": "entity:new-group", "kind": "entity", "title": "New group"})
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps(labels))
    assert admin_main([*admin, "taxonomy", "publish", str(vocab)]) == 0
    assert "version 2" in capsys.readouterr().out
    assert admin_main([*admin, "incident", "open", "flood-2031", "--title", "Flood"]) == 0
    key = key_of(forum, "bob")
    with forum.client("bob") as bob:
        bob.submit(
            [
                {
                    "type": "md5",
                    "value": "4" * 32,
                    "labels": ["entity:new-group", "incident:flood-2031"],
                }
            ],
            key,
        )
        assert admin_main([*admin, "incident", "close", "flood-2031"]) == 0
        with pytest.raises(TransportError) as info:
            bob.submit(
                [{"type": "md5", "value": "5" * 32, "labels": ["incident:never-opened"]}], key
            )
        assert info.value.violations[0].field == "signals[0].labels"
    assert admin_main([*admin, "incident", "close", "flood-2031"]) == 4  # already closed


def test_client_cli_submit_retract_opine(
    forum: LocalForum, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    member = forum.members["alice"]
    base = ["--profile", str(member.bundle_path), "--server", forum.address]
    key = ["--key", str(member.key_path)]
    assert (
        client_main(
            [
                *base,
                "submit",
                *key,
                "--type",
                "md5",
                "--value",
                "6" * 32,
                "--label",
                PUB,
                "--content-type",
                "video",
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["signals"] == 1 and doc["index"] > 0
    csv_file = tmp_path / "in.csv"
    rows = [f"sha1,{sha(i)[:40].upper()},{PUB};entity:isil,image," for i in range(250)]
    csv_file.write_text("type,value,labels,content_type,quality\n" + "\n".join(rows) + "\n")
    assert (
        client_main([*base, "submit", *key, "--input", str(csv_file), "--batch-size", "100"]) == 0
    )
    captured = capsys.readouterr()
    assert captured.out.count("at log index") == 3
    assert "submitted 250 signals in 3 batch(es)" in captured.err
    [d] = store_of(forum).descriptors("sha1", sha(7)[:40])
    assert d.labels == (PUB, "entity:isil")
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(
        json.dumps({"type": "url", "value": "HTTPS://EXAMPLE.ORG/x", "labels": [PUB]}) + "\n\n"
    )
    assert client_main([*base, "submit", *key, "--input", str(jsonl)]) == 0
    assert store_of(forum).signal_status("url", "https://example.org/x") == "active"
    assert (
        client_main(
            [
                *base,
                "retract",
                *key,
                "--type",
                "url",
                "--value",
                "https://example.org/x",
                "--reason",
                "gone",
            ]
        )
        == 0
    )
    assert store_of(forum).signal_status("url", "https://example.org/x") == "retracted"
    assert (
        client_main([*base, "opine", *key, "--type", "md5", "--value", "6" * 32, "--kind", "seen"])
        == 0
    )
    capsys.readouterr()


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("type,value\nmd5,{good}\nmd5,nothex\n", "bad.csv:3"),
        ("kind,value\nmd5,{good}\n", "bad.csv:1"),
        ("type,value,colour\nmd5,{good},red\n", "bad.csv:1"),
        ("type,value\nmd5,{good},extra\n", "bad.csv:2"),
        ("type,value,labels\nmd5,{good},\nsha9,{good},\n", "bad.csv:3"),
    ],
)
def test_bad_input_files_name_the_line(
    forum: LocalForum,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    where: str,
) -> None:
    member = forum.members["alice"]
    bad = tmp_path / "bad.csv"
    bad.write_text(content.format(good="7" * 32))
    size = log_size(forum)
    code = client_main(
        [
            "--profile",
            str(member.bundle_path),
            "--server",
            forum.address,
            "submit",
            "--key",
            str(member.key_path),
            "--input",
            str(bad),
        ]
    )
    assert code == 2
    assert where in capsys.readouterr().err
    assert log_size(forum) == size


def test_a_bad_jsonl_line_is_named(
    forum: LocalForum, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    member = forum.members["alice"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "md5", "value": "' + "8" * 32 + '"}\n{"type": "md5"\n')
    code = client_main(
        [
            "--profile",
            str(member.bundle_path),
            "--server",
            forum.address,
            "submit",
            "--key",
            str(member.key_path),
            "--input",
            str(bad),
        ]
    )
    assert code == 2
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err


def test_rate_limit_and_message_size(tmp_path: Path) -> None:
    # One entry per 4 s (a bucket of one): the second submission, a few calls after the
    # first, is refused even when a loaded machine takes seconds between them (at 1 entry/s,
    # a second's delay refilled the bucket and it went through).
    config = ServerConfig(
        submit_entries_per_second=0.25,
        submit_signals_per_second=100,
        submit_burst_seconds=4,
        max_message_bytes=256 * 1024,
    )
    with local_forum(tmp_path, members=["alice"], observers=[], config=config) as f:
        key = key_of(f, "alice")
        with f.client("alice") as client:
            client.submit([{"type": "md5", "value": "a" * 32}], key)
            with pytest.raises(TransportError) as info:
                client.submit([{"type": "md5", "value": "b" * 32}], key)
            assert info.value.code == "RESOURCE_EXHAUSTED"
            assert info.value.retry_after is not None and 0 < info.value.retry_after <= 4.0
            assert "submit rate" in str(info.value)
            time.sleep(info.value.retry_after + 0.05)
            client.submit([{"type": "md5", "value": "b" * 32}], key)
            big = [
                {"type": "url", "value": f"https://example.com/{'x' * 100}/{i}"}
                for i in range(5_000)
            ]
            with pytest.raises(TransportError) as info:
                client.submit(big, key)
            assert info.value.code == "RESOURCE_EXHAUSTED"
            assert "too large" in str(info.value) and "fewer signals" in str(info.value)


@pytest.mark.sqlite_only
def test_the_view_survives_a_restart_and_is_replayed_when_missing(tmp_path: Path) -> None:
    from forum_server.app import running_server

    with local_forum(tmp_path, members=["alice"], observers=[]) as f:
        with f.client("alice") as client:
            client.submit([{"type": "md5", "value": "c" * 32}], key_of(f, "alice"))
            client.retract([{"type": "md5", "value": "c" * 32}], key_of(f, "alice"), "x")
            client.submit([{"type": "md5", "value": "d" * 32}], key_of(f, "alice"))
        directory = f.directory / "server"
    store = SQLiteStore(directory / "forum.db")
    con = store._connect()
    con.executescript("DELETE FROM signals; DELETE FROM descriptors; DELETE FROM view_meta;")
    store.close()
    with running_server(directory) as running:
        assert running.handle.store.signal_status("md5", "c" * 32) == "retracted"
        assert running.handle.store.signal_status("md5", "d" * 32) == "active"
        assert running.handle.store.view_size() == running.handle.sequencer.size


# ---- kill -9 during a stream of submissions ----


def test_kill_9_loses_no_acknowledged_submission(tmp_path: Path) -> None:
    with local_forum(tmp_path, members=["alice", "bob"], observers=[]) as f:
        members = {m: (f.members[m].bundle, f.members[m].signing_key) for m in ("alice", "bob")}
        data_dir = f.directory / "server"
    proc, address = start_server_process(data_dir)
    acknowledged: list[tuple[Receipt, Envelope]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def submitter(member: str) -> None:
        bundle, key = members[member]
        # A call the kill cuts fails at once; the timeout only has to outlast the load.
        with ForumClient(bundle, server=address, timeout=60) as client:
            sequence = client.next_sequence(key)
            for n in range(10_000):
                items = [{"type": "sha256", "value": sha(f"{member}-{n}-{i}")} for i in range(200)]
                envelope = client.prepare_submission(items, key, sequence=sequence)
                try:
                    receipt = client.submit_envelope(envelope)
                except TransportError:
                    return  # the server died: this one was never acknowledged
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)
                    return
                sequence += 1
                with lock:
                    acknowledged.append((receipt, envelope))

    threads = [threading.Thread(target=submitter, args=(m,)) for m in members]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120  # a few seconds unloaded
    while time.monotonic() < deadline:
        with lock:
            if len(acknowledged) >= 20:
                break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len(acknowledged) >= 20
    newest = max(acknowledged, key=lambda x: x[0].tree_size)[0]
    old_cp = verify_checkpoint_note(newest.checkpoint_note, f.trust_root)

    proc, address = start_server_process(data_dir)
    try:
        bundle, key = members["alice"]
        with ForumClient(bundle, server=address, timeout=60) as client:
            new_cp = client.checkpoint()
            assert new_cp.size >= old_cp.size
            client.verify_consistent(old_cp, new_cp)
            for receipt, envelope in acknowledged:
                client.verify_included(receipt, envelope, new_cp)
            # The log keeps working after the crash: the next sequence is accepted.
            client.submit([{"type": "md5", "value": "e" * 32}], key)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    store = open_store(ServerPaths(data_dir).database_location())
    try:
        for _receipt, envelope in acknowledged[:5]:
            body: Any = e.decode(envelope.payload_type, envelope.body)
            first = body.signals[0]
            assert store.signal_status(first.type, first.value) == "active"
    finally:
        store.close()
