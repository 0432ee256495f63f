"""``forum-witness``: run a C2SP witness that cosigns the forum's checkpoints.

forum-witness init DIR --name witness.example/w1     # prints the verifier key
forum-witness serve --data-dir DIR --listen 127.0.0.1:7380 --log forum.vkey
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import click

from forum_client.errors import ConfigError
from forum_client.tools import run, version_option


@click.group(
    help="A transparency-log witness (c2sp.org/tlog-witness): it cosigns a log's checkpoints "
    "only after checking each is consistent with the last one it cosigned, so a log cannot "
    "show two members two histories."
)
@version_option()
def cli() -> None:
    pass


@cli.command(help="Make witness directory DIR with a new Ed25519 key and print its vkey.")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--name",
    required=True,
    help="The witness's key name, a schema-less URL such as witness.example.org/w1.",
)
def init(directory: Path, name: str) -> None:
    from .service import init_witness

    click.echo(init_witness(directory, name))


@cli.command(help="Serve POST /add-checkpoint for the logs named by --log until SIGTERM.")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="The directory made by `forum-witness init`.",
)
@click.option(
    "--listen",
    default="127.0.0.1:7380",
    show_default=True,
    help="HOST:PORT to bind; port 0 picks a free port and prints it.",
)
@click.option(
    "--log",
    "log_files",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A file holding a log's verifier key (`forum-admin witness log-vkey` prints the "
    "forum's); repeat for several logs.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    help="One line per request at INFO.",
)
def serve(data_dir: Path, listen: str, log_files: tuple[Path, ...], log_level: str) -> None:
    try:
        from . import http
    except ImportError as exc:
        raise ConfigError(
            f"forum-witness serve needs the 'witness' extra (pip install "
            f"'shared-signal-forum[witness]'): {exc}"
        ) from None
    from .service import Witness, load_log_keys

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise click.BadParameter(f"{listen!r} is not HOST:PORT", param_hint="--listen")
    witness = Witness(data_dir, load_log_keys(log_files))

    def ready(port: int) -> None:
        click.echo(f"forum-witness {witness.name} listening on http://{host}:{port}")

    asyncio.run(http.serve(witness, host, int(port_text), ready))


def main(argv: Sequence[str] | None = None) -> int:
    return run(cli, argv, "forum-witness")


if __name__ == "__main__":
    raise SystemExit(main())
