#!/usr/bin/env python3
"""Benchmark: how near the 2-thread Ed25519 limit a 1-signal-entry sync could come at all.

    .venv/bin/python scripts/bench_sync_floor.py --signals 50000 --rounds 3 --forums DIR

Issue #13 asks a log of one-signal submissions to sync at 0.8 of this machine's 2-thread
Ed25519 rate.  This measures what is left when the sync's own work is taken away, on the
forum ``scripts/bench_sync.py`` builds (``--forums`` shares its cache), each round in turn,
in one run:

- ``sync``: ``forum-client sync`` into a fresh copy, as ``bench_sync.py`` times it;
- ``stream``: a client process that does only what no sync can skip: it streams every entry
  from the real server over mTLS (``GrpcSource``, leaves, as the sync asks), reads each
  envelope (``Envelope.from_leaf_bytes``) and has its signature checked by
  ``SignatureChecker`` on two threads, one stream message ahead, as the sync does; then it
  drops it (no key state, no content rules, no rows, no Merkle tree, no SQLite);
- ``memory``: the same client with the leaves already in memory (fetched before its clock
  starts): reading and checking only, no server, no gRPC;
- ``checks``: the envelopes already read as well: ``SignatureChecker`` alone, one message
  ahead (what it adds to a verification: key-id and length checks, DSSE encoding, hand-off);
- the anchor: every submission's signature checked with ``Ed25519PublicKey.verify`` on two
  threads, nothing else (``bench_sigcheck.raw_rate``, as ``bench_sync.py`` takes it).

Each is given as entries per second and as a ratio to the anchor of its round.  ``stream``
bounds any client of this protocol on this machine with the server beside it; ``memory``
bounds the client alone; ``checks`` the checker.  Left out: everything a real sync does
beyond those steps (so the floors are upper bounds, not predictions), network latency
(loopback), a busy server.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The client half runs in its own process, like a sync: it imports only what it needs.
_CLIENT = """
import json, sys, time
from forum_client.client import ForumClient
from forum_client.envelope import Envelope
from forum_client.sigcheck import SignatureChecker
from forum_client.source import GrpcSource

bundle, server, public_key, mode = sys.argv[1:5]
public_key = bytes.fromhex(public_key)
with ForumClient.connect(bundle, server=server) as forum:
    source = GrpcSource(forum.stub, 60.0)
    end = forum.status().log_size

    def stream():
        for items, _ in source.entries(0, end, False, 0):
            yield items

    if mode == "memory":  # fetched before the clock starts: served as leaves, kept as bytes
        fetched = [[(i, env.leaf_bytes()) for i, env in items] for items in stream()]
        messages = ([(i, Envelope.from_leaf_bytes(b)) for i, b in m] for m in fetched)
    elif mode == "checks":  # fetched and read before the clock starts
        messages = list(stream())
    else:
        messages = stream()
    entries = verified = 0
    with SignatureChecker(threads=2) as checker:
        start = time.perf_counter()
        ahead = None
        for items in messages:
            checks = checker.submit([(i, env, public_key) for i, env in items])
            if ahead is not None:
                verified += len(ahead.verified_keys())
            ahead = checks
            entries += len(items)
        if ahead is not None:
            verified += len(ahead.verified_keys())
        seconds = time.perf_counter() - start
print(json.dumps({"entries": entries, "verified": verified, "seconds": seconds}))
"""


def _client(bundle: Path, server: str, public_key: bytes, mode: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT, str(bundle), server, public_key.hex(), mode],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    if done.returncode != 0:
        raise SystemExit(f"{mode} client failed: {done.stderr}")
    out: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return out


def one_round(forum: tuple[Any, ...], base: Path) -> dict[str, Any]:
    """One round on ``forum`` (what ``bench_sync.forum_of`` returns); ``base`` for the copy."""
    from bench_sigcheck import raw_rate
    from bench_sync import timed_sync

    from forum_server.app import running_server

    forum_dir, reader, size, member_key, submissions, _ = forum
    rates: dict[str, float] = {}
    with running_server(forum_dir / "server", start_timeout_seconds=3600) as running:
        db = base / "synced.db"
        rates["sync"] = timed_sync(reader.bundle_path, running.address, db)["entries_per_s"]
        db.unlink()
        for mode in ("stream", "memory", "checks"):
            out = _client(reader.bundle_path, running.address, member_key, mode)
            # All but the few operator entries at the head of the log are the member's.
            if out["entries"] != size or out["verified"] != len(submissions):
                raise SystemExit(f"{mode}: {out} for a log of {size}, {len(submissions)} signed")
            rates[mode] = out["entries"] / out["seconds"]
    verify_2 = raw_rate(member_key, submissions, 2)
    return {
        "entries": size,
        "entries_per_s": {k: round(v) for k, v in rates.items()},
        "verify_2_threads_per_s": round(verify_2),
        "ratio_to_verify_2": {k: round(v / verify_2, 3) for k, v in rates.items()},
        "one_verification_us": round(2e6 / verify_2, 1),
        "load_average": os.getloadavg(),
    }


def main() -> int:
    from bench_sync import forum_of, parse_one_signal_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--json", action="store_true", help="print every round as one JSON object")
    args = parse_one_signal_args(p)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench-floor-", dir=args.forums) as tmp:
        base = Path(tmp)
        forum = forum_of(args.forums or base, args.signals, 1, args.seed)  # built or read once
        for number in range(args.rounds):
            started = time.perf_counter()
            rounds.append(one_round(forum, base))
            ratios = rounds[-1]["ratio_to_verify_2"]
            print(
                f"round {number + 1}/{args.rounds} ({time.perf_counter() - started:.0f} s): "
                + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
                + " of the 2-thread Ed25519 rate",
                file=sys.stderr,
            )
    summary = {
        k: {
            "median": statistics.median(r["ratio_to_verify_2"][k] for r in rounds),
            "min": min(r["ratio_to_verify_2"][k] for r in rounds),
            "max": max(r["ratio_to_verify_2"][k] for r in rounds),
        }
        for k in rounds[0]["ratio_to_verify_2"]
    }
    if args.json:
        print(json.dumps({"signals": args.signals, "rounds": rounds, "summary": summary}))
    else:
        for k, s in summary.items():
            print(f"{k:7s} {s['median']:.3f} [{s['min']:.3f}-{s['max']:.3f}] of the 2-thread rate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
