"""Benchmark forum_client's PDQIndex against python-threatexchange's default PDQ index.

    .venv/bin/python scripts/bench_pdq.py --n 1000000 --queries 1000 --runs 3 \
        --json bench-out/pdq.json --markdown bench-out/pdq.md

Two data sets of ``n`` hashes each, made once by ``scripts/pdq_data.py`` and cached under
``bench-out/``: *realistic* (real PDQ hashes of generated images and their edits, replicated
with bit flips into clusters of uneven size) and *uniform* (random bits). For each set and
each run, three fresh subprocesses measure, side by side: ours, threatexchange with one
OpenMP thread (``OMP_NUM_THREADS=1``) and threatexchange with its default threads. Ratios are
taken within a run (peer / ours), then the median and the min-max spread over runs.

Measured per index: build; query latency (p50, p99) of *hits* (a stored hash with 5-31 bits
flipped) and *misses* (real PDQ hashes of unrelated images, or random hashes for the uniform
set); add and remove per operation; removes inside the largest cluster (rows of the most
crowded bucket), and of the same rows again once re-added (re-using freed rows, out of row
order); memory (RSS delta of the build); save and load. The first ``--check``
queries of each kind are compared with a brute-force scan: recall (found / true matches) and
extra results (beyond the threshold) are reported for every index.

Ours answers through its compiled probe when numba (the ``fast`` extra) is installed: it is
loaded before the build (as the peer's faiss is imported), and its load time and memory are
reported on their own; ``FORUM_PDQ_COMPILED=0`` measures the numpy path.

Left out: batch queries, the SDK's SQLite lookups around the index, and page-cache effects
(the whole index is in RAM). threatexchange's default index (``PdqSignal.get_index_cls()``,
faiss IndexBinaryMultiHash) has no remove, and each add rebuilds an id map over the whole
index, so it is timed on a few adds. Needs the ``bench`` extra (threatexchange, faiss-cpu).
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pdq_data import bucket_sizes, load_or_make

THRESHOLD = 31
DATA_QUERIES = 1000  # queries made and cached with each data set; --queries takes a prefix


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _trimmed_rss_mb() -> float:
    """RSS after glibc's ``malloc_trim(0)`` hands freed heap pages back to the OS (the
    slack that a build's freed temporaries leave in the allocator); plain RSS elsewhere."""
    from forum_client.match._heap import release_free_heap

    release_free_heap()
    return _rss_mb()


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


def _dataset(args: argparse.Namespace, which: str) -> dict[str, np.ndarray]:
    data = load_or_make(Path(args.data_dir) / f"pdq-{args.n}.npz", args.n, DATA_QUERIES)
    k = args.queries
    return {
        "hashes": data[which],
        "near": data[f"{which}_near"][:k],
        "miss": data[f"{which}_miss"][:k],
        "extra": data["extra"][:k],
    }


def _truth(hashes: np.ndarray, queries: np.ndarray) -> list[set[int]]:
    words = np.ascontiguousarray(hashes).view("<u8")
    out = []
    for q in np.ascontiguousarray(queries).view("<u8"):
        dist = np.zeros(len(words), np.uint16)
        for j in range(4):
            dist += np.bitwise_count(words[:, j] ^ q[j])
        out.append(set(np.flatnonzero(dist <= THRESHOLD).tolist()))
    return out


def _accuracy(found: list[set[int]], truth: list[set[int]]) -> dict[str, float]:
    true = sum(len(t) for t in truth)
    got = sum(len(f & t) for f, t in zip(found, truth, strict=True))
    extra = sum(len(f - t) for f, t in zip(found, truth, strict=True))
    return {"recall": got / true if true else 1.0, "extra": extra, "true_matches": true}


def _cluster_rows(hashes: np.ndarray, k: int) -> list[int]:
    """Up to ``k`` rows of the most crowded bucket (inside the biggest cluster)."""
    chunks = np.ascontiguousarray(hashes).view("<u2")
    best = max(range(16), key=lambda c: int(np.bincount(chunks[:, c]).max()))
    value = int(np.bincount(chunks[:, best]).argmax())
    rows = np.flatnonzero(chunks[:, best] == value)
    return np.random.default_rng(7).permutation(rows)[:k].tolist()


def run_ours(args: argparse.Namespace, which: str) -> dict[str, Any]:
    from forum_client.match.pdq_index import PDQIndex, compiled_probe

    # The compiled probe (numba, the fast extra) loads on a big index's first query; it is
    # loaded here, like the peer's faiss, so the timings and the build's memory leave it out
    # and it is reported on its own.
    gc.collect()
    rss0 = _rss_mb()
    t = time.perf_counter()
    compiled = compiled_probe() is not None
    probe_load = {"probe_load_s": time.perf_counter() - t, "probe_load_mb": _rss_mb() - rss0}
    d = _dataset(args, which)
    hashes = d["hashes"]
    n = len(hashes)
    near = [q.tobytes() for q in d["near"]]
    miss = [q.tobytes() for q in d["miss"]]
    gc.collect()
    rss0 = _rss_mb()
    t = time.perf_counter()
    index = PDQIndex.build(np.arange(n, dtype=np.int64), hashes)
    build = time.perf_counter() - t
    gc.collect()
    res: dict[str, Any] = {"build_s": build, "memory_mb": _rss_mb() - rss0}
    res.update(compiled_probe=compiled, **probe_load)
    res["memory_trim_mb"] = _trimmed_rss_mb() - rss0
    res["nbytes_mb"] = index.nbytes / 2**20
    res["query_near"] = _stats(_time_each(index.query, near))
    res["query_miss"] = _stats(_time_each(index.query, miss))
    for kind in ("near", "miss"):  # the batch API: one call for all the queries of a kind
        t = time.perf_counter()
        index.query_many(d[kind])
        res[f"batch_{kind}_us"] = (time.perf_counter() - t) / len(d[kind]) * 1e6
    k = args.check
    found = [{i for i, _ in index.query(q)} for q in near[:k] + miss[:k]]
    res["accuracy"] = _accuracy(
        found, _truth(hashes, np.concatenate([d["near"][:k], d["miss"][:k]]))
    )
    extra = [q.tobytes() for q in d["extra"]]
    res["add"] = _stats(
        _time_each(lambda a, add=index.add: add(a[0], a[1]), list(enumerate(extra, n)))
    )
    rng = np.random.default_rng(1)
    victims = rng.choice(n, size=args.queries, replace=False).tolist()
    res["remove"] = _stats(_time_each(index.remove, victims))
    crowd = [r for r in _cluster_rows(hashes, 2 * args.queries) if r in index][: args.queries]
    res["remove_cluster"] = _stats(_time_each(index.remove, crowd))
    # The same rows re-added (re-using freed rows, out of row order) and removed again.
    _time_each(lambda r, add=index.add: add(r, hashes[r].tobytes()), crowd)
    res["remove_readded"] = _stats(_time_each(index.remove, crowd))
    res["largest_bucket"] = int(bucket_sizes(hashes)[0])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pdq.npz")
        t = time.perf_counter()
        index.save(path)
        res["save_s"] = time.perf_counter() - t
        del index
        gc.collect()
        t = time.perf_counter()
        PDQIndex.load(path)
        res["load_s"] = time.perf_counter() - t
        res["file_mb"] = os.path.getsize(path) / 2**20
        res["load_rss_mb"], res["load_rss_trim_mb"] = _load_rss_in_fresh_process(path)
    return res


def _load_rss_in_fresh_process(path: str) -> tuple[float, float]:
    """RSS growth of a new process that loads the saved index (what a member's process
    holds after start-up; numpy and the module imported before the baseline), as read and
    after ``malloc_trim``."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); import gc, numpy as np;"
        "from forum_client.match.pdq_index import PDQIndex;"
        "from bench_pdq import _rss_mb, _trimmed_rss_mb; gc.collect(); r0 = _rss_mb();"
        "index = PDQIndex.load(sys.argv[1]); gc.collect();"
        "print(_rss_mb() - r0, _trimmed_rss_mb() - r0)"
    )
    here = str(Path(__file__).resolve().parent)
    env = dict(os.environ, PYTHONPATH=str(Path(here).parent))
    out = subprocess.run(
        [sys.executable, "-c", code, path, here],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    raw, trimmed = out.strip().splitlines()[-1].split()
    return float(raw), float(trimmed)


def run_store(args: argparse.Namespace) -> dict[str, Any]:
    """The store-following index (forum_client.match.lookup.Matcher) over a LocalStore of
    ``n`` PDQ signals: rebuild from SQLite vs load the saved index and catch up a tail."""
    import sqlite3

    from forum_client.match.lookup import Matcher, index_path_for
    from forum_client.store import LocalStore

    hashes = _dataset(args, "realistic")["hashes"]
    n = len(hashes)
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


def run_theirs(args: argparse.Namespace, which: str) -> dict[str, Any]:
    from threatexchange.signal_type.pdq.signal import PdqSignal

    cls = PdqSignal.get_index_cls()
    d = _dataset(args, which)
    n = len(d["hashes"])
    hexes = [h.tobytes().hex() for h in d["hashes"]]
    gc.collect()
    rss0 = _rss_mb()
    t = time.perf_counter()
    index = cls(zip(hexes, range(n), strict=True))
    build = time.perf_counter() - t
    gc.collect()
    res: dict[str, Any] = {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "version": importlib.metadata.version("threatexchange"),
        "omp_threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "build_s": build,
        "memory_mb": _rss_mb() - rss0,
    }
    res["memory_trim_mb"] = _trimmed_rss_mb() - rss0
    del hexes
    near = [q.tobytes().hex() for q in d["near"]]
    miss = [q.tobytes().hex() for q in d["miss"]]
    res["query_near"] = _stats(_time_each(index.query, near))
    res["query_miss"] = _stats(_time_each(index.query, miss))
    k = args.check
    found = [{m.metadata for m in index.query(q)} for q in near[:k] + miss[:k]]
    res["accuracy"] = _accuracy(
        found, _truth(d["hashes"], np.concatenate([d["near"][:k], d["miss"][:k]]))
    )
    adds = list(enumerate((q.tobytes().hex() for q in d["extra"][: args.theirs_adds]), n))
    res["add"] = _stats(_time_each(lambda a, add=index.add: add(a[1], a[0]), adds))
    res["add"]["note"] = f"only {args.theirs_adds} adds timed: each add rebuilds the id map"
    res["remove"] = {"note": "not supported: removing means rebuilding (see build_s)"}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pdq.idx")
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


PEERS = {"ours": None, "theirs-1t": "1", "theirs-default": None}


def _child(args: argparse.Namespace, which: str, data: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", which, "--set", data, "--n", str(args.n)]
    cmd += ["--queries", str(args.queries), "--check", str(args.check)]
    cmd += ["--theirs-adds", str(args.theirs_adds), "--data-dir", args.data_dir]
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if PEERS.get(which):
        env["OMP_NUM_THREADS"] = str(PEERS[which])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


METRICS = [
    ("build (s)", ("build_s",)),
    ("hit p50 (us)", ("query_near", "p50_us")),
    ("hit p99 (us)", ("query_near", "p99_us")),
    ("miss p50 (us)", ("query_miss", "p50_us")),
    ("miss p99 (us)", ("query_miss", "p99_us")),
    ("add mean (us)", ("add", "mean_us")),
    ("remove mean (us)", ("remove", "mean_us")),
    ("remove p99 (us)", ("remove", "p99_us")),
    ("remove in largest cluster, mean (us)", ("remove_cluster", "mean_us")),
    ("remove in largest cluster, p99 (us)", ("remove_cluster", "p99_us")),
    ("remove in largest cluster, rows re-added, mean (us)", ("remove_readded", "mean_us")),
    ("remove in largest cluster, rows re-added, p99 (us)", ("remove_readded", "p99_us")),
    ("hit mean (us)", ("query_near", "mean_us")),
    ("miss mean (us)", ("query_miss", "mean_us")),
    ("hit, batch of all hits, per hash (us)", ("batch_near_us",)),
    ("miss, batch of all misses, per hash (us)", ("batch_miss_us",)),
    ("memory, RSS delta of build (MB)", ("memory_mb",)),
    ("memory, build after malloc_trim (MB)", ("memory_trim_mb",)),
    ("memory, RSS delta of a fresh process loading the file (MB)", ("load_rss_mb",)),
    ("memory, loading process after malloc_trim (MB)", ("load_rss_trim_mb",)),
    ("load (s)", ("load_s",)),
]


def _get(result: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return float("nan")
        value = value[key]
    return float(value)


def _fmt(values: list[float], digits: int = 1) -> str:
    """median [min-max] of the runs."""
    vals = [v for v in values if v == v]
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    if len(vals) == 1:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} [{min(vals):,.{digits}f}-{max(vals):,.{digits}f}]"


def _ratio(values: list[float]) -> str:
    shown = _fmt(values)
    return shown if shown == "n/a" else shown + "x"


def _table(data: str, runs: list[dict[str, dict[str, Any]]], args: argparse.Namespace) -> list[str]:
    first = runs[0]
    peers = [p for p in ("theirs-1t", "theirs-default") if p in first]
    names = {"theirs-1t": "peer 1 thread", "theirs-default": "peer default threads"}
    ratios = {"theirs-1t": "ratio 1 thread", "theirs-default": "ratio default"}
    peer_line = (
        f"Peer: `{first[peers[0]]['class']}` {first[peers[0]]['version']}. " if peers else ""
    )
    md = [
        f"### PDQ, {data} hashes, n={args.n:,}, {args.queries} hits + {args.queries} misses, "
        f"{len(runs)} runs",
        "",
        f"{peer_line}Largest bucket: {first['ours']['largest_bucket']:,} rows. Values: median "
        "[min-max] over runs; ratios are peer / ours within each run.",
        "",
        "| "
        + " | ".join(["metric", "ours", *(names[p] for p in peers), *(ratios[p] for p in peers)])
        + " |",
        "|---|---:|" + "---:|" * (2 * len(peers)),
    ]
    for name, path in METRICS:
        ours = [_get(r["ours"], path) for r in runs]
        theirs = {p: [_get(r[p], path) for r in runs] for p in peers}
        digits = 3 if name.endswith("(s)") else 0
        cells = [_fmt(ours, digits)] + [_fmt(theirs[p], digits) for p in peers]
        for p in peers:
            rs = [b / a if a > 0 else float("nan") for a, b in zip(ours, theirs[p], strict=True)]
            cells.append(_ratio(rs))
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    acc = "; ".join(
        f"{who}: recall {r['accuracy']['recall']:.4f}, {r['accuracy']['extra']} extra of "
        f"{r['accuracy']['true_matches']:,} true matches"
        for who, r in runs[0].items()
    )
    md += ["", f"Checked against brute force on the first {args.check} hits and misses: {acc}."]
    ours = [r["ours"] for r in runs]
    if all(r.get("compiled_probe") for r in ours):
        md.append(
            "Ours answered through its compiled probe (numba, the `fast` extra), loaded "
            "before the build and left out of the rows above: "
            f"{_fmt([r['probe_load_s'] for r in ours], 2)} s and "
            f"{_fmt([r['probe_load_mb'] for r in ours])} MB of RSS to load."
        )
    elif not any(r.get("compiled_probe") for r in ours):
        md.append("Ours answered in numpy (numba, the `fast` extra, is not installed).")
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="hashes in each data set")
    p.add_argument(
        "--queries", type=int, default=1000, help="hits and misses timed (each, at most 1000)"
    )
    p.add_argument("--runs", type=int, default=3, help="runs (fresh processes) per data set")
    p.add_argument("--sets", default="realistic,uniform", help="data sets, comma-separated")
    p.add_argument("--check", type=int, default=100, help="queries checked by brute force")
    p.add_argument("--theirs-adds", type=int, default=5, help="adds timed on threatexchange")
    p.add_argument("--data-dir", default="bench-out", help="where generated data is cached")
    p.add_argument("--json", help="write all results to this file")
    p.add_argument("--markdown", help="also write the tables as markdown to this file")
    p.add_argument("--store", action="store_true", help="also time the store-following index")
    p.add_argument(
        "--peers",
        default=",".join(PEERS),
        help="indexes to run, comma-separated (ours, theirs-1t, theirs-default); the peer "
        "takes ~10x our time per run at 1M",
    )
    p.add_argument("--child", choices=[*PEERS, "store"], help=argparse.SUPPRESS)
    p.add_argument("--set", choices=["realistic", "uniform"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child == "store":
        print(json.dumps(run_store(args)))
        return 0
    if args.child:
        run = run_ours if args.child == "ours" else run_theirs
        print(json.dumps(run(args, args.set)))
        return 0

    sets = [s for s in args.sets.split(",") if s]
    peers = [p for p in args.peers.split(",") if p]
    if "ours" not in peers or not set(peers) <= set(PEERS):
        p.error(f"--peers: a comma-separated subset of {', '.join(PEERS)} including ours")
    load_or_make(Path(args.data_dir) / f"pdq-{args.n}.npz", args.n, DATA_QUERIES)  # cache once
    results: dict[str, Any] = {"n": args.n, "queries": args.queries, "runs": args.runs}
    md: list[str] = []
    for data in sets:
        runs: list[dict[str, dict[str, Any]]] = []
        for i in range(args.runs):
            results_of = {who: _child(args, who, data) for who in peers}
            runs.append(results_of)
            o = results_of["ours"]
            t1 = results_of.get("theirs-1t", {})
            vs = (
                f" vs {t1['query_near']['p50_us']:.0f} / {t1['query_miss']['p50_us']:.0f} us "
                "(peer, 1 thread)"
                if t1
                else ""
            )
            print(
                f"{data} run {i + 1}: hit / miss p50 {o['query_near']['p50_us']:.0f} / "
                f"{o['query_miss']['p50_us']:.0f} us (ours){vs}",
                flush=True,
            )
            results[data] = runs
            if args.json:  # after every run: a long benchmark that is stopped keeps its runs
                Path(args.json).write_text(json.dumps(results, indent=2))
        md += [*_table(data, runs, args), ""]
    if args.store:
        store = _child(args, "store", "realistic")
        results["store"] = store
        md.append(
            f"Store-following index (`Matcher`) over {args.n:,} realistic hashes: rebuild from "
            f"SQLite {store['rebuild_s']:.2f} s, load the saved index and catch up "
            f"{store['load_s']:.2f} s ({store['index_file_mb']:.0f} MB file)."
        )
    text = "\n".join(md)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
