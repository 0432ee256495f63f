"""``scripts/bench postgres`` runs: each of its parts once, at the smallest sizes (the numbers
are recorded in docs/benchmarks.md; here only that the benchmark still works)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_postgres.py"


def test_every_part_of_the_postgres_benchmark_runs(tmp_path: Path, postgres_url: str) -> None:
    out = tmp_path / "postgres.json"
    # postgres_url: skip (or fail under CI) without PostgreSQL; the script makes its own schemas
    proc = subprocess.run(
        [
            *(sys.executable, str(SCRIPT), "--runs", "1", "--submit-batches", "2"),
            *("--sync-signals", "2000", "--read-entries", "100", "--readers", "2"),
            *("--kills", "1", "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    for part in ("submit_ratio_postgres_to_sqlite", "sync_ratio_postgres_to_sqlite"):
        assert doc[part]["median"] > 0
    assert doc["read_ratio_2_to_1"]["median"] > 0
    assert doc["failover"]["takeover_seconds"]["max"] > 0
