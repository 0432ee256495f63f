"""Prometheus metrics of one server (``forum-server serve --metrics-listen HOST:PORT``).

    metrics = ServerMetrics(sequencer)   # a registry of its own: several servers per process
    metrics.serve("127.0.0.1", 9464)     # GET http://127.0.0.1:9464/metrics

- ``forum_requests_total{method,code}`` and ``forum_request_seconds{method}``: every RPC;
- ``forum_sequencer_queue_depth``: entries waiting for the next group commit;
- ``forum_sequencer_group_entries`` and ``forum_commit_seconds``: each group commit's size and
  how long its durable write took;
- ``forum_log_size``: entries in the log as this server has verified it;
- ``forum_leader``: 1 while this server sequences (always 1 with SQLite);
- ``forum_view_deferred_rows``: submissions' view rows held back, to be written together
  (SQLite, ``--deferred-view-rows``; the stored view lags the log while this is not 0).

Needs the ``metrics`` extra (``prometheus_client``).
"""

from __future__ import annotations

import threading
from typing import Any

from forum_client.errors import ConfigError

from .sequencer import Sequencer

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
except ImportError as exc:  # pragma: no cover - the extra is installed wherever it is used
    raise ConfigError(
        "--metrics-listen needs the 'metrics' extra: pip install 'shared-signal-forum[metrics]'"
    ) from exc

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    def __init__(self, sequencer: Sequencer) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "forum_requests",
            "RPCs answered, by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "forum_request_seconds",
            "RPC duration (for streams: until the stream ends)",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.group = Histogram(
            "forum_sequencer_group_entries",
            "entries per group commit",
            buckets=_GROUP_BUCKETS,
            registry=self.registry,
        )
        self.commit = Histogram(
            "forum_commit_seconds",
            "duration of a group commit's durable write",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        queue = Gauge(
            "forum_sequencer_queue_depth",
            "entries waiting for the next group commit",
            registry=self.registry,
        )
        queue.set_function(sequencer.queue_depth)
        size = Gauge("forum_log_size", "entries in the verified log", registry=self.registry)
        size.set_function(lambda: sequencer.size)
        leader = Gauge(
            "forum_leader", "1 while this server sequences the log", registry=self.registry
        )
        leader.set_function(lambda: 1 if sequencer.leading else 0)
        deferred = Gauge(
            "forum_view_deferred_rows",
            "submissions' view rows held back, to be written together",
            registry=self.registry,
        )
        deferred.set_function(lambda: sequencer.deferred_rows)
        sequencer.on_commit = self.observe_commit
        self._http: Any = None
        self.port = 0
        self._thread: threading.Thread | None = None

    def observe_call(self, method: str, code: str, seconds: float) -> None:
        self.requests.labels(method, code).inc()
        self.latency.labels(method).observe(seconds)

    def observe_commit(self, entries: int, seconds: float) -> None:
        self.group.observe(entries)
        self.commit.observe(seconds)

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port`` (0: a free port) in a thread; return the port."""
        try:
            self._http, self._thread = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise OSError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        self.port = int(self._http.server_port)
        return self.port

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
