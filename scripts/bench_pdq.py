"""Benchmark forum_client's PDQIndex against python-threatexchange's default PDQ index.

    .venv/bin/python scripts/bench_pdq.py --n 1000000 --queries 1000 --json bench_pdq.json

Each index is measured in a fresh subprocess (clean RSS numbers) on the same random hashes
(fixed seed): build, query latency (near-duplicates: a stored hash with 5-31 bits flipped;
random hashes), add and remove per operation, memory (RSS delta), save and load. The
threatexchange default (``PdqSignal.get_index_cls()``, faiss IndexBinaryMultiHash) has no
remove, and each add rebuilds an id map over the whole index, so it is timed on a few adds.
Needs the ``bench`` extra (threatexchange, faiss-cpu, psutil).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

SEED = 20240601


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _data(n: int, queries: int) -> tuple[np.ndarray, list[bytes], list[bytes], list[bytes]]:
    rng = np.random.default_rng(SEED)
    hashes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    near = []
    for _ in range(queries):
        bits = np.unpackbits(hashes[int(rng.integers(n))])
        bits[rng.choice(256, size=int(rng.integers(5, 32)), replace=False)] ^= 1
        near.append(np.packbits(bits).tobytes())
    rand = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes() for _ in range(queries)]
    extra = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes() for _ in range(queries)]
    return hashes, near, rand, extra


def _stats(times: list[float]) -> dict[str, float]:
    a = np.array(times) * 1e6
    return {
        "p50_us": float(np.percentile(a, 50)),
        "p99_us": float(np.percentile(a, 99)),
        "mean_us": float(a.mean()),
        "max_us": float(a.max()),
        "n": len(a),
    }


def _time_each(fn: Any, items: list[Any]) -> list[float]:
    out = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t)
    return out


def run_ours(n: int, queries: int) -> dict[str, Any]:
    from forum_client.match.pdq_index import PDQIndex

    hashes, near, rand, extra = _data(n, queries)
    ids = np.arange(n, dtype=np.int64)
    gc.collect()
    rss0 = _rss_mb()
    t = time.perf_counter()
    index = PDQIndex.build(ids, hashes)
    build = time.perf_counter() - t
    gc.collect()
    mem = _rss_mb() - rss0
    res: dict[str, Any] = {"build_s": build, "memory_mb": mem, "nbytes_mb": index.nbytes / 2**20}
    hits = sum(1 for q in near[:100] if index.query(q))
    res["near_recall_first100"] = hits / min(100, len(near))
    res["query_near"] = _stats(_time_each(index.query, near))
    res["query_random"] = _stats(_time_each(index.query, rand))
    res["add"] = _stats(
        _time_each(lambda a, add=index.add: add(a[0], a[1]), list(enumerate(extra, n)))
    )
    rng = np.random.default_rng(SEED + 1)
    victims = rng.choice(n, size=queries, replace=False).tolist()
    res["remove"] = _stats(_time_each(index.remove, victims))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "pdq.npz")
        t = time.perf_counter()
        index.save(path)
        res["save_s"] = time.perf_counter() - t
        del index
        gc.collect()
        t = time.perf_counter()
        loaded = PDQIndex.load(path)
        res["load_s"] = time.perf_counter() - t
        res["file_mb"] = os.path.getsize(path) / 2**20
        assert len(loaded) == n
    return res


def run_store(n: int) -> dict[str, Any]:
    """The store-following index (forum_client.match.lookup.Matcher) over a LocalStore of
    ``n`` PDQ signals: rebuild from SQLite vs load the saved index and catch up a tail."""
    import sqlite3

    from forum_client.match.lookup import Matcher, index_path_for
    from forum_client.store import LocalStore

    hashes, _, _, _ = _data(n, 1)
    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        db = os.path.join(d, "copy.db")
        with LocalStore(db) as store:
            con: sqlite3.Connection = store.con
            con.execute("BEGIN")
            con.execute("INSERT INTO entries VALUES (0, x'00')")
            con.executemany(
                "INSERT INTO signals VALUES ('pdq', ?, 'active', 1)",
                ((h.tobytes().hex(),) for h in hashes),
            )
            con.execute("INSERT INTO sync_state VALUES (1, 1, x'', x'', x'', '{}', 0)")
            con.execute("COMMIT")
            t = time.perf_counter()
            with Matcher(store, persist=False) as m:
                m.refresh()
            res["rebuild_s"] = time.perf_counter() - t
            with Matcher(store) as m:
                m.refresh()  # writes the index file
            res["index_file_mb"] = os.path.getsize(index_path_for(db)) / 2**20
            t = time.perf_counter()
            with Matcher(store) as m:
                m.refresh()
                assert not m.rebuilt and len(m.index) == n
            res["load_s"] = time.perf_counter() - t
    return res


def run_theirs(n: int, queries: int, adds: int) -> dict[str, Any]:
    import threatexchange
    from threatexchange.signal_type.pdq.signal import PdqSignal

    cls = PdqSignal.get_index_cls()
    hashes, near, rand, extra = _data(n, queries)
    hexes = [h.tobytes().hex() for h in hashes]
    del hashes
    gc.collect()
    rss0 = _rss_mb()
    t = time.perf_counter()
    index = cls(zip(hexes, range(n), strict=True))
    build = time.perf_counter() - t
    gc.collect()
    mem = _rss_mb() - rss0
    res: dict[str, Any] = {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "version": getattr(threatexchange, "__version__", "?"),
        "build_s": build,
        "memory_mb": mem,
    }
    near_hex = [q.hex() for q in near]
    hits = sum(1 for q in near_hex[:100] if index.query(q))
    res["near_recall_first100"] = hits / min(100, len(near_hex))
    res["query_near"] = _stats(_time_each(index.query, near_hex))
    res["query_random"] = _stats(_time_each(index.query, [q.hex() for q in rand]))
    res["add"] = _stats(
        _time_each(lambda a, add=index.add: add(a[1].hex(), a[0]), list(enumerate(extra[:adds], n)))
    )
    res["add"]["note"] = f"only {adds} adds timed: each add rebuilds the id map (O(n))"
    res["remove"] = {"note": "not supported: removing means rebuilding (see build_s)"}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "pdq.idx")
        t = time.perf_counter()
        with open(path, "wb") as f:
            index.serialize(f)
        res["save_s"] = time.perf_counter() - t
        del index
        gc.collect()
        t = time.perf_counter()
        with open(path, "rb") as f:
            cls.deserialize(f)
        res["load_s"] = time.perf_counter() - t
        res["file_mb"] = os.path.getsize(path) / 2**20
    return res


def _child(which: str, n: int, queries: int, adds: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", which, "--n", str(n), "--queries", str(queries)]
    cmd += ["--theirs-adds", str(adds)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="hashes in the index")
    p.add_argument("--queries", type=int, default=1000, help="queries (and adds/removes) timed")
    p.add_argument("--theirs-adds", type=int, default=5, help="adds timed on threatexchange")
    p.add_argument("--json", help="write all results to this file")
    p.add_argument("--child", choices=["ours", "theirs", "store"], help=argparse.SUPPRESS)
    p.add_argument("--markdown", help="also write the table as markdown to this file")
    args = p.parse_args(argv)
    if args.child == "ours":
        print(json.dumps(run_ours(args.n, args.queries)))
        return 0
    if args.child == "store":
        print(json.dumps(run_store(args.n)))
        return 0
    if args.child == "theirs":
        print(json.dumps(run_theirs(args.n, args.queries, args.theirs_adds)))
        return 0

    ours = _child("ours", args.n, args.queries, args.theirs_adds)
    theirs = _child("theirs", args.n, args.queries, args.theirs_adds)
    store = _child("store", args.n, args.queries, args.theirs_adds)
    rows = [
        ("build (s)", ours["build_s"], theirs["build_s"]),
        ("query near p50 (us)", ours["query_near"]["p50_us"], theirs["query_near"]["p50_us"]),
        ("query near p99 (us)", ours["query_near"]["p99_us"], theirs["query_near"]["p99_us"]),
        ("query random p50 (us)", ours["query_random"]["p50_us"], theirs["query_random"]["p50_us"]),
        ("query random p99 (us)", ours["query_random"]["p99_us"], theirs["query_random"]["p99_us"]),
        ("add mean (us)", ours["add"]["mean_us"], theirs["add"]["mean_us"]),
        ("add p99 (us)", ours["add"]["p99_us"], theirs["add"]["p99_us"]),
        ("remove mean (us)", ours["remove"]["mean_us"], float("nan")),
        ("remove p99 (us)", ours["remove"]["p99_us"], float("nan")),
        ("memory RSS delta (MB)", ours["memory_mb"], theirs["memory_mb"]),
        ("save (s)", ours["save_s"], theirs["save_s"]),
        ("load (s)", ours["load_s"], theirs["load_s"]),
        ("file (MB)", ours["file_mb"], theirs["file_mb"]),
    ]
    print(f"PDQ index benchmark, n={args.n:,}, {args.queries} queries; theirs: {theirs['class']}")
    print(f"{'metric':24s} {'ours':>12s} {'theirs':>12s} {'theirs/ours':>12s}")
    for name, a, b in rows:
        ratio = b / a if a and a == a and b == b else float("nan")
        print(f"{name:24s} {a:12.3f} {b:12.3f} {ratio:12.1f}")
    print(
        f"near-duplicate recall (first 100): ours {ours['near_recall_first100']:.2f}, "
        f"theirs {theirs['near_recall_first100']:.2f}"
    )
    print(f"theirs add: {theirs['add']['note']}; remove: {theirs['remove']['note']}")
    print(
        f"ours, index arrays: {ours['nbytes_mb']:.1f} MB; store-following index at n={args.n:,}: "
        f"rebuild from SQLite {store['rebuild_s']:.2f} s, load saved file + catch up "
        f"{store['load_s']:.2f} s ({store['index_file_mb']:.0f} MB file)"
    )
    md = [
        f"PDQ index at {args.n:,} random hashes, {args.queries} queries each "
        f"(`scripts/bench pdq`); theirs: `{theirs['class']}` {theirs['version']}",
        "",
        "| metric | ours | theirs | theirs / ours |",
        "|---|---:|---:|---:|",
    ]
    for name, a, b in rows:
        ratio = b / a if a and a == a and b == b else float("nan")
        shown_b = "n/a" if b != b else f"{b:,.3f}"
        shown_r = "n/a" if ratio != ratio else f"{ratio:,.1f}x"
        md.append(f"| {name} | {a:,.3f} | {shown_b} | {shown_r} |")
    md += [
        "",
        f"Store-following index (`Matcher`): rebuild from SQLite {store['rebuild_s']:.2f} s, "
        f"load the saved index and catch up {store['load_s']:.2f} s.",
    ]
    print()
    print("\n".join(md))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(md) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "n": args.n,
                    "queries": args.queries,
                    "ours": ours,
                    "theirs": theirs,
                    "store": store,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
