"""Per-member submit rate limits: two token buckets per member, in signals/s and entries/s.

A bucket holds up to ``burst`` seconds' worth of tokens and refills continuously.  A call
that would overdraw either bucket is refused with :class:`RateLimitedError`, which says how
long to wait (the servicer turns it into ``RESOURCE_EXHAUSTED`` with ``google.rpc.RetryInfo``);
a refused call consumes nothing.  Time comes in as ``now`` (seconds, monotonic).

>>> limiter = RateLimiter(signals_per_second=10, entries_per_second=1, burst_seconds=1)
>>> limiter.charge("acme", signals=10, now=0.0)
>>> limiter.charge("acme", signals=1, now=0.0)
Traceback (most recent call last):
...
forum_server.ratelimit.RateLimitedError: acme is over its submit rate (1 entries/s): retry in 1.0 s
"""

from __future__ import annotations

from dataclasses import dataclass

from forum_client.errors import ForumError


class RateLimitedError(ForumError):
    """Too many requests: retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Bucket:
    rate: float  # tokens per second
    capacity: float
    tokens: float
    at: float

    def refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now

    def wait_for(self, n: float) -> float:
        """Seconds until ``n`` tokens are available (0 if now)."""
        if n <= self.tokens:
            return 0.0
        return (n - self.tokens) / self.rate


class RateLimiter:
    """Token buckets per member.  A rate of 0 disables that limit."""

    def __init__(
        self, *, signals_per_second: float, entries_per_second: float, burst_seconds: float = 2.0
    ) -> None:
        self.signals_per_second = signals_per_second
        self.entries_per_second = entries_per_second
        self.burst_seconds = burst_seconds
        self._buckets: dict[str, tuple[_Bucket, _Bucket]] = {}

    def _new(self, rate: float, now: float) -> _Bucket:
        # A bucket always holds at least one full unit of the largest single charge we allow.
        capacity = max(rate * self.burst_seconds, 1.0)
        return _Bucket(rate, capacity, capacity, now)

    def charge(self, member_id: str, *, signals: int, now: float) -> None:
        """Take one entry and ``signals`` signals from ``member_id``'s buckets, or raise
        RateLimitedError (taking nothing)."""
        buckets = self._buckets.get(member_id)
        if buckets is None:
            buckets = (
                self._new(self.entries_per_second or 1.0, now),
                self._new(self.signals_per_second or 1.0, now),
            )
            self._buckets[member_id] = buckets
        entries, sigs = buckets
        entries.refill(now)
        sigs.refill(now)
        checks = []
        if self.entries_per_second > 0:
            checks.append((entries, 1.0, f"{self.entries_per_second:g} entries/s"))
        if self.signals_per_second > 0 and signals:
            # A batch larger than the bucket can ever hold is let through once the bucket is
            # full, so the limit is a rate, never a hidden cap on batch size.
            need = min(float(signals), sigs.capacity)
            checks.append((sigs, need, f"{self.signals_per_second:g} signals/s"))
        for bucket, need, what in checks:
            wait = bucket.wait_for(need)
            if wait > 0:
                raise RateLimitedError(
                    f"{member_id} is over its submit rate ({what}): retry in {wait:.1f} s",
                    wait,
                )
        if self.entries_per_second > 0:
            entries.tokens -= 1.0
        if self.signals_per_second > 0:
            sigs.tokens -= float(signals)
