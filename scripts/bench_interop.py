#!/usr/bin/env python3
"""Benchmark (issue 15): export of N signals to each format, and ``threatexchange fetch`` of
the same N signals through the extension against our own ``forum-client sync``, in one run.

    .venv/bin/python scripts/bench_interop.py --signals 1000000 --rounds 3 \
        --json bench-out/interop.json

Needs GNU time (``/usr/bin/time``, Debian's ``time``) for each command's peak RSS.
Builds the log offline with real signatures (``bench_sync.build_log``: 1,000-signal
submissions of sha256 values with one label), serves it on port 0 with mTLS and enrolls an
observer.  Then, ``--rounds`` times, each command in its own process (its peak RSS is that
process's alone, from GNU time):

- ``forum-client sync`` into a fresh copy;
- ``forum-client export --format F`` of that copy, for csv, jsonl, stix and misp;
- ``threatexchange fetch --skip-index-rebuild`` with the extension, into another fresh copy
  (the same verified sync, then the deltas into pytx's own in-memory state, pickled to disk),
  then ``threatexchange dataset --rebuild-indices`` (pytx's own index rebuild, which is what
  a plain ``threatexchange fetch`` runs next): the two steps of one fetch, timed apart.

Prints the median and the spread (min-max) of each, and the ratio fetch/sync per round.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sync import build_log

from forum_client import entries as e
from forum_server.admin.init import init_forum
from forum_server.app import running_server
from forum_server.testing import LocalForum

FORMATS = ("csv", "jsonl", "stix", "misp")


def timed(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Run ``cmd``; return (seconds, peak RSS MiB of that process).  Raises on failure.

    The peak comes from GNU time (``%M``): this script's own ``wait4`` would report at least
    this process's RSS, since ``subprocess`` starts the child by vfork and Linux carries the
    parent's high-water mark through exec into ``ru_maxrss`` (every export read 160 MiB).
    """
    rss = log.with_suffix(".rss")
    with log.open("w") as out:
        start = time.perf_counter()
        done = subprocess.run(
            [GNU_TIME, "-f", "%M", "-o", str(rss), *cmd], stdout=out, stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{log.read_text()[-3000:]}")
    return seconds, int(rss.read_text().split()[-1]) / 1024


GNU_TIME = "/usr/bin/time"  # Debian's package "time"


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--no-fetch", action="store_true", help="exports only (no threatexchange fetch)"
    )
    args = parser.parse_args()
    client = [sys.executable, "-m", "forum_client.cli"]
    tx = [sys.executable, "-m", "threatexchange"]
    rows: dict[str, list[tuple[float, float]]] = {}
    ratios: list[float] = []
    fetch_ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-interop-") as tmp:
        base = Path(tmp)
        forum_dir = base / "forum"
        trust_root = init_forum(
            forum_dir, name="Bench", address="127.0.0.1:0", now=dt.datetime.now(dt.UTC)
        )
        t0 = time.perf_counter()
        build_log(forum_dir, args.signals, 1000, 7)
        print(f"built the log in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        with running_server(forum_dir / "server") as running:
            forum = LocalForum(forum_dir, trust_root, running)
            reader = forum.enroll("bench-reader", e.Role.OBSERVER)
            for n in range(args.rounds):
                # A fresh threatexchange home each round: its index rebuild covers every collab.
                env = dict(os.environ, HOME=str(base / f"home-{n}"))
                (base / f"home-{n}").mkdir()
                subprocess.run(
                    [*tx, "config", "extensions", "add", "forum_client.interop.pytx_exchange"],
                    env=env, check=True, capture_output=True,
                )  # fmt: skip
                db = base / f"sync-{n}.db"
                profile = ["--profile", str(reader.bundle_path)]
                sync = timed(
                    [*client, *profile, "sync", "--db", str(db), "--no-progress"],
                    env, base / "sync.log",
                )  # fmt: skip
                rows.setdefault("sync", []).append(sync)
                for fmt in FORMATS:
                    out = base / f"export.{fmt}"
                    cmd = [*client, "export", "--db", str(db), "--format", fmt, "-o", str(out)]
                    took = timed([*cmd, "--quiet"], env, base / "export.log")
                    rows.setdefault(f"export {fmt}", []).append(took)
                    print(f"round {n + 1}: export {fmt} {took[0]:.1f} s, {took[1]:.0f} MiB",
                          file=sys.stderr, flush=True)  # fmt: skip
                    out.unlink()
                if args.no_fetch:
                    continue
                collab = f"forum{n}"
                subprocess.run(
                    [
                        *tx, "config", "collab", "edit", "shared_signal_forum", collab,
                        "--create", "--profile", str(reader.bundle_path),
                        "--db", str(base / f"tx-{n}.db"),
                    ],
                    env=env, check=True, capture_output=True,
                )  # fmt: skip
                # pytx's fetch without its index rebuild (our sync and deltas, pytx's merge
                # and pickled state), then the rebuild alone (pytx's only), each timed.
                fetch = timed(
                    [*tx, "fetch", "--only-collab", collab, "--skip-index-rebuild"],
                    env, base / "fetch.log",
                )  # fmt: skip
                rows.setdefault("threatexchange fetch --skip-index-rebuild", []).append(fetch)
                rebuild = timed([*tx, "dataset", "--rebuild-indices"], env, base / "rebuild.log")
                rows.setdefault("threatexchange dataset --rebuild-indices", []).append(rebuild)
                whole = (fetch[0] + rebuild[0], max(fetch[1], rebuild[1]))
                rows.setdefault("threatexchange fetch (both)", []).append(whole)
                ratios.append(whole[0] / sync[0])
                fetch_ratios.append(fetch[0] / sync[0])
                db.unlink()
                (base / f"tx-{n}.db").unlink()
                shutil.rmtree(base / f"home-{n}")
                print(
                    f"round {n + 1}: sync {sync[0]:.1f} s {sync[1]:.0f} MiB, "
                    f"fetch {fetch[0]:.1f} s {fetch[1]:.0f} MiB, "
                    f"index rebuild {rebuild[0]:.1f} s {rebuild[1]:.0f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
    doc: dict[str, object] = {"signals": args.signals, "rounds": args.rounds}
    for name, runs in rows.items():
        seconds = [s for s, _ in runs]
        doc[name] = {
            "seconds": summary(seconds),
            "signals_per_s": summary([args.signals / s for s in seconds]),
            "peak_rss_mib": summary([m for _, m in runs]),
        }
    if ratios:
        doc["fetch_and_rebuild_over_sync_time"] = summary(ratios)
        doc["fetch_over_sync_time"] = summary(fetch_ratios)
    print(json.dumps(doc, indent=2))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
