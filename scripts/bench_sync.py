#!/usr/bin/env python3
"""Benchmark: full verified sync of N signals (1,000-signal submissions) vs raw SQLite inserts.

    .venv/bin/python scripts/bench_sync.py --signals 1000000 --json
    .venv/bin/python scripts/bench_sync.py --signals 1000000 --redacted-fraction 0.5 --json

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
submissions, the PDQ index (no PDQ signals; see ``--pdq``).

With ``--redacted-fraction F`` (issue #10) that share of the submissions is scoped to a
group (TLP:RED, salted, with the author's scope claim) that one reader is in and another is
not; both sync the same log in the same run, one after the other: the member outside the
group receives those entries redacted (leaf hash + claim, verified), the member inside
receives everything.  Each sync's peak RSS is its own process's.

With ``--pdq realistic`` (or ``uniform``) the signals are distinct PDQ hashes
(``scripts/pdq_data.py``'s clusters of real hashes, or random bits) and the run times, on top
of the sync and its raw anchor: the first ``forum-client match`` on the fresh copy (it builds
and saves the PDQ index), a second one (loads it); then a copy synced from a snapshot of the
log's head (``--pdq-tail``: the share left out), its first match, a sync of the tail into it
and the match that catches its index up with that tail; and the latency of PDQ hits and
misses through ``forum_client.match.lookup.Matcher`` on the fresh copy.  Each match runs in
its own process (its time excludes imports; peak RSS is its own).  The script also runs
against checkouts from before issue 16 (for side-by-side runs: copy it out and run it with
that checkout's venv)::

    .venv/bin/python scripts/bench_sync.py --pdq realistic --signals 200000 --json
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import inspect
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forum_client import entries as e
from forum_client.checkpoint import Checkpoint, sign_checkpoint
from forum_client.envelope import Envelope, SigningKey
from forum_client.merkle import CompactRange, leaf_hash
from forum_client.scopes import ScopeClaim, new_salt, sign_scope_claim
from forum_client.store import LocalStore

try:
    from forum_client.store.view import ViewWriter
except ImportError:  # a checkout from before issue 16's store package (side-by-side runs)
    from forum_client.store_view import ViewWriter  # type: ignore[no-redef]
from forum_client.verifier import LogState
from forum_server.admin.init import init_forum
from forum_server.app import ServerPaths, running_server
from forum_server.storage import StoredLeaf, open_store
from forum_server.testing import EnrolledMember, LocalForum

LABEL = "behaviour:terrorist-publication"
GROUP = "bench-group"


def build_log(
    root: Path,
    signals: int,
    per_entry: int,
    seed: int,
    redacted_fraction: float = 0.0,
    group_members: tuple[str, ...] = (),
    pdq: np.ndarray | None = None,
    snapshot: tuple[int, Path] | None = None,
) -> tuple[int, bytes, list[Envelope]]:
    """Append the admission, key and submissions to the server's store; return the size,
    the member's public key and its submissions.  With ``redacted_fraction``, first a group
    holding the bench member and ``group_members``, and that share of the submissions scoped
    to it.  With ``pdq`` (rows of 32 bytes, at least ``signals``), the signals are those PDQ
    hashes instead of random sha256.  With ``snapshot`` ``(k, path)``, the forum directory is
    copied to ``path`` once the first ``k`` submissions are in (a shorter log that the full
    one extends)."""
    server = root / "server"
    store = open_store(ServerPaths(server).database_location())  # SQLite or PostgreSQL
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
            body = state.apply(index, env)
            data = env.leaf_bytes()
            h = leaf_hash(data)
            rng.append(h)
            claim: ScopeClaim | None = None
            if isinstance(body, e.Submission) and body.scope:
                claim = sign_scope_claim(key, origin, body.scope, h)
            out.append(StoredLeaf(index, data, h, claim))
        note = sign_checkpoint(Checkpoint(origin, rng.size, rng.root()), origin, log_key)
        store.append(out, rng.size, note)

    flush(
        [
            sign(admin, lambda h: e.MemberAdmitted(h, member, "Bench", e.Role.MEMBER)),
        ]
    )
    pop = key.prove_possession(origin, member)
    flush([sign(admin, lambda h: e.KeyAdded(h, member, key.public_bytes, pop))])
    if redacted_fraction:
        flush([sign(admin, lambda h: e.GroupCreated(h, GROUP, "Bench group"))])
        for who in (member, *group_members):
            flush([sign(admin, lambda h, who=who: e.GroupMember(h, GROUP, who, True))])
    rand = random.Random(seed)
    batch: list[Envelope] = []
    submissions: list[Envelope] = []
    for i in range(signals // per_entry):
        if snapshot is not None and i == snapshot[0]:
            if batch:
                flush(batch)
                batch = []
            store.close()
            shutil.copytree(root, snapshot[1])
            store = open_store(ServerPaths(server).database_location())
        if pdq is not None:
            rows = pdq[i * per_entry : (i + 1) * per_entry]
            items = tuple(e.SignalItem("pdq", r.tobytes().hex(), (LABEL,), "image") for r in rows)
        else:
            items = tuple(
                e.SignalItem("sha256", rand.randbytes(32).hex(), (LABEL,), "image")
                for _ in range(per_entry)
            )
        if int((i + 1) * redacted_fraction) > int(i * redacted_fraction):
            scope, tlp, salt = GROUP, e.Tlp.RED, new_salt()
        else:
            scope, tlp, salt = "", e.Tlp.GREEN, b""
        batch.append(
            sign(key, lambda h, it=items, s=scope, t=tlp, x=salt: e.Submission(h, it, s, t, x))
        )
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
                "SELECT type, value, member_id, labels, content_type, quality, scope, entry_index, "
                "tlp FROM descriptors"
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
        raw.con.executemany(ViewWriter.DESCRIPTOR_SQL, desc_rows)
        raw.con.execute("COMMIT")
        seconds = time.perf_counter() - start
    return seconds, len(sig_rows)


_SYNC = (
    "import json, resource, sys\n"
    "from forum_client.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "with open('/proc/self/status') as f:\n"
    "    hwm = next(int(l.split()[1]) for l in f if l.startswith('VmHWM'))\n"
    "print(json.dumps({'peak_rss_kib': hwm, 'ru_maxrss_kib': peak}), file=sys.stderr)\n"
    "sys.exit(rc)\n"
)
# Peak RSS is the process's VmHWM: ru_maxrss also counts the benchmark's own memory, which
# the child shares between the (v)fork and the exec (Linux keeps that high-water mark in the
# child's rusage), and the benchmark holds every submission for its verification anchor.
# The same, and a thread that reads the process's RSS every 100 ms and notes where the main
# thread was (its innermost frames) each time the RSS reached a new high. It reads one line
# (/proc/self/statm) and walks four frames without reading their source: every 20 ms with
# /proc/self/status and traceback.extract_stack, py-spy put ~2% of the sync process's samples
# in it, CPU a member's sync does not spend (the 1-signal ratio moved less than its spread
# between runs: 0.595-0.666 before, 0.561-0.718 after, alternating).
# Each 100 ms it also reads every thread's CPU time (/proc/self/task/*/stat), so the sync's
# CPU can be split between its main thread (decode, checks, apply, SQLite), the signature
# checkers (the `forum-sigcheck` pool) and the rest (gRPC's own threads, this one); a thread
# that ends between two readings loses its last 100 ms at most.
_SYNC_LOCATED = (
    "import json, os, resource, sys, threading, time\n"
    "from forum_client.cli import main\n"
    "main_id = threading.get_ident()\n"
    "seen = {'kib': 0, 'at': 0.0, 'where': ''}\n"
    "start = time.monotonic()\n"
    "page_kib = os.sysconf('SC_PAGE_SIZE') // 1024\n"
    "tick = os.sysconf('SC_CLK_TCK')\n"
    "threads = {}\n"
    "def thread_cpu():\n"
    "    names = {t.native_id: t.name for t in threading.enumerate()}\n"
    "    for tid in map(int, os.listdir('/proc/self/task')):\n"
    "        try:\n"
    "            with open(f'/proc/self/task/{tid}/stat') as g:\n"
    "                fields = g.read().rsplit(') ', 1)[1].split()\n"
    "        except OSError:\n"
    "            continue\n"
    "        name = names.get(tid) or threads.get(tid, ('', 0.0))[0]\n"
    "        threads[tid] = (name, (int(fields[11]) + int(fields[12])) / tick)\n"
    "def watch():\n"
    "    with open('/proc/self/statm') as f:\n"
    "        while True:\n"
    "            f.seek(0)\n"
    "            kib = int(f.read().split()[1]) * page_kib\n"
    "            if kib > seen['kib'] + 1024:\n"
    "                frame, names = sys._current_frames().get(main_id), []\n"
    "                while frame is not None and len(names) < 4:\n"
    "                    names.append(f'{frame.f_code.co_name}:{frame.f_lineno}')\n"
    "                    frame = frame.f_back\n"
    "                seen.update(kib=kib, at=round(time.monotonic() - start, 1),"
    " where=' < '.join(names))\n"
    "            thread_cpu()\n"
    "            time.sleep(0.1)\n"
    "threading.Thread(target=watch, daemon=True).start()\n"
    "rc = main(sys.argv[1:])\n"
    "thread_cpu()\n"
    "cpu = {'main': 0.0, 'signature_checkers': 0.0, 'other': 0.0}\n"
    "for name, seconds in threads.values():\n"
    "    group = 'main' if name == 'MainThread' else 'signature_checkers'"
    " if name.startswith('forum-sigcheck') else 'other'\n"
    "    cpu[group] += seconds\n"
    "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "with open('/proc/self/status') as f:\n"
    "    hwm = next(int(l.split()[1]) for l in f if l.startswith('VmHWM'))\n"
    "out = {'peak_rss_kib': hwm, 'ru_maxrss_kib': peak, 'highest_sampled': seen,"
    " 'thread_cpu_s': cpu}\n"
    "print(json.dumps(out), file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def timed_sync(bundle: Path, server: str, db: Path) -> dict[str, float]:
    """``forum-client sync`` into a fresh ``db`` in its own process: its result, wall
    time and the process's own peak RSS."""
    cmd = [sys.executable, "-c", _SYNC, "--profile", str(bundle), "--server", server]
    cmd += ["sync", "--db", str(db)]
    start = time.perf_counter()
    done = subprocess.run(
        [*cmd, "--json", "--no-progress"], capture_output=True, text=True, env=dict(os.environ)
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"sync failed: {done.stderr}")
    result = json.loads(done.stdout.splitlines()[-1])
    peak = json.loads(done.stderr.strip().splitlines()[-1])["peak_rss_kib"]
    with LocalStore(db) as store:
        redacted = store.counts().get("redacted", 0)
    return {
        "entries": result["size"],
        "redacted_entries": redacted,
        "signals": result["signals"],
        "seconds": result["seconds"],
        "seconds_process": round(seconds, 2),
        "entries_per_s": round(result["size"] / result["seconds"]),
        "signals_per_s": round(result["signals"] / result["seconds"]),
        "peak_rss_mib": round(peak / 1024, 1),
    }


def _sizes(text: str) -> list[int]:
    return [int(n) for n in text.split(",")]


def parse_one_signal_args(p: argparse.ArgumentParser) -> argparse.Namespace:
    """The arguments of the benchmarks that reuse this script's forum of one-signal entries
    (``bench_sync_floor.py``, ``bench_startup.py``), parsed and checked."""
    p.add_argument("--signals", type=int, default=50_000, help="one-signal entries in the log")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--forums", type=Path, help="keep the built forum here (bench_sync.py's cache)")
    args = p.parse_args()
    if args.signals < 1 or args.rounds < 1:
        p.error("--signals and --rounds must be at least 1")
    if args.forums:
        args.forums.mkdir(parents=True, exist_ok=True)
    return args


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--signals",
        type=_sizes,
        default=[1_000_000],
        help="signals in the log; several (e.g. 1000000,5000000) are synced one after the "
        "other in the same run, each with its own raw anchor, and compared with the first",
    )
    parser.add_argument("--per-entry", type=int, default=1_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--inline-too",
        action="store_true",
        help="also time the sync with --signature-threads 0 (every signature inline)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy summary of the measured sync process (needs py-spy in .venv); with "
        "several sizes, one file per size (FILE-N)",
    )
    parser.add_argument(
        "--forums",
        type=Path,
        help="keep each built forum in this directory and reuse it on the next run "
        "(the log of N signals is built once; default: a fresh temporary one each run)",
    )
    parser.add_argument(
        "--no-anchor",
        dest="anchor",
        action="store_false",
        help="skip the raw executemany anchor (diagnosis only: no ratio to raw)",
    )
    parser.add_argument(
        "--redacted-fraction",
        type=float,
        default=0.0,
        help="share of the submissions scoped to a group the measured member is not in; "
        "compared with a member in the group, same log, same run",
    )
    parser.add_argument(
        "--pdq",
        choices=("uniform", "realistic"),
        help="a log of PDQ signals (uniform random hashes, or scripts/pdq_data.py's realistic "
        "clusters, de-duplicated): times the sync, the first forum-client match (the index "
        "build), a sync of the tail into a copy whose index exists and the match that catches "
        "it up, and PDQ query latency through the SDK's Matcher",
    )
    parser.add_argument(
        "--pdq-tail",
        type=float,
        default=0.5,
        help="with --pdq: share of the submissions synced after the index exists (default 0.5)",
    )
    parser.add_argument(
        "--pdq-queries",
        type=int,
        default=200,
        help="with --pdq: hit and miss queries timed each (default 200)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("bench-out"),
        help="with --pdq realistic: where scripts/pdq_data.py's data set is cached",
    )
    parser.add_argument(
        "--visible-first",
        action="store_true",
        help="with --redacted-fraction: sync the fully visible copy first (default: second)",
    )
    args = parser.parse_args()
    if not 0.0 <= args.redacted_fraction < 1.0:
        parser.error("--redacted-fraction is in [0, 1)")
    if args.redacted_fraction:
        args.signals = args.signals[0]
        return redacted_run(args)
    if args.pdq:
        if not 0.0 < args.pdq_tail < 1.0:
            parser.error("--pdq-tail is in (0, 1)")
        args.signals = args.signals[0]
        return pdq_run(args)
    if args.forums is not None:
        args.forums.mkdir(parents=True, exist_ok=True)
    docs: list[dict[str, Any]] = []
    for signals in args.signals:
        profile = args.profile
        if profile is not None and len(args.signals) > 1:
            profile = profile.with_name(f"{profile.stem}-{signals}{profile.suffix}")
        doc = one_size(args, signals, profile)
        if doc is None:
            return 1
        if docs:
            first = docs[0]
            doc["rate_vs_first"] = round(doc["sync_signals_per_s"] / first["sync_signals_per_s"], 3)
            if args.anchor:
                doc["raw_rate_vs_first"] = round(
                    doc["raw_insert_signals_per_s"] / first["raw_insert_signals_per_s"], 3
                )
        docs.append(doc)
        print(json.dumps(doc), file=sys.stderr, flush=True)  # kept if a later size fails
        if not args.json:
            for k, v in doc.items():
                print(f"{k:28} {v}")
    if args.json:
        print(json.dumps(docs[0] if len(docs) == 1 else {"runs": docs}))
    return 0


def forum_of(
    base: Path, signals: int, per_entry: int, seed: int
) -> tuple[Path, EnrolledMember, int, bytes, list[Envelope], float]:
    """The forum holding ``signals`` in ``per_entry`` submissions under ``base`` (built
    there unless an earlier run with ``--forums`` left it) and its enrolled reader."""
    forum_dir = base / f"forum-{signals}-{per_entry}-{seed}"
    built = forum_dir / "bench-built.json"
    if built.exists():
        doc = json.loads(built.read_text())
        key = Path(doc["key"])
        reader = EnrolledMember(
            doc["reader"], e.Role.OBSERVER, Path(doc["bundle"]), key, SigningKey.load(key)
        )
        size, member_key, submissions = rebuild_submissions(forum_dir, doc)
        return forum_dir, reader, size, member_key, submissions, 0.0
    trust_root = init_forum(
        forum_dir, name="Bench", address="127.0.0.1:0", now=dt.datetime.now(dt.UTC)
    )
    # Enrolled first: issuing a bundle replays the whole log (every signature), which on a
    # busy machine outlasts the operator's deadline once the log is long.
    with running_server(forum_dir / "server") as running:
        reader = LocalForum(forum_dir, trust_root, running).enroll("bench-reader", e.Role.OBSERVER)
    t0 = time.perf_counter()
    size, member_key, submissions = build_log(forum_dir, signals, per_entry, seed)
    build_seconds = time.perf_counter() - t0
    built.write_text(
        json.dumps(
            {
                "reader": reader.member_id,
                "bundle": str(reader.bundle_path.resolve()),
                "key": str(reader.key_path.resolve()),
                "size": size,
                "member_key": member_key.hex(),
            }
        )
    )
    return forum_dir, reader, size, member_key, submissions, build_seconds


def rebuild_submissions(forum_dir: Path, doc: dict[str, Any]) -> tuple[int, bytes, list[Envelope]]:
    """A kept forum's size, member key and submissions (read back from its store)."""
    store = open_store(ServerPaths(forum_dir / "server").database_location())
    member_key = bytes.fromhex(doc["member_key"])
    try:
        submissions = [
            env
            for leaf in store.leaves(0, store.size())
            if (env := Envelope.from_leaf_bytes(leaf.leaf_bytes)).payload_type
            == e.PAYLOAD_TYPES[e.Submission]
        ]
    finally:
        store.close()
    return int(doc["size"]), member_key, submissions


class MemorySampler:
    """Samples a process's memory (``/proc/PID/smaps_rollup``) and a file's size every
    ``interval`` seconds on a thread: the peak of each, and a coarse timeline."""

    FIELDS = ("Rss", "Anonymous", "RssFile", "RssShmem")

    def __init__(self, pid: int, wal: Path, interval: float = 1.0) -> None:
        self.pid, self.wal, self.interval = pid, wal, interval
        self.peak: dict[str, int] = {}
        self.timeline: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last_kept = -1e9
        while not self._stop.wait(self.interval):
            try:
                text = Path(f"/proc/{self.pid}/smaps_rollup").read_text()
            except OSError:
                return
            kib = {}
            for line in text.splitlines():
                name, _, rest = line.partition(":")
                if name in self.FIELDS:
                    kib[name] = int(rest.split()[0])
            try:
                kib["wal"] = self.wal.stat().st_size // 1024
            except OSError:
                kib["wal"] = 0
            for name, value in kib.items():
                self.peak[name] = max(self.peak.get(name, 0), value)
            at = time.perf_counter() - self._started
            if at - last_kept >= 15:
                last_kept = at
                self.timeline.append(
                    {"s": round(at), **{k: round(v / 1024) for k, v in kib.items()}}
                )

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        return {
            "peak_mib": {k: round(v / 1024) for k, v in self.peak.items()},
            "timeline_mib": self.timeline,
        }


def _children_cpu() -> float:
    """User + system CPU seconds of this process's waited-for children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_size(args: argparse.Namespace, signals: int, profile: Path | None) -> dict[str, Any] | None:
    """Build (or reuse) a forum of ``signals``, time a fresh sync of it and the raw anchor."""
    # Imported here: --pdq runs this script against checkouts older than these helpers.
    from bench_sigcheck import raw_rate
    from bench_submit import _profile, summarize_profile

    inline: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sync-", dir=args.forums) as tmp:
        base = Path(tmp)
        forum_dir, reader, size, member_key, submissions, build_seconds = forum_of(
            args.forums or base, signals, args.per_entry, args.seed
        )
        with running_server(forum_dir / "server", start_timeout_seconds=3600) as running:
            db = base / "synced.db"
            if args.inline_too:  # the same sync with every signature checked inline, first
                inline_db = base / "inline.db"
                cmd = [
                    sys.executable,
                    "-m",
                    "forum_client.cli",
                    "--profile",
                    str(reader.bundle_path),
                    "--server",
                    running.address,
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
                    return None
                inline = json.loads(done.stdout.splitlines()[-1])
                inline_db.unlink()
            cmd = [sys.executable, "-c", _SYNC_LOCATED, "--profile", str(reader.bundle_path)]
            cmd += ["--server", running.address, "sync", "--db", str(db), "--json"]
            start = time.perf_counter()
            server_cpu = time.process_time()  # the server runs on threads of this process
            client_cpu = _children_cpu()
            proc = subprocess.Popen(
                [*cmd, "--no-progress"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=dict(os.environ),
            )
            sampler = MemorySampler(proc.pid, db.with_name(db.name + "-wal"))
            spy = None if profile is None else _profile(proc.pid, profile.with_suffix(".raw"))
            out, err = proc.communicate()
            sync_seconds = time.perf_counter() - start
            server_cpu = time.process_time() - server_cpu
            client_cpu = _children_cpu() - client_cpu
            memory = sampler.stop()
            if spy is not None and profile is not None:
                spy.wait()  # py-spy ends with the process it samples
                summarize_profile(profile.with_suffix(".raw"), profile, what="the sync process")
            if proc.returncode != 0:
                print(err, file=sys.stderr)
                return None
            result = json.loads(out.splitlines()[-1])
        # The sync process's own peak (VmHWM, printed by _SYNC_LOCATED as it exits).
        peaks = json.loads(err.strip().splitlines()[-1])
        peak_rss_mib = peaks["peak_rss_kib"] / 1024
        db_mib = db.stat().st_size / 2**20
        raw_seconds, rows = raw_insert_rate(base / "raw.db", db) if args.anchor else (0.0, 0)
        verify_2 = raw_rate(member_key, submissions, 2)
    synced = result["signals"]
    entries_per_s = result["entries"] / result["seconds"]
    doc: dict[str, Any] = {
        "signals": synced,
        "entries": size,
        "per_entry": args.per_entry,
        "build_seconds": round(build_seconds, 1),
        "sync_seconds_process": round(sync_seconds, 2),
        "sync_seconds": result["seconds"],
        "sync_signals_per_s": round(synced / result["seconds"]),
        "sync_peak_rss_mib": round(peak_rss_mib, 1),
        "copy_mib": round(db_mib),
        "raw_insert_seconds": round(raw_seconds, 2),
        "raw_insert_signals_per_s": round(rows / raw_seconds) if rows else None,
        "ratio_sync_to_raw": round((synced / result["seconds"]) / (rows / raw_seconds), 3)
        if rows
        else None,
        "sync_entries_per_s": round(entries_per_s),
        "verify_2_threads_per_s": round(verify_2),
        "ratio_entries_to_verify_2": round(entries_per_s / verify_2, 3),
        # CPU per entry over the whole sync process (start-up included) and over this
        # process during it (the server's threads, plus a memory sampler polling once a
        # second); one Ed25519 verification on one core is 2e6 / verify_2 us.
        "cpu_us_per_entry": {
            "sync_process": round(client_cpu / size * 1e6, 1),
            "server": round(server_cpu / size * 1e6, 1),
            "one_verification": round(2e6 / verify_2, 1),
            # the sync process's threads (start-up and the last commit in "main")
            "by_thread": {k: round(v / size * 1e6, 1) for k, v in peaks["thread_cpu_s"].items()},
        },
        "load_average": os.getloadavg(),
        "sync_memory": memory,
        "sync_highest_rss_sampled": peaks["highest_sampled"],
        "sync_ru_maxrss_mib": round(peaks["ru_maxrss_kib"] / 1024, 1),
    }
    if args.inline_too:
        inline_rate = inline["entries"] / inline["seconds"]
        doc["inline_entries_per_s"] = round(inline_rate)
        doc["ratio_inline_to_verify_2"] = round(inline_rate / verify_2, 3)
    return doc


def redacted_run(args: argparse.Namespace) -> int:
    """The same log synced by a member outside the group (the redacted share comes as leaf
    hashes) and by one inside it (everything in full), one after the other."""
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        base = Path(tmp)
        forum_dir = base / "forum"
        trust_root = init_forum(
            forum_dir, name="Bench", address="127.0.0.1:0", now=dt.datetime.now(dt.UTC)
        )
        with running_server(forum_dir / "server", start_timeout_seconds=3600) as running:
            forum = LocalForum(forum_dir, trust_root, running)
            outside = forum.enroll("bench-outside", e.Role.OBSERVER)
            inside = forum.enroll("bench-inside", e.Role.OBSERVER)
        t0 = time.perf_counter()
        size, _, _ = build_log(
            forum_dir,
            args.signals,
            args.per_entry,
            args.seed,
            args.redacted_fraction,
            (inside.member_id,),
        )
        build_seconds = time.perf_counter() - t0
        with running_server(forum_dir / "server", start_timeout_seconds=3600) as again:
            order = [("redacted", outside), ("visible", inside)]
            if args.visible_first:
                order.reverse()
            timed = {
                name: timed_sync(who.bundle_path, again.address, base / f"{name}.db")
                for name, who in order
            }
            redacted, visible = timed["redacted"], timed["visible"]
    doc = {
        "signals_in_log": args.signals,
        "entries": size,
        "per_entry": args.per_entry,
        "redacted_fraction": args.redacted_fraction,
        "first": "visible" if args.visible_first else "redacted",
        "build_seconds": round(build_seconds, 1),
        "redacted": redacted,
        "visible": visible,
        "ratio_seconds_redacted_to_visible": round(redacted["seconds"] / visible["seconds"], 3),
        "ratio_entries_per_s_redacted_to_visible": round(
            redacted["entries_per_s"] / visible["entries_per_s"], 3
        ),
        "ratio_peak_rss_redacted_to_visible": round(
            redacted["peak_rss_mib"] / visible["peak_rss_mib"], 3
        ),
    }
    if args.json:
        print(json.dumps(doc))
    else:
        print(json.dumps(doc, indent=2))
    return 0


# forum_client.cli.main timed inside the process (the matching modules imported before the
# clock starts, so start-up is left out), then the process's VmHWM.
_MATCH = (
    "import json, sys, time\n"
    "from forum_client.cli import main\n"
    "import forum_client.match.lookup\n"
    "start = time.perf_counter()\n"
    "rc = main(sys.argv[1:])\n"
    "seconds = time.perf_counter() - start\n"
    "with open('/proc/self/status') as f:\n"
    "    hwm = next(int(l.split()[1]) for l in f if l.startswith('VmHWM'))\n"
    "print(json.dumps({'peak_rss_kib': hwm, 'seconds': seconds}), file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def timed_match(db: Path, value: str) -> dict[str, float]:
    """``forum-client match --type pdq`` on ``db`` in its own process: the command's time
    (imports left out), the process's wall time and peak RSS.  The first one on a copy
    builds the PDQ index (and saves it), a later one loads it and catches it up with what
    the copy gained since."""
    cmd = [sys.executable, "-c", _MATCH, "match", "--db", str(db), "--type", "pdq"]
    start = time.perf_counter()
    done = subprocess.run([*cmd, "--value", value], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"match failed: {done.stderr}")
    inside = json.loads(done.stderr.strip().splitlines()[-1])
    found = len(json.loads(done.stdout.splitlines()[-1])["matches"])
    return {
        "seconds": round(inside["seconds"], 3),
        "seconds_process": round(seconds, 2),
        "peak_rss_mib": round(inside["peak_rss_kib"] / 1024, 1),
        "found": found,
    }


def pdq_hashes(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(stored, hits, misses)``: ``args.signals`` distinct PDQ hashes in log order, hit
    queries (stored hashes with 5-31 bits flipped) and miss queries (unrelated hashes)."""
    from pdq_data import load_or_make, near_queries

    rng = np.random.default_rng(args.seed)
    k = args.pdq_queries
    if args.pdq == "uniform":
        stored = rng.integers(0, 256, size=(args.signals, 32), dtype=np.uint8)
        misses = rng.integers(0, 256, size=(k, 32), dtype=np.uint8)
    else:
        n = args.signals * 2  # a realistic set repeats hashes: make more, keep distinct
        data = load_or_make(args.data_dir / f"pdq-{n}.npz", n, max(k, 1000))
        stored = np.unique(data["realistic"], axis=0)
        if len(stored) < args.signals:
            raise SystemExit(f"only {len(stored)} distinct realistic hashes; need {args.signals}")
        stored = stored[rng.permutation(len(stored))[: args.signals]]
        misses = data["realistic_miss"][:k]
    return stored, near_queries(stored, k, rng), misses


def query_latency(db: Path, hits: np.ndarray, misses: np.ndarray) -> dict[str, Any]:
    """p50/p99 of ``Matcher.match("pdq", ...)`` on ``db`` (index loaded, one warm-up query)."""
    from forum_client.match.lookup import Matcher

    out: dict[str, Any] = {}
    with LocalStore(db) as store, Matcher(store) as matcher:
        matcher.match("pdq", hits[0].tobytes().hex())
        for kind, queries in (("hit", hits), ("miss", misses)):
            times, found = [], 0
            for q in queries:
                value = q.tobytes().hex()
                t = time.perf_counter()
                results = matcher.match("pdq", value)
                times.append(time.perf_counter() - t)
                found += bool(results)
            ms = np.array(times) * 1e3
            out[kind] = {
                "p50_ms": round(float(np.percentile(ms, 50)), 3),
                "p99_ms": round(float(np.percentile(ms, 99)), 3),
                "mean_ms": round(float(ms.mean()), 3),
                "queries": len(ms),
                "found": found,
            }
    return out


def _serve(server: Path) -> Any:
    """``running_server`` with a long start-up timeout where the checkout has that option."""
    if "start_timeout_seconds" in inspect.signature(running_server).parameters:
        return running_server(server, start_timeout_seconds=3600)
    return running_server(server)


def pdq_run(args: argparse.Namespace) -> int:
    """A log of PDQ signals: a fresh sync and the first match (index build); a sync of the
    log's head, its index, then the tail and the match that catches the index up; query
    latency on the fresh copy."""
    stored, hits, misses = pdq_hashes(args)
    entries_total = args.signals // args.per_entry
    head_entries = round(entries_total * (1 - args.pdq_tail))
    with tempfile.TemporaryDirectory(prefix="bench-sync-pdq-") as tmp:
        base = Path(tmp)
        forum_dir, head_dir = base / "forum", base / "forum-head"
        trust_root = init_forum(
            forum_dir, name="Bench", address="127.0.0.1:0", now=dt.datetime.now(dt.UTC)
        )
        with running_server(forum_dir / "server") as running:
            reader = LocalForum(forum_dir, trust_root, running).enroll(
                "bench-reader", e.Role.OBSERVER
            )
        t0 = time.perf_counter()
        size, _, _ = build_log(
            forum_dir,
            args.signals,
            args.per_entry,
            args.seed,
            pdq=stored,
            snapshot=(head_entries, head_dir),
        )
        build_seconds = time.perf_counter() - t0
        fresh, caught = base / "fresh.db", base / "caught.db"
        probe = hits[0].tobytes().hex()
        with _serve(forum_dir / "server") as full:
            sync = timed_sync(reader.bundle_path, full.address, fresh)
            first_match = timed_match(fresh, probe)  # builds the index from the copy
            loaded_match = timed_match(fresh, probe)  # loads it, nothing to catch up
        raw_seconds, rows = raw_insert_rate(base / "raw.db", fresh)
        with _serve(head_dir / "server") as head:
            head_sync = timed_sync(reader.bundle_path, head.address, caught)
            head_match = timed_match(caught, probe)
        with _serve(forum_dir / "server") as full:
            tail_sync = timed_sync(reader.bundle_path, full.address, caught)
        catch_up = timed_match(caught, probe)  # loads the head's index, catches up the tail
        latency = query_latency(fresh, hits, misses)
    doc = {
        "pdq": args.pdq,
        "data_sha256": hashlib.sha256(stored.tobytes() + hits.tobytes()).hexdigest()[:16],
        "signals": sync["signals"],
        "entries": size,
        "per_entry": args.per_entry,
        "build_seconds": round(build_seconds, 1),
        "sync_seconds": sync["seconds"],
        "sync_signals_per_s": sync["signals_per_s"],
        "sync_peak_rss_mib": sync["peak_rss_mib"],
        "raw_insert_seconds": round(raw_seconds, 2),
        "ratio_sync_to_raw": round((sync["signals"] / sync["seconds"]) / (rows / raw_seconds), 3),
        "first_match": first_match,
        "loaded_match": loaded_match,
        "head_signals": head_sync["signals"],
        "head_match": head_match,
        "tail_signals": tail_sync["signals"],
        "tail_sync_seconds": tail_sync["seconds"],
        "tail_sync_peak_rss_mib": tail_sync["peak_rss_mib"],
        "catch_up_match": catch_up,
        "query": latency,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(doc) if args.json else json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
