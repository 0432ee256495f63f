"""vPDQ benchmarks: hashing speed, and matching against 10,000 shared videos.

    .venv/bin/python scripts/bench_video.py --json bench-out/video.json

Hashing: a generated 60-second video (moving shapes and text over a textured background, H.264,
25 fps) at 320x240 and 640x360, hashed one frame a second. Reported as frames decoded per
second and seconds of video per wall-clock second (and per CPU second of the process, which
a busy machine disturbs less), for this project's hasher (PyAV + pdqhash)
and, when the ``vpdq`` binding is installed, Meta's reference with one thread and with its
default threads, each run ``--runs`` times in alternation.

Matching: ``--videos`` shared videos of ``--frames`` frames each. A video is a random walk of
PDQ hashes (each frame 0-24 bits from the previous one, as consecutive seconds of a real video
are close); queries are a shared video with every frame 0-16 bits away (hits) or a fresh walk
(misses). :class:`~forum_client.match.video_index.VideoIndex` is timed per query against a
vectorised brute force (numpy popcount of every query frame against every shared frame, then
the share of matched frames per video), and every answer of the index is checked against it.
A 1,000-frame query (a long upload) is timed on the index alone. The PDQ index answers
through its compiled probe when numba (the ``fast`` extra) is installed: it is loaded before
the build and its load time reported (``FORUM_PDQ_COMPILED=0`` times the numpy path).

``--cli-match BASELINE`` times what a member runs instead: ``forum-client match --db COPY
--input one.jsonl`` (one 60-frame hit query) as a separate process, against a local copy of
``--videos`` shared videos (the same random walks, written into the copy the way the sync
writes it, by each side's own ``ViewWriter``), for this checkout and for the checkout at
BASELINE (e.g. ``/work/main``), alternating run by run, ``--runs`` times each, after one
untimed run per side (which lets a side that saves its index write it; that first run is
reported apart). Wall and CPU seconds of each run; both sides must print the same matches.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from forum_client.match.video import vpdq_of_video  # noqa: E402
from forum_client.match.video_index import VideoIndex, matchable  # noqa: E402
from forum_client.signals.vpdq import Frame  # noqa: E402

SEED = 20261129


def _videos(out: Path) -> dict[str, Path]:
    from tests.videos import make_video

    made = {}
    for w, h in ((320, 240), (640, 360)):
        path = out / f"bench-60s-{w}x{h}.mp4"
        if not path.exists():
            make_video(path, seed=1, seconds=60, size=(w, h))
        made[f"{w}x{h}"] = path
    return made


def bench_hashing(out: Path, runs: int) -> dict[str, Any]:
    try:
        import vpdq  # type: ignore[import-not-found]
    except ImportError:
        vpdq = None
    results: dict[str, Any] = {}
    for size, path in _videos(out).items():
        hashers: dict[str, Any] = {"pyav+pdqhash": lambda p: vpdq_of_video(p, min_quality=0)}
        if vpdq is not None:
            hashers["vpdq 1 thread"] = lambda p: vpdq.computeHash(
                str(p), seconds_per_hash=1, thread_count=1
            )
            hashers["vpdq default threads"] = lambda p: vpdq.computeHash(str(p), seconds_per_hash=1)
        times: dict[str, list[float]] = {name: [] for name in hashers}
        cpu: dict[str, list[float]] = {name: [] for name in hashers}
        for _ in range(runs):
            for name, fn in hashers.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                fn(path)
                times[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
        frames, seconds = 1500, 60.0
        results[size] = {
            name: {
                "wall_s": t,
                "cpu_s": cpu[name],
                "video_s_per_cpu_s_median": seconds / statistics.median(cpu[name]),
                "frames_per_s_median": frames / statistics.median(t),
                "video_s_per_s_median": seconds / statistics.median(t),
                "video_s_per_s_min": seconds / max(t),
                "video_s_per_s_max": seconds / min(t),
            }
            for name, t in times.items()
        }
    return results


def _walk(rng: np.random.Generator, frames: int, step: int) -> np.ndarray:
    bits = np.empty((frames, 256), np.uint8)
    bits[0] = rng.integers(0, 2, 256)
    for k in range(1, frames):
        bits[k] = bits[k - 1]
        bits[k, rng.choice(256, int(rng.integers(0, step + 1)), replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def _flip(rng: np.random.Generator, hashes: np.ndarray, most: int) -> np.ndarray:
    bits = np.unpackbits(hashes, axis=1)
    for row in bits:
        row[rng.choice(256, int(rng.integers(0, most + 1)), replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def _frames(hashes: np.ndarray) -> list[Frame]:
    return [Frame(h.tobytes().hex(), 100, float(t)) for t, h in enumerate(hashes)]


class Brute:
    """Every query frame against every shared frame (numpy popcount), then shares per video."""

    def __init__(self, videos: list[np.ndarray]) -> None:
        self.words = np.ascontiguousarray(np.concatenate(videos)).view("<u8")
        self.owner = np.repeat(np.arange(len(videos)), [len(v) for v in videos])
        self.sizes = np.array([len(v) for v in videos])

    def query(self, query: np.ndarray, threshold: int = 31, pct: float = 80.0) -> set[int]:
        q = np.ascontiguousarray(query).view("<u8")
        hit_videos_per_qframe = []
        shared_hit = np.zeros(len(self.owner), bool)
        for row in q:
            near = np.bitwise_count(self.words ^ row).sum(axis=1, dtype=np.uint16) <= threshold
            shared_hit |= near
            hit_videos_per_qframe.append(np.unique(self.owner[near]))
        q_counts = np.bincount(np.concatenate(hit_videos_per_qframe), minlength=len(self.sizes))
        c_counts = np.bincount(self.owner[shared_hit], minlength=len(self.sizes))
        ok = (100 * q_counts / len(q) >= pct) & (100 * c_counts / self.sizes >= pct)
        return set(np.flatnonzero(ok).tolist())


def _pct(times: list[float]) -> dict[str, float]:
    a = np.array(times) * 1e3
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "n": len(a),
    }


def bench_matching(videos: int, frames: int, queries: int, brute_queries: int) -> dict[str, Any]:
    from forum_client.match.pdq_index import compiled_probe

    # Loaded now, as a matching service would at start (a process otherwise loads it after
    # its first 4,096 frame queries): the timings below leave its load out; it is reported.
    started = time.perf_counter()
    compiled = compiled_probe() is not None
    probe_load_s = time.perf_counter() - started
    rng = np.random.default_rng(SEED)
    shared = [_walk(rng, frames, 24) for _ in range(videos)]
    started = time.perf_counter()
    index: VideoIndex[int] = VideoIndex.build((k, _frames(v)) for k, v in enumerate(shared))
    build_s = time.perf_counter() - started
    brute = Brute(shared)
    hits = [_flip(rng, shared[int(rng.integers(videos))], 16) for _ in range(queries)]
    misses = [_walk(rng, frames, 24) for _ in range(queries)]
    out: dict[str, Any] = {"build_s": build_s, "frames_indexed": index.frame_count}
    out.update(compiled_probe=compiled, probe_load_s=probe_load_s)
    for name, qs in (("hit", hits), ("miss", misses)):
        ours, theirs = [], []
        for n, q in enumerate(qs):
            frames_q = _frames(q)
            t0 = time.perf_counter()
            got = {m.key for m in index.query(frames_q)}
            ours.append(time.perf_counter() - t0)
            if n < brute_queries:
                t0 = time.perf_counter()
                want = brute.query(
                    np.frombuffer(b"".join(matchable(frames_q)), np.uint8).reshape(-1, 32)
                )
                theirs.append(time.perf_counter() - t0)
                if got != want:
                    raise SystemExit(
                        f"{name} query {n}: index {sorted(got)} != brute {sorted(want)}"
                    )
        out[name] = {"index": _pct(ours), "brute_force": _pct(theirs)}
        out[name]["speedup_p50"] = out[name]["brute_force"]["p50_ms"] / out[name]["index"]["p50_ms"]
    # A long upload: 1,000 frames (about 17 minutes at one frame a second), index only.
    long_times = []
    for _ in range(max(3, queries // 30)):
        frames_q = _frames(_walk(rng, 1000, 24))
        t0 = time.perf_counter()
        index.query(frames_q)
        long_times.append(time.perf_counter() - t0)
    out["miss_1000_frames"] = {"index": _pct(long_times)}
    return out


# Run in a child with the side's checkout first on sys.path: writes the copy as the sync
# does (genesis, then submissions of 100 vpdq signals each; dummy signatures, which matching
# never reads).
_MAKE_COPY = """
import json, sys
sys.path.insert(0, sys.argv[1])
from forum_client import entries as e
from forum_client.envelope import Envelope
from forum_client.store import LocalStore
from forum_client.store.view import ViewWriter

values = json.loads(open(sys.argv[3]).read())
labels = ("behaviour:terrorist-publication",)
with LocalStore(sys.argv[2]) as store, store.write() as con:
    view = ViewWriter(con)
    head = lambda who, seq: e.Header("bench.forum/video", who, b"k" * 32, seq, 0)
    bodies = [e.Incident(head("operator", 0), "x", "t", True)]
    for seq, start in enumerate(range(0, len(values), 100), 1):
        items = tuple(
            e.SignalItem("vpdq", v, labels, "video", 90) for v in values[start : start + 100]
        )
        bodies.append(e.Submission(head("alice", seq), items, "scope-a"))
    for size, body in enumerate(bodies):
        env = Envelope(e.payload_type_of(body), e.encode(body), b"k" * 32, b"s" * 64)
        view.add_entry(size, env.leaf_bytes())
        if size:
            view.apply(size, body, None)
    view.flush()
    con.execute(
        "INSERT OR REPLACE INTO sync_state VALUES (1, ?, x'', x'', x'', '{}', 0)", (len(bodies),)
    )
"""
_RUN_CLI = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from forum_client.cli import main; sys.exit(main())"
)


def _timed(argv: list[str]) -> tuple[float, float, str]:
    """Wall and CPU seconds (the child's user + system) of one command, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv[3:]} failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def _spread(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def bench_cli_match(baseline: Path, videos: int, frames: int, runs: int) -> dict[str, Any]:
    """``forum-client match`` of one 60-frame query, this checkout against ``baseline``."""
    from forum_client.signals.vpdq import frames_to_value

    rng = np.random.default_rng(SEED)
    shared = [_walk(rng, frames, 24) for _ in range(videos)]
    values = [frames_to_value(_frames(v)) for v in shared]
    query = frames_to_value(_frames(_flip(rng, shared[videos // 2], 16)))
    sides = {"before": baseline.resolve(), "after": ROOT}
    out: dict[str, Any] = {"videos": videos, "frames": frames, "runs": runs}
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        d = Path(tmp)
        (d / "values.json").write_text(json.dumps(values))
        (d / "one.jsonl").write_text(json.dumps({"type": "vpdq", "value": query}) + "\n")
        for name, side in sides.items():
            db = d / f"{name}.db"
            argv = [sys.executable, "-c", _MAKE_COPY, str(side), str(db), str(d / "values.json")]
            subprocess.run(argv, check=True)
            out[f"{name}_copy_mb"] = db.stat().st_size / 2**20
        argv_of = {
            name: [
                sys.executable,
                "-c",
                _RUN_CLI,
                str(side),
                "match",
                "--db",
                str(d / f"{name}.db"),
                "--input",
                str(d / "one.jsonl"),
            ]
            for name, side in sides.items()
        }
        answers = {}
        for name, argv in argv_of.items():
            wall, cpu, stdout = _timed(argv)
            out[f"{name}_first"] = {"wall_s": wall, "cpu_s": cpu}
            answers[name] = [m["value"] for m in json.loads(stdout)["matches"]]
        if answers["before"] != answers["after"] or answers["after"] != [values[videos // 2]]:
            raise SystemExit(f"the sides disagree or miss the shared video: {answers}")
        times: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in sides}
        for _ in range(runs):
            for name, argv in argv_of.items():
                wall, cpu, _ = _timed(argv)
                times[name]["wall"].append(wall)
                times[name]["cpu"].append(cpu)
        for name in sides:
            out[name] = {k: [round(x, 3) for x in v] for k, v in times[name].items()}
            out[name]["wall_s"] = _spread(times[name]["wall"])
            out[name]["cpu_s"] = _spread(times[name]["cpu"])
        files = sorted(p.name for p in d.iterdir() if p.name.endswith(".npz"))
        out["index_files_mb"] = {p: (d / p).stat().st_size / 2**20 for p in files}
    out["load_average"] = os.getloadavg()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="hashing runs per hasher")
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--brute-queries", type=int, default=30)
    parser.add_argument("--skip-hashing", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--cli-match",
        type=Path,
        metavar="BASELINE",
        help="only time `forum-client match` of one query, this checkout against BASELINE",
    )
    args = parser.parse_args()
    if args.cli_match:
        result = bench_cli_match(args.cli_match, args.videos, args.frames, args.runs)
        print(json.dumps(result, indent=1))
        if args.json:
            args.json.write_text(json.dumps({"cli_match": result}, indent=1))
        return
    out_dir = ROOT / "bench-out"
    out_dir.mkdir(exist_ok=True)
    results: dict[str, Any] = {}
    if not args.skip_hashing:
        results["hashing"] = bench_hashing(out_dir, args.runs)
        print(json.dumps(results["hashing"], indent=1), flush=True)
    results["matching"] = bench_matching(args.videos, args.frames, args.queries, args.brute_queries)
    print(json.dumps(results["matching"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
