#!/usr/bin/env python3
"""Benchmark: full verified sync of N signals (1,000-signal submissions) vs raw SQLite inserts.

    .venv/bin/python scripts/bench_sync.py --signals 1000000 --json

Builds the forum's log offline (real signatures: a member admitted and keyed by the
operator, then N / per-entry submissions signed by the member, appended straight into the
server's store with a signed checkpoint), serves it on port 0 with mTLS, enrolls an
observer, then times ``forum-client sync`` in a subprocess (its peak RSS is that process's
alone).  In the same run it times plain ``executemany`` inserts of the same rows (entries,
signals, descriptors) into the same schema in one transaction, and prints the ratio.

``--per-entry 1`` (or 10) makes a log of small submissions, where signatures dominate: the
same run then also times this machine's Ed25519 limit, every submission's signature checked
with ``Ed25519PublicKey.verify`` on two threads (nothing else), and reports the sync's
entries per second against it.  Left out: network latency (loopback), a server busy with
submissions, the PDQ index (no PDQ signals).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_sigcheck import raw_rate

from forum_client import entries as e
from forum_client.checkpoint import Checkpoint, sign_checkpoint
from forum_client.envelope import Envelope, SigningKey
from forum_client.merkle import CompactRange, leaf_hash
from forum_client.store import LocalStore
from forum_client.store_view import ViewWriter
from forum_client.verifier import LogState
from forum_server.admin.init import init_forum
from forum_server.app import running_server
from forum_server.storage import StoredLeaf
from forum_server.storage.sqlite import SQLiteStore
from forum_server.testing import LocalForum

LABEL = "behaviour:terrorist-publication"


def build_log(
    root: Path, signals: int, per_entry: int, seed: int
) -> tuple[int, bytes, list[Envelope]]:
    """Append the admission, key and submissions to the server's store; return the size,
    the member's public key and its submissions."""
    server = root / "server"
    store = SQLiteStore(server / "forum.db")
    admin = SigningKey.load(root / "operator" / "admin.key")
    log_key = SigningKey.load(server / "log.key")
    leaves = list(store.leaves(0, store.size()))
    state = LogState.from_genesis(Envelope.from_leaf_bytes(leaves[0].leaf_bytes))
    rng = CompactRange.empty()
    for leaf in leaves:
        if leaf.index:
            state.apply(leaf.index, Envelope.from_leaf_bytes(leaf.leaf_bytes))
        rng.append(leaf.leaf_hash)
    origin, member = state.origin, "bench-member"
    key = SigningKey.generate()
    seq = {admin.key_id: state.last_sequence[admin.key_id], key.key_id: 0}

    def sign(k: SigningKey, make: object) -> Envelope:
        seq[k.key_id] += 1
        who = "operator" if k is admin else member
        body = make(e.Header(origin, who, k.key_id, seq[k.key_id], 0))  # type: ignore[operator]
        return k.sign(e.payload_type_of(body), e.encode(body))

    def flush(batch: list[Envelope]) -> None:
        out = []
        for env in batch:
            index = state.size
            state.apply(index, env)
            data = env.leaf_bytes()
            h = leaf_hash(data)
            rng.append(h)
            out.append(StoredLeaf(index, data, h))
        note = sign_checkpoint(Checkpoint(origin, rng.size, rng.root()), origin, log_key)
        store.append(out, rng.size, note)

    flush(
        [
            sign(admin, lambda h: e.MemberAdmitted(h, member, "Bench", e.Role.MEMBER)),
        ]
    )
    pop = key.prove_possession(origin, member)
    flush([sign(admin, lambda h: e.KeyAdded(h, member, key.public_bytes, pop))])
    rand = random.Random(seed)
    batch: list[Envelope] = []
    submissions: list[Envelope] = []
    for _ in range(signals // per_entry):
        items = tuple(
            e.SignalItem("sha256", rand.randbytes(32).hex(), (LABEL,), "image")
            for _ in range(per_entry)
        )
        batch.append(sign(key, lambda h, items=items: e.Submission(h, items, "")))  # type: ignore[misc]
        submissions.append(batch[-1])
        if len(batch) == 50:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    store.close()
    return rng.size, key.public_bytes, submissions


def raw_insert_rate(db: Path, source: Path) -> tuple[float, int]:
    """Plain executemany of the synced rows into a fresh store of the same schema."""
    with LocalStore(source) as synced:
        entries = list(synced.con.execute("SELECT idx, leaf FROM entries"))
        sig_rows = list(synced.con.execute("SELECT type, value, first_index FROM signals"))
        desc_rows = list(
            synced.con.execute(
                "SELECT type, value, member_id, labels, content_type, quality, scope, entry_index "
                "FROM descriptors"
            )
        )
    rand = random.Random(1)
    order = list(range(len(sig_rows)))
    rand.shuffle(order)  # the log's order is random in value, as in sync
    sig_rows = [sig_rows[i] for i in order]
    desc_rows = [desc_rows[i] for i in order]
    with LocalStore(db) as raw:
        start = time.perf_counter()
        raw.con.execute("BEGIN")
        raw.con.executemany(ViewWriter.ENTRY_SQL, entries)
        raw.con.executemany(
            "INSERT INTO signals (type, value, status, first_index) VALUES (?, ?, 'active', ?)",
            sig_rows,
        )
        raw.con.executemany("INSERT INTO descriptors VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)", desc_rows)
        raw.con.execute("COMMIT")
        seconds = time.perf_counter() - start
    return seconds, len(sig_rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=1_000_000)
    parser.add_argument("--per-entry", type=int, default=1_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--inline-too",
        action="store_true",
        help="also time the sync with --signature-threads 0 (every signature inline)",
    )
    args = parser.parse_args()
    inline: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        base = Path(tmp)
        forum_dir = base / "forum"
        trust_root = init_forum(
            forum_dir, name="Bench", address="127.0.0.1:0", now=dt.datetime.now(dt.UTC)
        )
        t0 = time.perf_counter()
        size, member_key, submissions = build_log(
            forum_dir, args.signals, args.per_entry, args.seed
        )
        build_seconds = time.perf_counter() - t0
        with running_server(forum_dir / "server") as running:
            forum = LocalForum(forum_dir, trust_root, running)
            reader = forum.enroll("bench-reader", e.Role.OBSERVER)
            db = base / "synced.db"
            if args.inline_too:  # the same sync with every signature checked inline, first
                inline_db = base / "inline.db"
                cmd = [
                    sys.executable,
                    "-m",
                    "forum_client.cli",
                    "--profile",
                    str(reader.bundle_path),
                    "sync",
                    "--db",
                    str(inline_db),
                    "--json",
                    "--no-progress",
                    "--signature-threads",
                    "0",
                ]
                done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
                if done.returncode != 0:
                    print(done.stderr, file=sys.stderr)
                    return 1
                inline = json.loads(done.stdout.splitlines()[-1])
                inline_db.unlink()
            cmd = [
                sys.executable,
                "-m",
                "forum_client.cli",
                "--profile",
                str(reader.bundle_path),
                "sync",
                "--db",
                str(db),
                "--json",
                "--no-progress",
            ]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
            sync_seconds = time.perf_counter() - start
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            result = json.loads(done.stdout.splitlines()[-1])
        peak_rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        raw_seconds, rows = raw_insert_rate(base / "raw.db", db)
        verify_2 = raw_rate(member_key, submissions, 2)
    synced = result["signals"]
    entries_per_s = result["entries"] / result["seconds"]
    doc = {
        "signals": synced,
        "entries": size,
        "per_entry": args.per_entry,
        "build_seconds": round(build_seconds, 1),
        "sync_seconds_process": round(sync_seconds, 2),
        "sync_seconds": result["seconds"],
        "sync_signals_per_s": round(synced / result["seconds"]),
        "sync_peak_rss_mib": round(peak_rss_mib, 1),
        "raw_insert_seconds": round(raw_seconds, 2),
        "raw_insert_signals_per_s": round(rows / raw_seconds),
        "ratio_sync_to_raw": round((synced / result["seconds"]) / (rows / raw_seconds), 3),
        "sync_entries_per_s": round(entries_per_s),
        "verify_2_threads_per_s": round(verify_2),
        "ratio_entries_to_verify_2": round(entries_per_s / verify_2, 3),
    }
    if args.inline_too:
        inline_rate = inline["entries"] / inline["seconds"]
        doc["inline_entries_per_s"] = round(inline_rate)
        doc["ratio_inline_to_verify_2"] = round(inline_rate / verify_2, 3)
    if args.json:
        print(json.dumps(doc))
    else:
        for k, v in doc.items():
            print(f"{k:28} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
