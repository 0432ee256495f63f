"""A malicious server (``malicious.py``: the real protocol, real mTLS, proxying a real forum)
tampers with what it serves; the SDK's sync must refuse it, name what and where, apply
nothing of the bad range and keep the evidence.

``test_sync_faults.py`` (another file) covers a forged signature patched into the real
server's store, and rollback / a made-up fork proof through a ``ForumSource`` wrapper; the
cases here go over the wire through the malicious server, and forge *well-signed* entries
and whole histories with the forum's real keys.

Each test's docstring names the check it relies on (file:function); removing that check
makes the test fail (see ``docs/security.md`` for the ones verified by doing so).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forum_client import entries as e
from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client.cli import main as client_main
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import InvalidInputError, TransportError
from forum_client.gossip import ForkError, compare_checkpoints, compare_with_store
from forum_client.source import GrpcSource
from forum_client.store import LocalStore
from forum_client.sync import (
    FORK,
    OUT_OF_ORDER,
    REJECTED_ENTRY,
    ROLLBACK,
    ROOT_MISMATCH,
    SyncConfig,
    Syncer,
    SyncSecurityError,
)
from forum_client.wire import envelope_to_pb
from forum_server.testing import LocalForum, local_forum

from .malicious import (
    PUB,
    EditEntries,
    FakeLog,
    ServeLog,
    Tamper,
    as_leaf,
    batched,
    last_sequence,
    log_key,
    malicious_forum,
    real_leaves,
    submission,
)

pytestmark = pytest.mark.adversarial


def md5(i: int) -> str:
    return f"{i:032x}"


@pytest.fixture
def forum(tmp_path: Path) -> Iterator[LocalForum]:
    with local_forum(tmp_path / "f", members=["alice", "bob"], observers=["carol"]) as f:
        submit_alternately(f, 0, 4)
        yield f


def submit_alternately(forum: LocalForum, start: int, n: int) -> None:
    """n single-signal submissions, alice and bob taking turns (values md5(start..))."""
    clients = {m: forum.client(m) for m in ("alice", "bob")}
    try:
        for i in range(start, start + n):
            member = "alice" if i % 2 == 0 else "bob"
            clients[member].submit(
                [e.SignalItem("md5", md5(i), (PUB,))], forum.members[member].signing_key
            )
    finally:
        for c in clients.values():
            c.close()


def honest_store(forum: LocalForum, path: Path) -> LocalStore:
    """A copy synced from the real forum (the last verified state attacks start from)."""
    store = LocalStore(path)
    with forum.client("carol") as carol:
        carol.sync(store)
    return store


def refused(store: LocalStore, sync: object, what: str) -> SyncSecurityError:
    """Run ``sync`` (a callable) and check the common promise: refused with ``what``,
    nothing applied, evidence kept.  Returns the error for the specific checks."""
    size, counts, note = store.size, store.counts(), store.sync_state().checkpoint_note
    with pytest.raises(SyncSecurityError) as caught:
        sync()  # type: ignore[operator]
    err = caught.value
    assert err.what == what, str(err)
    assert store.size == size and store.counts() == counts
    assert store.sync_state().checkpoint_note == note
    evidence = store.evidence()
    assert [x.id for x in evidence] == [err.evidence_id]
    assert evidence[0].what == what and evidence[0].entry_index == err.index
    assert f"evidence #{err.evidence_id}" in str(err)
    return err


def sync_via(server: object, store: LocalStore, member: str = "carol") -> None:
    with server.client(member) as client:  # type: ignore[attr-defined]
        client.sync(store)


# ---- one entry altered, dropped, swapped ----


def _flip(entry: pb.LogEntry, field: str) -> None:
    if field == "payload_type":
        entry.entry.payload_type = entry.entry.payload_type.replace("submission", "submissioN")
        return
    raw = bytearray(getattr(entry.entry, field))
    raw[len(raw) // 2] ^= 0x01
    setattr(entry.entry, field, bytes(raw))


@pytest.mark.parametrize("as_entries", [False, True], ids=["leaves", "entry-messages"])
@pytest.mark.parametrize("field", ["body", "signature", "key_id", "payload_type"])
def test_one_altered_byte_in_an_entry_is_refused(
    forum: LocalForum, tmp_path: Path, field: str, as_entries: bool
) -> None:
    """One bit of one entry (body, signature, key id or payload type) is changed, in the
    leaves the sync asks for, or in ``Entry`` messages (a forum that predates leaves).

    Check: forum_client/verifier.py:LogState.check (key lookup, Envelope.verify over PAE),
    reached from forum_client/sync.py:Syncer._apply_batch, which records REJECTED_ENTRY.
    """
    store = honest_store(forum, tmp_path / "c.db")
    before = store.size
    submit_alternately(forum, 10, 3)
    target = before + 1

    def edit(entries: list[pb.LogEntry]) -> list[pb.LogEntry]:
        for x in entries:
            if x.index == target:
                _flip(x, field)
        return entries

    with malicious_forum(forum, EditEntries(edit, as_entries)) as evil:
        err = refused(store, lambda: sync_via(evil, store), REJECTED_ENTRY)
    assert err.index == target and f"at index {target}" in str(err)
    assert store.lookup("md5", md5(10)) is None  # the good entry before it: not applied either
    kept = Envelope.from_leaf_bytes(store.evidence()[0].entry or b"")
    assert kept.leaf_bytes() != real_leaves(forum)[target]


def test_a_forged_copy_sent_before_the_genuine_entry_at_the_same_index_is_refused(
    forum: LocalForum, tmp_path: Path
) -> None:
    """The stream carries index i twice in one message: a forged envelope (body altered,
    the genuine signature kept), then the genuine one.  The signatures of that message are
    checked ahead on worker threads (``SignatureChecker``), and the genuine copy verifies
    there; that answer must not stand in for the forged copy applied first.

    Check: forum_client/sigcheck.py:PendingChecks.verified_key (an answer belongs to the
    envelope object checked, and only to an index's first envelope), then
    forum_client/verifier.py:LogState.check verifies the forged copy inline: REJECTED_ENTRY.
    """
    store = honest_store(forum, tmp_path / "c.db")
    submit_alternately(forum, 10, 3)
    target = store.size + 1

    def edit(entries: list[pb.LogEntry]) -> list[pb.LogEntry]:
        out = []
        for x in entries:
            if x.index == target:
                forged = pb.LogEntry()
                forged.CopyFrom(x)
                _flip(forged, "body")
                out.append(forged)
            out.append(x)
        return out

    with malicious_forum(forum, EditEntries(edit)) as evil:
        err = refused(store, lambda: sync_via(evil, store), REJECTED_ENTRY)
    assert err.index == target and "signature" in str(err)
    assert store.lookup("md5", md5(10)) is None


def test_a_dropped_entry_is_refused(forum: LocalForum, tmp_path: Path) -> None:
    """The stream skips one entry (keeping the other indexes).

    Check: forum_client/sync.py:Syncer._apply_batch, ``index != rng.size`` (OUT_OF_ORDER).
    """
    store = honest_store(forum, tmp_path / "c.db")
    before = store.size
    submit_alternately(forum, 10, 4)
    dropped = before + 1
    tamper = EditEntries(lambda xs: [x for x in xs if x.index != dropped])
    with malicious_forum(forum, tamper) as evil:
        err = refused(store, lambda: sync_via(evil, store), OUT_OF_ORDER)
    assert err.index == dropped + 1 and f"expected entry {dropped}" in str(err)


def test_a_dropped_and_renumbered_entry_is_refused_as_tampering(
    forum: LocalForum, tmp_path: Path
) -> None:
    """The stream skips one entry and renumbers the rest so indexes stay contiguous.

    Check: forum_client/sync.py:Syncer.sync proving a short stream's prefix with a
    consistency proof (Syncer._commit) before calling it a cut connection.
    """
    store = honest_store(forum, tmp_path / "c.db")
    submit_alternately(forum, 10, 4)
    dropped = store.size + 1

    def edit(entries: list[pb.LogEntry]) -> list[pb.LogEntry]:
        kept = [x for x in entries if x.index != dropped]
        for x in kept:
            if x.index > dropped:
                x.index -= 1
        return kept

    with malicious_forum(forum, EditEntries(edit)) as evil:
        refused(store, lambda: sync_via(evil, store), ROOT_MISMATCH)


def test_a_truncated_stream_keeps_only_the_proven_prefix_and_can_resume(
    forum: LocalForum, tmp_path: Path
) -> None:
    """The stream stops before the checkpoint's size (indistinguishable from a cut): the
    entries that came are kept only because a consistency proof shows they are a prefix of
    the signed checkpoint; the sync reports the cut and the next one resumes.

    Check: forum_client/sync.py:Syncer.sync, ``stopped_at != cp.size``.
    """
    store = honest_store(forum, tmp_path / "c.db")
    before, counts = store.size, store.counts()
    submit_alternately(forum, 10, 4)
    with (
        malicious_forum(forum, EditEntries(lambda xs: xs[:-1])) as evil,
        pytest.raises(TransportError, match="ended at"),
    ):
        sync_via(evil, store)
    assert store.size == before + 3 and not store.evidence()
    assert store.counts()["signals"] == counts["signals"] + 3  # one signal per entry
    with forum.client("carol") as carol:
        assert carol.sync(store).size == before + 4


def test_two_swapped_entries_are_refused(forum: LocalForum, tmp_path: Path) -> None:
    """Two adjacent entries are served in each other's place, first with their own indexes
    (out of order), then renumbered (each still verifies: different authors).

    Checks: forum_client/sync.py:Syncer._apply_batch (index order, OUT_OF_ORDER) and
    forum_client/sync.py:Syncer._commit (recomputed root != checkpoint root, ROOT_MISMATCH).
    """
    store = honest_store(forum, tmp_path / "c.db")
    submit_alternately(forum, 10, 4)
    a = store.size + 1  # an alice and a bob entry: both verify wherever they stand

    def swap(renumber: bool):  # type: ignore[no-untyped-def]
        def edit(entries: list[pb.LogEntry]) -> list[pb.LogEntry]:
            i = next(n for n, x in enumerate(entries) if x.index == a)
            entries[i], entries[i + 1] = entries[i + 1], entries[i]
            if renumber:
                entries[i].index, entries[i + 1].index = a, a + 1
            return entries

        return edit

    with malicious_forum(forum, EditEntries(swap(renumber=False))) as evil:
        err = refused(store, lambda: sync_via(evil, store), OUT_OF_ORDER)
        assert err.index == a + 1 and f"expected entry {a}" in str(err)
        store.acknowledge_evidence()
        evil.tamper = EditEntries(swap(renumber=True))
        err = refused(store, lambda: sync_via(evil, store), ROOT_MISMATCH)
        assert "do not hash to checkpoint" in str(err)
        assert store.evidence()[0].served_checkpoint  # the checkpoint they contradict


# ---- rewritten, rolled back and forked histories ----


def forged_history(forum: LocalForum, keep: int, extra: int, tag: int) -> FakeLog:
    """The real log's first ``keep`` entries, then ``extra`` well-signed alice submissions
    that the real log does not have, under checkpoints signed with the real log key."""
    leaves = real_leaves(forum)[:keep]
    key = forum.members["alice"].signing_key
    seq = last_sequence(leaves, key)
    for i in range(extra):
        leaves.append(submission(forum.trust_root, "alice", key, seq + 1 + i, md5(tag + i)))
    return FakeLog(leaves, forum.trust_root, log_key(forum))


def test_rewritten_history_is_refused(forum: LocalForum, tmp_path: Path) -> None:
    """After a copy verified size N, the server serves another history (real prefix, then
    different well-signed entries), under checkpoints properly signed with the log key:
    larger than N (no consistency proof can link them) and of size N (another root).

    Check: forum_client/sync.py:Syncer._accept_checkpoint (consistency proof / same size,
    different root: FORK).
    """
    store = honest_store(forum, tmp_path / "c.db")
    n = store.size
    bigger = forged_history(forum, keep=n - 2, extra=5, tag=500)
    with malicious_forum(forum, ServeLog(bigger)) as evil:
        err = refused(store, lambda: sync_via(evil, store), FORK)
        assert f"does not extend the verified checkpoint {n}" in str(err)
        [ev] = store.evidence()
        assert ev.served_checkpoint == bigger.note() and ev.proof
        assert ev.stored_checkpoint == store.sync_state().checkpoint_note
        store.acknowledge_evidence()
        same_size = forged_history(forum, keep=n - 2, extra=2, tag=600)
        evil.tamper = ServeLog(same_size)
        err = refused(store, lambda: sync_via(evil, store), FORK)
        assert f"two checkpoints of size {n}" in str(err)
    assert store.lookup("md5", md5(500)) is None and store.lookup("md5", md5(600)) is None


def test_rollback_to_an_older_checkpoint_is_refused(forum: LocalForum, tmp_path: Path) -> None:
    """The server answers with an older (real, well-signed) checkpoint; then, in a second
    attempt, with the current checkpoint first and an older one inside the entry stream.

    Check: forum_client/sync.py:Syncer._accept_checkpoint, ``cp.size < old.size`` (ROLLBACK).
    """
    store = honest_store(forum, tmp_path / "c.db")
    n = store.size
    real = FakeLog(real_leaves(forum), forum.trust_root, log_key(forum))
    with malicious_forum(forum, ServeLog(real, size=n - 1)) as evil:
        err = refused(store, lambda: sync_via(evil, store), ROLLBACK)
        assert f"below the verified size {n}" in str(err)
        store.acknowledge_evidence()

        submit_alternately(forum, 10, 2)
        old_note = real.note(n - 1)

        class StaleInStream(Tamper):
            def entries(self, up, request):  # type: ignore[no-untyped-def]
                for batch in up.GetEntries(request):
                    batch.checkpoint.note = old_note
                    yield batch

        evil.tamper = StaleInStream()
        refused(store, lambda: sync_via(evil, store), ROLLBACK)


def test_a_split_view_is_caught_by_comparing_checkpoints(
    forum: LocalForum, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server shows carol the real log and alice another one, each consistent on its
    own: both syncs succeed (no single member can tell).  Comparing their checkpoints
    (SDK and ``forum-client compare-checkpoint``) proves the fork, at the same size and at
    different sizes; honest checkpoints compare as consistent.

    Checks: forum_client/gossip.py:compare_checkpoints (same size, different roots; the
    consistency proof) and compare_with_store (root recomputed from stored leaves).
    """
    carol = honest_store(forum, tmp_path / "carol.db")
    n = store_size = carol.size
    fork = forged_history(forum, keep=n - 2, extra=4, tag=700)  # size n + 2
    alice = LocalStore(tmp_path / "alice.db")
    with malicious_forum(forum, ServeLog(fork, size=n)) as evil:
        sync_via(evil, alice, member="alice")  # the same size, another root
    root = forum.trust_root
    note_c = carol.sync_state().checkpoint_note or b""
    note_a = alice.sync_state().checkpoint_note or b""
    assert alice.size == store_size and note_a != note_c

    with pytest.raises(ForkError, match=f"two checkpoints of size {n}") as caught:
        compare_checkpoints(note_c, note_a, root)
    assert {caught.value.note_a, caught.value.note_b} == {note_a, note_c}
    with pytest.raises(ForkError):
        compare_with_store(carol, note_a)

    # the CLI, as two members would run it
    (tmp_path / "alice.note").write_bytes(note_a)
    assert client_main(["show-checkpoint", "--db", str(tmp_path / "carol.db")]) == 0
    code = client_main(
        ["compare-checkpoint", str(tmp_path / "alice.note"), "--db", str(tmp_path / "carol.db")]
    )
    assert code == 5

    # a larger forked checkpoint: alice's copy recomputes carol's root from its own leaves
    with malicious_forum(forum, ServeLog(fork)) as evil:
        sync_via(evil, alice, member="alice")
    assert alice.size == n + 2
    with pytest.raises(ForkError, match=f"first {n} verified entries"):
        compare_with_store(alice, note_c)
    # ... or the two notes, with a consistency proof asked of the server that showed the
    # larger one: even the forking server cannot make one that links them
    (tmp_path / "carol.note").write_bytes(note_c)
    (tmp_path / "alice2.note").write_bytes(alice.sync_state().checkpoint_note or b"")
    # carol holds the smaller view: her copy alone cannot decide, the usage error says how
    capsys.readouterr()
    smaller = ["compare-checkpoint", str(tmp_path / "alice2.note"), "--db", str(carol.path)]
    assert client_main(smaller) == 2
    assert "give --profile BUNDLE" in capsys.readouterr().err
    profile = str(forum.members["carol"].bundle_path)
    with malicious_forum(forum, ServeLog(fork)) as evil:
        argv = [
            "--profile",
            profile,
            "--server",
            evil.address,
            "compare-checkpoint",
            str(tmp_path / "alice2.note"),
            "--other",
            str(tmp_path / "carol.note"),
        ]
        assert client_main(argv) == 5
    argv[2:4] = ["--server", forum.address]

    # not vacuous: honest checkpoints of different sizes compare as consistent
    submit_alternately(forum, 20, 2)
    with forum.client("carol") as c:
        c.sync(carol)
        later = carol.sync_state().checkpoint_note or b""
        proof = GrpcSource(c.stub, 30).consistency_proof(n, n + 2)
    assert compare_checkpoints(note_c, later, root, proof).how == "consistency proof"
    assert compare_with_store(carol, note_c).how == "recomputed from the local copy"
    (tmp_path / "later.note").write_bytes(later)
    argv[5:] = [str(tmp_path / "later.note"), "--other", str(tmp_path / "carol.note")]
    assert client_main(argv) == 0
    with pytest.raises(InvalidInputError, match="consistency proof"):
        compare_checkpoints(note_c, later, root)
    alice.close()
    carol.close()


# ---- well-signed entries that break the log's rules ----


def appended(forum: LocalForum, *leaves: bytes) -> ServeLog:
    """The real log plus ``leaves``, under a checkpoint signed with the real log key."""
    log = FakeLog(real_leaves(forum) + list(leaves), forum.trust_root, log_key(forum))
    return ServeLog(log)


def test_an_entry_under_a_key_never_registered_is_refused(
    forum: LocalForum, tmp_path: Path
) -> None:
    """An entry naming alice, signed by a key the log never registered.

    Check: forum_client/verifier.py:LogState.check, ``self.keys.get(...) is None``
    (REJECT_UNKNOWN_KEY).
    """
    store = honest_store(forum, tmp_path / "c.db")
    n = store.size
    rogue = SigningKey.generate()
    forged = submission(forum.trust_root, "alice", rogue, 99, md5(800))
    with malicious_forum(forum, appended(forum, forged)) as evil:
        err = refused(store, lambda: sync_via(evil, store), REJECTED_ENTRY)
    assert err.index == n and "unknown key" in str(err)
    assert store.evidence()[0].entry == forged


def _rotate(forum: LocalForum, tmp_path: Path) -> tuple[SigningKey, int]:
    """Register a new key for alice (replacing hers); return it and the KeyAdded index."""
    new = SigningKey.generate()
    path = tmp_path / "alice-new.key"
    new.save(path, possession=[(forum.trust_root.origin, "alice")])
    with forum.operator() as op:
        receipt = op.rotate_key("alice", f"{path}.pub")
    return new, receipt.index


def test_a_key_used_outside_its_registration_is_refused(forum: LocalForum, tmp_path: Path) -> None:
    """Key validity is positional.  (1) alice's new key signs an entry placed before the
    KeyAdded entry that registers it; (2) her replaced key signs an entry after it.

    Checks: forum_client/verifier.py:LogState.check (unknown key at that index) and
    forum_client/verifier.py:KeyRecord.active_at via LogState.check (REJECT_KEY_INACTIVE).
    """
    store = honest_store(forum, tmp_path / "c.db")
    n = store.size
    old = forum.members["alice"].signing_key
    new, added_at = _rotate(forum, tmp_path)
    assert added_at == n
    real = real_leaves(forum)
    early = submission(forum.trust_root, "alice", new, 1, md5(900))
    before_registration = FakeLog([*real[:n], early, *real[n:]], forum.trust_root, log_key(forum))
    with malicious_forum(forum, ServeLog(before_registration)) as evil:
        err = refused(store, lambda: sync_via(evil, store), REJECTED_ENTRY)
        assert err.index == n and "unknown key" in str(err)
        store.acknowledge_evidence()

        late = submission(forum.trust_root, "alice", old, last_sequence(real, old) + 1, md5(901))
        evil.tamper = appended(forum, late)
        err = refused(store, lambda: sync_via(evil, store), REJECTED_ENTRY)
        assert err.index == n + 1 and "is not valid at this index" in str(err)
    # the honest log (rotation only) still syncs
    store.acknowledge_evidence()
    with forum.client("carol") as carol:
        assert carol.sync(store).size == n + 1


def test_entries_by_a_suspended_member_are_refused(forum: LocalForum, tmp_path: Path) -> None:
    """Bob is suspended (a real operator entry); the server then serves an entry bob signed
    with his real, still registered key.

    Check: forum_client/verifier.py:LogState._check_header, member status (REJECT_SUSPENDED).
    """
    store = honest_store(forum, tmp_path / "c.db")
    with forum.operator() as op:
        op.set_status("bob", e.MemberStatus.SUSPENDED, "adversarial test")
    real = real_leaves(forum)
    bob = forum.members["bob"].signing_key
    forged = submission(forum.trust_root, "bob", bob, last_sequence(real, bob) + 1, md5(950))
    with malicious_forum(forum, appended(forum, forged)) as evil:
        err = refused(store, lambda: sync_via(evil, store), REJECTED_ENTRY)
    assert err.index == len(real) and "bob is suspended" in str(err)


# ---- endless data ----


@pytest.mark.slow
def test_an_oversize_message_is_refused_before_parsing(forum: LocalForum, tmp_path: Path) -> None:
    """One EntryBatch of more than the SDK's 64 MiB receive limit.

    Check: forum_client/transport.py:open_channel (grpc.max_receive_message_length).
    """
    store = honest_store(forum, tmp_path / "c.db")
    before, counts = store.size, store.counts()
    submit_alternately(forum, 10, 1)

    class Huge(Tamper):
        def entries(self, up, request):  # type: ignore[no-untyped-def]
            env = Envelope(
                e.PAYLOAD_TYPES[e.Submission], b"\0" * (65 * 1024 * 1024), bytes(32), bytes(64)
            )
            yield pb.EntryBatch(
                entries=[pb.LogEntry(index=request.start, entry=envelope_to_pb(env))]
            )

    with malicious_forum(forum, Huge()) as evil, pytest.raises(TransportError) as caught:
        sync_via(evil, store)
    assert caught.value.code == "RESOURCE_EXHAUSTED"
    assert store.size == before and store.counts() == counts


class Endless(Tamper):
    """The requested entries, then well-signed alice submissions past the checkpoint
    (a server colluding with a member), up to ``limit`` of them."""

    def __init__(self, forum: LocalForum, limit: int) -> None:
        self.forum, self.limit = forum, limit

    def entries(self, up, request):  # type: ignore[no-untyped-def]
        yield from up.GetEntries(request)
        real = real_leaves(self.forum)
        key = self.forum.members["alice"].signing_key
        seq = last_sequence(real, key)

        def forged() -> Iterator[pb.LogEntry]:
            for i in range(self.limit):
                leaf = submission(self.forum.trust_root, "alice", key, seq + 1 + i, md5(10**6 + i))
                env = Envelope.from_leaf_bytes(leaf)
                yield pb.LogEntry(index=len(real) + i, entry=envelope_to_pb(env))

        yield from batched(forged(), 50)


class CountingSource(GrpcSource):
    """The real source, counting the entries the client actually read off the stream."""

    read_indexes: list[int]

    def entries(self, start, end, follow, max_batch):  # type: ignore[no-untyped-def]
        self.read_indexes = []
        for items, note in super().entries(start, end, follow, max_batch):
            self.read_indexes.extend(index for index, _ in items)
            yield items, note


def test_an_endless_stream_past_the_checkpoint_is_cut_at_once(
    forum: LocalForum, tmp_path: Path
) -> None:
    """After the entries the sync asked for, the server keeps streaming valid-looking
    entries beyond the checkpoint (memory and time exhaustion).

    Check: forum_client/sync.py:Syncer._apply_batch, an index at or beyond the checkpoint's
    size outside follow mode (OUT_OF_ORDER).  What the client read is counted on the
    client: gRPC lets the server run ahead into its flow-control window, so the server's
    own count depends on scheduling and only bounds it loosely.  That the client ends the
    stream is checked on the server, while the client's channel is still open: a stream
    the client stopped reading but left open would hold the server's call (blocked on
    flow control) until the channel closes.
    """
    store = honest_store(forum, tmp_path / "c.db")
    submit_alternately(forum, 10, 2)
    size = forum.running.handle.sequencer.size
    limit = 100_000  # far beyond any flow-control window: never reached while the client reads
    with malicious_forum(forum, Endless(forum, limit=limit)) as evil, evil.client("carol") as c:
        source = CountingSource(c.stub, c.timeout)
        syncer = Syncer(source, store, c.trust_root, reader="carol")
        err = refused(store, syncer.sync, OUT_OF_ORDER)
        assert err.index == size and f"beyond checkpoint {size}" in str(err)
        beyond = [i for i in source.read_indexes if i >= size]
        # the first extra batch, and at most the one read ahead while its signatures are checked
        assert beyond[:50] == list(range(size, size + 50)) and len(beyond) <= 2 * 50
        assert evil.streams_ended.acquire(timeout=60), "the client left the stream open"
        assert evil.sent_entries < limit  # the stream was cancelled, not drained


def test_a_stream_that_never_progresses_is_abandoned(forum: LocalForum, tmp_path: Path) -> None:
    """Empty batches, forever (bounded here at 60 s).

    Check: forum_client/sync.py:GrpcSource.entries, its idle watchdog (SyncConfig.timeout_seconds).
    """
    store = honest_store(forum, tmp_path / "c.db")
    submit_alternately(forum, 10, 1)

    class Stall(Tamper):
        def entries(self, up, request):  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(0.01)
                yield pb.EntryBatch()

    with malicious_forum(forum, Stall()) as evil, evil.client("carol") as client:
        syncer = Syncer(
            GrpcSource(client.stub, 1.0),
            store,
            client.trust_root,
            SyncConfig(timeout_seconds=1.0),
            reader="carol",
        )
        started = time.monotonic()
        with pytest.raises(TransportError):
            syncer.sync()
        assert time.monotonic() - started < 30  # abandoned at ~1 s, long before the stall ends


@pytest.mark.parametrize("kind", ["too-many", "wrong-length"])
def test_an_oversize_or_malformed_proof_is_refused(
    forum: LocalForum, tmp_path: Path, kind: str
) -> None:
    """The consistency proof from the verified size to the new checkpoint has 100,000
    hashes, or hashes that are not 32 bytes.

    Check: forum_client/merkle.py:verify_consistency (proof length and hash sizes), via
    forum_client/sync.py:Syncer._accept_checkpoint (FORK).
    """
    store = honest_store(forum, tmp_path / "c.db")
    submit_alternately(forum, 10, 2)
    hashes = [bytes(32)] * 100_000 if kind == "too-many" else [b"\x01" * 33] * 2

    class BadProof(Tamper):
        def consistency(self, up, request):  # type: ignore[no-untyped-def]
            return pb.ConsistencyProof(size1=request.size1, size2=request.size2, hashes=hashes)

    with malicious_forum(forum, BadProof()) as evil:
        started = time.monotonic()
        err = refused(store, lambda: sync_via(evil, store), FORK)
        assert time.monotonic() - started < 60  # not hung (generous: a loaded CI machine)
    assert "consistency proof" in str(err)


def test_the_malicious_server_is_honest_by_default(forum: LocalForum, tmp_path: Path) -> None:
    """Not vacuous: through the same server with no tampering, the sync succeeds and
    matches a direct sync of the real forum."""
    with malicious_forum(forum) as evil:
        store = LocalStore(tmp_path / "via.db")
        sync_via(evil, store)
        assert {"GetCheckpoint", "GetEntries"} <= set(evil.calls)
    direct = honest_store(forum, tmp_path / "direct.db")
    assert store.sync_state().checkpoint_note == direct.sync_state().checkpoint_note
    assert store.counts() == direct.counts() and not store.evidence()


def test_a_forum_serving_entry_messages_syncs_the_same(forum: LocalForum, tmp_path: Path) -> None:
    """A forum that predates ``GetEntriesRequest.leaves`` ignores it and serves ``Entry``
    messages: the sync reads those (source.py:served_item) and ends with the same copy."""
    submit_alternately(forum, 10, 5)
    served: list[str | None] = []

    def untouched(entries: list[pb.LogEntry]) -> list[pb.LogEntry]:
        served.extend(x.WhichOneof("content") for x in entries)
        return entries

    with malicious_forum(forum, EditEntries(untouched, as_entries=True)) as evil:
        store = LocalStore(tmp_path / "via.db")
        sync_via(evil, store)
    assert served and set(served) == {"entry"}
    direct = honest_store(forum, tmp_path / "direct.db")
    assert store.sync_state().checkpoint_note == direct.sync_state().checkpoint_note
    assert store.counts() == direct.counts() and not store.evidence()
    assert store.lookup("md5", md5(14)) is not None


def _unreadable(leaf: bytes, how: str) -> pb.LogEntry:
    if how == "cut":
        return pb.LogEntry(leaf=leaf[:-1])
    if how == "trailing":
        return pb.LogEntry(leaf=leaf + b"\x00")
    if how == "prefix":
        return pb.LogEntry(leaf=b"forum-leaf-v9" + leaf[len(b"forum-leaf-v1") :])
    if how == "v2-one-signature":  # the multi-signature form with a single signature
        env = Envelope.from_leaf_bytes(leaf)
        head = leaf[: len(leaf) - 2 - len(env.key_id) - len(env.signature)]
        tail = leaf[len(head) :]
        return pb.LogEntry(leaf=b"forum-leaf-v2" + head[len(b"forum-leaf-v1") :] + b"\x01" + tail)
    if how == "empty":  # neither a leaf, an entry nor a leaf hash
        return pb.LogEntry()
    assert how == "oversize-key-id"  # an Entry message no leaf can hold
    env = Envelope.from_leaf_bytes(leaf)
    message = envelope_to_pb(env)
    message.key_id = b"k" * 300
    return pb.LogEntry(entry=message)


@pytest.mark.parametrize(
    "how", ["cut", "trailing", "prefix", "v2-one-signature", "empty", "oversize-key-id"]
)
def test_an_unreadable_entry_is_refused_with_what_was_served(
    forum: LocalForum, tmp_path: Path, how: str
) -> None:
    """The forum serves, at one index, bytes that are not one canonical leaf (cut short,
    trailing data, an unknown prefix, the two-signature form with one), nothing at all, or
    an ``Entry`` message no leaf can hold.

    Check: forum_client/source.py:served_item (Envelope.from_leaf_bytes, strict) makes it
    Unreadable; forum_client/sync.py:Syncer._apply_batch refuses it as REJECTED_ENTRY and
    keeps the served bytes as the evidence.
    """
    store = honest_store(forum, tmp_path / "c.db")
    before = store.size
    submit_alternately(forum, 10, 3)
    target = before + 1
    bad = _unreadable(real_leaves(forum)[target], how)
    bad.index = target

    def edit(entries: list[pb.LogEntry]) -> list[pb.LogEntry]:
        return [bad if x.index == target else as_leaf(x) for x in entries]

    with malicious_forum(forum, EditEntries(edit, as_entries=True)) as evil:
        err = refused(store, lambda: sync_via(evil, store), REJECTED_ENTRY)
    assert err.index == target and "unreadable entry" in str(err)
    assert store.lookup("md5", md5(10)) is None  # the good entry before it: not applied either
    kept = store.evidence()[0].entry or b""
    assert kept == (bad.entry.SerializeToString() if bad.HasField("entry") else bad.leaf)


def test_gossip_docstring_example_runs() -> None:
    import doctest

    import forum_client.gossip

    result = doctest.testmod(forum_client.gossip)
    assert result.attempted and not result.failed


def test_the_entries_call_reads_leaves_and_refuses_an_unreadable_one(forum: LocalForum) -> None:
    """``ForumClient.entries`` (what forum-admin replays the log with) asks for leaves and
    reads them as the stored envelopes; an entry served as no envelope raises
    InvalidInputError naming its index (forum_client/client.py:ForumClient.entries)."""
    leaves = real_leaves(forum)
    with malicious_forum(forum) as honest, honest.client("carol") as c:
        assert [env.leaf_bytes() for _, env in c.entries(0)] == leaves
    bad = _unreadable(leaves[2], "trailing")
    bad.index = 2

    def edit(entries: list[pb.LogEntry]) -> list[pb.LogEntry]:
        return [bad if x.index == 2 else as_leaf(x) for x in entries]

    with (
        malicious_forum(forum, EditEntries(edit, as_entries=True)) as evil,
        evil.client("carol") as c,
        pytest.raises(InvalidInputError, match="entry 2"),
    ):
        list(c.entries(0))
