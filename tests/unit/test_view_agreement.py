"""The server's view (``forum_server/view.py`` over ``SQLiteStore``) and the member's view
(``forum_client.store``) apply one semantics in two SQL dialects: for random logs they must
agree row for row.

Hypothesis generates logs of submissions (md5 and PDQ, several labels and qualities,
forum-wide or shared with a group), member and operator retractions, opinions of every kind
(both in either scope), benign-list additions and removals, and suspensions of a member, cut
into group commits of random sizes.  The server side runs
each group the way the sequencer does (``LogState.check``, ``GroupView.check``, ``advance``,
``GroupView.apply``, one ``store.append`` per group); entries the rules refuse are dropped,
as the server drops them.  The member side replays the accepted leaves through the sync's
:class:`~forum_client.replay.Replay` into a :class:`~forum_client.store.SyncTransaction`;
every accepted entry must verify there too (the member reads as the operator, who may read
every group).  Then the ``signals``, ``descriptors`` and ``opinions`` tables of both are
compared, normalised (labels, opinion kinds; the member's ``tlp`` column, which the server's
view does not keep, is left out).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from forum_client import entries as e
from forum_client.checkpoint import Checkpoint, sign_checkpoint
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import ForumError
from forum_client.merkle import CompactRange, leaf_hash
from forum_client.replay import Replay
from forum_client.store import LocalStore
from forum_client.taxonomy import DEFAULT_LABELS, DEFAULT_VERSION
from forum_client.verifier import OPERATOR_ID, LogState, TrustRoot, make_genesis
from forum_server.storage import StoredLeaf
from forum_server.storage.sqlite import SQLiteStore
from forum_server.view import ServerView

ORIGIN = "agree.example"
MEMBERS = ("alice", "bob")
AUTHORS = (*MEMBERS, OPERATOR_ID)
LABELS = tuple(x.id for x in DEFAULT_LABELS[:4])
POOL = (("md5", "00" * 16), ("md5", "11" * 16), ("pdq", "a5" * 32), ("pdq", "5a" * 32))
GROUP = "g1"
SCOPES = ("", GROUP)

_OP, _LOG = SigningKey.generate(), SigningKey.generate()
_KEYS = {m: SigningKey.generate() for m in MEMBERS} | {OPERATOR_ID: _OP}
_ROOT = TrustRoot(ORIGIN, _OP.public_bytes, _LOG.public_bytes, ORIGIN)


@dataclass(frozen=True)
class Action:
    kind: str  # submit, retract, opinion, benign, suspend, reinstate
    author: str
    refs: tuple[int, ...]  # indexes into POOL
    labels: tuple[str, ...] = ()
    quality: int | None = None
    scope: str = ""  # "" forum-wide, else GROUP
    opinion: e.OpinionKind = e.OpinionKind.AGREE
    remove: tuple[int, ...] = ()
    commit_after: bool = True  # end the group commit after this entry


_refs = st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=3, unique=True).map(tuple)
_commit = st.booleans()
SUBMIT = st.builds(
    Action,
    kind=st.just("submit"),
    author=st.sampled_from(AUTHORS),
    refs=_refs,
    labels=st.lists(st.sampled_from(LABELS), min_size=1, max_size=2, unique=True).map(tuple),
    quality=st.one_of(st.none(), st.integers(50, 100)),
    scope=st.sampled_from(SCOPES),
    commit_after=_commit,
)
RETRACT = st.builds(
    Action,
    kind=st.just("retract"),
    author=st.sampled_from(AUTHORS),
    refs=_refs,
    scope=st.sampled_from(SCOPES),
    commit_after=_commit,
)
OPINION = st.builds(
    Action,
    kind=st.just("opinion"),
    author=st.sampled_from(AUTHORS),
    refs=st.integers(0, len(POOL) - 1).map(lambda i: (i,)),
    opinion=st.sampled_from(list(e.OpinionKind)),
    scope=st.sampled_from(SCOPES),
    commit_after=_commit,
)
BENIGN = st.builds(
    Action,
    kind=st.just("benign"),
    author=st.just(OPERATOR_ID),
    refs=st.lists(st.integers(0, len(POOL) - 1), max_size=2, unique=True).map(tuple),
    remove=st.lists(st.integers(0, len(POOL) - 1), max_size=2, unique=True).map(tuple),
    commit_after=_commit,
)
STATUS = st.builds(
    Action,
    kind=st.sampled_from(["suspend", "reinstate", "reinstate"]),
    author=st.just(OPERATOR_ID),
    refs=st.integers(0, len(MEMBERS) - 1).map(lambda i: (i,)),
    commit_after=_commit,
)
# Weighted: entries that change rows come often, suspensions (which block a member) rarely.
ACTIONS = st.one_of(SUBMIT, SUBMIT, SUBMIT, RETRACT, RETRACT, OPINION, OPINION, BENIGN, STATUS)


def _scoped(scope: str) -> tuple[e.Tlp, bytes]:
    """TLP and salt of an entry in ``scope``: a group's entries are AMBER with a fresh salt."""
    return (e.Tlp.AMBER, os.urandom(32)) if scope else (e.Tlp.UNSPECIFIED, b"")


class Builder:
    """Signs entries with real keys, each author's sequence counting up."""

    def __init__(self) -> None:
        self.seq = {a: 0 for a in AUTHORS}

    def header(self, author: str) -> e.Header:
        self.seq[author] += 1
        return e.Header(ORIGIN, author, _KEYS[author].key_id, self.seq[author], 0)

    def sign(self, author: str, body: e.Body) -> Envelope:
        return _KEYS[author].sign(e.payload_type_of(body), e.encode(body))

    def setup(self) -> list[Envelope]:
        """Genesis, the taxonomy, alice and bob admitted with their keys, both in GROUP."""
        genesis = make_genesis(_ROOT, _OP, forum_name="Agree", created_unix_ms=0)
        self.seq[OPERATOR_ID] = 1
        out = [genesis]
        op = OPERATOR_ID
        out.append(self.sign(op, e.Taxonomy(self.header(op), DEFAULT_VERSION, DEFAULT_LABELS)))
        for member in MEMBERS:
            admitted = e.MemberAdmitted(self.header(op), member, member, e.Role.MEMBER)
            out.append(self.sign(op, admitted))
            key = _KEYS[member]
            pop = key.prove_possession(ORIGIN, member)
            added = e.KeyAdded(self.header(op), member, key.public_bytes, pop, b"")
            out.append(self.sign(op, added))
        out.append(self.sign(op, e.GroupCreated(self.header(op), GROUP, "Group one")))
        for member in MEMBERS:
            out.append(self.sign(op, e.GroupMember(self.header(op), GROUP, member, True)))
        return out

    def entry(self, a: Action) -> Envelope:
        refs = tuple(e.SignalRef(*POOL[i]) for i in a.refs)
        h = self.header(a.author)
        body: e.Body
        if a.kind == "submit":
            items = tuple(
                e.SignalItem(
                    r.type, r.value, a.labels, "image", a.quality if r.type == "pdq" else None
                )
                for r in refs
            )
            body = e.Submission(h, items, a.scope, *_scoped(a.scope))
        elif a.kind == "retract":
            body = e.Retraction(h, refs, "mistake", a.scope, *_scoped(a.scope))
        elif a.kind == "opinion":
            body = e.Opinion(h, refs[0], a.opinion, "a note", a.scope, *_scoped(a.scope))
        elif a.kind == "benign":
            body = e.BenignList(h, refs, tuple(e.SignalRef(*POOL[i]) for i in a.remove))
        else:
            status = e.MemberStatus.SUSPENDED if a.kind == "suspend" else e.MemberStatus.ACTIVE
            body = e.MemberStatusChanged(h, MEMBERS[a.refs[0]], status, a.kind)
        return self.sign(a.author, body)


def run_server(path: Path, setup: list[Envelope], actions: list[Action]) -> list[bytes]:
    """The sequencer's steps, group by group; returns the accepted leaves."""
    builder_setup, builder = setup, _BUILDER
    store = SQLiteStore(path)
    try:
        state: LogState | None = None
        leaves: list[bytes] = []
        rng = CompactRange.empty()

        def commit(group_leaves: list[bytes], delta: object) -> None:
            stored = []
            for leaf in group_leaves:
                stored.append(StoredLeaf(len(leaves), leaf, leaf_hash(leaf)))
                leaves.append(leaf)
                rng.append(leaf_hash(leaf))
            note = sign_checkpoint(Checkpoint(ORIGIN, rng.size, rng.root()), ORIGIN, _LOG)
            store.append(stored, rng.size, note, delta)  # type: ignore[arg-type]

        state = LogState.from_genesis(builder_setup[0], _ROOT)
        commit([builder_setup[0].leaf_bytes()], None)
        view = ServerView(store)
        group = view.group()
        pending: list[bytes] = []
        for env in builder_setup[1:]:
            body = state.check(state.size, env)
            group.check(state, body, state.size)
            state.advance(state.size, env, body)
            group.apply(state, body, state.size - 1)
            pending.append(env.leaf_bytes())
        commit(pending, group.delta)
        group, pending = view.group(), []
        for action in actions:
            env = builder.entry(action)
            work = state.copy()
            index = work.size
            try:
                body = work.check(index, env)
                group.check(work, body, index)
                work.advance(index, env, body)
                group.apply(work, body, index)
            except ForumError:
                pass  # refused: the group goes on without it
            else:
                state = work
                pending.append(env.leaf_bytes())
            if action.commit_after and pending:
                commit(pending, group.delta)
                group, pending = view.group(), []
        if pending:
            commit(pending, group.delta)
        return leaves
    finally:
        store.close()


def run_member(path: Path, leaves: list[bytes]) -> None:
    """The sync's replay of the accepted leaves; every one must verify."""
    with LocalStore(path) as store:
        replay = Replay(_ROOT, None, CompactRange.empty(), reader=OPERATOR_ID)
        with store.begin_sync(expected_size=0) as txn:
            for index, leaf in enumerate(leaves):
                replay.apply(index, Envelope.from_leaf_bytes(leaf), leaf, txn)
            txn.commit_replay(replay.state)


def server_rows(path: Path) -> dict[str, set[tuple[object, ...]]]:
    con = sqlite3.connect(path)
    try:
        return {
            "signals": set(con.execute("SELECT type, value, status, first_idx FROM signals")),
            "descriptors": {
                (t, v, m, tuple(x for x in labels.split(";") if x), ct, q, s, bool(a), i)
                for t, v, m, labels, ct, q, s, a, i in con.execute(
                    "SELECT type, value, member, labels, content_type, quality, scope, active, "
                    "idx FROM descriptors"
                )
            },
            "opinions": {
                (t, v, m, e.OpinionKind(k).name.lower(), n, i)
                for t, v, m, k, n, i in con.execute(
                    "SELECT type, value, member, kind, note, idx FROM opinions"
                )
            },
        }
    finally:
        con.close()


def member_rows(path: Path) -> dict[str, set[tuple[object, ...]]]:
    con = sqlite3.connect(path)
    try:
        return {
            "signals": set(con.execute("SELECT type, value, status, first_index FROM signals")),
            "descriptors": {
                (t, v, m, tuple(json.loads(labels)), ct, q, s, bool(a), i)
                for t, v, m, labels, ct, q, s, a, i in con.execute(
                    "SELECT type, value, member_id, labels, content_type, quality, scope, "
                    "active, entry_index FROM descriptors"
                )
            },
            "opinions": set(
                con.execute("SELECT type, value, member_id, kind, note, entry_index FROM opinions")
            ),
        }
    finally:
        con.close()


_BUILDER = Builder()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(actions=st.lists(ACTIONS, min_size=1, max_size=30))
@example(  # found by hypothesis: within one group commit, a member moves its descriptor to a
    # group, so the signal no longer exists forum-wide and the forum-wide opinion is refused
    actions=[
        Action("submit", "alice", (0,), LABELS[:1], commit_after=False),
        Action("submit", "alice", (0,), LABELS[:1], scope=GROUP, commit_after=False),
        Action("opinion", "alice", (0,), commit_after=False),
    ]
)
def test_server_and_member_views_agree_row_for_row(actions: list[Action]) -> None:
    global _BUILDER
    _BUILDER = Builder()
    setup = _BUILDER.setup()
    with tempfile.TemporaryDirectory() as d:
        leaves = run_server(Path(d) / "server.db", setup, actions)
        run_member(Path(d) / "member.db", leaves)
        server, member = server_rows(Path(d) / "server.db"), member_rows(Path(d) / "member.db")
    for table in ("signals", "descriptors", "opinions"):
        assert server[table] == member[table], (
            table,
            sorted(server[table] - member[table], key=repr),
            sorted(member[table] - server[table], key=repr),
        )


def test_the_comparison_sees_a_difference() -> None:
    """Not vacuous: a log with a retraction changes rows, and a row changed on one side only
    is reported."""
    global _BUILDER
    _BUILDER = Builder()
    setup = _BUILDER.setup()
    actions = [
        Action("submit", "alice", (0, 2), LABELS[:1], 80),
        Action("submit", "bob", (1,), LABELS[:1], scope=GROUP),
        Action("submit", "bob", (0,), LABELS[1:2]),
        Action("opinion", "bob", (2,), opinion=e.OpinionKind.DISAGREE),
        Action("retract", "alice", (0,)),
        Action("retract", OPERATOR_ID, (2,)),
    ]
    with tempfile.TemporaryDirectory() as d:
        leaves = run_server(Path(d) / "server.db", setup, actions)
        assert len(leaves) == len(setup) + len(actions)
        run_member(Path(d) / "member.db", leaves)
        server = server_rows(Path(d) / "server.db")
        assert server == member_rows(Path(d) / "member.db")
        assert ("md5", POOL[0][1], "active", len(setup)) in server["signals"]
        assert ("pdq", POOL[2][1], "retracted", len(setup)) in server["signals"]
        con = sqlite3.connect(Path(d) / "member.db")
        con.execute("UPDATE descriptors SET active = 1 - active WHERE member_id = 'alice'")
        con.commit()
        con.close()
        assert server["descriptors"] != member_rows(Path(d) / "member.db")["descriptors"]
