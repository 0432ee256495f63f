#!/usr/bin/env python3
"""Benchmark: how fast follow mode applies a committed entry at many followers.

    .venv/bin/python scripts/bench_follow.py --followers 100 --rounds 5 --json

A real local forum (port 0, mTLS); N members' copies follow it (`Syncer.follow`, one thread
and one channel each, all in this process on the same 2 cores as the server); then a member
submits one signal at a time and the time from its acknowledged receipt until each follower's
copy (a separate reader connection) holds it is recorded. Design target: 100 followers
within 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from forum_client.entries import SignalItem
from forum_client.source import GrpcSource
from forum_client.store import LocalStore
from forum_client.sync import SyncConfig, Syncer
from forum_server.testing import local_forum


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=100, help="copies following the log")
    parser.add_argument("--rounds", type=int, default=5, help="entries submitted, one by one")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        local_forum(tmp, members=["alice"], observers=["carol"]) as forum,
    ):
        syncers, threads, readers, clients = [], [], [], []
        for i in range(args.followers):
            client = forum.client("carol")
            store = LocalStore(Path(tmp) / f"f{i}.db")
            syncer = Syncer(
                GrpcSource(client.stub, 60),
                store,
                client.trust_root,
                SyncConfig(backoff_initial_seconds=0.05),
                reader="carol",
            )
            ready = threading.Event()
            thread = threading.Thread(
                target=syncer.follow, args=(lambda _r, e=ready: e.set(),), daemon=True
            )
            thread.start()
            clients.append(client)
            syncers.append((syncer, ready))
            threads.append(thread)
            readers.append(LocalStore(Path(tmp) / f"f{i}.db"))
        for _, ready in syncers:
            if not ready.wait(120):
                raise SystemExit("a follower did not finish its first sync")
        latencies: list[float] = []
        key = forum.members["alice"].signing_key
        with forum.client("alice") as alice:
            for n in range(args.rounds):
                value = f"{n + 1:032x}"
                alice.submit([SignalItem("md5", value)], key)
                acked = time.monotonic()
                pending = set(range(args.followers))
                deadline = acked + 60
                while pending and time.monotonic() < deadline:
                    for i in list(pending):
                        if readers[i].lookup("md5", value) is not None:
                            latencies.append(time.monotonic() - acked)
                            pending.discard(i)
                    time.sleep(0.002)
                if pending:
                    raise SystemExit(f"{len(pending)} followers missed entry {n} within 60 s")
        for syncer, _ in syncers:
            syncer.stop()
        for thread in threads:
            thread.join(10)
        for c in clients:
            c.close()
    result = {
        "followers": args.followers,
        "rounds": args.rounds,
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(statistics.quantiles(latencies, n=100)[98] * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "all_within_1s": max(latencies) <= 1.0,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
