"""``forum-admin propose ...`` refuses what the log would refuse, before the board signs it.

The values here are well formed (tests/unit/test_cli_bad_input.py sweeps the malformed
ones); they are wrong only against the forum's log: an unknown member, a member's key for
the board, an incident that is not open, a quorum larger than the witness set...  Each one
is exit 2 with a message naming the option, and no proposal file is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from forum_client import entries as e
from forum_client.cosignature import cosigner_vkey
from forum_client.envelope import SigningKey
from forum_client.errors import EntryRejectedError, InvalidInputError
from forum_server.admin.cli import main as admin_main
from forum_server.admin.proposals import MAX_TTL_MS
from forum_server.testing import LocalForum, local_forum

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
WITNESS = cosigner_vkey("w1.example", SigningKey.from_seed(bytes(range(32))).public_bytes)


@pytest.fixture(scope="module")
def forum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalForum]:
    """Member alice, observer carol, incident ``crisis`` open (not concluded)."""
    with local_forum(tmp_path_factory.mktemp("propose"), members=["alice"]) as forum:
        with forum.operator() as op:
            op.set_incident("crisis", open=True, title="An attack")
        yield forum


def _dispute(respondent: str) -> list[str]:
    return ["dispute-open", "d1", "--type", "md5", "--value", MD5, "--respondent", respondent]


# (the proposal's arguments, the option the error must name)
CASES: list[tuple[list[str], str]] = [
    (["member-add", "alice", "--name", "A", "--signing-key", "{alice_pub}"], "MEMBER_ID"),
    # alice's key carries alice's proof of possession, not newco's
    (["member-add", "newco", "--name", "N", "--signing-key", "{alice_pub}"], "--signing-key"),
    (["member-status", "nobody", "--suspend", "--reason", "r"], "MEMBER_ID"),
    (["member-status", "operator", "--suspend", "--reason", "r"], "MEMBER_ID"),
    (["member-status", "alice", "--reinstate", "--reason", "r"], "--reinstate"),
    # a member's key is never reused for the board
    (["rotate-board", "--key", "{alice_pub}", "--threshold", "1"], "--key"),
    (["incident-declare", "crisis", "--title", "again", "--level", "1"], "INCIDENT_ID"),
    (["incident-update", "nothing", "--text", "t"], "INCIDENT_ID"),
    (["incident-debrief", "crisis", "--text", "t"], "INCIDENT_ID"),  # not concluded
    ([*_dispute("nobody"), "--reason", "r", "--appellant", "A user"], "--respondent"),
    ([*_dispute("carol"), "--reason", "r", "--appellant", "A user"], "--respondent"),  # observer
    (["dispute-decide", "nope", "--uphold", "--rationale", "r"], "DISPUTE_ID"),
    # one witness cannot meet a quorum of 2
    (["witness-add", WITNESS, "--url", "http://127.0.0.1:7444", "--quorum", "2"], "--quorum"),
    (["witness-remove", "w9.example"], "NAME"),
]


@pytest.mark.parametrize(
    ("args", "option"), CASES, ids=[f"{a[0]}:{a[1][:10]}:{o}" for a, o in CASES]
)
def test_a_proposal_the_log_would_refuse_is_exit_2_naming_the_option(
    forum: LocalForum,
    args: list[str],
    option: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    alice_pub = str(forum.directory / "members" / "alice.key.pub")
    out = tmp_path / "p.json"
    argv = [
        *("--profile", str(forum.operator_profile), "--server", forum.address, "propose"),
        *(a.format(alice_pub=alice_pub) for a in args),
        *("--out", str(out)),
    ]
    rc = admin_main(argv)
    stdout, err = capfd.readouterr()
    assert rc == 2, f"{argv}: exit {rc}\n{stdout}{err}"
    assert "Traceback" not in stdout + err
    assert option in err, err
    assert not out.exists()


def test_a_good_proposal_is_still_written(
    forum: LocalForum, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The checks against the log let through what the log accepts (the same forum)."""
    out = tmp_path / "p.json"
    argv = [
        *("--profile", str(forum.operator_profile), "--server", forum.address, "propose"),
        *("incident-update", "crisis", "--text", "contained", "--out", str(out)),
    ]
    assert admin_main(argv) == 0, capfd.readouterr()
    assert out.exists()


def _incident(stage: e.IncidentStage) -> Callable[[e.Header], e.Body]:
    is_open = stage is e.IncidentStage.UPDATE
    return lambda h: e.Incident(h, "crisis", "", is_open, stage, 0, "text")


def test_the_library_checks_the_expiry_and_the_log_without_changing_its_state(
    forum: LocalForum,
) -> None:
    update = _incident(e.IncidentStage.UPDATE)
    conclude = _incident(e.IncidentStage.CONCLUDED)
    debrief = _incident(e.IncidentStage.DEBRIEF)
    header = e.Header(forum.trust_root.origin, "operator", b"", 1, 0)
    with forum.operator() as op:
        for ttl in (0, -1, MAX_TTL_MS + 1):
            with pytest.raises(InvalidInputError, match="expires_in"):
                op.propose([update], "x", ttl_ms=ttl)
        state = op.log_state()
        with pytest.raises(EntryRejectedError, match="debrief follows the conclusion"):
            state.check_proposal([debrief(header)])
        # Checked in order (a conclusion, then its debrief), on a copy of the state.
        state.check_proposal([conclude(header), debrief(header)])
        assert "crisis" not in state.concluded and state.size == op.log_state().size
        assert len(op.propose([conclude, debrief], "conclude and debrief").bodies()) == 2
