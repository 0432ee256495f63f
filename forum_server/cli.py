"""``forum-server``: run a forum."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path

import click

from forum_client.errors import ConfigError
from forum_client.tools import (
    ADDRESS,
    DATABASE,
    OPTIONAL_LISTEN,
    FiniteRange,
    run,
    version_option,
)

from .app import serve
from .check import run_checks
from .config import ServerConfig


@click.group(help="Run a Shared-Signal Forum server.")
@version_option()
def cli() -> None:
    pass


@cli.command(help="Serve the forum in DATA_DIR over gRPC with mTLS until SIGTERM/SIGINT.")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="The server directory made by `forum-admin init` (DIR/server).",
)
@click.option(
    "--listen",
    type=ADDRESS,
    default="127.0.0.1:7443",
    show_default=True,
    help="HOST:PORT to bind; port 0 picks a free port and prints it.",
)
@click.option(
    "--grace",
    default=10.0,
    show_default=True,
    type=FiniteRange(0, 3600),
    help="Seconds in-flight calls get to finish on shutdown (0-3600).",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="One log line per call at INFO.",
)
@click.option(
    "--database",
    metavar="URL",
    type=DATABASE,
    envvar="FORUM_DATABASE_URL",
    help="postgresql://USER@HOST:PORT/DB to serve (default: what `forum-admin init` "
    "recorded, else DATA_DIR/forum.db). Any number of servers can share one PostgreSQL "
    "database: one sequences, the others serve reads and forward submissions to it. "
    "Also read from FORUM_DATABASE_URL (keeps a password out of the process list).",
)
@click.option(
    "--lease",
    default=3.0,
    show_default=True,
    type=FiniteRange(min=0.5),
    help="PostgreSQL only: seconds after which a silent leader is replaced.",
)
@click.option(
    "--metrics-listen",
    type=OPTIONAL_LISTEN,
    default="",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (requests by method and "
    "status, latency, sequencer queue and group size, commit time, log size, leader). "
    "Needs the 'metrics' extra.",
)
@click.option(
    "--deferred-view-rows",
    default=ServerConfig.deferred_view_rows,
    show_default=True,
    type=click.IntRange(min=0),
    help="SQLite only: hold submissions' rows of the server's view back and write them "
    "together, in key order, once this many are pending (or an eighth of the view's rows, "
    "if more; also after 0.2 s without new entries, and on shutdown; after a crash they "
    "are replayed from the log at start-up). They are written in key ranges of 100,000 "
    "rows between the next commits, so the log never waits for all of them. A retraction, "
    "opinion or dispute has the held rows of the signals it names written first, not all "
    "of them. Several times faster submissions into a large forum; about 150 bytes of "
    "memory a row; 0 writes them with every commit.",
)
@click.option(
    "--deferred-view-max-rows",
    default=ServerConfig.deferred_view_max_rows,
    show_default=True,
    type=click.IntRange(min=0),
    help="SQLite only: the most held-back view rows that make one pass, however large the "
    "view (a pass is an eighth of its rows, to keep submissions as fast into a large forum "
    "as into a small one); below --deferred-view-rows it is that.",
)
def serve_command(
    data_dir: Path,
    listen: str,
    grace: float,
    log_level: str,
    database: str | None,
    lease: float,
    metrics_listen: str,
    deferred_view_rows: int,
    deferred_view_max_rows: int,
) -> None:
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    config = ServerConfig(
        grace_seconds=grace,
        lease_seconds=lease,
        metrics_listen=metrics_listen,
        deferred_view_rows=deferred_view_rows,
        deferred_view_max_rows=deferred_view_max_rows,
    )
    host = listen.rsplit(":", 1)[0]

    def ready(port: int) -> None:
        click.echo(f"forum-server listening on {host}:{port}", nl=True)

    asyncio.run(serve(data_dir, listen, config, on_ready=ready, database=database))


serve_command.name = "serve"


@cli.command(
    help="Check that DATA_DIR can be served: files, log key, TLS certificate, database "
    "(reachable, schema, leader) and the log itself (replayed and checked against its last "
    "signed checkpoint). Exits 0 when every check passes."
)
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="The server directory made by `forum-admin init` (DIR/server).",
)
@click.option(
    "--database",
    metavar="URL",
    type=DATABASE,
    envvar="FORUM_DATABASE_URL",
    help="The database to check instead of the one the data dir names.",
)
def check(data_dir: Path, database: str | None) -> None:
    failed = 0
    for result in run_checks(data_dir, database=database, now=dt.datetime.now(dt.UTC)):
        click.echo(f"{'ok ' if result.ok else 'FAIL'} {result.name:9} {result.detail}")
        failed += not result.ok
    if failed:
        raise ConfigError(f"{failed} check(s) failed: fix them before serving")
    click.echo("ready to serve")


def main(argv: Sequence[str] | None = None) -> int:
    return run(cli, argv, "forum-server")


if __name__ == "__main__":
    raise SystemExit(main())
