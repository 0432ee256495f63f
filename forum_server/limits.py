"""Per-member concurrency limits: no member can take the forum's call slots from the others.

gRPC's ``maximum_concurrent_rpcs`` is one pool for every caller: one member holding 1,030
idle ``GetEntries(follow=True)`` streams used to leave every other member, and the health
service, with RESOURCE_EXHAUSTED.  Each member may now hold at most ``streams_per_member``
open streams and ``calls_per_member`` unary calls at once, and all streams together leave
``reserved_calls`` slots of the global pool free for unary calls and health checks.  Over a
limit, the call is refused at once with RESOURCE_EXHAUSTED and a retry delay.

The server runs on one event loop, so plain counters need no lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from .config import ServerConfig
from .ratelimit import RateLimitedError


@dataclass(frozen=True)
class ConcurrencyLimits:
    streams_per_member: int = 16  # open server streams (GetEntries) of one member
    calls_per_member: int = 64  # unary calls of one member in flight at once
    total_streams: int = 1024 - 128  # all members' streams together
    retry_after_seconds: float = 1.0

    @classmethod
    def from_config(cls, config: ServerConfig) -> ConcurrencyLimits:
        return cls(
            streams_per_member=config.streams_per_member,
            calls_per_member=config.calls_per_member,
            total_streams=max(config.max_concurrent_rpcs - config.reserved_calls, 1),
        )


class CallsExhaustedError(RateLimitedError):
    """A member is over its share of concurrent calls (RESOURCE_EXHAUSTED with RetryInfo)."""


class ConcurrencyLimiter:
    def __init__(self, limits: ConcurrencyLimits) -> None:
        self.limits = limits
        self.streams: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.total_streams = 0

    @contextlib.contextmanager
    def hold(self, member: str, *, streaming: bool) -> Iterator[None]:
        """Hold one slot of ``member``'s share for the duration of a call.  Raises
        CallsExhaustedError when the member (or all streams together) is at its limit."""
        lim = self.limits
        counts = self.streams if streaming else self.calls
        mine = counts.get(member, 0)
        if streaming and mine >= lim.streams_per_member:
            raise CallsExhaustedError(
                f"{member} has {mine} streams open, the most one member may hold: close one "
                "(e.g. another sync --follow) and retry",
                lim.retry_after_seconds,
            )
        if streaming and self.total_streams >= lim.total_streams:
            raise CallsExhaustedError(
                f"the forum serves {self.total_streams} streams, its most: retry later",
                lim.retry_after_seconds,
            )
        if not streaming and mine >= lim.calls_per_member:
            raise CallsExhaustedError(
                f"{member} has {mine} calls in flight, the most one member may have: retry "
                "when they finish",
                lim.retry_after_seconds,
            )
        counts[member] = mine + 1
        if streaming:
            self.total_streams += 1
        try:
            yield
        finally:
            left = counts[member] - 1
            if left:
                counts[member] = left
            else:
                del counts[member]
            if streaming:
                self.total_streams -= 1
