"""The transparency report: byte-identical from a member's copy and from the server, on a
generated log of thousands of entries, and reproducible later at an old checkpoint."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from forum_client import entries as e
from forum_client.cli import main as client_main
from forum_client.client import ForumClient
from forum_client.envelope import Envelope, SigningKey
from forum_client.store import LocalStore
from forum_server.admin.cli import main as admin_main
from forum_server.config import ServerConfig
from forum_server.testing import LocalForum, local_forum

LABELS = (
    ("behaviour:terrorist-publication", "entity:isil"),
    ("behaviour:glorification-terrorist-acts",),
    ("behaviour:imminent-credible-threat", "entity:al-shabaab"),
)
TYPES = ("md5", "sha256", "pdq")
CONTENT = ("image", "video", "pdf")


def quarter(now: dt.datetime) -> str:
    return f"{now.year}-Q{(now.month - 1) // 3 + 1}"


def value(kind: str, n: int) -> str:
    width = {"md5": 32, "sha256": 64, "pdq": 64}[kind]
    return f"{n + 1:0{width}x}"


def submit_in_order(client: ForumClient, envelopes: list[Envelope]) -> None:
    """One at a time, each receipt verified: calls in flight together may reach the
    sequencer out of order, and a key's sequence numbers must rise."""
    for env in envelopes:
        client.submit_envelope(env)


def generate(forum: LocalForum, n: int, start: int = 0) -> None:
    """About ``n`` entries: alice and bob submit 1-3 signals each, opinions 'seen' by the
    member, some retractions; entries signed up front, then sent."""
    keys = {m: forum.members[m].signing_key for m in ("alice", "bob")}
    for member in ("alice", "bob"):
        with forum.client(member) as client:
            key: SigningKey = keys[member]
            seq = client.next_sequence(key)
            envs = []
            for i in range(start, start + n // 2):
                kind = TYPES[i % 3]
                offset = 0 if member == "alice" else 10**7
                if i % 10 == 9:  # a 'seen' opinion (on our previous signal)
                    seen = value(TYPES[(i - 1) % 3], i - 1 + offset)
                    body: e.Body = e.Opinion(
                        client.header(key, seq),
                        e.SignalRef(TYPES[(i - 1) % 3], seen),
                        e.OpinionKind.SEEN,
                    )
                elif i % 25 == 24:  # retract one of our own
                    mine = value(TYPES[(i - 2) % 3], i - 2 + offset)
                    body = e.Retraction(
                        client.header(key, seq), (e.SignalRef(TYPES[(i - 2) % 3], mine),), "fp"
                    )
                else:
                    items = tuple(
                        e.SignalItem(
                            kind, value(kind, i + offset + j * 10**6), LABELS[i % 3], CONTENT[j]
                        )
                        for j in range(1 + i % 3)
                    )
                    body = e.Submission(client.header(key, seq), items)
                envs.append(key.sign(e.payload_type_of(body), e.encode(body)))
                seq += 1
            submit_in_order(client, envs)


def governance(forum: LocalForum) -> None:
    """An incident with signals, and a dispute answered, so every section has numbers; a
    group (alice and bob, not carol) with a TLP:AMBER submission that carol sees redacted."""
    admin_key = SigningKey.load(forum.operator_profile / "admin.key")
    with forum.operator() as op:
        p = op.propose(
            [lambda h: e.Incident(h, "attack", "Attack", True, e.IncidentStage.DECLARED, 2)],
            "declare",
        )
        op.submit(p.signed(admin_key, now_ms=p.created_unix_ms))
    alice_key, bob_key = forum.members["alice"].signing_key, forum.members["bob"].signing_key
    with forum.client("alice") as alice:
        signals = [
            {"type": "md5", "value": f"{n:032x}", "labels": ["incident:attack"]}
            for n in range(9**9, 9**9 + 5)
        ]
        alice.submit(signals, alice_key)
    with forum.client("bob") as bob:
        bob.open_dispute("d1", signals[0], "alice", "not terrorist content", bob_key)
    with forum.client("alice") as alice:
        alice.answer_dispute("d1", retract=True, rationale="agreed", key=alice_key, ref=signals[0])
    with forum.operator() as op:
        op.create_group("cell", "Crisis cell")
        op.set_group_member("cell", "alice", member=True)
        op.set_group_member("cell", "bob", member=True)
    with forum.client("alice") as alice:
        secret = [{"type": "md5", "value": "f" * 32, "labels": ["entity:isil"]}]
        alice.submit(secret, alice_key, group="cell", tlp="amber")


@pytest.fixture(scope="module")
def big_forum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalForum]:
    tmp = tmp_path_factory.mktemp("report")
    config = ServerConfig(submit_entries_per_second=0)  # generating, not testing limits
    with local_forum(
        tmp / "f", members=["alice", "bob"], observers=["carol"], config=config
    ) as forum:
        generate(forum, 3000)
        governance(forum)
        yield forum


def test_member_and_server_reports_are_byte_identical_and_reproducible(
    big_forum: LocalForum, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forum = big_forum
    period = quarter(dt.datetime.now(dt.UTC))
    db = tmp_path / "carol.db"
    with forum.client("carol") as carol:
        carol.sync(LocalStore(db))
    size = LocalStore(db).size
    assert size > 3000
    admin = ["--profile", str(forum.operator_profile), "--server", forum.address]
    member_dir, server_dir = tmp_path / "member", tmp_path / "server"
    assert (
        client_main(["report", "--db", str(db), "--period", period, "--out", str(member_dir)]) == 0
    )
    assert admin_main([*admin, "report", "--period", period, "--out", str(server_dir)]) == 0
    for name in ("report.json", "report.md"):
        assert (member_dir / name).read_bytes() == (server_dir / name).read_bytes(), name
    doc = json.loads((member_dir / "report.json").read_text())
    assert doc["checkpoint"]["size"] == size
    assert doc["signals"]["total"] > 3000 and set(doc["signals"]["by_type"]) == set(TYPES)
    assert doc["matches_seen"]["total"] > 250
    assert doc["members"]["activity"]["alice"]["retracted"] > 0
    assert doc["entries_shared_in_groups"] == 1  # carol holds it as a leaf hash only
    assert doc["signals"]["by_label"].get("entity:isil", 0) == 880  # the group's one not counted
    [incident] = doc["incidents"]
    assert incident["signals"] == 5 and incident["level_name"] == "content incident"
    assert doc["disputes"]["outcomes"] == {"retracted": 1} and doc["disputes"]["resolved"] == 1
    assert (member_dir / "signals-by-type.png").stat().st_size > 1000  # matplotlib installed
    # Later, after the log has grown, the report at the old size is the same bytes.
    generate(forum, 200, start=5000)
    with forum.client("carol") as carol:
        carol.sync(LocalStore(db))
    assert LocalStore(db).size > size
    later = tmp_path / "later"
    argv = ["report", "--db", str(db), "--period", period, "--at", str(size), "--out", str(later)]
    assert client_main([*argv, "--no-charts"]) == 0
    assert (later / "report.json").read_bytes() == (member_dir / "report.json").read_bytes()
    assert (later / "report.md").read_bytes() == (member_dir / "report.md").read_bytes()
    # Anonymised, members lose their names but not their numbers.
    anon = tmp_path / "anon"
    argv = ["report", "--db", str(db), "--period", period, "--at", str(size), "--no-charts"]
    assert client_main([*argv, "--anonymise", "--out", str(anon)]) == 0
    hidden = json.loads((anon / "report.json").read_text())
    assert "alice" not in (anon / "report.md").read_text()
    named = doc["members"]["activity"]
    assert sorted(map(str, hidden["members"]["activity"].values())) == sorted(
        map(str, named.values())
    )


def test_bad_periods_and_sizes_are_refused(
    big_forum: LocalForum, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "c.db"
    with big_forum.client("carol") as carol:
        carol.sync(LocalStore(db))
    for bad in ("2026-Q5", "26-Q1", "2026-13"):
        capsys.readouterr()
        assert client_main(["report", "--db", str(db), "--period", bad]) != 0
        assert "period" in capsys.readouterr().err
    too_big = str(LocalStore(db).size + 1)
    assert client_main(["report", "--db", str(db), "--period", "2026", "--at", too_big]) != 0
    assert "sync first" in capsys.readouterr().err
