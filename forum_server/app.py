"""Build and run the ``grpc.aio`` forum server.

    with running_server(data_dir, port=0) as forum:   # tests: a real server on a free port
        print(forum.address)

``serve()`` is what ``forum-server serve`` runs: mTLS required, health checking and
reflection served, graceful shutdown on SIGTERM/SIGINT (health goes NOT_SERVING, in-flight
calls get ``grace_seconds`` to finish).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from forum_client.envelope import SigningKey
from forum_client.errors import ConfigError, InvalidInputError
from forum_client.protocol import messages as forum_pb2
from forum_client.tools import MAX_PEM_BYTES, read_bounded

from .auth import Authenticator
from .config import ServerConfig
from .cosigner import Cosigner
from .leadership import Leadership, LeaseConfig
from .limits import ConcurrencyLimiter, ConcurrencyLimits
from .ratelimit import RateLimiter
from .sequencer import Sequencer
from .services._calls import add_service
from .services.admin import AdminService
from .services.forum import ForumService
from .storage import ServerStore, is_database_url, open_store

if TYPE_CHECKING:
    from .metrics import ServerMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ServerPaths:
    """Where ``forum-admin init`` puts the server's files under ``DIR/server``."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "forum.db"

    @property
    def database_url(self) -> Path:
        """Written by ``forum-admin init --database URL``: the PostgreSQL database to use."""
        return self.root / "database.url"

    def database_location(self, override: str | None = None) -> str:
        """The store to open: ``override``, else the URL recorded at init, else ``forum.db``."""
        if override:
            return override
        if self.database_url.is_file():
            return self.database_url.read_text().strip()
        return str(self.database)

    @property
    def log_key(self) -> Path:
        return self.root / "log.key"

    @property
    def ca_cert(self) -> Path:
        return self.root / "tls" / "ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.root / "tls" / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "tls" / "server.key"

    def check(self, database: str | None = None) -> None:
        needed = [self.log_key, self.ca_cert, self.server_cert, self.server_key]
        location = self.database_location(database)
        if not is_database_url(location):
            if database is not None and not Path(database).is_file():
                raise ConfigError(
                    f"--database {database!r} is neither a postgresql:// URL nor a SQLite file"
                )
            needed.insert(0, Path(location))
        missing = [p for p in needed if not p.is_file()]
        if missing:
            raise ConfigError(
                f"{self.root} is not a forum server directory (missing "
                f"{', '.join(str(p.relative_to(self.root)) for p in missing)}); "
                "create one with: forum-admin init DIR --name NAME"
            )


@dataclass
class ForumServer:
    server: grpc.aio.Server
    port: int
    health: HealthServicer
    sequencer: Sequencer
    store: ServerStore
    config: ServerConfig
    cosigner: Cosigner
    leadership: Leadership | None = None
    leadership_task: asyncio.Task[None] | None = None
    metrics: ServerMetrics | None = None

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING first, then let in-flight calls finish within the grace."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.config.grace_seconds if grace is None else grace)
        await self.cosigner.stop()
        if self.leadership_task is not None:
            self.leadership_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.leadership_task
        await self.sequencer.stop()
        if self.metrics is not None:
            self.metrics.close()
        self.store.close()


async def start_server(
    data_dir: Path,
    listen: str,
    config: ServerConfig | None = None,
    database: str | None = None,
) -> ForumServer:
    """Open the store, rebuild the log, bind ``listen`` (port 0 = any free port) and start.

    ``database`` overrides the store the data dir names (a ``postgresql://`` URL or a SQLite
    path).  Over PostgreSQL the server competes for the leadership and follows meanwhile.
    Raises ConfigError for a missing or broken data dir, StoreError for a store that cannot
    be opened or does not hold this forum, and InvalidInputError when ``listen`` or
    ``config.metrics_listen`` cannot be bound.
    """
    config = config or ServerConfig()
    paths = ServerPaths(Path(data_dir))
    paths.check(database)
    store = await asyncio.to_thread(open_store, paths.database_location(database))
    try:
        return await _start(paths, store, listen, config)
    except BaseException:
        store.close()
        raise


async def _start(
    paths: ServerPaths, store: ServerStore, listen: str, config: ServerConfig
) -> ForumServer:
    limiter = RateLimiter(
        signals_per_second=config.submit_signals_per_second,
        entries_per_second=config.submit_entries_per_second,
        burst_seconds=config.submit_burst_seconds,
    )
    sequencer = await asyncio.to_thread(
        Sequencer,
        store,
        SigningKey.load(paths.log_key),
        max_group=config.max_group_entries,
        limiter=limiter,
        max_clock_skew_seconds=config.max_clock_skew_seconds,
        deferred_view_rows=config.deferred_view_rows,
        deferred_view_max_rows=config.deferred_view_max_rows,
    )
    cosigner = Cosigner(sequencer, config)
    auth = Authenticator(store, lambda: sequencer.state)
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            # Members' channels ping every 30 s (forum_client.transport).  gRPC's default
            # counts pings more often than every 5 min while the server sends nothing as
            # abuse, and a sync whose client commits a large step for 90 s (so the stream
            # is stalled by flow control) was cut with "Too many pings".  (The key is
            # GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS; gRPC ignores unknown ones.)
            ("grpc.http2.min_ping_interval_without_data_ms", config.min_ping_interval_ms),
        ],
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    shares = ConcurrencyLimiter(ConcurrencyLimits.from_config(config))
    services = (
        ForumService(sequencer, auth, config, cosigner),
        AdminService(sequencer, auth, config),
    )
    for servicer, name in zip(services, ("Forum", "Admin"), strict=True):
        servicer.limiter = shares
        servicer.before_call = sequencer.refresh
        add_service(server, servicer, name)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [
        forum_pb2.DESCRIPTOR.services_by_name["Forum"].full_name,
        forum_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ]
    reflection.enable_server_reflection(names, server)
    try:
        key = read_bounded(paths.server_key, MAX_PEM_BYTES, "the server key")
        cert = read_bounded(paths.server_cert, MAX_PEM_BYTES, "the server certificate")
        ca = read_bounded(paths.ca_cert, MAX_PEM_BYTES, "the CA certificate")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{paths.root}: cannot read the server's TLS files ({exc})") from None
    credentials = grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )
    try:
        port = server.add_secure_port(listen, credentials)
    except RuntimeError as exc:
        port = 0
        cause: Exception | None = exc
    else:
        cause = None
    if not port:
        raise InvalidInputError.field(
            "listen",
            f"--listen {listen}: cannot listen there: address in use or not available ({cause})",
        )
    metrics = None
    if config.metrics_listen:
        from .metrics import ServerMetrics

        metrics = ServerMetrics(sequencer)
        for service in services:
            service.on_call = metrics.observe_call
        host, _, metrics_port = config.metrics_listen.rpartition(":")
        if not metrics_port.isdigit():
            raise ConfigError(f"--metrics-listen {config.metrics_listen!r} is not HOST:PORT")
        try:
            bound = metrics.serve(host or "127.0.0.1", int(metrics_port))
        except OSError as exc:  # taken, not this machine's, or a name that does not resolve
            reason = getattr(exc.__cause__, "strerror", None) or str(exc)
            raise InvalidInputError.field(
                "metrics_listen",
                f"--metrics-listen {config.metrics_listen}: cannot serve metrics there ({reason})",
            ) from None
        log.info("metrics on http://%s:%d/metrics", host or "127.0.0.1", bound)
    await (
        cosigner.load_stored()
    )  # before the first call: never the plain checkpoint after a restart
    await server.start()
    leadership: Leadership | None = None
    task: asyncio.Task[None] | None = None
    if sequencer.shared is None:
        sequencer.start()
    else:
        leadership = Leadership(
            sequencer,
            sequencer.shared,
            f"{socket.gethostname()}:{port}:{os.getpid()}",
            LeaseConfig(config.lease_seconds, config.follow_store_seconds),
        )
        task = asyncio.get_running_loop().create_task(leadership.run(), name="leadership")
    cosigner.start()
    for name in names[:2]:
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "forum %s serving on port %d (log size %d)", sequencer.state.origin, port, sequencer.size
    )
    return ForumServer(
        server, port, health, sequencer, store, config, cosigner, leadership, task, metrics
    )


async def serve(
    data_dir: Path,
    listen: str,
    config: ServerConfig | None = None,
    on_ready: Callable[[int], None] | None = None,
    database: str | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    forum = await start_server(data_dir, listen, config, database)
    if on_ready is not None:
        on_ready(forum.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: health NOT_SERVING, %ss grace", forum.config.grace_seconds)
    await forum.stop()


@dataclass(frozen=True)
class RunningForum:
    port: int
    address: str
    data_dir: Path
    handle: ForumServer
    loop: asyncio.AbstractEventLoop

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (for tests that poke at the server)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stored_view(self, timeout: float = 60.0) -> ServerStore:
        """The server's store, once its view holds the whole log (for tests that read the
        view: submissions' rows are deferred, ``ServerConfig.deferred_view_rows``, and
        written 0.2 s after the last entry)."""
        store, sequencer = self.handle.store, self.handle.sequencer
        deadline = time.monotonic() + timeout
        while store.view_size() < sequencer.size:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server's view did not reach the log in {timeout} s")
            time.sleep(0.01)
        return store


@contextlib.contextmanager
def running_server(
    data_dir: Path | str,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    config: ServerConfig | None = None,
    database: str | None = None,
    start_timeout_seconds: float = 60.0,
) -> Iterator[RunningForum]:
    """Run a real server on ``host:port`` (0 = a free port) in a background thread.

    ``start_timeout_seconds``: how long opening the store and rebuilding the log may take
    (a benchmark's forum of millions of signals on a busy machine needs more)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="forum-server", daemon=True)
    thread.start()
    try:
        future = asyncio.run_coroutine_threadsafe(
            start_server(Path(data_dir), f"{host}:{port}", config, database), loop
        )
        handle = future.result(timeout=start_timeout_seconds)
        running = RunningForum(handle.port, f"{host}:{handle.port}", Path(data_dir), handle, loop)
        try:
            yield running
        finally:
            asyncio.run_coroutine_threadsafe(handle.stop(grace=1.0), loop).result(timeout=60)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
