"""``forum-admin`` propose / sign / submit / pending on a real forum, keys kept apart."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import grpc
import pytest

from forum_client import entries as e
from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client.cli import main as client_main
from forum_client.envelope import Envelope, SigningKey
from forum_client.wire import envelope_to_pb
from forum_server.admin.cli import main as admin_main
from forum_server.admin.init import OperatorPaths
from forum_server.admin.operator import Operator
from forum_server.admin.proposals import Proposal
from forum_server.testing import LocalForum, engine_database, local_forum


def admin(forum: LocalForum, *args: str) -> int:
    base = ["--profile", str(forum.operator_profile), "--server", forum.address]
    return admin_main([*base, *args])


def size(forum: LocalForum) -> int:
    return forum.running.handle.sequencer.size


def board_keys(tmp_path: Path, n: int) -> list[Path]:
    """Board members' keys, made as docs/operator-guide.md says: `forum-client keygen --out`
    with no member id (a board key carries no proof of possession)."""
    paths = []
    for i in range(n):
        path = tmp_path / f"board{i}.key"
        assert client_main(["keygen", "--out", str(path)]) == 0
        assert Path(f"{path}.pub").read_text().count("\n") == 1  # the key line alone
        paths.append(path)
    # A member key still needs both: one of them alone is a mistake.
    half = ["keygen", "--out", str(tmp_path / "half.key"), "--member-id", "acme"]
    assert client_main(half) == 2 and not (tmp_path / "half.key").exists()
    return paths


def test_a_board_governs_by_proposals_signed_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with local_forum(tmp_path / "f", members=["alice"], observers=[]) as forum:
        k = board_keys(tmp_path, 3)
        admin_key = str(forum.operator_profile / "admin.key")
        props = tmp_path / "proposals"
        props.mkdir()
        rot = props / "rotate.json"
        assert (
            admin(
                forum,
                "propose",
                "rotate-board",
                "--threshold",
                "2",
                "--out",
                str(rot),
                *[x for p in k for x in ("--key", f"{p}.pub")],
            )
            == 0
        )
        out = capsys.readouterr().out
        assert "needs 1 signature(s) of the 1-key board and 2 of the 3 new keys" in out
        for key in (admin_key, str(k[0])):
            assert admin_main(["sign", str(rot), "--key", key]) == 0
        assert admin_main(["pending", str(props)]) == 0
        assert "needs 1 more" in capsys.readouterr().out
        before = size(forum)
        assert admin(forum, "submit", str(rot)) != 0
        assert "1 more signature(s) needed" in capsys.readouterr().err
        assert size(forum) == before
        assert admin_main(["sign", str(rot), "--key", str(k[1])]) == 0
        assert admin(forum, "submit", str(rot)) == 0
        assert f"at log index {before}" in capsys.readouterr().out
        assert admin(forum, "board", "show", "--json") == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["threshold"] == 2 and len(shown["key_ids"]) == 3

        # The one-key commands no longer work: the admin key left the board.
        assert admin(forum, "member", "suspend", "alice", "--reason", "x") != 0
        err = capsys.readouterr().err
        assert "left the operator board" in err and "forum-admin propose" in err  # the way on

        # Admit a member through a proposal.
        dave = tmp_path / "dave.key"
        SigningKey.generate().save(dave, possession=[(forum.trust_root.origin, "dave")])
        add = props / "add-dave.json"
        args = ["propose", "member-add", "dave", "--name", "Dave", "--signing-key", f"{dave}.pub"]
        assert admin(forum, *args, "--out", str(add)) == 0
        assert admin_main(["sign", str(add), "--key", str(k[2])]) == 0
        capsys.readouterr()
        # Bad input: the same key again, a key outside the board, too few signatures.
        assert admin_main(["sign", str(add), "--key", str(k[2])]) != 0
        assert "has signed this proposal already" in capsys.readouterr().err
        assert admin_main(["sign", str(add), "--key", admin_key]) != 0
        assert "not in the operator board" in capsys.readouterr().err
        before = size(forum)
        assert admin(forum, "submit", str(add)) != 0
        assert size(forum) == before
        assert admin_main(["sign", str(add), "--key", str(k[0])]) == 0
        assert admin(forum, "submit", str(add)) == 0
        out = capsys.readouterr().out
        assert f"at log index {before}, {before + 1}" in out
        assert "credentials reissue dave" in out
        assert size(forum) == before + 2
        # Submitted proposals are no longer pending; resubmitting is refused.
        assert admin_main(["pending", str(props)]) == 0
        assert "no pending proposals" in capsys.readouterr().out
        assert admin(forum, "submit", str(add)) != 0
        assert "already submitted" in capsys.readouterr().err
        with forum.operator() as op:
            assert "dave" in op.log_state().members


def test_expired_and_foreign_proposals_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import datetime as dt

    with local_forum(tmp_path / "f", members=["alice"], observers=[]) as forum:
        admin_key = SigningKey.load(forum.operator_profile / "admin.key")
        past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        paths = OperatorPaths(forum.operator_profile)
        with Operator(paths, server=forum.address, now=lambda: past) as old:
            stale = old.propose(
                [lambda h: e.Incident(h, "late", "Too late", True)], "late", ttl_ms=3_600_000
            )
        signed = stale.signed(admin_key, now_ms=stale.created_unix_ms)
        path = tmp_path / "late.json"
        signed.save(path)
        before = size(forum)
        assert admin(forum, "submit", str(path)) != 0
        assert "expired" in capsys.readouterr().err
        assert (
            admin_main(["sign", str(path), "--key", str(forum.operator_profile / "admin.key")]) != 0
        )
        assert "expired" in capsys.readouterr().err
        [envelope] = [x for x in signed.envelopes if isinstance(x, Envelope)]
        with forum.operator() as op:
            request = pb.AppendOperatorEntryRequest(entry=envelope_to_pb(envelope))
            with pytest.raises(grpc.RpcError) as caught:
                op.admin.AppendOperatorEntry(request, timeout=30)
            assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "expired" in str(caught.value.details())
            # A proposal for another forum: refused by the tool and by the server.
            h = e.Header("another.forum", "operator", b"", 10**12, 0, 2**62)
            foreign = Proposal.create(
                [e.Incident(h, "x", "X", True)], op.board(), "foreign", now_ms=0
            ).signed(admin_key, now_ms=0)
            foreign_path = tmp_path / "foreign.json"
            foreign.save(foreign_path)
            [envelope] = [x for x in foreign.envelopes if isinstance(x, Envelope)]
            with pytest.raises(grpc.RpcError) as caught:
                op.admin.AppendOperatorEntry(
                    pb.AppendOperatorEntryRequest(entry=envelope_to_pb(envelope)), timeout=30
                )
            assert "is for forum 'another.forum'" in str(caught.value.details())
        assert admin(forum, "submit", str(foreign_path)) != 0
        assert "is for forum 'another.forum'" in capsys.readouterr().err
        assert size(forum) == before
    # `pending` shows what cannot be submitted for what it is: expired, or invalid (a
    # signature repeated, or by a key outside the board), never "ready".
    doc = json.loads(path.read_text())
    sigs = doc["entries"][0]["signatures"]
    (tmp_path / "twice.json").write_text(
        json.dumps({**doc, "entries": [{**doc["entries"][0], "signatures": [sigs[0], sigs[0]]}]})
    )
    outsider = SigningKey.generate()
    [env] = [x for x in Proposal.load(path).envelopes if isinstance(x, Envelope)]
    [(kid, sig)] = outsider.sign(env.payload_type, env.body).signatures
    extra = sorted(
        [*sigs, {"key_id": kid.hex(), "signature": base64.b64encode(sig).decode()}],
        key=lambda x: x["key_id"],
    )
    doc = json.loads(path.read_text())
    doc["entries"][0]["signatures"] = extra
    (tmp_path / "outsider.json").write_text(json.dumps(doc))
    capsys.readouterr()
    assert admin_main(["pending", str(tmp_path), "--json"]) == 0
    rows = {Path(r["file"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["late.json"]["status"] == "expired"
    assert rows["foreign.json"]["status"] == "ready"  # offline; its expiry is past year 9999
    assert rows["twice.json"]["status"] == "invalid"
    assert "duplicated signature" in rows["twice.json"]["reason"]
    assert rows["outsider.json"]["status"] == "invalid"
    assert "not in the set" in rows["outsider.json"]["reason"]


def test_init_names_a_board_in_genesis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from forum_server.app import running_server

    k = board_keys(tmp_path, 2)
    directory = tmp_path / "forum"
    keys = ["--board-key", f"{k[0]}.pub", "--board-key", f"{k[1]}.pub"]
    bad = ["init", str(tmp_path / "x"), "--name", "N", "--threshold", "4", *keys]
    assert admin_main(bad) != 0
    assert "needs at least 3 --board-key" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    args = ["init", str(directory), "--name", "Board forum", "--threshold", "2", *keys]
    with engine_database() as database:  # --engine=postgres reaches this test too
        assert admin_main([*args, *(["--database", database] if database else [])]) == 0
        assert "board:    2-of-3" in capsys.readouterr().out
        with running_server(directory / "server", port=0) as running:
            profile = ["--profile", str(directory / "operator"), "--server", running.address]
            proposal = str(tmp_path / "taxonomy.json")
            assert (
                admin_main([*profile, "propose", "taxonomy", "--default", "--out", proposal]) == 0
            )
            assert (
                admin_main(["sign", proposal, "--key", str(directory / "operator" / "admin.key")])
                == 0
            )
            assert admin_main([*profile, "submit", proposal]) != 0  # one of two
            assert admin_main(["sign", proposal, "--key", str(k[0])]) == 0
            assert admin_main([*profile, "submit", proposal]) == 0
            capsys.readouterr()
            assert admin_main([*profile, "board", "show", "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["threshold"] == 2
            assert admin_main([*profile, "taxonomy", "show", "--json"]) == 0
            assert "behaviour:terrorist-publication" in capsys.readouterr().out
            assert running.handle.sequencer.size == 2
        assert (directory / "server" / "forum.db").exists() == (database is None)
