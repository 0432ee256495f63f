"""One member cannot take the forum down with idle follow streams: each member has a share of
the call slots, and other members and health checks keep working."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_server.config import ServerConfig
from forum_server.limits import CallsExhaustedError, ConcurrencyLimiter, ConcurrencyLimits
from forum_server.testing import local_forum

pytestmark = [pytest.mark.adversarial, pytest.mark.integration]

# A small pool, so that the attack needs few streams: before per-member limits, 40 idle
# streams of one member took every slot and everyone else got RESOURCE_EXHAUSTED.
CONFIG = ServerConfig(
    max_concurrent_rpcs=40, streams_per_member=4, calls_per_member=8, reserved_calls=8
)
STREAMS = 60


def test_idle_follow_streams_of_one_member_leave_room_for_others(tmp_path: Path) -> None:
    with local_forum(tmp_path, members=("alice", "bob"), observers=(), config=CONFIG) as forum:
        alice, bob = forum.client("alice"), forum.client("bob")
        size = alice.status().log_size
        lock = threading.Lock()
        ended: list[Any] = []

        def done(call: Any) -> None:
            with lock:
                ended.append(call.code())

        calls = []
        for _ in range(STREAMS):
            call = alice.stub.GetEntries(pb.GetEntriesRequest(start=size, follow=True), timeout=120)
            call.add_done_callback(done)
            calls.append(call)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if len(ended) >= STREAMS - CONFIG.streams_per_member:
                    break
            time.sleep(0.05)
        try:
            with lock:
                refused = list(ended)
            assert len(refused) == STREAMS - CONFIG.streams_per_member
            assert set(refused) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            # alice's share is used up by idle streams; bob, health and alice's own unary
            # calls still work
            assert bob.status().member_id == "bob"
            assert bob.checkpoint().size == size
            health = health_pb2_grpc.HealthStub(bob.channel)
            answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            assert alice.status().log_size == size
        finally:
            for call in calls:
                call.cancel()
            alice.close()
            bob.close()


def test_limiter_releases_slots_and_caps_all_streams() -> None:
    limiter = ConcurrencyLimiter(ConcurrencyLimits(2, 1, total_streams=3))
    with limiter.hold("a", streaming=True), limiter.hold("a", streaming=True):
        with (
            pytest.raises(CallsExhaustedError, match="a has 2 streams"),
            limiter.hold("a", streaming=True),
        ):
            pass
        with (
            limiter.hold("b", streaming=True),
            pytest.raises(CallsExhaustedError, match="3 streams"),
            limiter.hold("c", streaming=True),
        ):
            pass
        with (
            limiter.hold("a", streaming=False),
            pytest.raises(CallsExhaustedError, match="calls in flight"),
            limiter.hold("a", streaming=False),
        ):
            pass
    assert limiter.streams == {} and limiter.calls == {} and limiter.total_streams == 0
