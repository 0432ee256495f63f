"""A server that fakes a witness quorum (issue #9) is refused by the member's quorum check
(``forum_client/cosignature.py:verify_quorum`` and ``QuorumVerdict.ok``).

The forum is real (port 0, mTLS); its witness policy names three witnesses whose keys the
test holds, quorum 2, at a URL where nothing listens (so the server's own cosigner gathers
nothing).  A lying :class:`ForumSource` serves the forum's log-signed checkpoint with the
cosignature lines each case chooses: exactly a quorum is accepted; one short, or one
witness's cosignature twice, is refused with ``unwitnessed-checkpoint`` evidence and nothing
kept.  ``tests/adversarial/mutants.py`` weakens the check both ways; these tests kill it.

The pending checkpoint a forum serves when its log grew beyond what a quorum cosigned is
checked too (``forum_client/sync.py:Syncer._refuse_unwitnessed_growth``): one of the cosigned
size with another root, or one that does not extend the cosigned one, is a fork, kept as
evidence; the log-signed one of the honest forum fails the sync closed (exit 7 at the CLI).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forum_client.checkpoint import Checkpoint, parse_unverified, sign_checkpoint
from forum_client.cosignature import cosign, cosigner_vkey
from forum_client.entries import SignalItem
from forum_client.envelope import SigningKey
from forum_client.errors import QuorumUnavailableError
from forum_client.source import GrpcSource, PendingCheckpoint
from forum_client.store import LocalStore
from forum_client.sync import FORK, UNPROVABLE, UNWITNESSED, Syncer, SyncSecurityError
from forum_server.admin.witnesses import add_witness
from forum_server.app import ServerPaths
from forum_server.config import ServerConfig
from forum_server.testing import LocalForum, local_forum

pytestmark = pytest.mark.adversarial
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens
WITNESSES = [(f"witness.test/w{i}", SigningKey.generate()) for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def forum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalForum]:
    config = ServerConfig(witness_timeout_seconds=0.5, witness_backoff_max_seconds=1.0)
    path = tmp_path_factory.mktemp("witnessed")
    with local_forum(path, members=["alice"], config=config) as f:
        with f.operator() as op:
            for i, (name, key) in enumerate(WITNESSES):
                add_witness(
                    op, cosigner_vkey(name, key.public_bytes), url=NOWHERE, quorum=min(i + 1, 2)
                )
        with f.client("alice") as alice:
            alice.submit(
                [SignalItem("md5", "a" * 32, ("behaviour:terrorist-publication",))],
                f.members["alice"].signing_key,
            )
        yield f


class _FakeQuorumSource(GrpcSource):
    """The real forum, except that its checkpoint carries the cosignatures ``signers``
    chose (by index into WITNESSES, repeats allowed), each at its own timestamp."""

    def __init__(self, base: GrpcSource, signers: list[int], pending: bytes | None = None) -> None:
        super().__init__(base.stub, base.timeout)
        self.signers = signers
        self.pending = pending

    def pending_checkpoint(self) -> PendingCheckpoint | None:
        return None if self.pending is None else PendingCheckpoint(self.pending, {"w": "down"})

    def checkpoint_note(self) -> bytes:
        note = super().checkpoint_note()  # log-signed; no witness could be reached
        body = parse_unverified(note)[0].body()
        now = int(time.time())
        lines = [
            cosign(body, WITNESSES[i][0], WITNESSES[i][1], timestamp=now - n)
            for n, i in enumerate(self.signers)
        ]
        return note + "".join(lines).encode()


def _sync(
    forum: LocalForum, store: LocalStore, signers: list[int], pending: bytes | None = None
) -> int:
    client = forum.client("carol")
    source = _FakeQuorumSource(GrpcSource(client.stub, 30), signers, pending)
    return Syncer(source, store, client.trust_root, reader="carol").sync().size


def test_exactly_a_quorum_of_cosignatures_is_accepted(forum: LocalForum, tmp_path: Path) -> None:
    with LocalStore(tmp_path / "c.db") as store:
        assert _sync(forum, store, [0, 2]) == forum.running.handle.sequencer.size
        assert store.lookup("md5", "a" * 32) is not None


@pytest.mark.parametrize(
    "signers", [[1], [1, 1], [0, 0, 0]], ids=["one-short", "one-twice", "one-thrice"]
)
def test_one_short_of_the_quorum_or_one_witness_repeated_is_refused(
    forum: LocalForum, tmp_path: Path, signers: list[int]
) -> None:
    with LocalStore(tmp_path / "c.db") as store:
        with pytest.raises(SyncSecurityError) as caught:
            _sync(forum, store, signers)
        assert caught.value.what == UNWITNESSED
        assert "1 of the required 2" in str(caught.value)
        assert store.size == 0 and store.evidence()[0].what == UNWITNESSED


def _cosign(note: bytes, signers: list[int], now: int) -> bytes:
    body = parse_unverified(note)[0].body()
    return "".join(cosign(body, *WITNESSES[i], timestamp=now) for i in signers).encode()


def _log_signed(forum: LocalForum, size: int, root: bytes) -> bytes:
    log_key = SigningKey.load(ServerPaths(forum.running.data_dir).log_key)
    state = forum.running.handle.sequencer.state
    return sign_checkpoint(Checkpoint(state.origin, size, root), state.log_key_name, log_key)


@pytest.mark.parametrize(
    ("grow", "root", "what"),
    [(0, b"\x01" * 32, FORK), (5, b"\x02" * 32, UNPROVABLE), (-1, None, None)],
    ids=["same-size-other-root", "beyond-the-log", "older"],
)
def test_a_forged_pending_checkpoint_is_evidence_an_older_one_is_ignored(
    forum: LocalForum, tmp_path: Path, grow: int, root: bytes | None, what: str | None
) -> None:
    size = forum.running.handle.sequencer.size
    tree = forum.running.handle.sequencer.tree
    pending = _log_signed(forum, size + grow, root or tree.root(size + grow))
    with LocalStore(tmp_path / "c.db") as store:
        if what is None:
            assert _sync(forum, store, [0, 1], pending) == size
            return
        with pytest.raises(SyncSecurityError) as caught:
            _sync(forum, store, [0, 1], pending)
        assert caught.value.what == what
        assert store.evidence()[0].served_checkpoint == pending
        assert store.size == size  # the cosigned checkpoint was verified and kept


def test_a_genuine_pending_checkpoint_without_a_quorum_fails_closed(
    forum: LocalForum, tmp_path: Path
) -> None:
    """The forum's own larger checkpoint (a member submits after the cosigned one), with one
    cosignature: refused, naming who did not cosign; nothing beyond the cosigned size kept."""
    sequencer = forum.running.handle.sequencer
    size = sequencer.size
    with forum.client("alice") as alice:
        alice.submit(
            [SignalItem("md5", "b" * 32, ("behaviour:terrorist-publication",))],
            forum.members["alice"].signing_key,
        )
    now = int(time.time())
    newer = sequencer.checkpoint_note
    pending = newer + _cosign(newer, [2], now)
    older = _log_signed(forum, size, sequencer.tree.root(size))
    cosigned = older + _cosign(older, [0, 1], now)

    class _Behind(_FakeQuorumSource):
        def checkpoint_note(self) -> bytes:  # the cosigned checkpoint is the older one
            return cosigned

    client = forum.client("carol")
    source = _Behind(GrpcSource(client.stub, 30), [], pending)
    with LocalStore(tmp_path / "c.db") as store:
        with pytest.raises(QuorumUnavailableError) as caught:
            Syncer(source, store, client.trust_root, reader="carol").sync()
        assert (caught.value.log_size, caught.value.cosigned_size) == (size + 1, size)
        assert caught.value.agreed == ("witness.test/w3",)
        assert set(caught.value.missing) == {"witness.test/w1", "witness.test/w2"}
        assert caught.value.forum_says == {"w": "down"}
        assert store.size == size and store.evidence() == []
