#!/usr/bin/env python3
"""Benchmark: PostgreSQL against SQLite in the same run, reads on 1 and 2 servers, failover.

    .venv/bin/python scripts/bench_postgres.py [--runs 3] [--json bench-out/postgres.json]

Each part runs ``--runs`` times, the engines (or server counts) alternating within a run so
that both see the same machine load; medians, spreads and ratios are printed.

- submit: durable verified submissions (``bench_submit.bench_forum``: real server process,
  10,000-signal batches from 2 member processes, every receipt verified), SQLite vs
  PostgreSQL.
- sync: a full verified ``forum-client sync`` (``bench_sync``: 1,000-signal entries built
  offline with real signatures) served from SQLite vs from PostgreSQL.
- reads: ``GetEntries`` throughput of a PostgreSQL forum (small entries), 4 reader processes
  streaming the whole log with no client-side verification (the server's read path), all
  on 1 server vs 2 readers on each of 2 servers.
- failover: 3 server processes over PostgreSQL, 4 members submitting, the leader
  ``kill -9``-ed ``--kills`` times: seconds from the kill until another server holds the
  leadership, and until the new leader's first commit is in the database.

PostgreSQL is the one at ``$FORUM_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); every run uses a schema of its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from queue import Empty
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_submit
import bench_sync
import psycopg

from forum_client import entries as e
from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client.client import ForumClient
from forum_client.errors import TransportError
from forum_client.profile import Bundle
from forum_server.admin.init import init_forum
from forum_server.app import running_server
from forum_server.storage.postgres import PostgresStore
from forum_server.testing import (
    LocalForum,
    local_forum,
    postgres_database,
    start_server_process,
)


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


# ---- submit and sync: the two engines side by side ----


def bench_submit_pair(batches: int) -> dict[str, float]:
    out = {}
    for engine in ("sqlite", "postgres"):
        with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp, postgres_database() as url:
            database = url if engine == "postgres" else None
            r = bench_submit.bench_forum(Path(tmp), batches, 2, 10_000, database=database)
        out[engine] = r["signals_per_second"]
    return out


def bench_sync_pair(signals: int) -> dict[str, float]:
    out = {}
    for engine in ("sqlite", "postgres"):
        with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp, postgres_database() as url:
            forum_dir = Path(tmp) / "forum"
            root = init_forum(
                forum_dir,
                name="Bench",
                address="127.0.0.1:0",
                now=dt.datetime.now(dt.UTC),
                database=url if engine == "postgres" else None,
            )
            bench_sync.build_log(forum_dir, signals, 1000, 7)
            with running_server(forum_dir / "server") as running:
                forum = LocalForum(forum_dir, root, running)
                reader = forum.enroll("bench-reader", e.Role.OBSERVER)
                result = bench_sync.timed_sync(
                    reader.bundle_path, running.address, Path(tmp) / "synced.db"
                )
        out[engine] = result["signals"] / result["seconds"]
    return out


# ---- reads: GetEntries on 1 and 2 servers ----


def _reader(bundle_path: str, address: str, size: int, out: Any) -> None:
    bundle = Bundle.load(bundle_path)
    with ForumClient(bundle, server=address) as client:
        client.status()
        out.put(("ready",))
        started = time.perf_counter()
        count = 0
        for batch in client.stub.GetEntries(pb.GetEntriesRequest(start=0, end=size), timeout=600):
            count += len(batch.entries)
        out.put(("done", count, started, time.perf_counter()))


def _read_rate(bundles: list[Path], addresses: list[str], size: int) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_reader, args=(str(b), addresses[i % len(addresses)], size, queue))
        for i, b in enumerate(bundles)
    ]
    for p in procs:
        p.start()
    results: list[Any] = []
    while len(results) < 2 * len(procs):  # a reader that fails ends the benchmark at once
        try:
            results.append(queue.get(timeout=1))
        except Empty:
            failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if failed:
                raise RuntimeError(f"a reader process failed (exit codes {failed})") from None
    for p in procs:
        p.join()
    done = [r for r in results if r[0] == "done"]
    entries = sum(r[1] for r in done)
    return entries / (max(r[3] for r in done) - min(r[2] for r in done))


def bench_reads(runs: int, entries: int, readers: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"1 server": [], "2 servers": []}
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp, postgres_database() as url:
        forum_dir = Path(tmp) / "forum"
        root = init_forum(
            forum_dir,
            name="Bench",
            address="127.0.0.1:0",
            now=dt.datetime.now(dt.UTC),
            database=url,
        )
        size, _, _ = bench_sync.build_log(forum_dir, entries * 10, 10, 7)
        with running_server(forum_dir / "server") as running:
            forum = LocalForum(forum_dir, root, running)
            bundles = [
                forum.enroll(f"reader{i}", e.Role.OBSERVER).bundle_path for i in range(readers)
            ]
        servers = [start_server_process(forum_dir / "server", stderr=None) for _ in range(2)]
        try:
            addresses = [address for _, address in servers]
            for _ in range(runs):
                rates["1 server"].append(_read_rate(bundles, addresses[:1], size))
                rates["2 servers"].append(_read_rate(bundles, addresses, size))
        finally:
            for proc, _ in servers:
                proc.terminate()
                proc.wait(timeout=60)
    return rates


# ---- failover ----


def _submit_forever(bundle: Bundle, key_path: Path, servers: str, stop: threading.Event) -> None:
    from forum_client.envelope import SigningKey

    key = SigningKey.load(key_path)
    with ForumClient(bundle, server=servers, timeout=5) as client:
        sequence = None
        n = 0
        while not stop.is_set():
            try:
                if sequence is None:
                    sequence = client.next_sequence(key)
                value = hashlib.sha256(f"{bundle.member_id}-{n}".encode()).hexdigest()
                envelope = client.prepare_submission(
                    [{"type": "sha256", "value": value}], key, sequence=sequence
                )
                while not stop.is_set():
                    try:
                        client.submit_envelope(envelope)
                        break
                    except TransportError:
                        time.sleep(0.02)
                sequence += 1
                n += 1
            except TransportError:
                time.sleep(0.02)


def bench_failover(kills: int, lease: float) -> dict[str, list[float]]:
    takeover: list[float] = []
    first_commit: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp, postgres_database() as url:
        members = [f"m{i}" for i in range(4)]
        with local_forum(Path(tmp), members=members, observers=[], database=url) as forum:
            data_dir = forum.directory / "server"
            creds = [(m.bundle, m.key_path) for m in forum.members.values()]
        store = PostgresStore(url)
        procs: list[Any] = []
        addresses: list[str] = []
        args = ["--lease", str(lease)]
        for _ in range(3):
            proc, address = start_server_process(data_dir, extra_args=args)
            procs.append(proc)
            addresses.append(address)
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=_submit_forever,
                args=(bundle, key_path, ",".join(addresses), stop),
                daemon=True,
            )
            for bundle, key_path in creds
        ]
        for t in threads:
            t.start()
        try:
            time.sleep(2)
            for _ in range(kills):
                time.sleep(1.0)
                found = store.leader()
                assert found is not None
                epoch, holder = found
                pid = int(holder.rsplit(":", 1)[1])
                slot = next(i for i, p in enumerate(procs) if p.pid == pid)
                os.kill(pid, signal.SIGKILL)
                killed = time.perf_counter()
                procs[slot].wait(timeout=30)
                took = committed = None
                while committed is None and time.perf_counter() - killed < 60:
                    now = time.perf_counter() - killed
                    found = store.leader()
                    if took is None and found is not None and found[0] > epoch:
                        took = now
                    if took is not None and _has_commit(url, found[0] if found else 0):
                        committed = now
                    time.sleep(0.005)
                assert took is not None and committed is not None
                takeover.append(took)
                first_commit.append(committed)
                procs[slot], _ = start_server_process(
                    data_dir, extra_args=args, listen=addresses[slot]
                )
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
            for p in procs:
                p.kill()
                p.wait(timeout=30)
            store.close()
    return {"takeover_seconds": takeover, "first_commit_seconds": first_commit}


def _has_commit(url: str, epoch: int) -> bool:
    with psycopg.connect(url) as con:
        row = con.execute("SELECT 1 FROM checkpoints WHERE epoch = %s LIMIT 1", (epoch,)).fetchone()
    return row is not None


def _repeat(runs: int, part: Callable[[], dict[str, float]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for _ in range(runs):
        for k, v in part().items():
            out.setdefault(k, []).append(v)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parts", default="submit,sync,reads,failover")
    parser.add_argument("--submit-batches", type=int, default=10, help="10,000-signal batches")
    parser.add_argument("--sync-signals", type=int, default=200_000)
    parser.add_argument("--read-entries", type=int, default=20_000)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "submit" in parts and args.submit_batches < 2:
        parser.error("--submit-batches: at least 2 (the batches are split over 2 members)")
    doc: dict[str, Any] = {
        "command": " ".join(["scripts/bench_postgres.py", *sys.argv[1:]]),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
    }
    if "submit" in parts:
        r = _repeat(args.runs, lambda: bench_submit_pair(args.submit_batches))
        ratios = [p / s for s, p in zip(r["sqlite"], r["postgres"], strict=True)]
        doc["submit_signals_per_s"] = {k: _stats(v) for k, v in r.items()}
        doc["submit_ratio_postgres_to_sqlite"] = _stats(ratios)
        print("submit", json.dumps(doc["submit_signals_per_s"]), "ratio", _stats(ratios))
    if "sync" in parts:
        r = _repeat(args.runs, lambda: bench_sync_pair(args.sync_signals))
        ratios = [p / s for s, p in zip(r["sqlite"], r["postgres"], strict=True)]
        doc["sync_signals_per_s"] = {k: _stats(v) for k, v in r.items()}
        doc["sync_ratio_postgres_to_sqlite"] = _stats(ratios)
        print("sync", json.dumps(doc["sync_signals_per_s"]), "ratio", _stats(ratios))
    if "reads" in parts:
        r = bench_reads(args.runs, args.read_entries, args.readers)
        ratios = [b / a for a, b in zip(r["1 server"], r["2 servers"], strict=True)]
        doc["read_entries_per_s"] = {k: _stats(v) for k, v in r.items()}
        doc["read_ratio_2_to_1"] = _stats(ratios)
        print("reads", json.dumps(doc["read_entries_per_s"]), "ratio", _stats(ratios))
    if "failover" in parts:
        r = bench_failover(args.kills, args.lease)
        doc["failover"] = {k: _stats(v) for k, v in r.items()}
        doc["failover_raw"] = {k: [round(x, 3) for x in v] for k, v in r.items()}
        print("failover", json.dumps(doc["failover"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
