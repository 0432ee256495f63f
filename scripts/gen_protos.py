#!/usr/bin/env python3
"""Regenerate forum_client/_proto from protos/ (stubs and .pyi are committed).

    python scripts/gen_protos.py           # write the stubs
    python scripts/gen_protos.py --check   # exit 1 if the committed stubs are stale

The protos are staged under a `forum_client/_proto/` import root so the generated modules
import each other as `forum_client._proto.forum.v1...` without any rewriting.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ROOT / "protos"
OUT = ROOT / "forum_client" / "_proto"


def generate(dest: Path) -> None:
    from grpc_tools import protoc  # dev dependency

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "forum_client" / "_proto"
        shutil.copytree(PROTOS, staged)
        sources = sorted(p.relative_to(tmp).as_posix() for p in staged.rglob("*.proto"))
        include = Path(protoc.__file__).parent / "_proto"
        args = [
            "protoc",
            f"-I{tmp}",
            f"-I{include}",
            f"--python_out={dest.parent.parent}",
            f"--pyi_out={dest.parent.parent}",
            f"--grpc_python_out={dest.parent.parent}",
            *sources,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
    for folder in [dest, *(p for p in dest.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    parser.add_argument("--against", type=Path, default=OUT, help="stubs to check (default: ours)")
    args = parser.parse_args(argv)
    if not args.check:
        generate(OUT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "forum_client" / "_proto"
        fresh.mkdir(parents=True)
        generate(fresh)
        stale = _diff(fresh, args.against)
    if stale:
        print("stale generated stubs (run scripts/gen_protos.py):", *stale, sep="\n  ")
        return 1
    return 0


def _diff(fresh: Path, committed: Path) -> list[str]:
    names = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    names |= {
        p.relative_to(committed)
        for p in committed.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    return sorted(
        str(n)
        for n in names
        if not (fresh / n).is_file()
        or not (committed / n).is_file()
        or not filecmp.cmp(fresh / n, committed / n, shallow=False)
    )


if __name__ == "__main__":
    sys.exit(main())
