"""The member's view written in key order, or staged in SQLite and merged sorted (a grown
copy), holds exactly what log order writes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from forum_client import entries as e
from forum_client.envelope import SigningKey
from forum_client.store import LocalStore
from forum_client.store.view import ViewWriter
from forum_client.verifier import LogState, MemberRecord, TrustRoot, make_genesis

LABELS = (("a:x",), ("a:y",), ("a:x", "a:y"))
MEMBERS = ("alice", "bob", "carol")


def _bodies(seed: int, distinct: int, retract: float) -> list[e.Submission | e.Retraction]:
    """Submissions by three members drawing from ``distinct`` signals (few: clustered, the
    same keys again and again with other labels, so one step holds several rows for one key
    and the last must win; many: random), with a share ``retract`` of retractions between
    them (each one reads the view mid-step)."""
    rng = random.Random(seed)
    values = [f"{rng.getrandbits(128):032x}" for _ in range(distinct)]
    out: list[e.Submission | e.Retraction] = []
    submitted: dict[str, list[e.SignalRef]] = {m: [] for m in MEMBERS}
    for i in range(60):
        member = rng.choice(MEMBERS)
        header = e.Header("t.test", member, b"k" * 32, i + 1, 0)
        if submitted[member] and rng.random() < retract:  # some of the member's own
            refs = rng.sample(submitted[member], min(3, len(submitted[member])))
            out.append(e.Retraction(header, tuple(dict.fromkeys(refs)), "wrong"))
            continue
        items = {
            v: e.SignalItem(rng.choice(["md5", "sha256"]), v, rng.choice(LABELS))
            for v in rng.sample(values, rng.randint(1, 9))
        }
        submitted[member] += [e.SignalRef(s.type, s.value) for s in items.values()]
        out.append(e.Submission(header, tuple(items.values())))
    return out


def _view(
    path: Path,
    bodies: list[e.Submission | e.Retraction],
    state: LogState,
    key_order: bool,
    spill_rows: int,
) -> list[object]:
    with LocalStore(path) as store:
        con = store.con
        con.execute("BEGIN")
        writer = ViewWriter(con, key_order=key_order, spill_rows=spill_rows)
        for index, body in enumerate(bodies, 1):
            writer.add_entry(index, b"leaf %d" % index)
            writer.apply(index, body, state)
        writer.flush()
        con.execute("COMMIT")
        return [
            list(con.execute("SELECT * FROM signals ORDER BY type, value")),
            list(con.execute("SELECT * FROM descriptors ORDER BY type, value, member_id")),
            list(con.execute("SELECT * FROM retractions ORDER BY entry_index, position")),
            list(con.execute("SELECT * FROM entries ORDER BY idx")),
        ]


@pytest.mark.parametrize("distinct", [12, 400], ids=["clustered", "random"])
@pytest.mark.parametrize("retract", [0.0, 0.2], ids=["submissions", "with-retractions"])
def test_key_order_and_staging_write_the_same_view(
    tmp_path: Path, distinct: int, retract: float
) -> None:
    op, log = SigningKey.generate(), SigningKey.generate()
    root = TrustRoot("t.test", op.public_bytes, log.public_bytes, "t.test")
    state = LogState.from_genesis(make_genesis(root, op, forum_name="T", created_unix_ms=0))
    for m in MEMBERS:
        state.members[m] = MemberRecord(m, m, e.Role.MEMBER, e.MemberStatus.ACTIVE, 0)
    for seed in range(4):
        bodies = _bodies(seed, distinct, retract)
        logged = _view(tmp_path / f"log-{seed}.db", bodies, state, False, 0)
        assert len(logged[1]) > 10
        if retract:
            assert logged[2] and any(d[7] == 0 for d in logged[1])  # some withdrawn
        for key_order, spill_rows in [(True, 0), (True, 1), (True, 7), (False, 5)]:
            name = f"{seed}-{key_order}-{spill_rows}.db"
            assert _view(tmp_path / name, bodies, state, key_order, spill_rows) == logged
