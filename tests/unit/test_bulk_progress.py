"""The progress file of `forum-client submit --input` (forum_client/bulk_submit.py): small,
bounded, and anything that does not fit reads as no progress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forum_client.bulk_submit import (
    MAX_IN_FLIGHT,
    MAX_PROGRESS_BYTES,
    InFlight,
    Progress,
    load_progress,
    progress_path,
)

RECORD = InFlight(2, "ab" * 32, 7, 1_790_000_000_000, "", "cd" * 32)


def test_a_progress_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    progress = Progress("ee" * 32, 4, "00" * 32, (RECORD,))
    progress_path(path).write_bytes(progress.to_json())
    assert load_progress(path) == progress
    old = {"key_id": "ee" * 32, "signals": 4, "digest": "00" * 32}  # before batches in flight
    progress_path(path).write_text(json.dumps(old))
    assert load_progress(path) == Progress("ee" * 32, 4, "00" * 32)


@pytest.mark.parametrize(
    "in_flight",
    [
        [{**RECORD.to_doc(), "signals": 0}],
        [{**RECORD.to_doc(), "sequence": -1}],
        [{**RECORD.to_doc(), "salt": "not hex"}],
        [{**RECORD.to_doc(), "leaf_hash": None}],
        [{k: v for k, v in RECORD.to_doc().items() if k != "created_unix_ms"}],
        [RECORD.to_doc()] * (MAX_IN_FLIGHT + 1),
        ["a string"],
        {"not": "a list"},
    ],
)
def test_a_bad_batch_in_flight_reads_as_no_progress(tmp_path: Path, in_flight: object) -> None:
    path = tmp_path / "s.csv"
    doc = {"key_id": "ee" * 32, "signals": 4, "digest": "00" * 32, "in_flight": in_flight}
    progress_path(path).write_text(json.dumps(doc))
    assert load_progress(path) is None


def test_a_huge_progress_file_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    progress_path(path).write_bytes(b" " * (MAX_PROGRESS_BYTES + 1))
    assert load_progress(path) is None
    assert len(Progress("ee" * 32, 4, "00" * 32, (RECORD,) * MAX_IN_FLIGHT).to_json()) < 4096
