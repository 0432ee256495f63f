#!/usr/bin/env python3
"""Benchmark: durable, verified submissions in 10,000-signal batches vs raw SQLite inserts.

    .venv/bin/python scripts/bench_submit.py [--batches 20] [--clients 2] [--out bench.json]
        [--prefill 1000000] [--profile bench-out/submit-profile.txt]

Starts a real forum (init, server on port 0, real mTLS, members enrolled), then each client
thread normalises, signs and submits 10,000-signal batches and verifies every receipt; the
rate is accepted signals per second of wall time.  In the same run it inserts the same
signal and descriptor rows into the same schema with plain ``executemany`` in one
transaction (the raw rate), and prints the ratio.  Results go to JSON (``--out``).

``--prefill N`` first submits N other signals through the same server (untimed), and fills the
raw database with the same N rows (untimed), so both rates are measured into a forum that
already holds N signals.  ``--profile FILE`` samples the server process with py-spy during the
timed phase and writes where its time goes (own time and total time per function).
``--retract`` times one retraction right after the last receipt; ``--retract-every S`` has
one more member retract one of its own signals every S seconds during the burst, and
reports how long those retractions waited (median, 90th percentile, longest).
Left out: network latency (loopback), other members reading at the same time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forum_client.client import ForumClient
from forum_client.envelope import SigningKey
from forum_client.profile import Bundle
from forum_server.app import ServerPaths
from forum_server.storage import open_store
from forum_server.storage.sqlite import _SCHEMA, _VIEW_SQL, OP_DESCRIPTOR, OP_SIGNAL
from forum_server.testing import local_forum, start_server_process

LABEL = "behaviour:terrorist-publication"


def make_batch(member: str, n: int, size: int) -> list[dict[str, object]]:
    return [
        {
            "type": "sha256",
            "value": hashlib.sha256(f"{member}/{n}/{i}".encode()).hexdigest(),
            "labels": (LABEL,),
            "content_type": "image",
        }
        for i in range(size)
    ]


def _client_process(
    bundle_path: str, key_path: str, address: str, member: str, batches: int, size: int, out: Any
) -> None:
    bundle = Bundle.load(bundle_path)
    key = SigningKey.load(key_path)
    work = [make_batch(member, n, size) for n in range(batches)]
    with ForumClient(bundle, server=address) as client:
        client.status()  # connect before the clock starts
        out.put(("ready", 0.0))
        total = 0
        started = time.perf_counter()
        for count, _receipt in client.submit_batches(
            (s for batch in work for s in batch), key, batch_size=size
        ):
            total += count
        out.put(("done", total, started, time.perf_counter()))


def prefill_rows(n: int, size: int) -> list[list[dict[str, object]]]:
    return [
        make_batch("prefill", b, min(size, n - b * size)) for b in range((n + size - 1) // size)
    ]


def _prefill_own(bundle_path: str, key_path: str, address: str) -> None:
    """The retracting member's own signals, submitted before the burst."""
    bundle = Bundle.load(bundle_path)
    key = SigningKey.load(key_path)
    with ForumClient(bundle, server=address) as client:
        for _ in client.submit_batches(make_batch(RETRACTOR, 0, RETRACTOR_SIGNALS), key):
            pass


def _prefill(bundle_path: str, key_path: str, address: str, n: int, size: int) -> None:
    if not n:
        return
    bundle = Bundle.load(bundle_path)
    key = SigningKey.load(key_path)
    with ForumClient(bundle, server=address) as client:
        done = 0
        for count, _receipt in client.submit_batches(
            (s for batch in prefill_rows(n, size) for s in batch), key, batch_size=size
        ):
            done += count
            if done % (20 * size) == 0:
                print(f"  prefilled {done:,} signals", file=sys.stderr, flush=True)


def _retract_one(
    bundle_path: str, key_path: str, address: str, member: str, last_batch: int
) -> float:
    """Seconds until one retraction is acknowledged, sent right after the last submission's
    receipt.  It names two of ``member``'s signals: one of its first batch (its view rows
    long written) and one of its last (still held back).  The server stores the held rows
    of those two before it checks it, and looks for them among every row it holds; up to
    session 11 it wrote every held row first."""
    bundle = Bundle.load(bundle_path)
    key = SigningKey.load(key_path)
    values = [make_batch(member, n, 1)[0] for n in (0, last_batch)]
    with ForumClient(bundle, server=address) as client:
        client.status()  # connect before the clock starts
        started = time.perf_counter()
        client.retract([{"type": v["type"], "value": v["value"]} for v in values], key, "benchmark")
        return time.perf_counter() - started


RETRACTOR = "retractor"


def _retractor_process(
    bundle_path: str, key_path: str, address: str, every: float, go: Any, stop: Any, out: Any
) -> None:
    """Once ``go`` is set (the others are about to submit), retract one of this member's own
    signals (submitted, untimed, before) every ``every`` seconds until ``stop`` is set; put
    the seconds each retraction waited for its receipt."""
    bundle = Bundle.load(bundle_path)
    key = SigningKey.load(key_path)
    own = make_batch(RETRACTOR, 0, RETRACTOR_SIGNALS)
    waits: list[float] = []
    with ForumClient(bundle, server=address) as client:
        client.status()  # connect before the clock starts
        go.wait(600)
        for item in own:
            if stop.wait(every):
                break
            started = time.perf_counter()
            client.retract([{"type": item["type"], "value": item["value"]}], key, "benchmark")
            waits.append(time.perf_counter() - started)
    out.put(("retractions", waits))


# Signals the retracting member submits before the burst: one retraction each, at most.
RETRACTOR_SIGNALS = 1_000


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "50",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize_profile(
    raw: Path, out: Path, top: int = 40, what: str = "the server process"
) -> None:
    """Collapsed py-spy stacks -> the functions with most own and total samples."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + n
    lines = [f"{samples} samples of {what} (all threads)", "", "own time:"]
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / samples:6.1f}%  {name}")
    lines += ["", "total time (function and what it calls):"]
    for name, n in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / samples:6.1f}%  {name}")
    out.write_text("\n".join(lines) + "\n")


def bench_forum(
    directory: Path,
    batches: int,
    clients: int,
    size: int,
    prefill: int = 0,
    profile: Path | None = None,
    database: str | None = None,
    server_args: Sequence[str] = (),
    retract: bool = False,
    retract_every: float = 0.0,
) -> dict[str, float]:
    """A real server process; each member submits from its own process (as members do).
    ``database``: keep the log in this PostgreSQL database instead of SQLite.  Besides the
    rate of receipts, the rate until the server's stored view holds every accepted entry
    (with deferred view rows, that is after the server has written the last of them)."""
    members = [f"member{i}" for i in range(clients)]
    everyone = [*members, RETRACTOR] if retract_every else members
    with local_forum(directory, members=everyone, observers=[], database=database) as forum:
        enrolled = {m: forum.members[m] for m in everyone}
        data_dir = forum.directory / "server"
    proc, address = start_server_process(data_dir, extra_args=server_args)
    spy = None
    try:
        first = enrolled[members[0]]
        _prefill(str(first.bundle_path), str(first.key_path), address, prefill, size)
        if profile is not None:
            spy = _profile(proc.pid, profile.with_suffix(".raw"))
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        procs = [
            ctx.Process(
                target=_client_process,
                args=(
                    str(enrolled[m].bundle_path),
                    str(enrolled[m].key_path),
                    address,
                    m,
                    batches // clients,
                    size,
                    queue,
                ),
            )
            for m in members
        ]
        go, stop = ctx.Event(), ctx.Event()
        if retract_every:
            retractor = enrolled[RETRACTOR]
            _prefill_own(str(retractor.bundle_path), str(retractor.key_path), address)
            procs.append(
                ctx.Process(
                    target=_retractor_process,
                    args=(
                        str(retractor.bundle_path),
                        str(retractor.key_path),
                        address,
                        retract_every,
                        go,
                        stop,
                        queue,
                    ),
                )
            )
        for p in procs:
            p.start()
        results = []
        while sum(r[0] == "done" for r in results) < len(members):
            results.append(queue.get())
            if sum(r[0] == "ready" for r in results) == len(members):
                go.set()
        stop.set()  # the submitters are done: so is the retractor
        while retract_every and not any(r[0] == "retractions" for r in results):
            results.append(queue.get())
        for p in procs:
            p.join()
        waits = next((r[1] for r in results if r[0] == "retractions"), [])
        done = [r for r in results if r[0] == "done"]
        started = min(r[2] for r in done)
        ended = max(r[3] for r in done)
        accepted = sum(r[1] for r in done)
        retraction = float("nan")
        if retract:
            first_bundle, first_key = str(first.bundle_path), str(first.key_path)
            last = batches // clients - 1
            retraction = _retract_one(first_bundle, first_key, address, members[0], last)
        view_ended = _view_stored(data_dir, database)
        peak_rss = _peak_rss_mb(proc.pid)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            spy.wait(timeout=60)
        proc.terminate()
        proc.wait(timeout=60)
    if profile is not None and profile.with_suffix(".raw").exists():
        summarize_profile(profile.with_suffix(".raw"), profile)
    elapsed = ended - started
    return {
        "signals": accepted,
        "seconds": elapsed,
        "signals_per_second": accepted / elapsed,
        "seconds_until_view_stored": view_ended - started,
        "signals_per_second_view_stored": accepted / (view_ended - started),
        "server_peak_rss_mb": peak_rss,
        "retraction_seconds": retraction,
        "retractions_during": len(waits),
        "retraction_wait_p50": _percentile(waits, 0.5),
        "retraction_wait_p90": _percentile(waits, 0.9),
        "retraction_wait_max": max(waits, default=float("nan")),
        "retraction_waits": waits,
    }


def _peak_rss_mb(pid: int) -> float:
    """The server process's peak resident memory so far (prefill included), in MiB: what
    its held-back view rows cost shows here."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # not Linux
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _view_stored(data_dir: Path, database: str | None, timeout: float = 600.0) -> float:
    """When (``time.perf_counter()``, which the clients' times share) the server's stored
    view first reflected its whole log, polled every 20 ms (read-only: the poll takes no
    write lock from the server)."""
    location = database or str(ServerPaths(data_dir).database_location())
    if location.startswith("postgresql"):
        store = open_store(location)
        sizes = lambda: (store.view_size(), store.size())  # noqa: E731
    else:
        con = sqlite3.connect(f"file:{location}?mode=ro", uri=True)
        sizes = lambda: con.execute(  # noqa: E731
            "SELECT (SELECT value FROM view_meta WHERE key = 'size'), "
            "(SELECT COALESCE(MAX(idx) + 1, 0) FROM leaves)"
        ).fetchone()
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        view, size = sizes()
        if view >= size:
            return time.perf_counter()
        time.sleep(0.02)
    raise RuntimeError(f"the server's view did not catch up with its log in {timeout} s")


def bench_raw(
    directory: Path, batches: int, clients: int, size: int, prefill: int = 0
) -> dict[str, float]:
    """The same signal and descriptor rows, same schema and pragmas, executemany (into a
    database already holding the ``prefill`` rows, written untimed).  Page size: SQLite's
    default, as the server's.  ``wal_autocheckpoint`` stays SQLite's default, so the raw
    insert copies its WAL back at its commit, inside the clock, as the server's
    checkpointer copies the forum's back beside its writes."""
    rows_s, rows_d = [], []
    for c in range(clients):
        member = f"member{c}"
        for n in range(batches // clients):
            for item in make_batch(member, n, size):
                rows_s.append((item["type"], item["value"], n))
                rows_d.append((item["type"], item["value"], member, LABEL, "image", None, "", n))
    con = sqlite3.connect(directory / "raw.db", isolation_level=None)
    for pragma in (
        "journal_mode=WAL",
        "synchronous=FULL",
        "cache_size=-262144",
        "temp_store=MEMORY",
    ):
        con.execute(f"PRAGMA {pragma}")
    con.executescript(_SCHEMA)
    if prefill:
        pre_s, pre_d = [], []
        for n, batch in enumerate(prefill_rows(prefill, size)):
            for item in batch:
                pre_s.append((item["type"], item["value"], n))
                pre_d.append((item["type"], item["value"], "prefill", LABEL, "image", None, "", n))
        con.execute("BEGIN IMMEDIATE")
        con.executemany(_VIEW_SQL[OP_SIGNAL], pre_s)
        con.executemany(_VIEW_SQL[OP_DESCRIPTOR], pre_d)
        con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        del pre_s, pre_d
    started = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    con.executemany(_VIEW_SQL[OP_SIGNAL], rows_s)
    con.executemany(_VIEW_SQL[OP_DESCRIPTOR], rows_d)
    con.execute("COMMIT")
    elapsed = time.perf_counter() - started
    con.close()
    return {"signals": len(rows_s), "seconds": elapsed, "signals_per_second": len(rows_s) / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help="10,000-signal batches in all")
    parser.add_argument("--clients", type=int, default=2, help="concurrent submitting members")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("bench_submit.json"))
    parser.add_argument("--prefill", type=int, default=0, help="signals in the forum before")
    parser.add_argument("--profile", type=Path, help="py-spy summary of the server (needs py-spy)")
    parser.add_argument(
        "--retract",
        action="store_true",
        help="right after the last receipt, time one retraction of two signals, one of the "
        "first batch and one of the last (the server first stores the view rows it holds "
        "back of those two); it then counts in the view-stored time",
    )
    parser.add_argument(
        "--retract-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="while the others submit, one more member retracts one of its own signals "
        "(submitted before the burst) every SECONDS, and the benchmark reports how long "
        "those retractions waited (median, 90th percentile, longest)",
    )
    parser.add_argument(
        "--deferred-view-rows",
        type=int,
        help="the server's --deferred-view-rows (default: the server's; 0 writes the view "
        "with every commit, as before it was deferred)",
    )
    parser.add_argument(
        "--deferred-view-max-rows",
        type=int,
        help="the server's --deferred-view-max-rows (default: the server's; equal to "
        "--deferred-view-rows, passes of a fixed size whatever the view holds)",
    )
    args = parser.parse_args()
    if args.retract_every < 0:
        parser.error("--retract-every must be 0 (no retractions during the burst) or more")
    server_args = []
    if args.deferred_view_rows is not None:
        server_args += ["--deferred-view-rows", str(args.deferred_view_rows)]
    if args.deferred_view_max_rows is not None:
        server_args += ["--deferred-view-max-rows", str(args.deferred_view_max_rows)]
    with tempfile.TemporaryDirectory(prefix="bench-submit-") as tmp:
        forum = bench_forum(
            Path(tmp),
            args.batches,
            args.clients,
            args.batch_size,
            args.prefill,
            args.profile,
            server_args=server_args,
            retract=args.retract,
            retract_every=args.retract_every,
        )
        raw = bench_raw(Path(tmp), args.batches, args.clients, args.batch_size, args.prefill)
    result = {
        "benchmark": "durable verified submissions, 10,000-signal batches",
        "command": " ".join(["scripts/bench_submit.py", *sys.argv[1:]]),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "batches": args.batches,
        "clients": args.clients,
        "batch_size": args.batch_size,
        "prefill": args.prefill,
        "forum": forum,
        "raw_executemany": raw,
        "ratio": forum["signals_per_second"] / raw["signals_per_second"],
        "ratio_view_stored": forum["signals_per_second_view_stored"] / raw["signals_per_second"],
    }
    print(
        f"forum: {forum['signals']:,} signals accepted in {forum['seconds']:.2f} s = "
        f"{forum['signals_per_second']:,.0f} signals/s (durable, receipts verified)"
    )
    stored, stored_rate = (
        forum["seconds_until_view_stored"],
        forum["signals_per_second_view_stored"],
    )
    print(f"  ... and until the server's view held them all: {stored:.2f} s = {stored_rate:,.0f}/s")
    print(f"  the server's peak RSS: {forum['server_peak_rss_mb']:,.0f} MiB")
    if args.retract:
        print(f"  one retraction right after: {forum['retraction_seconds']:.2f} s")
    if args.retract_every:
        print(
            f"  {forum['retractions_during']} retractions during the burst waited: median "
            f"{forum['retraction_wait_p50']:.3f} s, p90 {forum['retraction_wait_p90']:.3f} s, "
            f"longest {forum['retraction_wait_max']:.3f} s"
        )
    print(f"raw executemany, same rows and schema: {raw['signals_per_second']:,.0f} signals/s")
    print(f"ratio forum/raw: {result['ratio']:.2f}")
    print(f"ratio forum until its view is stored/raw: {result['ratio_view_stored']:.2f}")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
