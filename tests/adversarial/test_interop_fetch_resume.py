"""Issue 15: an interrupted ``threatexchange fetch`` resumes from its checkpoint.

The real ``threatexchange`` CLI runs in a subprocess (its own HOME) against a proxy of a real
forum that stalls the entry stream part-way through a second fetch.  The test kills the fetch
with SIGKILL while it waits there (after the sync committed a verified prefix), lets the
stream go, and fetches again: the rerun's sync asks for entries from the size the local copy
had verified (not 0), the deltas start from pytx's saved checkpoint (the first fetch's log
size, not 0), and pytx's state ends holding every active signal once, at the final size.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("threatexchange")

from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client.interop.pytx_exchange import ForumCheckpoint, ForumSignalExchangeAPI
from forum_client.store import LocalStore
from forum_server.testing import LocalForum, local_forum

from .malicious import Tamper, Upstream, batched, malicious_forum

PUB = "behaviour:terrorist-publication"
WAIT_S = 120.0  # bound on every wait for the subprocess (never reached when things work)


class StallAfter(Tamper):
    """Honest, but while ``armed`` a GetEntries stream stops after ``after`` entries and
    holds until ``release`` is set (it serves batches of 5 entries).  Records the start
    index of every GetEntries."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.armed = False
        self.starts: list[int] = []
        self.stalled = threading.Event()
        self.release = threading.Event()

    def entries(self, up: Upstream, request: pb.GetEntriesRequest) -> Iterator[pb.EntryBatch]:
        self.starts.append(request.start)
        sent = 0
        real = (entry for batch in up.GetEntries(request) for entry in batch.entries)
        for batch in batched(real, 5):  # small batches, so the stall falls mid-stream
            if self.armed and sent >= self.after:
                self.stalled.set()
                self.release.wait(WAIT_S)
                return  # the stream ends short; the client has been killed by then
            sent += len(batch.entries)
            yield batch


def md5s(start: int, n: int) -> list[str]:
    return [f"{i:032x}" for i in range(start, start + n)]


def submit(forum: LocalForum, values: list[str]) -> None:
    """alice submits ``values`` as md5 signals, 50 to an entry."""
    with forum.client("alice") as client:
        for at in range(0, len(values), 50):
            client.submit(
                [{"type": "md5", "value": v, "labels": [PUB]} for v in values[at : at + 50]],
                forum.members["alice"].signing_key,
            )


def log_size(forum: LocalForum) -> int:
    store = forum.running.handle.sequencer.store
    return int(store.size())


def state_of(home: Path, collab: str) -> tuple[int, dict[tuple[str, str], object]]:
    """pytx's saved fetch state for ``collab``: (checkpoint log size, updates)."""
    from threatexchange.cli.cli_state import CliSimpleState

    store = CliSimpleState(
        ForumSignalExchangeAPI, home / ".threatexchange" / "fetched" / "shared_signal_forum"
    )
    delta = store._read_state(collab)
    assert delta is not None
    checkpoint = delta.checkpoint
    assert isinstance(checkpoint, ForumCheckpoint)
    return checkpoint.log_size, dict(delta.updates)


def test_a_killed_fetch_resumes_from_its_checkpoints(tmp_path: Path) -> None:
    with local_forum(tmp_path / "forum") as forum:
        alice = forum.members["alice"]
        first = md5s(0, 200)
        submit(forum, first)
        tamper = StallAfter(after=20)
        with malicious_forum(forum, tamper) as proxy:
            home = tmp_path / "home"
            home.mkdir()
            env = {**os.environ, "HOME": str(home)}
            tx = [sys.executable, "-m", "threatexchange"]

            def run(*args: str) -> str:
                done = subprocess.run(
                    [*tx, *args], env=env, capture_output=True, text=True, timeout=WAIT_S
                )
                assert done.returncode == 0, (args, done.stdout, done.stderr)
                return done.stderr

            db = tmp_path / "copy.db"
            run("config", "extensions", "add", "forum_client.interop.pytx_exchange")
            run(
                "config", "collab", "edit", "shared_signal_forum", "forum", "--create",
                "--profile", str(forum.members["carol"].bundle_path), "--db", str(db),
                "--server", proxy.address, "--commit-every", "100",
            )  # fmt: skip
            run("fetch", "--skip-index-rebuild")
            saved, state = state_of(home, "forum")
            assert saved == log_size(forum) and len(state) == len(first)

            # 60 more entries of 50 signals, a retraction and an opinion after the first fetch
            later = md5s(1000, 3000)
            submit(forum, later)
            with forum.client("alice") as client:
                client.retract([{"type": "md5", "value": first[0]}], alice.signing_key, "wrong")
            with forum.client("bob") as client:
                client.opine(
                    {"type": "md5", "value": first[1]}, "agree", forum.members["bob"].signing_key
                )
            final = log_size(forum)

            # The second fetch stalls after 20 more entries; kill it there with SIGKILL.
            tamper.armed = True
            log = (tmp_path / "killed.log").open("w")
            killed = subprocess.Popen(
                [*tx, "-v", "fetch", "--skip-index-rebuild"], env=env, stderr=log, stdout=log
            )
            try:
                assert tamper.stalled.wait(WAIT_S), "the fetch never reached the stall"
                verified = saved
                deadline = time.monotonic() + WAIT_S
                while verified <= saved and time.monotonic() < deadline:
                    with LocalStore(db) as store:  # the sync's intermediate commit lands
                        verified = store.size
                    time.sleep(0.05)
                assert killed.poll() is None, "the fetch ended on its own before the kill"
                killed.send_signal(signal.SIGKILL)
                assert killed.wait(WAIT_S) == -signal.SIGKILL
                with LocalStore(db) as store:  # what the killed sync had committed
                    verified = store.size
                assert saved < verified < final, (saved, verified, final)
            finally:
                if killed.poll() is None:
                    killed.kill()
                    killed.wait(WAIT_S)
                log.close()
                tamper.armed = False
                tamper.release.set()
            # Killed before pytx saved: its checkpoint is still the first fetch's
            assert state_of(home, "forum")[0] == saved
            assert f"deltas from log size {saved}" not in (tmp_path / "killed.log").read_text()

            starts_before = len(tamper.starts)
            again = run("-v", "fetch", "--skip-index-rebuild")
            # The rerun's sync asked for entries from the verified size, not 0 (nor `saved`)
            assert tamper.starts[starts_before] == verified, (tamper.starts, verified)
            assert f"local copy at {verified} entries" in again, again
            # ... and its deltas start from pytx's saved checkpoint, not 0
            assert f"deltas from log size {saved}" in again, again

            size, state = state_of(home, "forum")
            assert size == final
            expected = {("file_md5", v) for v in [*first[1:], *later]}
            assert set(state) == expected  # every active signal once, the retracted one gone
            assert len(state) == len(first) - 1 + len(later)
