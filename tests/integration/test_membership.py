"""Issue 2 end to end: a real server on port 0, real mTLS, the real SDK and CLIs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from forum_client import entries as e
from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client._proto.forum.v1 import forum_pb2_grpc as pb_grpc
from forum_client.cli import main as client_main
from forum_client.client import ForumClient
from forum_client.envelope import SigningKey
from forum_client.errors import InvalidInputError, TransportError
from forum_client.profile import Bundle
from forum_client.transport import open_channel
from forum_client.wire import envelope_to_pb
from forum_server.admin.ca import create_ca, issue_member_cert
from forum_server.admin.cli import main as admin_main
from forum_server.app import running_server
from forum_server.cli import main as server_main
from forum_server.config import ServerConfig
from forum_server.testing import LocalForum, local_forum

pytestmark = pytest.mark.integration


def _submission(client: ForumClient, key: SigningKey) -> e.Submission:
    item = e.SignalItem("md5", "d41d8cd98f00b204e9800998ecf8427e", (), "image")
    return e.Submission(client.header(key), (item,))


def test_enrollment_through_the_clis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_forum_instance: LocalForum
) -> None:
    forum = local_forum_instance
    origin = forum.trust_root.origin
    key = tmp_path / "dana.key"
    assert (
        client_main(["keygen", "--out", str(key), "--member-id", "dana", "--origin", origin]) == 0
    )
    assert key.stat().st_mode & 0o777 == 0o600
    bundle = tmp_path / "dana.bundle.json"
    assert (
        admin_main(
            [
                "--profile",
                str(forum.operator_profile),
                "--server",
                forum.address,
                "member",
                "add",
                "dana",
                "--name",
                "Dana Corp",
                "--signing-key",
                f"{key}.pub",
                "--out",
                str(bundle),
            ]
        )
        == 0
    )
    assert bundle.stat().st_mode & 0o777 == 0o600
    # --server changed only where forum-admin connected: the bundle points at the forum's
    # own address (init's --address), so the member reaches this test server with --server.
    assert Bundle.load(bundle).server == Bundle.load(forum.operator_profile).server
    capsys.readouterr()
    assert (
        client_main(["--profile", str(bundle), "--server", forum.address, "status", "--json"]) == 0
    )
    status = json.loads(capsys.readouterr().out)
    assert status["member_id"] == "dana"
    assert status["role"] == "member"
    assert status["origin"] == origin
    assert status["log_size"] >= 2  # genesis, admissions and keys of the fixture's members


def test_missing_client_certificate_is_rejected(local_forum_instance: LocalForum) -> None:
    bundle = local_forum_instance.members["alice"].bundle
    creds = grpc.ssl_channel_credentials(root_certificates=bundle.ca_certificate)
    with grpc.secure_channel(local_forum_instance.address, creds) as channel:
        stub = pb_grpc.ForumStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.GetStatus(pb.GetStatusRequest(), timeout=10)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails


def _status_with(bundle: Bundle, address: str) -> None:
    with ForumClient(bundle, server=address, timeout=10) as client:
        client.status()


def test_foreign_ca_certificate_is_rejected(local_forum_instance: LocalForum) -> None:
    bundle = local_forum_instance.members["alice"].bundle
    now = dt.datetime.now(dt.UTC)
    foreign = issue_member_cert(create_ca("Elsewhere", now), "alice", now)
    forged = Bundle(
        bundle.member_id,
        bundle.server,
        bundle.ca_certificate,
        foreign.cert_pem,
        foreign.key_pem,
        bundle.trust_root,
    )
    with pytest.raises(TransportError) as info:
        _status_with(forged, local_forum_instance.address)
    assert info.value.code == "UNAVAILABLE"


def test_expired_certificate_is_rejected(local_forum_instance: LocalForum) -> None:
    forum = local_forum_instance
    with forum.operator() as op:
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        expired = issue_member_cert(op.ca, "alice", long_ago, days=1)
    bundle = forum.members["alice"].bundle
    stale = Bundle(
        bundle.member_id,
        bundle.server,
        bundle.ca_certificate,
        expired.cert_pem,
        expired.key_pem,
        bundle.trust_root,
    )
    with pytest.raises(TransportError) as info:
        _status_with(stale, forum.address)
    assert info.value.code == "UNAVAILABLE"


def test_unregistered_certificate_of_the_forum_ca_is_rejected(
    local_forum_instance: LocalForum,
) -> None:
    """A certificate the CA signed but the operator never registered: the server's own list
    (not TLS) refuses it, before any handler logic."""
    forum = local_forum_instance
    with forum.operator() as op:
        rogue = issue_member_cert(op.ca, "alice", dt.datetime.now(dt.UTC))
    bundle = forum.members["alice"].bundle
    unregistered = Bundle(
        bundle.member_id,
        bundle.server,
        bundle.ca_certificate,
        rogue.cert_pem,
        rogue.key_pem,
        bundle.trust_root,
    )
    with pytest.raises(TransportError) as info:
        _status_with(unregistered, forum.address)
    assert info.value.code == "UNAUTHENTICATED"
    assert "not registered" in str(info.value)


def test_suspended_member_is_rejected_then_reinstated(local_forum_instance: LocalForum) -> None:
    forum = local_forum_instance
    with forum.client("bob") as bob, forum.operator() as op:
        assert bob.status().status is e.MemberStatus.ACTIVE
        op.set_status("bob", e.MemberStatus.SUSPENDED, "investigation")
        with pytest.raises(TransportError) as info:
            bob.status()  # the next call, same channel, no restart
        assert info.value.code == "PERMISSION_DENIED"
        assert "suspended" in str(info.value)
        op.set_status("bob", e.MemberStatus.ACTIVE, "cleared")
        assert bob.status().status is e.MemberStatus.ACTIVE
        assert [m.status for m in op.members() if m.member_id == "bob"] == [e.MemberStatus.ACTIVE]


def test_member_calling_an_admin_rpc_is_rejected(local_forum_instance: LocalForum) -> None:
    forum = local_forum_instance
    with forum.client("alice") as alice:
        admin = pb_grpc.AdminStub(alice.channel)
        for call, request in [
            (admin.ListMembers, pb.ListMembersRequest()),
            (admin.ListAudit, pb.ListAuditRequest()),
            (admin.RegisterCredential, pb.RegisterCredentialRequest(member_id="alice")),
        ]:
            with pytest.raises(grpc.RpcError) as info:
                call(request, timeout=10)
            assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_member_cannot_append_operator_entries_even_via_submit(
    local_forum_instance: LocalForum,
) -> None:
    forum = local_forum_instance
    member = forum.members["alice"]
    with forum.client("alice") as alice:
        before = alice.checkpoint().size
        body = e.MemberStatusChanged(
            alice.header(member.signing_key), "bob", e.MemberStatus.SUSPENDED, "coup"
        )
        with pytest.raises(TransportError) as info:
            alice.append(body, member.signing_key)
        assert info.value.code == "PERMISSION_DENIED"
        assert alice.checkpoint().size == before


def _weak_pub_file(path: Path, raw: bytes, origin: str, member: str) -> Path:
    import base64

    sig = base64.b64encode(bytes(64)).decode()
    path.write_text(
        f"ed25519 {base64.b64encode(raw).decode()}\npossession {origin} {member} {sig}\n"
    )
    return path


@pytest.mark.parametrize(
    "raw",
    [
        bytes.fromhex("01" + "00" * 31),  # identity: small order
        bytes.fromhex("ec" + "ff" * 30 + "7f"),  # y = p - 1: a point of order 2
        bytes.fromhex("ed" + "ff" * 30 + "7f"),  # y = p: non-canonical
    ],
)
def test_weak_key_is_rejected_by_admin_tool(
    tmp_path: Path, local_forum_instance: LocalForum, raw: bytes
) -> None:
    forum = local_forum_instance
    pub = _weak_pub_file(tmp_path / "weak.pub", raw, forum.trust_root.origin, "mallory")
    with forum.operator() as op, pytest.raises(InvalidInputError):
        op.add_member(
            "mallory",
            display_name="M",
            role=e.Role.MEMBER,
            signing_key=pub,
            out=tmp_path / "m.json",
        )


def test_weak_or_unproven_key_is_rejected_by_the_server(local_forum_instance: LocalForum) -> None:
    """The server runs the same rules on an operator-signed entry: even the operator cannot
    register a small-order key, or a key whose possession is not proven."""
    forum = local_forum_instance
    origin = forum.trust_root.origin
    good = SigningKey.generate()
    cases = [
        (bytes.fromhex("01" + "00" * 31), bytes(64)),  # small-order point
        (good.public_bytes, good.prove_possession(origin, "bob")),  # proof for someone else
        (good.public_bytes, good.prove_possession("other.forum", "alice")),  # other forum
        (good.public_bytes, bytes(64)),  # no proof at all
    ]
    with forum.operator() as op:
        before = op.forum.checkpoint().size
        for public_key, pop in cases:
            header = op.forum.header(op.admin_key)
            body = e.KeyAdded(header, "alice", public_key, pop)
            envelope = op.admin_key.sign(e.payload_type_of(body), e.encode(body))
            with pytest.raises(grpc.RpcError) as info:
                op.admin.AppendOperatorEntry(
                    pb.AppendOperatorEntryRequest(entry=envelope_to_pb(envelope)), timeout=10
                )
            assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert op.forum.checkpoint().size == before
        assert any(r.outcome == "rejected" and r.action == "key-added.v1" for r in op.audit())


def test_key_rotation_keeps_old_entries_valid_and_stops_the_old_key(
    tmp_path: Path, local_forum_instance: LocalForum
) -> None:
    forum = local_forum_instance
    alice = forum.members["alice"]
    new_key = SigningKey.generate()
    new_key.save(tmp_path / "new.key", possession=[(forum.trust_root.origin, "alice")])
    with forum.client("alice") as client, forum.operator() as op:
        first = client.append(_submission(client, alice.signing_key), alice.signing_key)
        rotation = op.rotate_key("alice", tmp_path / "new.key.pub")
        assert rotation.index > first.index
        with pytest.raises(TransportError) as info:
            client.append(_submission(client, alice.signing_key), alice.signing_key)
        assert info.value.code == "PERMISSION_DENIED"
        assert info.value.reason == "key-inactive"
        later = client.append(_submission(client, new_key), new_key)
        assert later.index > rotation.index
        keys = next(m.active_key_ids for m in op.members() if m.member_id == "alice")
        assert keys == [new_key.key_id.hex()]


def test_credentials_reissue_revokes_the_old_certificate(
    tmp_path: Path, local_forum_instance: LocalForum
) -> None:
    forum = local_forum_instance
    old = forum.members["bob"].bundle
    with forum.operator() as op:
        assert op.reissue_credentials("bob", tmp_path / "bob2.json") == 1
    with pytest.raises(TransportError) as info:
        _status_with(old, forum.address)
    assert info.value.code == "UNAUTHENTICATED"
    with ForumClient.connect(tmp_path / "bob2.json") as fresh:
        assert fresh.status().member_id == "bob"


def test_observer_cannot_submit(local_forum_instance: LocalForum) -> None:
    forum = local_forum_instance
    carol = forum.members["carol"]
    with forum.client("carol") as client:
        assert client.status().role is e.Role.OBSERVER
        with pytest.raises(TransportError) as info:
            client.append(_submission(client, carol.signing_key), carol.signing_key)
        assert info.value.code == "PERMISSION_DENIED"


def test_audit_records_every_admin_action(
    local_forum_instance: LocalForum, capsys: pytest.CaptureFixture[str]
) -> None:
    forum = local_forum_instance
    with forum.operator() as op:
        op.set_status("bob", e.MemberStatus.SUSPENDED, "audit me")
    capsys.readouterr()
    assert (
        admin_main(
            ["--profile", str(forum.operator_profile), "--server", forum.address, "audit", "--json"]
        )
        == 0
    )
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    actions = [(r["actor"], r["action"], r["target"], r["outcome"]) for r in records]
    assert actions[0][:2] == ("operator", "init")
    assert ("operator", "member-admitted.v1", "alice", "ok") in actions
    assert ("operator", "credential-register", "carol", "ok") in actions
    assert actions[-1] == ("operator", "member-status.v1", "bob", "ok")
    assert all(r["time"] for r in records)


def test_health_and_reflection_are_served(local_forum_instance: LocalForum) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    bundle = local_forum_instance.members["alice"].bundle
    with open_channel(bundle, local_forum_instance.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="forum.v1.Forum"), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        services = {
            s.name
            for response in stub.ServerReflectionInfo(iter([request]), timeout=10)
            for s in response.list_services_response.service
        }
    assert {"forum.v1.Forum", "forum.v1.Admin", "grpc.health.v1.Health"} <= services


def test_second_server_on_the_same_port_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with local_forum(tmp_path, members=[], observers=[]) as forum:
        with (
            pytest.raises(InvalidInputError, match="cannot listen"),
            running_server(forum.directory / "server", port=forum.running.port),
        ):
            pass
        taken = f"127.0.0.1:{forum.running.port}"
        argv = ["serve", "--data-dir", str(forum.directory / "server"), "--listen", taken]
        assert server_main(argv) == 2  # bad input, with the reason, not a crash (1)
        assert f"--listen {taken}: cannot listen there" in capsys.readouterr().err
        with forum.operator() as op:  # the first server is unharmed
            assert op.members()[0].member_id == "operator"


def _stalled_follow_cut(
    tmp_path: Path, min_ping_interval_ms: int, watch_seconds: float
) -> grpc.StatusCode | None:
    """How a follow stream with nothing to send ends while its client pings every second
    (what a member's 30 s pings do to a stream stalled by a long commit, sped up): the
    status it was cut with, or None if it is still open after ``watch_seconds``."""
    config = ServerConfig(min_ping_interval_ms=min_ping_interval_ms, follow_poll_seconds=600)
    with local_forum(tmp_path, members=["alice"], observers=[], config=config) as forum:
        bundle = forum.members["alice"].bundle
        credentials = grpc.ssl_channel_credentials(
            bundle.ca_certificate, bundle.client_key, bundle.client_certificate
        )
        pings = [
            ("grpc.keepalive_time_ms", 1000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]
        with grpc.secure_channel(forum.address, credentials, options=pings) as channel:
            stub = pb_grpc.ForumStub(channel)
            size = stub.GetStatus(pb.GetStatusRequest(), timeout=60).log_size
            stream = stub.GetEntries(pb.GetEntriesRequest(start=size, follow=True), timeout=600)
            deadline = time.monotonic() + watch_seconds
            while stream.is_active() and time.monotonic() < deadline:
                time.sleep(0.05)
            cut: grpc.StatusCode | None = None if stream.is_active() else stream.code()
            stream.cancel()
            return cut


def test_keepalive_pings_do_not_cut_a_stalled_stream(tmp_path: Path) -> None:
    """A 10M sync was cut with "Too many pings" while its client committed a large step: the
    server's ping floor is set under gRPC's real option key (an unknown key is ignored).
    With gRPC's default floor (5 minutes) the third ping too early ends the connection (a
    few seconds here); it is waited for up to 2 minutes, so that load cannot outlast it."""
    assert _stalled_follow_cut(tmp_path / "floor", 500, watch_seconds=6) is None
    cut = _stalled_follow_cut(tmp_path / "default", 300_000, watch_seconds=120)
    assert cut == grpc.StatusCode.UNAVAILABLE, cut


def test_graceful_shutdown_finishes_an_in_flight_call(tmp_path: Path) -> None:
    """A submission whose commit is still running when shutdown starts gets its receipt;
    calls after shutdown began are refused."""
    with local_forum(tmp_path, members=["alice"], observers=[]) as forum:
        sequencer = forum.running.handle.sequencer
        store = sequencer.store
        entered, release = threading.Event(), threading.Event()
        real_append = store.append

        def slow_append(*args: object, **kwargs: object) -> None:
            entered.set()
            assert release.wait(10)
            real_append(*args, **kwargs)  # type: ignore[arg-type]

        store.append = slow_append  # type: ignore[method-assign]
        alice = forum.members["alice"]
        client = forum.client("alice")
        body = _submission(client, alice.signing_key)
        results: list[object] = []
        worker = threading.Thread(
            target=lambda: results.append(client.append(body, alice.signing_key))
        )
        worker.start()
        assert entered.wait(10)
        stop_future = asyncio.run_coroutine_threadsafe(
            forum.running.handle.stop(grace=10), forum.running.loop
        )
        release.set()
        worker.join(15)
        stop_future.result(15)
        assert len(results) == 1 and getattr(results[0], "index", 0) > 0
        with pytest.raises(TransportError):
            client.status()
        client.close()
