"""``scripts/bench_sync_floor.py`` runs at a small size (the numbers are recorded in
docs/benchmarks.md; here only that each client really streams and checks the whole log)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_sync_floor.py"


def test_the_floor_benchmark_streams_and_checks_every_entry() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--signals", "300", "--rounds", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    # The script exits non-zero unless each client saw every entry of the log and every
    # member signature verified.
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.splitlines()[-1])
    (one,) = doc["rounds"]
    assert one["entries"] > 300  # the member's 300 submissions after the operator's entries
    assert set(one["ratio_to_verify_2"]) == {"sync", "stream", "memory", "checks"}
    assert all(rate > 0 for rate in one["entries_per_s"].values())
    assert set(doc["summary"]) == set(one["ratio_to_verify_2"])


def test_the_floor_benchmark_refuses_an_empty_log() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--signals", "0"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "at least 1" in proc.stderr
