"""Benchmark: Ed25519 checks of log entries, one thread vs two, raw vs SignatureChecker.

    .venv/bin/python scripts/bench_sigcheck.py --entries 20000 --runs 3

Signs ``--entries`` one-signal submissions (real entry bodies, one member key), then times in
one process, side by side and in each run: ``Envelope.verify`` on one thread; the raw limit,
``Ed25519PublicKey.verify`` on two threads (chunks of 64, the key loaded once): this is
"this machine's 2-thread verification rate"; and :class:`SignatureChecker` with two threads
(everything the checker adds: key-id and length checks, DSSE encoding, the hand-off).
Left out: decoding, the log state, SQLite (the sync benchmark has those).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from forum_client import entries as e
from forum_client.envelope import Envelope, SigningKey, pae
from forum_client.sigcheck import SignatureChecker


def _entries(n: int) -> tuple[SigningKey, list[Envelope]]:
    key = SigningKey.generate()
    out = []
    for i in range(n):
        header = e.Header("bench.forum", "bench-member", key.key_id, i + 1, 0)
        item = e.SignalItem("sha256", (b"%032d" % i).hex(), ("behaviour:x",), "image")
        body = e.Submission(header, (item,), "")
        out.append(key.sign(e.payload_type_of(body), e.encode(body)))
    return key, out


def raw_rate(public_key: bytes, envs: list[Envelope], threads: int) -> float:
    """Signatures per second of plain Ed25519PublicKey.verify on ``threads`` threads."""
    key = Ed25519PublicKey.from_public_bytes(public_key)
    work = [(env.signature, pae(env.payload_type, env.body)) for env in envs]

    def check(chunk: list[tuple[bytes, bytes]]) -> None:
        for sig, msg in chunk:
            key.verify(sig, msg)

    chunks = [work[i : i + 64] for i in range(0, len(work), 64)]
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(check, chunks))
    return len(envs) / (time.perf_counter() - start)


def one_run(key: SigningKey, envs: list[Envelope]) -> dict[str, float]:
    start = time.perf_counter()
    for env in envs:
        env.verify(key.public_bytes)
    sequential = len(envs) / (time.perf_counter() - start)
    raw1 = raw_rate(key.public_bytes, envs, 1)
    raw2 = raw_rate(key.public_bytes, envs, 2)
    items = [(i, env, key.public_bytes) for i, env in enumerate(envs)]
    with SignatureChecker(threads=2) as checker:
        start = time.perf_counter()
        checks = checker.submit(items)
        assert all(checks.verified_key(i) is not None for i in range(len(envs)))
        checker_rate = len(envs) / (time.perf_counter() - start)
    return {
        "envelope_verify_1_thread": sequential,
        "raw_1_thread": raw1,
        "raw_2_threads": raw2,
        "checker_2_threads": checker_rate,
        "checker_to_raw_2": checker_rate / raw2,
        "raw_2_to_raw_1": raw2 / raw1,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--entries", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args()
    key, envs = _entries(args.entries)
    runs = [one_run(key, envs) for _ in range(args.runs)]
    summary = {}
    for name in runs[0]:
        vals = [r[name] for r in runs]
        summary[name] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
        print(
            f"{name:28s} median {summary[name]['median']:10.2f}  [{min(vals):.2f}-{max(vals):.2f}]"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"entries": args.entries, "runs": runs, "summary": summary}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
