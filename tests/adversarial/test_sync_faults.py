"""A forum that serves tampered, rolled-back or forked history is caught, nothing of it is
applied, the evidence is kept and syncs refuse until it is acknowledged.

How the server is made malicious: the real server runs in-process (``running_server``), so
a test swaps the ``leaves`` method of ``running.handle.sequencer.store`` (what
``GetEntries`` reads) for one that alters a leaf on the way out; the server's own log stays
intact.  Rollback and fork are served by a small :class:`ForumSource` wrapper around the
real gRPC source that substitutes checkpoints (a fork's checkpoint is signed with the
forum's real log key, as a compromised server would).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from forum_client.checkpoint import Checkpoint, sign_checkpoint
from forum_client.entries import SignalItem
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import SecurityError
from forum_client.source import Batch, GrpcSource
from forum_client.store import LocalStore
from forum_client.sync import (
    FORK,
    REJECTED_ENTRY,
    ROLLBACK,
    Syncer,
    SyncSecurityError,
)
from forum_server.storage import StoredLeaf
from forum_server.testing import LocalForum, local_forum

pytestmark = pytest.mark.adversarial

PUB = "behaviour:terrorist-publication"


@pytest.fixture
def forum(tmp_path: Path) -> Iterator[LocalForum]:
    with local_forum(tmp_path, members=["alice"], observers=["carol"]) as f:
        yield f


def _submit(forum: LocalForum, n: int, start: int = 0) -> None:
    with forum.client("alice") as c:
        for i in range(start, start + n):
            c.submit([SignalItem("md5", f"{i:032x}", (PUB,))], forum.members["alice"].signing_key)


def _syncer(forum: LocalForum, store: LocalStore, source: object | None = None) -> Syncer:
    client = forum.client("carol")
    src = source or GrpcSource(client.stub, 30)
    return Syncer(src, store, client.trust_root, reader="carol")  # type: ignore[arg-type]


def test_tampered_entry_is_detected_nothing_applied_evidence_kept(
    forum: LocalForum, tmp_path: Path
) -> None:
    _submit(forum, 2)
    db = tmp_path / "c.db"
    with LocalStore(db) as store:
        _syncer(forum, store).sync()
        before = store.size
    _submit(forum, 3, start=10)
    target = before + 1  # the second new entry gets a forged signature
    server_store = forum.running.handle.sequencer.store
    real_leaves = server_store.leaves

    def tampered(start: int, end: int) -> Iterator[StoredLeaf]:
        for leaf in real_leaves(start, end):
            if leaf.index == target:
                env = Envelope.from_leaf_bytes(leaf.leaf_bytes)
                forged = Envelope(env.payload_type, env.body, env.key_id, bytes(64 - 1) + b"\x01")
                leaf = StoredLeaf(leaf.index, forged.leaf_bytes(), leaf.leaf_hash)
            yield leaf

    server_store.leaves = tampered  # type: ignore[method-assign]
    try:
        with LocalStore(db) as store:
            with pytest.raises(SyncSecurityError) as caught:
                _syncer(forum, store).sync()
            assert caught.value.what == REJECTED_ENTRY and caught.value.index == target
            assert f"at index {target}" in str(caught.value)
            assert store.size == before  # nothing of the failed range
            assert store.lookup("md5", f"{10:032x}") is None
            [evidence] = store.evidence()
            assert evidence.entry_index == target and evidence.entry is not None
            assert Envelope.from_leaf_bytes(evidence.entry).signature.endswith(b"\x01")
            assert evidence.stored_checkpoint and evidence.served_checkpoint
            with pytest.raises(SecurityError, match="unacknowledged"):
                _syncer(forum, store).sync()
    finally:
        server_store.leaves = real_leaves  # type: ignore[method-assign]

    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "forum_client.cli",
            "security-report",
            "--db",
            str(db),
            "--acknowledge",
        ],
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0 and f"at index {target}" in report.stdout
    with LocalStore(db) as store:
        result = _syncer(forum, store).sync()  # the honest server again
        assert result.size == before + 3 and store.lookup("md5", f"{12:032x}") is not None


class _LyingSource(GrpcSource):
    """The real forum, except for the checkpoint it serves."""

    def __init__(self, base: GrpcSource, note: bytes) -> None:
        super().__init__(base.stub, base.timeout)
        self.note = note

    def checkpoint_note(self) -> bytes:
        return self.note

    def consistency_proof(self, size1: int, size2: int) -> tuple[bytes, ...]:
        if size2 > forum_size(self):  # the forked history's proof: made up
            return (b"\x07" * 32,)
        return super().consistency_proof(size1, size2)

    def entries(self, start: int, end: int, follow: bool, max_batch: int) -> Iterator[Batch]:
        return super().entries(start, min(end, forum_size(self)), follow, max_batch)


def forum_size(source: GrpcSource) -> int:
    return int(GrpcSource.checkpoint_note(source).split(b"\n")[1])


def test_rollback_and_fork_are_refused(forum: LocalForum, tmp_path: Path) -> None:
    _submit(forum, 1)
    with forum.client("carol") as carol:
        old_note = GrpcSource(carol.stub, 30).checkpoint_note()
    _submit(forum, 1, start=5)
    db = tmp_path / "r.db"
    with LocalStore(db) as store:
        _syncer(forum, store).sync()
        size = store.size
        with forum.client("carol") as carol:
            base = GrpcSource(carol.stub, 30)
            with pytest.raises(SyncSecurityError) as caught:
                _syncer(forum, store, _LyingSource(base, old_note)).sync()
            assert caught.value.what == ROLLBACK
            assert store.evidence()[0].served_checkpoint == old_note
            store.acknowledge_evidence()

            # a fork: a larger checkpoint, properly signed by the log key, another history
            log_key = SigningKey.load(forum.directory / "server" / "log.key")
            root = forum.trust_root
            forged = sign_checkpoint(
                Checkpoint(root.origin, size + 1, b"\x07" * 32), root.log_key_name, log_key
            )
            with pytest.raises(SyncSecurityError) as caught:
                _syncer(forum, store, _LyingSource(base, forged)).sync()
            assert caught.value.what == FORK
            [evidence] = store.evidence()
            assert evidence.served_checkpoint == forged and evidence.proof
        assert store.size == size
