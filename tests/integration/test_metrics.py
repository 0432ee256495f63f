"""``--metrics-listen``: Prometheus metrics of a real server, on both engines."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from forum_client.errors import TransportError
from forum_server.admin.init import init_forum
from forum_server.app import RunningForum, running_server
from forum_server.config import ServerConfig
from forum_server.testing import engine_database, local_forum

pytestmark = pytest.mark.integration

WITH_METRICS = ServerConfig(metrics_listen="127.0.0.1:0", grace_seconds=1.0)


def scrape(running: RunningForum) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert running.handle.metrics is not None
    url = f"http://127.0.0.1:{running.handle.metrics.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_calls_commits_and_the_log(tmp_path: Path) -> None:
    with local_forum(tmp_path, config=WITH_METRICS, observers=[]) as f:
        key = f.members["alice"].signing_key
        with f.client("alice") as client:
            client.submit([{"type": "md5", "value": "a" * 32}], key)
            client.checkpoint()
        m = scrape(f.running)
        assert m[("forum_requests_total", (("code", "OK"), ("method", "Submit")))] == 1
        assert m[("forum_requests_total", (("code", "OK"), ("method", "GetCheckpoint")))] == 1
        assert m[("forum_request_seconds_count", (("method", "Submit"),))] == 1
        assert m[("forum_log_size", ())] == f.running.handle.sequencer.size
        assert m[("forum_leader", ())] == 1
        assert m[("forum_sequencer_queue_depth", ())] == 0
        # The submission's two view rows: held back, or written once the log was quiet 0.2 s.
        assert m[("forum_view_deferred_rows", ())] in (0, 2)
        deadline = time.monotonic() + 60
        while scrape(f.running)[("forum_view_deferred_rows", ())] != 0:
            assert time.monotonic() < deadline, "the held-back view rows were never written"
            time.sleep(0.05)
        assert m[("forum_sequencer_group_entries_count", ())] >= 1
        assert m[("forum_commit_seconds_count", ())] >= 1
        with f.client("alice") as client, pytest.raises(TransportError):
            stale = client.prepare_submission([{"type": "md5", "value": "b" * 32}], key, sequence=1)
            client.submit_envelope(stale)  # a sequence number already used
        # The status reaches the client before the server's handler has counted it.
        refused = ("forum_requests_total", (("code", "FAILED_PRECONDITION"), ("method", "Submit")))
        deadline = time.monotonic() + 60
        while refused not in (m := scrape(f.running)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert m[refused] == 1


def test_only_the_leader_says_it_leads(tmp_path: Path, postgres_url: str) -> None:
    # A lease no loaded machine outlasts (the default 3 s could pass the lead to the other).
    config = dataclasses.replace(WITH_METRICS, lease_seconds=120.0)
    with local_forum(tmp_path, database=postgres_url, config=config, observers=[]) as f:
        other = running_server(f.directory / "server", config=config)
        with other as second:
            assert scrape(f.running)[("forum_leader", ())] == 1
            assert scrape(second)[("forum_leader", ())] == 0


def test_a_metrics_address_that_cannot_be_bound_is_bad_input(tmp_path: Path) -> None:
    """A taken --metrics-listen port is exit 2 naming the option (it was exit 1 with a
    message that named neither the option nor what to change)."""
    with engine_database() as database, socket.socket() as taken:
        init_forum(
            tmp_path / "forum", name="Metrics", now=dt.datetime.now(dt.UTC), database=database
        )
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "forum_server.cli",
                "serve",
                "--data-dir",
                str(tmp_path / "forum" / "server"),
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    assert "--metrics-listen" in done.stderr and "Traceback" not in done.stderr
