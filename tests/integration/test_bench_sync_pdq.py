"""``scripts/bench_sync.py --pdq`` runs at the smallest size (the numbers are recorded in
docs/benchmarks.md; here only that the benchmark still works and measures what it says)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_sync.py"


def test_the_pdq_sync_benchmark_builds_catches_up_and_queries_the_index() -> None:
    proc = subprocess.run(
        [
            *(sys.executable, str(SCRIPT), "--pdq", "uniform", "--signals", "4000"),
            *("--pdq-queries", "10", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.splitlines()[-1])
    assert doc["signals"] == 4000 and doc["head_signals"] == doc["tail_signals"] == 2000
    assert doc["ratio_sync_to_raw"] > 0
    for step in ("first_match", "loaded_match", "head_match", "catch_up_match"):
        assert doc[step]["seconds"] > 0 and doc[step]["peak_rss_mib"] > 0, step
    for step in ("first_match", "loaded_match", "catch_up_match"):  # on the whole log
        assert doc[step]["found"] >= 1, step  # the probe is a hit of the stored hashes
    assert doc["query"]["hit"]["found"] == 10  # every hit query is within the threshold
    assert doc["query"]["miss"]["queries"] == 10 and doc["query"]["hit"]["p99_ms"] > 0
