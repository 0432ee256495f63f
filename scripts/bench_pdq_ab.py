"""Two versions of the PDQ index side by side in one process: queries alternate between them.

    git worktree add /tmp/old <commit>
    .venv/bin/python scripts/bench_pdq_ab.py --old /tmp/old --n 1000000 --rounds 5

Both indexes are built from the same cached data (``scripts/pdq_data.py``, in ``bench-out/``)
with each version's defaults, checked to answer the first queries alike, then timed in
rounds: all misses through one, all misses through the other, then the same for hits. A
round of the new version follows one of the old, so both see the same machine. Prints the
median per-query time of each and their ratio (old / new); the build times and sizes too.

What it leaves out: the queries are all misses (or all hits) back to back, so caches are as
warm as a scan of many uploads leaves them; ``scripts/bench_pdq.py`` times them one by one
after other work, in a fresh process, against python-threatexchange.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from pdq_data import load_or_make  # noqa: E402

DATA_QUERIES = 1000


def _module(checkout: Path, name: str) -> ModuleType:
    """``forum_client.match.pdq_index`` of ``checkout``, loaded under its own name."""
    path = checkout / "forum_client" / "match" / "pdq_index.py"
    if not path.is_file():
        raise SystemExit(f"{checkout}: no forum_client/match/pdq_index.py there")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _per_query_us(index: object, queries: list[bytes]) -> float:
    query = index.query  # type: ignore[attr-defined]
    start = time.perf_counter_ns()
    for q in queries:
        query(q)
    return (time.perf_counter_ns() - start) / len(queries) / 1000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--old", type=Path, required=True, help="checkout of the version to compare")
    p.add_argument("--new", type=Path, default=ROOT, help="checkout of the other (this one)")
    p.add_argument("--n", type=int, default=1_000_000, help="hashes in each index")
    p.add_argument("--set", choices=("realistic", "uniform"), default="realistic")
    p.add_argument("--rounds", type=int, default=5, help="rounds of alternation (>= 1)")
    p.add_argument("--hits", type=int, default=50, help="hit queries per round (slow)")
    p.add_argument("--data-dir", type=Path, default=ROOT / "bench-out")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.n < 1 or args.hits < 0:
        p.error("--rounds and --n must be at least 1, --hits at least 0")
    data = load_or_make(args.data_dir / f"pdq-{args.n}.npz", args.n, DATA_QUERIES)
    hashes = data[args.set]
    misses = [q.tobytes() for q in data[f"{args.set}_miss"]]
    hits = [q.tobytes() for q in data[f"{args.set}_near"][: args.hits]]
    ids = np.arange(len(hashes), dtype=np.int64)
    indexes = {}
    for label, checkout in (("old", args.old), ("new", args.new)):
        module = _module(checkout, f"pdq_index_{label}")
        start = time.perf_counter()
        indexes[label] = module.PDQIndex.build(ids, hashes)
        built = time.perf_counter() - start
        print(f"{label}: build {built:.2f} s, {indexes[label].nbytes / 2**20:.1f} MiB of arrays")
    for q in misses[:50] + hits[:10]:
        if indexes["old"].query(q) != indexes["new"].query(q):
            raise SystemExit("the two versions answer a query differently")
    times: dict[str, dict[str, list[float]]] = {"miss": {"old": [], "new": []}}
    if hits:
        times["hit"] = {"old": [], "new": []}
    for _ in range(args.rounds):
        for kind, queries in (("miss", misses), ("hit", hits)):
            if kind in times:
                for label in ("old", "new"):
                    times[kind][label].append(_per_query_us(indexes[label], queries))
    for kind, by in times.items():
        old, new = float(np.median(by["old"])), float(np.median(by["new"]))
        ratios = [o / n for o, n in zip(by["old"], by["new"], strict=True)]
        print(
            f"{kind}: old {old:.1f} us, new {new:.1f} us per query; old/new {old / new:.2f} "
            f"[{min(ratios):.2f}-{max(ratios):.2f}] over {args.rounds} rounds"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
