#!/usr/bin/env python3
"""Benchmark: a server's start-up, which replays its whole log (every signature) first.

    .venv/bin/python scripts/bench_startup.py --signals 50000 --rounds 3 --forums DIR

On the forum ``scripts/bench_sync.py`` builds (one-signal submissions, so the log has one
entry per signal; ``--forums`` shares its cache), times ``Sequencer(store, log_key)``: the
replay of every stored leaf through the key state (each signature verified), the compact
range and the checks against the signed checkpoint, which a ``forum-server serve`` does
before it answers.  In the same run, this machine's one-thread Ed25519 rate over the same
submissions is the anchor: the start-up is given as entries per second and per
verification.  Run it from two checkouts (``PYTHONPATH=CHECKOUT``) to compare them; the
forum is the same.  Left out: the gRPC server's own start (a few ms), a view to replay (the
view is stored with the leaves), PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def one_round(forum_dir: Path) -> float:
    from forum_client.envelope import SigningKey
    from forum_server.app import ServerPaths
    from forum_server.sequencer import Sequencer
    from forum_server.storage import open_store

    paths = ServerPaths(forum_dir / "server")
    store = open_store(paths.database_location())
    try:
        start = time.perf_counter()
        Sequencer(store, SigningKey.load(paths.log_key))
        return time.perf_counter() - start
    finally:
        store.close()


def main() -> int:
    from bench_sigcheck import raw_rate
    from bench_sync import forum_of, parse_one_signal_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    args = parse_one_signal_args(p)
    with tempfile.TemporaryDirectory(prefix="bench-startup-", dir=args.forums) as tmp:
        forum_dir, _, size, member_key, submissions, _ = forum_of(
            args.forums or Path(tmp), args.signals, 1, args.seed
        )
        rounds: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            seconds = one_round(forum_dir)
            verify_1 = raw_rate(member_key, submissions, 1)
            rounds.append(
                {
                    "seconds": round(seconds, 2),
                    "entries_per_s": round(size / seconds),
                    "verify_1_thread_per_s": round(verify_1),
                    "ratio_to_verify_1": round(size / seconds / verify_1, 3),
                }
            )
            print(json.dumps(rounds[-1]), file=sys.stderr, flush=True)
    ratios = [r["ratio_to_verify_1"] for r in rounds]
    print(
        json.dumps(
            {
                "entries": size,
                "code": os.environ.get("PYTHONPATH", "this checkout"),
                "rounds": rounds,
                "ratio_to_verify_1": {
                    "median": statistics.median(ratios),
                    "min": min(ratios),
                    "max": max(ratios),
                },
                "load_average": os.getloadavg(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
