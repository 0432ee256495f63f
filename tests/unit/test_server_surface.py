"""The server uses only the SDK's public surface: no ``forum_client._*`` module (generated
stubs come through :mod:`forum_client.protocol`), none of the client's CLI modules (the
tool kit is :mod:`forum_client.tools`), and no ``ForumClient.channel``."""

from __future__ import annotations

import ast
import doctest
from pathlib import Path

from forum_client import protocol, tools

ROOT = Path(__file__).resolve().parents[2]
CLIENT_CLI = {"inputfiles"}  # and every cli*.py: forum-client's own modules


def _is_private(parts: list[str]) -> bool:
    if parts[0] != "forum_client" or len(parts) < 2:
        return False
    cli = parts[1] == "cli" or parts[1].startswith("cli_") or parts[1] in CLIENT_CLI
    return cli or any(p.startswith("_") for p in parts[1:])


def _private_uses(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        private = [n for n in names if _is_private(n.split("."))]
        if private:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {private[0]}")
        if isinstance(node, ast.Attribute) and node.attr == "channel":
            found.append(f"{path.relative_to(root)}:{node.lineno}: .channel")
    return found


def test_the_server_imports_only_the_sdk_public_surface() -> None:
    uses = [u for p in sorted((ROOT / "forum_server").rglob("*.py")) for u in _private_uses(p)]
    assert uses == []


def test_the_checker_sees_a_private_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from forum_client._proto.forum.v1 import forum_pb2\n"
        "from forum_client.cli_errors import run\n"
        "from forum_client.cli_types import without_password\n"
        "from forum_client.cli_governance import emit_report\n"
        "x = client.channel\n"
    )
    assert len(_private_uses(bad, tmp_path)) == 5


def test_public_module_examples_run() -> None:
    for module in (protocol, tools):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
