"""Issue 16, failures 11, 14 and 15: the sync and receipt path under a server that lies about
sizes and indexes, and two syncs racing for one local copy.

- 11: a receipt whose index is not inside its checkpoint (e.g. equal to the size) is a
  verification failure (exit 5), never a ``ValueError`` from the Merkle code (exit 1); the same
  for any malformed receipt (hypothesis).
- 14: a checkpoint signed by the log key whose size the forum cannot prove (10^12, 2^64-1) is
  evidence of misbehaviour (``unprovable-checkpoint``, exit 5, kept), not a transport failure.
- 15: a second sync into the same file says another sync holds the copy instead of failing
  with ``UNIQUE constraint failed``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forum_client import entries as e
from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client.cli import main as client_main
from forum_client.cli_errors import exit_code_for
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import StoreError, TransportError, VerificationError
from forum_client.merkle import leaf_hash
from forum_client.receipts import verify_receipt
from forum_client.source import Batch, GrpcSource, PendingCheckpoint
from forum_client.store import ConcurrentSyncError, LocalStore
from forum_client.sync import UNPROVABLE, Syncer, SyncSecurityError
from forum_client.verifier import TrustRoot, make_genesis
from forum_client.wire import Receipt
from forum_server.testing import LocalForum, local_forum

from .malicious import (
    PUB,
    FakeLog,
    ServeLog,
    Tamper,
    last_sequence,
    log_key,
    malicious_forum,
    real_leaves,
)

pytestmark = pytest.mark.adversarial


@pytest.fixture
def forum(tmp_path: Path) -> Iterator[LocalForum]:
    with local_forum(tmp_path / "f", members=["alice"], observers=["carol"]) as f:
        for i in range(3):
            submit_md5(f, f"{i:032x}")
        yield f


def submit_md5(forum: LocalForum, value: str) -> None:
    with forum.client("alice") as alice:
        alice.submit([e.SignalItem("md5", value, (PUB,))], forum.members["alice"].signing_key)


# ---- 11: receipts ----


class ReceiptAtSize(Tamper):
    """Relays the submission, then claims the entry is at index ``tree_size`` (past the tree)."""

    def receipt(self, up: object, request: pb.SubmitRequest) -> pb.Receipt:
        real = super().receipt(up, request)  # type: ignore[arg-type]
        real.index = real.proof.tree_size
        real.proof.index = real.proof.tree_size
        return real


def test_a_receipt_at_the_tree_size_is_a_verification_error(
    forum: LocalForum, tmp_path: Path
) -> None:
    alice = forum.members["alice"]
    with malicious_forum(forum, ReceiptAtSize(), upstream_member="alice") as evil:
        with evil.client("alice") as client, pytest.raises(VerificationError, match="index"):
            client.submit([e.SignalItem("md5", "ab" * 16, (PUB,))], alice.signing_key)
        argv = ["--profile", str(alice.bundle_path), "--server", evil.address, "submit"]
        argv += ["--key", str(alice.key_path), "--type", "md5", "--value", "cd" * 16]
        argv += ["--label", PUB]
        assert client_main(argv) == 5
    assert "Submit" in evil.calls


_OP, _LOG = SigningKey.generate(), SigningKey.generate()
_ROOT = TrustRoot("r.example", _OP.public_bytes, _LOG.public_bytes, "r.example")
_ENVELOPE = make_genesis(_ROOT, _OP, forum_name="R", created_unix_ms=0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.one_of(st.integers(-(2**64), 2**65), st.sampled_from([0, 1, 2**63, 2**64 - 1])),
    tree_size=st.one_of(st.integers(-(2**64), 2**65), st.sampled_from([0, 1, 2, 2**64 - 1])),
    proof=st.lists(st.binary(max_size=40), max_size=70),
    right_leaf=st.booleans(),
    note_size=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
)
def test_any_malformed_receipt_is_a_verification_error(
    index: int, tree_size: int, proof: list[bytes], right_leaf: bool, note_size: int | None
) -> None:
    """Whatever a server puts in a receipt, verifying it ends in VerificationError or
    succeeds; never ValueError, IndexError, OverflowError..."""
    from forum_client.checkpoint import Checkpoint, sign_checkpoint

    size = tree_size if note_size is None else note_size
    note = (
        sign_checkpoint(Checkpoint(_ROOT.origin, size, b"\0" * 32), _ROOT.log_key_name, _LOG)
        if 0 <= size < 2**64
        else b"garbage\n"
    )
    leaf = leaf_hash(_ENVELOPE.leaf_bytes()) if right_leaf else b"\1" * 32
    receipt = Receipt(index, leaf, tree_size, note, tuple(proof))
    with contextlib.suppress(VerificationError):
        verify_receipt(receipt, _ENVELOPE, _ROOT)


# ---- 14: a signed checkpoint the forum cannot prove ----


@pytest.mark.parametrize("size", [10**12, 2**64 - 1])
def test_a_signed_checkpoint_of_an_impossible_size_is_evidence(
    forum: LocalForum, tmp_path: Path, size: int
) -> None:
    """The server signs a checkpoint far beyond its log with its real log key; the real
    forum then refuses to prove it (INVALID_ARGUMENT).  From a synced copy (consistency
    between checkpoints) and from an empty one (the streamed prefix against it)."""
    real = FakeLog(real_leaves(forum), forum.trust_root, log_key(forum))

    class HugeCheckpoint(Tamper):
        def checkpoint(self, up: object) -> bytes:
            from forum_client.checkpoint import Checkpoint, sign_checkpoint

            cp = Checkpoint(forum.trust_root.origin, size, real.tree.root())
            return sign_checkpoint(cp, forum.trust_root.log_key_name, real.key)

    synced = LocalStore(tmp_path / "synced.db")
    with forum.client("carol") as carol:
        carol.sync(synced)
    fresh = LocalStore(tmp_path / "fresh.db")
    with malicious_forum(forum, HugeCheckpoint()) as evil:
        for store in (synced, fresh):
            before = store.size
            with evil.client("carol") as client, pytest.raises(SyncSecurityError) as caught:
                client.sync(store)
            assert caught.value.what == UNPROVABLE, str(caught.value)
            assert f"signed checkpoint {size}" in str(caught.value)
            assert store.size == before
            [evidence] = store.evidence()
            assert evidence.what == UNPROVABLE and evidence.served_checkpoint
            store.acknowledge_evidence()
        # the CLI: a security failure (exit 5), not a transport one (4)
        profile = str(forum.members["carol"].bundle_path)
        argv = ["--profile", profile, "--server", evil.address, "sync", "--db"]
        assert client_main([*argv, str(tmp_path / "cli.db")]) == 5
    with LocalStore(tmp_path / "cli.db") as cli_store:
        assert [x.what for x in cli_store.evidence()] == [UNPROVABLE]
    # not vacuous: the honest forum's checkpoint syncs the same copies
    with forum.client("carol") as carol:
        carol.sync(synced)
        carol.sync(fresh)
    assert synced.size == fresh.size == len(real.leaves)
    synced.close()
    fresh.close()


def test_an_unreachable_forum_while_proving_stays_a_transport_failure(
    forum: LocalForum, tmp_path: Path
) -> None:
    """Only a refusal to prove is evidence: a proof request that fails in transit is not."""

    class ProofUnavailable(Tamper):
        def consistency(self, up: object, request: pb.GetConsistencyProofRequest) -> object:
            raise _Unavailable(grpc.StatusCode.UNAVAILABLE, "upstream went away")

    store = LocalStore(tmp_path / "c.db")
    with forum.client("carol") as carol:
        carol.sync(store)
    submit_md5(forum, "ef" * 16)
    with (
        malicious_forum(forum, ProofUnavailable()) as evil,
        evil.client("carol") as client,
        pytest.raises(TransportError),
    ):
        client.sync(store)
    assert store.evidence() == []
    store.close()


class _Unavailable(grpc.RpcError):
    """An upstream RpcError, which the relay passes on as its status (malicious._Servicer)."""

    def __init__(self, code: object, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> object:
        return self._code

    def details(self) -> str:
        return self._details


# ---- 15: two syncs into one copy ----


def test_a_second_sync_into_the_same_copy_says_another_sync_holds_it(
    forum: LocalForum, tmp_path: Path
) -> None:
    """Two processes' syncs (two connections to one file): the second has loaded the copy's
    state, then the first syncs the whole log before the second writes anything."""
    db = tmp_path / "c.db"
    first, second = LocalStore(db), LocalStore(db)

    with forum.client("carol") as carol:
        source = GrpcSource(carol.stub, 30)
        raced = threading.Event()

        class FirstSyncRunsMeanwhile:
            def checkpoint_note(self) -> bytes:
                return source.checkpoint_note()

            def pending_checkpoint(self) -> PendingCheckpoint | None:
                return source.pending_checkpoint()

            def consistency_proof(self, size1: int, size2: int) -> tuple[bytes, ...]:
                return source.consistency_proof(size1, size2)

            def entries(self, start: int, end: int, follow: bool, n: int) -> Iterator[Batch]:
                if not raced.is_set():
                    raced.set()
                    carol.sync(first)  # the other sync wins the race
                yield from source.entries(start, end, follow, n)

            def cancel(self) -> None:
                source.cancel()

        syncer = Syncer(FirstSyncRunsMeanwhile(), second, forum.trust_root, reader="carol")
        with pytest.raises(ConcurrentSyncError, match="another sync is writing") as caught:
            syncer.sync()
        assert "UNIQUE" not in str(caught.value)
        assert exit_code_for(caught.value)[0] == 6  # a local store failure in the CLI
        assert first.size == len(real_leaves(forum)) and second.evidence() == []
        # a sync run afterwards finds nothing left to do
        assert syncer.sync().entries == 0
    first.close()
    second.close()


def test_a_copy_another_writer_keeps_locked_is_named(forum: LocalForum, tmp_path: Path) -> None:
    """A sync into a copy another writer keeps locked waits ``busy_timeout_seconds``, then
    says so (a StoreError, exit 6 in the CLI) instead of a raw SQLite error."""
    db = tmp_path / "c.db"
    with LocalStore(db) as store, forum.client("carol") as carol:
        carol.sync(store)
    submit_md5(forum, "12" * 16)
    holder = LocalStore(db)
    holder.con.execute("BEGIN IMMEDIATE")  # another writer holds the file
    try:
        with LocalStore(db, busy_timeout_seconds=0.2) as store, forum.client("carol") as carol:
            with pytest.raises(StoreError, match="another sync or forum-client process") as caught:
                carol.sync(store)
            assert exit_code_for(caught.value)[0] == 6
            assert store.evidence() == []
    finally:
        holder.con.execute("ROLLBACK")
        holder.close()


# ---- 14 (second half): entry timestamps ----

TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000


@pytest.mark.parametrize("offset", ["min", "ten-years-ahead"])
def test_the_server_refuses_entries_far_from_its_clock(forum: LocalForum, offset: str) -> None:
    alice = forum.members["alice"]
    with forum.client("alice") as client:
        h = client.header(alice.signing_key)
        created = -(2**63) if offset == "min" else h.created_unix_ms + TEN_YEARS_MS
        items = (e.SignalItem("md5", "ab" * 16, (PUB,)),)
        bad = e.Submission(dataclasses.replace(h, created_unix_ms=created), items)
        with pytest.raises(TransportError) as caught:
            client.submit_envelope(_sign(alice.signing_key, bad))
        assert caught.value.code == "INVALID_ARGUMENT"
        assert [v.field for v in caught.value.violations] == ["entry.body.header.created_unix_ms"]
        assert "server's clock" in str(caught.value)
        client.submit_envelope(_sign(alice.signing_key, e.Submission(h, items)))  # now: fine


def _sign(key: SigningKey, body: e.Body) -> Envelope:
    return key.sign(e.payload_type_of(body), e.encode(body))


def test_a_member_flags_entries_with_impossible_times(forum: LocalForum, tmp_path: Path) -> None:
    """A server that appended them anyway (here: a history it serves, signed by alice's real
    key): they verify, so the sync applies them, and it names them."""
    leaves = real_leaves(forum)
    key = forum.members["alice"].signing_key
    seq = last_sequence(leaves, key)
    now_ms = int(time.time() * 1000)
    for i, created in enumerate((-(2**63), now_ms + TEN_YEARS_MS, now_ms)):
        h = e.Header(forum.trust_root.origin, "alice", key.key_id, seq + 1 + i, created)
        body = e.Submission(h, (e.SignalItem("md5", f"{0xF0 + i:032x}", (PUB,)),))
        leaves.append(_sign(key, body).leaf_bytes())
    fake = FakeLog(leaves, forum.trust_root, log_key(forum))
    n = len(leaves)
    with malicious_forum(forum, ServeLog(fake)) as evil:
        with evil.client("carol") as client, LocalStore(tmp_path / "c.db") as store:
            result = client.sync(store)
        assert result.size == n and result.flagged_times == (n - 3, n - 2)
        profile = str(forum.members["carol"].bundle_path)
        argv = ["--profile", profile, "--server", evil.address, "sync", "--json", "--db"]
        assert client_main([*argv, str(tmp_path / "cli.db")]) == 0
