"""Incidents by the crisis protocol and disputes, decided by a 2-of-3 board, end to end."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from forum_client import entries as e
from forum_client.cli import main as client_main
from forum_client.envelope import SigningKey
from forum_client.errors import TransportError
from forum_client.store import LocalStore
from forum_server.testing import LocalForum

from ..boards import two_of_three

PUB = "behaviour:terrorist-publication"


@pytest.fixture
def board_forum(tmp_path: Path) -> Iterator[tuple[LocalForum, list[SigningKey]]]:
    with two_of_three(tmp_path / "f", members=("alice", "bob")) as made:
        yield made


def decide(
    forum: LocalForum, board: list[SigningKey], *makes: Callable[[e.Header], e.Body]
) -> None:
    """Propose ``makes``, have two board members sign, submit (the server's own checks:
    the proposal is not checked against the log first)."""
    with forum.operator() as op:
        p = op.propose(list(makes), "test", check=False)
        for key in board[:2]:
            p = p.signed(key, now_ms=p.created_unix_ms)
        op.submit(p)


def incident(
    stage: e.IncidentStage, text: str = "", title: str = "", level: int = 0
) -> Callable[[e.Header], e.Body]:
    is_open = stage in (e.IncidentStage.DECLARED, e.IncidentStage.UPDATE)
    return lambda h: e.Incident(h, "attack-1", title, is_open, stage, level, text)


def client_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    capsys.readouterr()
    assert client_main(list(args)) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_an_incident_is_declared_updated_concluded_and_its_label_then_refused(
    board_forum: tuple[LocalForum, list[SigningKey]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    forum, board = board_forum
    label = "incident:attack-1"
    decide(forum, board, incident(e.IncidentStage.DECLARED, title="Livestreamed attack", level=3))
    alice_key = forum.members["alice"].signing_key
    with forum.client("alice") as alice:
        alice.submit([{"type": "md5", "value": "a" * 32, "labels": [label, PUB]}], alice_key)
    decide(forum, board, incident(e.IncidentStage.UPDATE, text="Copies on three platforms"))
    with forum.client("alice") as alice:
        alice.submit([{"type": "md5", "value": "b" * 32, "labels": [label]}], alice_key)
    decide(forum, board, incident(e.IncidentStage.CONCLUDED, text="Contained"))
    with forum.client("bob") as bob, pytest.raises(TransportError, match="unknown label"):
        bob.submit(
            [{"type": "md5", "value": "c" * 32, "labels": [label]}],
            forum.members["bob"].signing_key,
        )
    # An update after the conclusion is refused; the debrief is recorded once.
    with pytest.raises(TransportError, match="needs an open incident"):
        decide(forum, board, incident(e.IncidentStage.UPDATE, text="late"))
    decide(forum, board, incident(e.IncidentStage.DEBRIEF, text="Lessons: faster hashing"))
    with pytest.raises(TransportError, match="has its debrief already"):
        decide(forum, board, incident(e.IncidentStage.DEBRIEF, text="again"))
    db = tmp_path / "carol.db"
    with forum.client("carol") as carol:
        carol.sync(LocalStore(db))
    [row] = client_json(capsys, "incidents", "--db", str(db), "--json", "--signals")
    assert row["incident_id"] == "attack-1" and row["level_name"] == "crisis protocol"
    assert row["signals"] == 2 and row["updates"] == 1 and row["debrief"] is True
    assert row["concluded"] is not None and row["minutes_to_first_hash"] is not None
    listed = row["signal_list"]
    assert [(x["value"], x["member_id"]) for x in listed] == [
        ("a" * 32, "alice"),
        ("b" * 32, "alice"),
    ]  # type: ignore[union-attr]


def test_a_dispute_is_opened_answered_escalated_and_decided(
    board_forum: tuple[LocalForum, list[SigningKey]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    forum, board = board_forum
    alice_key, bob_key = forum.members["alice"].signing_key, forum.members["bob"].signing_key
    value = "d" * 32
    with forum.client("alice") as alice:
        alice.submit([{"type": "md5", "value": value, "labels": [PUB]}], alice_key)
    with forum.client("bob") as bob:
        # A dispute names a real signal of the respondent, who is someone else.
        with pytest.raises(TransportError, match="cannot dispute its own signal"):
            bob.open_dispute("d0", {"type": "md5", "value": value}, "bob", "x", bob_key)
        with pytest.raises(TransportError, match="no such signal"):
            bob.open_dispute("d0", {"type": "md5", "value": "9" * 32}, "alice", "x", bob_key)
        bob.open_dispute(
            "d1", {"type": "md5", "value": value}, "alice", "a news photo, not propaganda", bob_key
        )
    # Unanswered and before its deadline, the board cannot decide yet.
    with pytest.raises(TransportError, match="deadline has not passed"):
        decide(forum, board, lambda h: e.DisputeDecision(h, "d1", True, "too early"))
    with forum.client("bob") as bob, pytest.raises(TransportError, match="only alice answers"):
        bob.answer_dispute(
            "d1", retract=False, rationale="x", key=bob_key, ref={"type": "md5", "value": value}
        )
    with forum.client("alice") as alice:
        alice.answer_dispute(
            "d1",
            retract=False,
            rationale="the frame is from the attacker's video",
            key=alice_key,
            ref={"type": "md5", "value": value},
        )
    db = tmp_path / "carol.db"
    store = LocalStore(db)
    with forum.client("carol") as carol:
        carol.sync(store)
    [hit] = client_json(capsys, "match", "--db", str(db), "--type", "md5", "--value", value)
    [m] = hit["matches"]  # type: ignore[misc]
    assert m["disputed"] is True and m["disputes"][0]["status"] == "kept"
    capsys.readouterr()
    assert client_main(["disputes", "--db", str(db)]) == 0
    assert "kept" in (line := capsys.readouterr().out) and "by bob, respondent alice" in line
    # Escalated: a single board key cannot decide; two can, and the removal is for everyone.
    with forum.operator() as op:
        p = op.propose([lambda h: e.DisputeDecision(h, "d1", True, "not verified")], "one key")
        with pytest.raises(Exception, match="1 more signature"):
            op.submit(p.signed(board[0], now_ms=p.created_unix_ms))
    decide(
        forum,
        board,
        lambda h: e.DisputeDecision(h, "d1", True, "no evidence of terrorist content"),
        lambda h: e.Retraction(h, (e.SignalRef("md5", value),), "dispute d1"),
    )
    with forum.client("carol") as carol:
        carol.sync(store)
    [hit] = client_json(capsys, "match", "--db", str(db), "--type", "md5", "--value", value)
    assert hit["matches"] == []
    [row] = client_json(capsys, "disputes", "--db", str(db), "--json")
    assert row["status"] == "removed" and row["respondent"] == "alice"
    # The whole history is in the log: a second decision is refused.
    with pytest.raises(TransportError, match="is removed"):
        decide(forum, board, lambda h: e.DisputeDecision(h, "d1", False, "again"))


def test_the_board_files_a_dispute_for_an_outside_appellant(
    board_forum: tuple[LocalForum, list[SigningKey]], tmp_path: Path
) -> None:
    forum, board = board_forum
    alice_key = forum.members["alice"].signing_key
    value = "e" * 32
    with forum.client("alice") as alice:
        alice.submit([{"type": "md5", "value": value, "labels": [PUB]}], alice_key)
    ref = e.SignalRef("md5", value)
    decide(
        forum,
        board,
        lambda h: e.Dispute(
            h, "appeal-1", ref, "alice", "my video was removed", "a user", h.created_unix_ms + 1
        ),
    )
    with forum.client("alice") as alice:
        alice.answer_dispute(
            "appeal-1",
            retract=True,
            rationale="mistaken",
            key=alice_key,
            ref={"type": "md5", "value": value},
        )
    store = LocalStore(tmp_path / "c.db")
    with forum.client("carol") as carol:
        carol.sync(store)
    [record] = store.disputes()
    assert record.status == "retracted" and record.opener == "operator"
    assert store.lookup("md5", value) is None or not store.lookup("md5", value).active  # type: ignore[union-attr]


def test_follow_prints_incident_events_before_the_round_summary(
    board_forum: tuple[LocalForum, list[SigningKey]], tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    forum, board = board_forum
    argv = [sys.executable, "-m", "forum_client.cli", "--profile"]
    argv += [str(forum.members["carol"].bundle_path), "sync", "--db", str(tmp_path / "f.db")]
    proc = subprocess.Popen(
        [*argv, "--follow", "--json", "--no-progress"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # the initial catch-up
        assert "event" not in first
        decide(forum, board, incident(e.IncidentStage.DECLARED, title="Attack", level=2))
        event = json.loads(proc.stdout.readline())
        summary = json.loads(proc.stdout.readline())
        assert event["event"] == "incident" and event["stage"] == "declared"
        assert event["label"] == "incident:attack-1" and "event" not in summary
        assert summary["size"] == event["index"] + 1
        # The next round prints only its own events, not the declaration again.
        decide(forum, board, incident(e.IncidentStage.UPDATE, text="copies found"))
        event = json.loads(proc.stdout.readline())
        summary = json.loads(proc.stdout.readline())
        assert (event["stage"], event["text"]) == ("update", "copies found")
        assert "event" not in summary and summary["size"] == event["index"] + 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_an_unanswered_dispute_goes_to_the_board_after_its_deadline(
    board_forum: tuple[LocalForum, list[SigningKey]], tmp_path: Path
) -> None:
    """No answer by the deadline: the board decides (here: upholds), and the settled
    dispute takes no late answer."""
    import time

    forum, board = board_forum
    alice_key, bob_key = forum.members["alice"].signing_key, forum.members["bob"].signing_key
    ref = {"type": "md5", "value": "f" * 32}
    with forum.client("alice") as alice:
        alice.submit([{**ref, "labels": [PUB]}], alice_key)
    with forum.client("bob") as bob:
        bob.open_dispute("d2", ref, "alice", "a news photo", bob_key, answer_within_ms=50)
    time.sleep(0.1)  # the decision's own signed time must be at or after the deadline
    decide(forum, board, lambda h: e.DisputeDecision(h, "d2", False, "it is propaganda"))
    with forum.client("alice") as alice, pytest.raises(TransportError, match="is upheld"):
        alice.answer_dispute("d2", retract=False, rationale="late", key=alice_key, ref=ref)
    store = LocalStore(tmp_path / "c.db")
    with forum.client("carol") as carol:
        carol.sync(store)
    [record] = store.disputes()
    assert record.status == "upheld" and record.opener == "bob"
    assert store.lookup("md5", "f" * 32).active  # type: ignore[union-attr]
