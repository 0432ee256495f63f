"""Server limits and settings, each with its unit.  Read from the environment only at the CLI."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    max_message_bytes: int = 64 * 1024 * 1024  # largest request the server accepts
    max_concurrent_rpcs: int = 1024  # gRPC's one pool of call slots, for everyone
    # Each member's share of it (forum_server.limits): open streams, unary calls in flight;
    # all streams together leave `reserved_calls` slots for unary calls and health checks.
    streams_per_member: int = 16
    calls_per_member: int = 64
    reserved_calls: int = 128
    entries_per_message: int = 256  # entries in one GetEntries batch, at most
    batch_bytes: int = 4 * 1024 * 1024  # a GetEntries batch stops growing past this size
    follow_poll_seconds: float = 15.0  # a follow stream re-checks this often with no news
    # Keepalive pings a client may send while the server sends nothing (members ping every
    # 30 s; gRPC's default, 5 min, cuts a stream stalled by a long client commit).
    min_ping_interval_ms: int = 20_000
    grace_seconds: float = 10.0  # in-flight calls get this long on shutdown
    max_group_entries: int = 256  # entries committed by one group commit
    # SQLite (one server): submissions' view rows held back, then written in key order once
    # this many are pending (or an eighth of the view's rows, up to the max), after 0.2 s
    # without new entries, before an entry whose rules read the view, and on shutdown (a
    # crash replays them from the leaves at start-up); see forum_server/sequencer.py.
    # 0: every commit writes its view rows (as with PostgreSQL).
    deferred_view_rows: int = 400_000  # ~60 MB held; docs/benchmarks.md (#13) for the choice
    deferred_view_max_rows: int = 2_000_000  # ~300 MB held, reached at 8M signals
    # A member entry created further than this from the server's clock (either way) is refused.
    max_clock_skew_seconds: float = 24 * 3600.0
    # Per-member submit rate (token buckets, `burst` seconds deep); 0 disables a limit.
    submit_signals_per_second: float = 200_000.0
    submit_entries_per_second: float = 200.0
    submit_burst_seconds: float = 2.0
    # Several servers over one PostgreSQL database (ignored with SQLite).
    lease_seconds: float = 3.0  # a leader silent this long is replaced
    follow_store_seconds: float = 0.1  # a non-leader looks for new entries this often
    metrics_listen: str = ""  # HOST:PORT to serve Prometheus /metrics on; empty: none
    # Witnesses (issue #9): see cosigner.py.
    witness_timeout_seconds: float = 5.0  # one add-checkpoint call, at most
    witness_straggler_seconds: float = 0.25  # a round waits this long past its quorum
    witness_refresh_seconds: float = 300.0  # an idle log's checkpoint is re-cosigned this often
    witness_backoff_max_seconds: float = 30.0  # a failing witness is retried at most this late
