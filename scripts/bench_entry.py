#!/usr/bin/env python3
"""Benchmark: the per-entry cost of verifying and encoding a submission.

    .venv/bin/python scripts/bench_entry.py

``LogState.check`` (signature, decode, canonical-encoding check, header and content rules:
what the server runs before appending and every member's sync runs on every entry) and
``entries.encode`` (what an author runs before signing), for uniform 1,000- and
10,000-signal submissions; prints one JSON object with the minimum and median microseconds of
40 repeats.  Run it from two checkouts alternately to compare them: the minimum is the number
that survives a busy machine.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from test_verifier import Log  # noqa: E402  (a log built in memory with real keys)

from forum_client import entries as e  # noqa: E402


def timed(fn: Callable[[], object], repeats: int = 40) -> dict[str, int]:
    xs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - started)
    return {"min_us": round(min(xs) * 1e6), "median_us": round(statistics.median(xs) * 1e6)}


def main() -> int:
    out = {}
    for n in (1_000, 10_000):
        log = Log()
        key = log.admit("acme")
        items = tuple(e.SignalItem("md5", f"{i:032x}", (), "image") for i in range(n))
        body = e.Submission(log.header(key, "acme"), items)
        envelope = log.signed(key, body)
        state = log.state
        out[f"encode_{n}"] = timed(lambda b=body: e.encode(b))
        out[f"check_{n}"] = timed(lambda s=state, env=envelope: s.check(s.size, env))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
