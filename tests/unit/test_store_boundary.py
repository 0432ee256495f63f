"""The member's database has one owner: ``forum_client/store/`` holds all of its SQL.

Outside that package no module of ``forum_client`` opens an SQLite connection, runs a
statement (``execute``, ``executemany``, ``executescript``), imports ``sqlite_utils`` or holds
an SQL statement as a string; ``import sqlite3`` for its exception types is allowed.  The
generated stubs (``_proto``) are left out.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWNER = ("forum_client", "store")
_STATEMENT = re.compile(
    r"^\s*(SELECT\b|INSERT (OR \w+ )?INTO\b|UPDATE \w+ SET\b|DELETE FROM\b|CREATE (TABLE|INDEX|"
    r"UNIQUE INDEX|VIEW|TRIGGER)\b|DROP (TABLE|INDEX)\b|ALTER TABLE\b|PRAGMA\b|BEGIN\b|"
    r"COMMIT\b|ROLLBACK\b|SAVEPOINT\b|WITH \w+ AS\b)"
)
_CALLS = {"execute", "executemany", "executescript"}


def sql_uses(path: Path, root: Path = ROOT) -> list[str]:
    """Where ``path`` touches a database by SQL (see the module docstring)."""
    where = path.relative_to(root)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        what = ""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            call = ast.unparse(node.func)
            if node.func.attr in _CALLS or call == "sqlite3.connect":
                what = call
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            what = next((n for n in names if n.split(".")[0] == "sqlite_utils"), "")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            what = node.value[:40] if _STATEMENT.match(node.value) else ""
        if what:
            found.append(f"{where}:{getattr(node, 'lineno', '?')}: {what}")
    return found


def test_only_the_store_package_holds_sql() -> None:
    outside = [
        p
        for p in sorted((ROOT / "forum_client").rglob("*.py"))
        if p.relative_to(ROOT).parts[:2] != OWNER and "_proto" not in p.parts
    ]
    assert any(p.name == "sync.py" for p in outside)
    uses = [u for p in outside for u in sql_uses(p)]
    assert uses == [], "SQL outside forum_client/store/: " + "; ".join(uses)


def test_the_scanner_sees_sql(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import sqlite3\n"  # allowed: exception types
        "import sqlite_utils\n"
        "con = sqlite3.connect('x.db')\n"
        "store.con.execute('SELECT count(*) FROM entries')\n"
        "q = '''\n    INSERT OR IGNORE INTO signals VALUES (?)'''\n"
        "doc = 'Select the rows; Drop the index'\n"  # prose, not SQL
    )
    assert len(sql_uses(bad, tmp_path)) == 5
