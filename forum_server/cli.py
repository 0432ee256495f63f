"""``forum-server``: run a forum."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import click

from forum_client.tools import run

from .app import serve
from .config import ServerConfig


@click.group(help="Run a Shared-Signal Forum server.")
def cli() -> None:
    pass


@cli.command(help="Serve the forum in DATA_DIR over gRPC with mTLS until SIGTERM/SIGINT.")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The server directory made by `forum-admin init` (DIR/server).",
)
@click.option(
    "--listen",
    default="127.0.0.1:7443",
    show_default=True,
    help="HOST:PORT to bind; port 0 picks a free port and prints it.",
)
@click.option(
    "--grace",
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds in-flight calls get to finish on shutdown.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    help="One log line per call at INFO.",
)
@click.option(
    "--database",
    metavar="URL",
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
    type=click.FloatRange(min=0.5),
    help="PostgreSQL only: seconds after which a silent leader is replaced.",
)
def serve_command(
    data_dir: Path,
    listen: str,
    grace: float,
    log_level: str,
    database: str | None,
    lease: float,
) -> None:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = ServerConfig(grace_seconds=grace, lease_seconds=lease)
    host = listen.rsplit(":", 1)[0]

    def ready(port: int) -> None:
        click.echo(f"forum-server listening on {host}:{port}", nl=True)

    asyncio.run(serve(data_dir, listen, config, on_ready=ready, database=database))


serve_command.name = "serve"


def main(argv: Sequence[str] | None = None) -> int:
    return run(cli, argv, "forum-server")


if __name__ == "__main__":
    raise SystemExit(main())
