#!/usr/bin/env python3
"""Benchmark: the sync's own per-entry work on a log of one-signal submissions, in one process.

    .venv/bin/python scripts/bench_apply.py --entries 5000 --runs 5
    .venv/bin/python scripts/bench_apply.py --entries 200 --per-entry 1000 --runs 3

What a sync does per entry besides the signature, without a server or a network: the log
(real keys and signatures, built in memory) is served to a real :class:`Syncer` by a stub
that hands :class:`GrpcSource` the same ``EntryBatch`` messages the server sends (256 entries
each, parsed from bytes), into a real SQLite copy, with the signatures checked ahead on two
threads (the default on 2 CPUs).  Each run, side by side in one process:

- ``apply_cpu_us``: CPU time per entry of the thread that applies the entries in log order
  (conversion, decode, key state, content rules, view rows, leaf hash, SQLite, commit);
- ``verify_cpu_us``: CPU time per signature of ``Ed25519PublicKey.verify`` on one thread;
- ``ahead_to_verify_2``: the sync's wall rate against the same signatures verified on two
  threads (the limit the issue names), as in ``scripts/bench_sync.py`` without the server.

CPU time, not wall time, for the first two: a loaded machine stretches wall time.  On two
cores a sync can reach at best ``1 / (1 + apply_per_verify)`` of the 2-thread rate (before
the server's own work, which shares the cores in ``scripts/bench_sync.py``), so 0.8 needs
``apply_per_verify`` <= 0.25.  Left out: the server, gRPC's transport, PDQ signals.  The
first message (256 entries) arrives before the key state exists and is verified inline; up
to issue #13's run-at-a-time replay the second one was too (512 entries: with 10,000
entries ~5% of a verification in ``apply_cpu_us``); now the second is checked on the
checker's threads when it is applied.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from bench_sigcheck import raw_rate  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402
from test_verifier import Log  # noqa: E402

from forum_client import entries as e  # noqa: E402
from forum_client._proto.forum.v1 import forum_pb2 as pb  # noqa: E402
from forum_client.checkpoint import Checkpoint, sign_checkpoint  # noqa: E402
from forum_client.envelope import Envelope, pae  # noqa: E402
from forum_client.merkle import CompactRange, leaf_hash  # noqa: E402
from forum_client.source import GrpcSource  # noqa: E402
from forum_client.store import LocalStore  # noqa: E402
from forum_client.sync import SyncConfig, Syncer  # noqa: E402
from forum_client.taxonomy import DEFAULT_LABELS, DEFAULT_VERSION  # noqa: E402
from forum_client.verifier import OPERATOR_ID, make_genesis  # noqa: E402
from forum_client.wire import envelope_to_pb  # noqa: E402

LABEL = "behaviour:terrorist-publication"
PER_MESSAGE = 256


class _Stub:
    """The three calls a fresh sync makes, answered from bytes as the server would."""

    def __init__(self, note: bytes, batches: dict[bool, list[bytes]]) -> None:
        self.note = note
        self.batches = batches  # as leaves (True) or as Entry messages (False)

    def GetCheckpoint(self, request: Any, timeout: float | None = None) -> Any:
        return pb.SignedCheckpoint(note=self.note)

    def GetEntries(self, request: Any) -> _Stream:
        served = self.batches[request.leaves]
        return _Stream(pb.EntryBatch.FromString(data) for data in served)


class _Stream:
    """A server stream as grpc returns it: iterable and cancellable."""

    def __init__(self, messages: Iterator[Any]) -> None:
        self.messages = messages

    def __iter__(self) -> Iterator[Any]:
        return self.messages

    def cancel(self) -> None:
        pass


def serve(log: Any, genesis: Envelope, admin: list[Envelope], subs: list[Envelope]) -> _Stub:
    leaves = [x.leaf_bytes() for x in (genesis, *admin, *subs)]
    rng = CompactRange.empty()
    for leaf in leaves:
        rng.append(leaf_hash(leaf))
    note = sign_checkpoint(
        Checkpoint(log.root.origin, rng.size, rng.root()), log.root.log_key_name, log.log_key
    )
    batches: dict[bool, list[bytes]] = {True: [], False: []}
    all_envs = [genesis, *admin, *subs]
    for start in range(0, len(all_envs), PER_MESSAGE):
        as_leaves, as_entries = pb.EntryBatch(), pb.EntryBatch()
        for i, env in enumerate(all_envs[start : start + PER_MESSAGE], start):
            as_leaves.entries.append(pb.LogEntry(index=i, leaf=leaves[i]))
            as_entries.entries.append(pb.LogEntry(index=i, entry=envelope_to_pb(env)))
        batches[True].append(as_leaves.SerializeToString())
        batches[False].append(as_entries.SerializeToString())
    return _Stub(note, batches)


def timed_sync(stub: _Stub, root: Any, threads: int, db: Path) -> tuple[float, float]:
    """Wall seconds of one fresh sync, and CPU seconds of the thread that applies (this one:
    with ``threads`` > 0 the signatures are checked on others)."""
    with LocalStore(db) as store:
        source = GrpcSource(stub, 60.0)  # type: ignore[arg-type]
        syncer = Syncer(
            source,
            store,
            root,
            SyncConfig(signature_threads=threads, ask_witnesses=False),
            reader="reader",
        )
        started, cpu = time.perf_counter(), time.thread_time()
        result = syncer.sync()
        seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu
    if result.entries != syncer.range.size:
        raise SystemExit(f"synced {result.entries} entries of {syncer.range.size}")
    return seconds, cpu


def verify_cpu(public_key: bytes, envs: list[Envelope]) -> float:
    """CPU seconds of one thread verifying every signature of ``envs``."""
    key = Ed25519PublicKey.from_public_bytes(public_key)
    work = [(env.signature, pae(env.payload_type, env.body)) for env in envs]
    started = time.thread_time()
    for sig, msg in work:
        key.verify(sig, msg)
    return time.thread_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument(
        "--per-entry", type=int, default=1, help="signals per submission (1, 10, 1000...)"
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    log = Log()
    genesis = make_genesis(log.root, log.op, forum_name="T", created_unix_ms=0)
    admin: list[Envelope] = []
    original_append = log.append

    def capture(key: Any, body: e.Body) -> int:
        env = log.signed(key, body)
        admin.append(env)
        index = log.state.size
        log.state.apply(index, env)
        return index

    log.append = capture  # type: ignore[method-assign]
    log.append(
        log.op,
        e.Taxonomy(log.header(log.op, OPERATOR_ID), DEFAULT_VERSION, DEFAULT_LABELS),
    )
    key = log.admit("bench")
    log.append = original_append  # type: ignore[method-assign]
    rand = random.Random(7)
    subs = []
    for _ in range(args.entries):
        items = tuple(
            e.SignalItem("sha256", rand.randbytes(32).hex(), (LABEL,), "image")
            for _ in range(args.per_entry)
        )
        subs.append(log.signed(key, e.Submission(log.header(key, "bench"), items)))
    stub = serve(log, genesis, admin, subs)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        for run in range(args.runs):
            v1 = verify_cpu(key.public_bytes, subs)
            ahead, apply_cpu = timed_sync(stub, log.root, 2, Path(tmp) / f"ahead-{run}.db")
            v2 = args.entries / raw_rate(key.public_bytes, subs, 2)
            n = args.entries
            runs.append(
                {
                    "apply_cpu_us": round(apply_cpu / n * 1e6, 1),
                    "apply_cpu_us_per_signal": round(apply_cpu / n / args.per_entry * 1e6, 2),
                    "verify_cpu_us": round(v1 / n * 1e6, 1),
                    "apply_per_verify": round(apply_cpu / v1, 3),
                    "ahead_us": round(ahead / n * 1e6, 1),
                    "verify_2_us": round(v2 / n * 1e6, 1),
                    "ahead_to_verify_2": round(v2 / ahead, 3),
                }
            )
            print(json.dumps(runs[-1]), file=sys.stderr)
    summary = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    doc = {"entries": args.entries, "per_entry": args.per_entry, "runs": runs, "median": summary}
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
