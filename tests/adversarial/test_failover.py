"""Failover with real processes: three ``forum-server`` processes over one PostgreSQL
database, twenty members submitting through one address list, the leader ``kill -9``-ed ten
times at random moments, then a leader frozen with SIGSTOP past its lease and resumed.

Checked at the end, against the database itself:
- every acknowledged entry is at the index its receipt names (nothing acknowledged lost, no
  index used twice: each index holds one leaf);
- every stored checkpoint and every receipt's checkpoint verifies and matches the root of
  that prefix of the final log;
- the resumed old leader appended nothing after a new one took over (its epoch is fenced
  off), and a fresh member copy synced from the survivors verifies.

Then every connection the forum holds is cut under load (``pg_terminate_backend`` on the
forum's own ``application_name``); a real ``pg_ctl restart`` of a cluster of its own is in
``test_postgres_restart.py`` (the machine's shared PostgreSQL is never restarted).
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import statistics
import time
from pathlib import Path

import psycopg
import pytest

from forum_client.client import ForumClient
from forum_client.store import LocalStore
from forum_server.storage.postgres import PostgresStore
from forum_server.testing import local_forum
from tests.adversarial.submit_load import Load, Servers, check_log, wait_for

pytestmark = [pytest.mark.adversarial, pytest.mark.slow, pytest.mark.serial]

SERVERS = 3
CLIENTS = 20
KILLS = 10
LEASE = "1.5"


def _leader_pid(store: PostgresStore) -> tuple[int, int] | None:
    found = store.leader()
    if found is None:
        return None
    epoch, holder = found
    return epoch, int(holder.rsplit(":", 1)[1])


def _terminate_forum_connections(url: str, application: str) -> int:
    with psycopg.connect(url, autocommit=True) as con:
        rows = con.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application,),
        ).fetchall()
    return len(rows)


def test_kill_9_the_leader_ten_times_then_freeze_it(tmp_path: Path, postgres_url: str) -> None:
    application = f"forum-failover-{os.getpid()}"
    url = f"{postgres_url}&application_name={application}"
    members = [f"m{i:02d}" for i in range(CLIENTS)]
    with local_forum(tmp_path, database=url, members=members, observers=["watcher"]) as f:
        data_dir = f.directory / "server"
        creds = {m: (f.members[m].bundle, f.members[m].signing_key) for m in members}
        watcher = f.members["watcher"].bundle
    cluster = Servers(data_dir, tmp_path, lease=LEASE)
    store = PostgresStore(postgres_url)
    rng = random.Random(12)
    load: Load | None = None
    failovers: list[float] = []
    try:
        for slot in range(SERVERS):
            cluster.start(slot)
        servers = ",".join(cluster.addresses)
        load = Load.start(creds, watcher, servers, tmp_path / "follower.db")
        acked = load.acked
        wait_for(lambda: len(acked.receipts) >= 40, 60)

        for _ in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.5))
            current = _leader_pid(store)
            assert current is not None
            epoch, pid = current
            slot = cluster.slot_of(pid)
            assert slot is not None, f"leader pid {pid} is not one of ours"
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            proc = cluster.procs[slot]
            assert proc is not None
            proc.wait(timeout=30)
            cluster.procs[slot] = None
            wait_for(lambda e=epoch: (_leader_pid(store) or (e, 0))[0] > e, 30)
            failovers.append(time.monotonic() - killed_at)
            size = store.size()  # the new leader sequences from here: wait for its first
            wait_for(lambda s=size: any(r.index >= s for r, _ in acked.receipts[-40:]), 30)
            cluster.start(slot)  # back on the same port: the clients' list stays valid

        # Freeze the leader past its lease: another takes over; resumed, it cannot append.
        epoch, pid = _leader_pid(store) or (0, 0)
        frozen_slot = cluster.slot_of(pid)
        before = len(acked.receipts)
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_for(lambda: (_leader_pid(store) or (epoch, 0))[0] > epoch, 30)
            wait_for(lambda: len(acked.receipts) > before + 20, 30)
        finally:
            os.kill(pid, signal.SIGCONT)
        size_at_resume = store.size()
        # the resumed leader notices that its epoch ended (and is fenced off until then)
        frozen_log = tmp_path / f"server-{frozen_slot}.log"
        wait_for(lambda: "no longer leading" in frozen_log.read_text(), 30)

        # "PostgreSQL restarts": every connection of the forum is cut under load.
        before = len(acked.receipts)
        assert _terminate_forum_connections(postgres_url, application) > 0
        wait_for(lambda: len(acked.receipts) > before + 20, 60)

        # The follower reconnected on its own through every failover and caught up.
        load.finish(store)
    finally:
        if load is not None:
            load.stop.set()
        cluster.stop_all()

    try:
        check_log(store, acked, f.trust_root)
        assert store.size() > size_at_resume
        # Fencing: every epoch's checkpoints come before the next epoch's first one, so no
        # old leader (killed or frozen) committed anything after a new one took over.
        with psycopg.connect(postgres_url) as con:
            spans = con.execute(
                "SELECT epoch, min(size), max(size) FROM checkpoints WHERE epoch IS NOT NULL "
                "GROUP BY epoch ORDER BY epoch"
            ).fetchall()
        assert len(spans) >= KILLS + 1
        for (_, _, last), (_, first, _) in itertools.pairwise(spans):
            assert last < first
    finally:
        store.close()

    # A fresh member copy from a restarted server verifies.
    cluster.procs = []
    cluster.addresses = []
    cluster.start(0)
    try:
        with (
            ForumClient(watcher, server=cluster.addresses[0]) as client,
            LocalStore(tmp_path / "watcher.db") as local,
        ):
            result = client.sync(local)
            assert result.size >= max(r.index for r, _ in acked.receipts) + 1
    finally:
        cluster.stop_all()
    print(
        f"\nfailover (kill -9 -> new leader) over {len(failovers)} kills: "
        f"p50 {statistics.median(failovers):.2f} s, max {max(failovers):.2f} s; "
        f"{len(acked.receipts)} entries acknowledged"
    )
