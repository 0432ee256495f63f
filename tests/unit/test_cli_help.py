"""Every command of every CLI explains itself with --help."""

from __future__ import annotations

import click
import pytest

from forum_client.cli import cli as client_cli
from forum_server.admin.cli import cli as admin_cli
from forum_server.cli import cli as server_cli
from forum_server.witness.cli import cli as witness_cli


def _commands(group: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if isinstance(group, click.Group):
        for name, command in group.commands.items():
            found += _commands(command, (*path, name))
    return found


CASES = [
    (cli, path)
    for cli in (client_cli, admin_cli, server_cli, witness_cli)
    for path in _commands(cli)
]


@pytest.mark.parametrize(
    ("cli", "path"), CASES, ids=[f"{cli.name}:{' '.join(path) or '-'}" for cli, path in CASES]
)
def test_every_command_has_help(cli: click.Command, path: tuple[str, ...]) -> None:
    command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help and len(command.help) > 20, f"{path} has no real help text"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{path}: option {param.name} has no help"
