"""The member's view written in key order (a grown copy) holds exactly what log order writes."""

from __future__ import annotations

import random
from pathlib import Path

from forum_client import entries as e
from forum_client.envelope import SigningKey
from forum_client.store import LocalStore
from forum_client.store.view import ViewWriter
from forum_client.verifier import LogState, TrustRoot, make_genesis

LABELS = (("a:x",), ("a:y",), ("a:x", "a:y"))


def _bodies(seed: int) -> list[e.Submission]:
    """Submissions by three members that keep resubmitting the same few signals with other
    labels, so one commit holds several rows for one key (the last must win)."""
    rng = random.Random(seed)
    values = [f"{rng.getrandbits(128):032x}" for _ in range(12)]
    out = []
    for i in range(40):
        member = rng.choice(["alice", "bob", "carol"])
        items = {
            v: e.SignalItem(rng.choice(["md5", "sha256"]), v, rng.choice(LABELS))
            for v in rng.sample(values, rng.randint(1, 5))
        }
        header = e.Header("t.test", member, b"k" * 32, i + 1, 0)
        out.append(e.Submission(header, tuple(items.values())))
    return out


def _view(path: Path, bodies: list[e.Submission], key_order: bool, state: LogState) -> list[object]:
    with LocalStore(path) as store:
        con = store.con
        con.execute("BEGIN")
        writer = ViewWriter(con, key_order=key_order)
        for index, body in enumerate(bodies, 1):
            writer.apply(index, body, state)
        writer.flush()
        con.execute("COMMIT")
        return [
            list(con.execute("SELECT * FROM signals ORDER BY type, value")),
            list(con.execute("SELECT * FROM descriptors ORDER BY type, value, member_id")),
        ]


def test_key_order_writes_the_same_view(tmp_path: Path) -> None:
    op, log = SigningKey.generate(), SigningKey.generate()
    root = TrustRoot("t.test", op.public_bytes, log.public_bytes, "t.test")
    state = LogState.from_genesis(make_genesis(root, op, forum_name="T", created_unix_ms=0))
    for seed in range(5):
        bodies = _bodies(seed)
        logged = _view(tmp_path / f"log-{seed}.db", bodies, False, state)
        ordered = _view(tmp_path / f"key-{seed}.db", bodies, True, state)
        assert ordered == logged
        assert len(logged[1]) > 10
