"""PostgreSQL restarted under load: two real ``forum-server`` processes over a PostgreSQL
cluster of the test's own (password authentication over TCP), eight members submitting
through the address list and a member following, while the cluster is restarted with
``pg_ctl restart -m fast`` and then ``-m immediate`` (no shutdown checkpoint: the server
recovers from its WAL, as after a crash).

Checked: members see UNAVAILABLE while the database is down and resend (nothing else fails),
submissions are acknowledged again after each restart, every acknowledged entry is in the
final log at the index of its receipt, every checkpoint agrees with the final log, the
follower caught up on its own, and a fresh member copy synced from a server verifies.

The machine's shared PostgreSQL (127.0.0.1:5432) is never restarted: other test runs use it
at the same moment.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from forum_client.client import ForumClient
from forum_client.store import LocalStore
from forum_server.storage.postgres import PostgresStore
from forum_server.testing import local_forum
from tests.adversarial.submit_load import Load, Servers, check_log, wait_for
from tests.postgres_cluster import PrivateCluster

pytestmark = [pytest.mark.adversarial, pytest.mark.slow, pytest.mark.serial]

SERVERS = 2
CLIENTS = 8
PROGRESS = 30  # acknowledgements that show the forum works again after a restart


def test_postgresql_restarted_under_load(tmp_path: Path, private_postgres: PrivateCluster) -> None:
    pg = private_postgres
    url = pg.url(password=pg.password)
    members = [f"m{i:02d}" for i in range(CLIENTS)]
    with local_forum(tmp_path, database=url, members=members, observers=["watcher"]) as f:
        data_dir = f.directory / "server"
        creds = {m: (f.members[m].bundle, f.members[m].signing_key) for m in members}
        watcher = f.members["watcher"].bundle
    servers = Servers(data_dir, tmp_path, lease="1.5")
    load: Load | None = None
    pauses: dict[str, tuple[float, float]] = {}  # mode -> (pg_ctl restart, longest pause)
    try:
        for slot in range(SERVERS):
            servers.start(slot)
        addresses = ",".join(servers.addresses)
        load = Load.start(creds, watcher, addresses, tmp_path / "follower.db")
        acked = load.acked
        wait_for(lambda: len(acked.receipts) >= PROGRESS, 60, "first acknowledgements")

        for mode in ("fast", "immediate"):
            began = time.monotonic()
            pg.restart(mode)
            restarted = time.monotonic() - began
            after = len(acked.receipts)
            wait_for(
                lambda n=after: len(acked.receipts) >= n + PROGRESS,  # type: ignore[misc]
                90,
                f"acknowledgements after pg_ctl restart -m {mode}",
            )
            assert not acked.errors, acked.errors[:3]
            times = [t for t in sorted(acked.times) if t >= began - 1.0]
            pauses[mode] = (restarted, max(b - a for a, b in itertools.pairwise(times)))

        store = PostgresStore(url)
        try:
            # The follower reconnected on its own after each restart and caught up.
            load.finish(store)
            # Members were told the store is unavailable, and their resends went through.
            assert acked.retried["UNAVAILABLE"] > 0, acked.retried
            assert set(acked.retried) <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}, acked.retried
            check_log(store, acked, f.trust_root)
        finally:
            store.close()

        # A fresh member copy synced from one of the servers verifies.
        with (
            ForumClient(watcher, server=servers.addresses[0]) as client,
            LocalStore(tmp_path / "watcher.db") as local,
        ):
            result = client.sync(local)
            assert result.size >= max(r.index for r, _ in acked.receipts) + 1
    finally:
        if load is not None:
            load.stop.set()
        servers.stop_all()
    server_logs = "".join((tmp_path / f"server-{s}.log").read_text() for s in range(SERVERS))
    assert "Traceback" not in server_logs, server_logs[-3000:]
    print(
        f"\n{len(acked.receipts)} entries acknowledged across two PostgreSQL restarts; "
        f"resends after: {dict(acked.retried)}; "
        + ", ".join(
            f"-m {mode}: restart {took:.2f} s, longest pause in acknowledgements {pause:.2f} s"
            for mode, (took, pause) in pauses.items()
        )
    )
