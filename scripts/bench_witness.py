#!/usr/bin/env python3
"""Benchmark: what 3 witnesses (quorum 2) cost the forum, side by side with none.

    .venv/bin/python scripts/bench_witness.py [--runs 3] [--batches 20] [--clients 2]
        [--latency-entries 200] [--out bench-out/witness.json]

Two real forums (init, a ``forum-server`` process on port 0 with real mTLS), one without
witnesses and one with 3 ``forum-witness`` processes and quorum 2 recorded in its log.
Each run submits ``--batches`` 10,000-signal batches from ``--clients`` member processes to
each forum in turn (the order alternates between runs) and records accepted signals per
second.  Then, on each forum, one member submits ``--latency-entries`` one-signal entries
one after the other while a follower streams checkpoints (``GetEntries`` with follow): the
time from a receipt (the entry is committed) to the first served checkpoint that covers it
is the commit-to-checkpoint latency; with witnesses that checkpoint carries a quorum of
cosignatures.  Reported: the throughput ratio (3 witnesses / none, per run, median and
spread) and the latency p50 and p99 of both forums, and their difference.

Leaves out: witnesses on other machines (here they share the 2 cores with the server and
the clients, so the cost is an upper bound on CPU and a lower bound on network latency),
TLS to the witnesses, and members verifying cosignatures (measured in sync, not here).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_submit import _client_process

from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client.checkpoint import parse_unverified, vkey
from forum_client.client import ForumClient
from forum_client.entries import SignalItem
from forum_server.admin.witnesses import add_witness
from forum_server.testing import (
    EnrolledMember,
    local_forum,
    start_server_process,
    start_witness_process,
)
from forum_server.witness.service import init_witness

LABEL = "behaviour:terrorist-publication"


@contextlib.contextmanager
def forum_setup(
    directory: Path, clients: int, witnesses: int, quorum: int
) -> Iterator[tuple[Path, dict[str, EnrolledMember]]]:
    """A forum with its witness processes running (the forum server itself is started
    per run, as a process)."""
    members = [f"member{i}" for i in range(clients)] + ["probe", "follower"]
    procs: list[subprocess.Popen[str]] = []
    try:
        with local_forum(directory, members=members, observers=[]) as forum:
            root = forum.trust_root
            log_vkey = directory / "log.vkey"
            log_vkey.write_text(vkey(root.log_key_name, root.log_public_key) + "\n")
            with forum.operator() as op:
                for i in range(witnesses):
                    wdir = directory / f"w{i}"
                    wkey = init_witness(wdir, f"witness.bench/w{i}")
                    proc, url = start_witness_process(wdir, [log_vkey])
                    procs.append(proc)
                    add_witness(op, wkey, url=url, quorum=min(i + 1, quorum))
            enrolled = dict(forum.members)
            data_dir = forum.directory / "server"
        yield data_dir, enrolled
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


def throughput(
    data_dir: Path, enrolled: dict[str, EnrolledMember], batches: int, clients: int, run: int
) -> float:
    proc, address = start_server_process(data_dir)
    try:
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        procs = [
            ctx.Process(
                target=_client_process,
                args=(
                    str(enrolled[f"member{c}"].bundle_path),
                    str(enrolled[f"member{c}"].key_path),
                    address,
                    f"member{c}/run{run}",
                    batches // clients,
                    10_000,
                    queue,
                ),
            )
            for c in range(clients)
        ]
        for p in procs:
            p.start()
        results = [queue.get() for _ in range(2 * len(procs))]
        for p in procs:
            p.join()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    done = [r for r in results if r[0] == "done"]
    return sum(r[1] for r in done) / (max(r[3] for r in done) - min(r[2] for r in done))


def latency(data_dir: Path, enrolled: dict[str, EnrolledMember], entries: int) -> list[float]:
    """Seconds from each receipt to the first served checkpoint covering the entry."""
    proc, address = start_server_process(data_dir)
    seen: dict[int, float] = {}  # checkpoint size -> when the follower received it
    grown = threading.Condition()
    try:
        follower = ForumClient(enrolled["follower"].bundle, server=address)
        probe = ForumClient(enrolled["probe"].bundle, server=address)
        start = probe.status().log_size
        stream = follower.stub.GetEntries(pb.GetEntriesRequest(start=start, follow=True))

        def follow() -> None:
            with contextlib.suppress(Exception):
                for batch in stream:
                    if batch.HasField("checkpoint"):
                        cp, _ = parse_unverified(batch.checkpoint.note)
                        with grown:
                            seen[cp.size] = time.perf_counter()
                            grown.notify_all()

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        key = enrolled["probe"].signing_key
        waits = []
        for i in range(entries):
            receipt = probe.submit([SignalItem("md5", f"{i:032x}", (LABEL,))], key)
            committed = time.perf_counter()
            index = receipt.index
            with grown:
                grown.wait_for(lambda i=index: any(s > i for s in seen), timeout=30)  # type: ignore[misc]
                covering = min((t for s, t in seen.items() if s > index), default=None)
            if covering is None:
                raise RuntimeError(f"entry {receipt.index}: no checkpoint covered it in 30 s")
            waits.append(max(0.0, covering - committed))
        stream.cancel()
        thread.join(timeout=10)
        probe.close()
        follower.close()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return waits


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=20, help="10,000-signal batches a run")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--latency-entries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench-out/witness.json"))
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-witness-") as tmp,
        forum_setup(Path(tmp) / "none", args.clients, 0, 0) as plain,
        forum_setup(Path(tmp) / "three", args.clients, 3, 2) as witnessed,
    ):
        rates: dict[str, list[float]] = {"none": [], "three": []}
        for run in range(args.runs):
            order = [("none", plain), ("three", witnessed)]
            for name, (data_dir, enrolled) in order if run % 2 == 0 else order[::-1]:
                rate = throughput(data_dir, enrolled, args.batches, args.clients, run)
                rates[name].append(rate)
                print(f"run {run + 1} {name:>5} witnesses: {rate:,.0f} signals/s", flush=True)
        lat = {
            "none": latency(*plain, args.latency_entries),
            "three": latency(*witnessed, args.latency_entries),
        }
    ratios = [t / n for t, n in zip(rates["three"], rates["none"], strict=True)]
    result: dict[str, Any] = {
        "benchmark": "submission throughput and commit-to-checkpoint latency, 0 vs 3 witnesses",
        "command": " ".join(["scripts/bench_witness.py", *sys.argv[1:]]),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "runs": args.runs,
        "batches": args.batches,
        "clients": args.clients,
        "signals_per_second": rates,
        "ratio_three_to_none": ratios,
        "ratio_median": statistics.median(ratios),
        "latency_seconds": {
            name: {"p50": pct(v, 50), "p99": pct(v, 99), "max": max(v), "n": len(v)}
            for name, v in lat.items()
        },
    }
    result["extra_latency_seconds"] = {
        p: result["latency_seconds"]["three"][p] - result["latency_seconds"]["none"][p]
        for p in ("p50", "p99")
    }
    print(
        f"throughput ratio 3 witnesses / none: median {result['ratio_median']:.3f} "
        f"(runs: {', '.join(f'{r:.3f}' for r in ratios)})"
    )
    for name in ("none", "three"):
        lat_s = result["latency_seconds"][name]
        print(
            f"commit -> served checkpoint, {name} witnesses: p50 {lat_s['p50'] * 1000:.1f} ms, "
            f"p99 {lat_s['p99'] * 1000:.1f} ms, max {lat_s['max'] * 1000:.1f} ms"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
