"""The run-at-a-time replay of small submissions (forum_client.replay_bulk) against the
entry-by-entry path: a sync with signatures checked ahead (runs) and one with every signature
inline (no runs) must accept the same entries, write the same copy, and fail at the same
entry with the same error, keeping the same verified prefix."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from forum_client import entries as e
from forum_client import replay as replay_module
from forum_client.checkpoint import Checkpoint, sign_checkpoint
from forum_client.envelope import Envelope, SigningKey
from forum_client.merkle import MerkleTree, leaf_hash
from forum_client.scopes import new_salt, sign_scope_claim
from forum_client.source import Batch, PendingCheckpoint, Redacted
from forum_client.store import LocalStore
from forum_client.store.audit import verify_store
from forum_client.sync import SyncConfig, Syncer, SyncResult, SyncSecurityError
from forum_client.taxonomy import DEFAULT_LABELS, DEFAULT_VERSION
from forum_client.verifier import OPERATOR_ID, make_genesis
from tests.unit.test_verifier import ORIGIN, Log

LABEL = "behaviour:terrorist-publication"
READER = "bob"
GROUP = "g"


class _Source:
    """A ForumSource serving fixed items in messages of ``per_message``, with real proofs."""

    def __init__(self, log: Log, items: list[Envelope | Redacted], leaves: list[bytes]) -> None:
        self.items = items
        self.tree = MerkleTree.from_leaf_hashes(leaf_hash(x) for x in leaves)
        self.log = log
        self.per_message = 7

    def checkpoint_note(self) -> bytes:
        size = self.tree.size
        cp = Checkpoint(ORIGIN, size, self.tree.root(size))
        return sign_checkpoint(cp, self.log.root.log_key_name, self.log.log_key)

    def pending_checkpoint(self) -> PendingCheckpoint | None:
        return None

    def consistency_proof(self, size1: int, size2: int) -> tuple[bytes, ...]:
        return tuple(self.tree.consistency_proof(size1, size2))

    def entries(self, start: int, end: int, follow: bool, max_batch: int) -> Iterator[Batch]:
        for at in range(start, end, self.per_message):
            stop = min(end, at + self.per_message)
            yield [(i, self.items[i]) for i in range(at, stop)], None

    def cancel(self) -> None:
        pass


class _Forum:
    """Builds a mixed log: every entry kind around runs of small submissions; ``bad`` ones
    are signed but not applied to the builder's state (the log's rules refuse them)."""

    def __init__(self, seed: int) -> None:
        self.rand = random.Random(seed)
        self.log = Log()
        log = self.log
        genesis = make_genesis(log.root, log.op, forum_name="T", created_unix_ms=0)
        self.items: list[Envelope | Redacted] = [genesis]
        self.leaves = [genesis.leaf_bytes()]
        self.values: list[tuple[str, bytes]] = []  # (value, key id) submitted forum-wide
        self.broken = False
        self.operator(e.Taxonomy(self._h(log.op), DEFAULT_VERSION, DEFAULT_LABELS))
        self.keys = {m: self.admit(m) for m in ("alice", "carol", READER)}
        self.operator(e.GroupCreated(self._h(log.op), GROUP, "Group"))
        for member in ("alice", "carol"):
            self.operator(e.GroupMember(self._h(log.op), GROUP, member, True))

    def _h(self, key: SigningKey, member: str = OPERATOR_ID, created_unix_ms: int = 0) -> e.Header:
        h = self.log.header(key, member)
        return e.Header(h.origin, h.member_id, h.key_id, h.sequence, created_unix_ms)

    def append(self, key: SigningKey, body: e.Body, *, valid: bool = True) -> Envelope:
        env = self.log.signed(key, body)
        self.add(env, valid=valid, scope=getattr(body, "scope", ""), key=key)
        return env

    def add(
        self, env: Envelope, *, valid: bool = True, scope: str = "", key: SigningKey | None = None
    ) -> None:
        index = len(self.items)
        self.broken = self.broken or not valid
        if not self.broken:  # after a refused entry, the builder's state stays before it
            self.log.state.apply(index, env)
        leaf = env.leaf_bytes()
        self.leaves.append(leaf)
        if scope and key is not None:  # the reader is not in the group: served redacted
            claim = sign_scope_claim(key, ORIGIN, scope, leaf_hash(leaf))
            self.items.append(Redacted(leaf_hash(leaf), claim))
        else:
            self.items.append(env)

    def operator(self, body: e.Body) -> None:
        self.append(self.log.op, body)

    def admit(self, member: str) -> SigningKey:
        key = SigningKey.generate()
        op = self.log.op
        self.operator(e.MemberAdmitted(self._h(op), member, member, e.Role.MEMBER))
        pop = key.prove_possession(ORIGIN, member)
        self.operator(e.KeyAdded(self._h(op), member, key.public_bytes, pop))
        return key

    def item(self) -> e.SignalItem:
        """A signal of a random type (pdq too: its values are journaled for the index),
        with or without a label and a content type."""
        kind = self.rand.choice(["md5", "md5", "sha256", "pdq"])
        value = self.value() if kind == "md5" else self.rand.randbytes(32).hex()
        labels = self.rand.choice([(LABEL,), (LABEL,), ()])
        return e.SignalItem(kind, value, labels, self.rand.choice(["image", ""]))

    def value(self) -> str:
        return self.rand.randbytes(16).hex()

    def submit(self, member: str, n: int = 1, *, created: int = 0, **kw: object) -> Envelope:
        key = self.keys[member]
        items = tuple(self.item() for _ in range(n))
        body = e.Submission(self._h(key, member, created_unix_ms=created), items, **kw)  # type: ignore[arg-type]
        env = self.append(key, body)
        if not body.scope:
            self.values += [(s.value, key.key_id) for s in items if s.type == "md5"]
        return env

    def mixed(self, rounds: int) -> None:
        """Runs of one-signal submissions between every other kind of entry."""
        op = self.log.op
        for r in range(rounds):
            for _ in range(self.rand.randrange(1, 12)):
                self.submit(self.rand.choice(["alice", "carol"]))
            step = r % 7
            if step == 0:
                self.submit("alice", 10)
                self.submit("carol", 1, tlp=e.Tlp.GREEN)
            elif step == 1:  # a retraction and an opinion on forum-wide signals
                value, _ = self.values[-1]
                alice = self.keys["alice"]
                self.append(
                    alice,
                    e.Opinion(
                        self._h(alice, "alice"), e.SignalRef("md5", value), e.OpinionKind.AGREE
                    ),
                )
                mine = [v for v, k in self.values if k == alice.key_id]
                if mine:
                    ref = (e.SignalRef("md5", mine[-1]),)
                    self.append(alice, e.Retraction(self._h(alice, "alice"), ref, "mistake"))
                    self.values = [(v, k) for v, k in self.values if v != mine[-1]]
            elif step == 2:  # a key rotation: carol's old key stops at this index
                new = SigningKey.generate()
                pop = new.prove_possession(ORIGIN, "carol")
                old = self.keys["carol"]
                body = e.KeyAdded(self._h(op), "carol", new.public_bytes, pop, old.key_id)
                self.operator(body)
                self.keys["carol"] = new
            elif step == 3:  # suspended, then reinstated
                self.operator(
                    e.MemberStatusChanged(self._h(op), "carol", e.MemberStatus.SUSPENDED, "x")
                )
                self.submit("alice")
                self.operator(
                    e.MemberStatusChanged(self._h(op), "carol", e.MemberStatus.ACTIVE, "y")
                )
            elif step == 4:  # entries scoped to a group the reader is not in: redacted
                self.submit("alice", 1, scope=GROUP, tlp=e.Tlp.RED, salt=new_salt())
                self.submit("carol", 2, scope=GROUP, tlp=e.Tlp.AMBER, salt=new_salt())
            elif step == 5:  # an impossible creation time: flagged, not refused
                self.submit("alice", created=2**62)
            else:
                self.operator(e.Incident(self._h(op), f"inc-{r}", "Incident", True))


def _dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every table of a copy, rows sorted; clock columns left out."""
    con = sqlite3.connect(path)
    tables = [
        r[0]
        for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not r[0].startswith("sqlite_")
    ]
    out: dict[str, list[tuple[object, ...]]] = {}
    for table in tables:
        cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
        keep = [c for c in cols if not c.endswith(("_ms", "_at")) and c not in ("at", "time")]
        rows = con.execute(f"SELECT {', '.join(keep)} FROM {table}").fetchall()
        out[table] = sorted(rows, key=repr)
    con.close()
    return out


def _sync(
    forum: _Forum, db: Path, threads: int, per_message: int, commit_every: int = 100_000
) -> tuple[SyncResult | SyncSecurityError, dict[str, list[tuple[object, ...]]]]:
    source = _Source(forum.log, forum.items, forum.leaves)
    source.per_message = per_message
    config = SyncConfig(
        signature_threads=threads, ask_witnesses=False, commit_every_rows=commit_every
    )
    with LocalStore(db) as store:
        syncer = Syncer(source, store, forum.log.root, config, reader=READER)
        try:
            outcome: SyncResult | SyncSecurityError = syncer.sync()
        except SyncSecurityError as exc:
            outcome = exc
    return outcome, _dump(db)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many entries each run applied (to show the runs did the work)."""
    applied: list[int] = []
    real = replay_module.apply_submission_run

    def counting(*args: object, **kwargs: object) -> list[tuple[int, int]]:
        done = real(*args, **kwargs)  # type: ignore[arg-type]
        applied.append(len(done))
        return done

    monkeypatch.setattr(replay_module, "apply_submission_run", counting)
    return applied


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("per_message", [1, 7, 64])
def test_runs_write_the_copy_the_entry_by_entry_path_writes(
    tmp_path: Path, runs: list[int], seed: int, per_message: int
) -> None:
    forum = _Forum(seed)
    forum.mixed(40)
    fast, fast_rows = _sync(forum, tmp_path / "runs.db", 2, per_message)
    slow, slow_rows = _sync(forum, tmp_path / "inline.db", 0, per_message)
    assert isinstance(fast, SyncResult) and isinstance(slow, SyncResult)
    assert fast.size == slow.size == len(forum.items)
    assert (fast.root, fast.entries, fast.signals) == (slow.root, slow.entries, slow.signals)
    assert fast.flagged_times == slow.flagged_times and fast.flagged_times
    assert fast_rows == slow_rows
    assert sum(runs) > len(forum.items) // 3  # runs did much of the work
    with LocalStore(tmp_path / "runs.db") as store:
        report = verify_store(store, forum.log.root)
    assert report.ok, report.problems


def _bad_entries(forum: _Forum) -> dict[str, Envelope]:
    """Entries the log's rules refuse, each signed (unless the signature is the flaw)."""
    alice = forum.keys["alice"]
    log = forum.log
    last = log.seq[alice.key_id]

    def body(seq: int = last + 1, **kw: object) -> e.Submission:
        fields: dict[str, object] = {"items": (e.SignalItem("md5", forum.value(), (LABEL,)),)}
        fields.update(kw)
        items = fields.pop("items")
        h = e.Header(ORIGIN, "alice", alice.key_id, seq, 0)
        return e.Submission(h, items, **fields)  # type: ignore[arg-type]

    def signed(b: e.Submission, key: SigningKey = alice) -> Envelope:
        return log.signed(key, b)

    good = signed(body())
    dup = e.SignalItem("md5", "a" * 32, (LABEL,))
    wrong_origin = e.Submission(
        e.Header("other.forum", "alice", alice.key_id, last + 1, 0),
        (e.SignalItem("md5", forum.value()),),
    )
    return {
        "replayed-sequence": signed(body(seq=last)),
        "sequence-jump": signed(body(seq=last + 2**21)),
        "unknown-label": signed(body(items=(e.SignalItem("md5", forum.value(), ("nope:x",)),))),
        "value-not-normalised": signed(body(items=(e.SignalItem("md5", "A" * 32),))),
        "same-signal-twice": signed(body(items=(dup, dup))),
        "scoped-tlp-forum-wide": signed(body(tlp=e.Tlp.AMBER)),
        "quality-on-md5": signed(body(items=(e.SignalItem("md5", forum.value(), (), "", 5),))),
        "bad-signature": Envelope(good.payload_type, good.body, good.key_id, bytes(64)),
        "not-canonical": Envelope(
            good.payload_type,
            good.body + b"\x38\x01",
            alice.key_id,
            alice.sign(good.payload_type, good.body + b"\x38\x01").signature,
        ),
        "wrong-origin": signed(wrong_origin),
        "unknown-key": signed(body(), SigningKey.generate()),
    }


BAD = [
    "replayed-sequence",
    "sequence-jump",
    "unknown-label",
    "value-not-normalised",
    "same-signal-twice",
    "scoped-tlp-forum-wide",
    "quality-on-md5",
    "bad-signature",
    "not-canonical",
    "wrong-origin",
    "unknown-key",
    "suspended-author",
    "replaced-key",
]


def _carol_after(forum: _Forum, kind: str) -> Envelope:
    """Suspend carol, or replace her key, then her next submission (refused)."""
    op, carol = forum.log.op, forum.keys["carol"]
    if kind == "suspended-author":
        forum.operator(e.MemberStatusChanged(forum._h(op), "carol", e.MemberStatus.SUSPENDED, "x"))
    else:
        new = SigningKey.generate()
        pop = new.prove_possession(ORIGIN, "carol")
        forum.operator(e.KeyAdded(forum._h(op), "carol", new.public_bytes, pop, carol.key_id))
    item = e.SignalItem("md5", forum.value(), (LABEL,))
    return forum.log.signed(carol, e.Submission(forum._h(carol, "carol"), (item,)))


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize("offset", [0, 3, 6])
def test_a_bad_entry_stops_both_paths_at_the_same_entry_with_the_same_error(
    tmp_path: Path, runs: list[int], kind: str, offset: int
) -> None:
    forum = _Forum(3)
    forum.mixed(6)
    carol = _carol_after(forum, kind) if kind in ("suspended-author", "replaced-key") else None
    while len(forum.items) % 7 != offset:  # the bad entry at this offset of its message
        forum.submit("alice")
    bad_index = len(forum.items)
    bad = _bad_entries(forum)
    forum.add(carol or bad[kind], valid=False)
    for _ in range(10):  # entries after it, which must never be applied
        forum.submit("alice")
    fast, fast_rows = _sync(forum, tmp_path / "runs.db", 2, 7, commit_every=5)
    slow, slow_rows = _sync(forum, tmp_path / "inline.db", 0, 7, commit_every=5)
    assert isinstance(fast, SyncSecurityError) and isinstance(slow, SyncSecurityError)
    assert (fast.what, fast.index) == (slow.what, slow.index) == ("entry-rejected", bad_index)
    assert str(fast) == str(slow)
    assert fast_rows == slow_rows
    assert all(idx < bad_index for (idx, _) in fast_rows["entries"])
    assert fast_rows["entries"]  # the verified prefix before it was kept
    assert sum(runs) > 0
