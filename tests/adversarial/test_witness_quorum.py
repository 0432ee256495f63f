"""A server that fakes a witness quorum (issue #9) is refused by the member's quorum check
(``forum_client/cosignature.py:verify_quorum`` and ``QuorumVerdict.ok``).

The forum is real (port 0, mTLS); its witness policy names three witnesses whose keys the
test holds, quorum 2, at a URL where nothing listens (so the server's own cosigner gathers
nothing).  A lying :class:`ForumSource` serves the forum's log-signed checkpoint with the
cosignature lines each case chooses: exactly a quorum is accepted; one short, or one
witness's cosignature twice, is refused with ``unwitnessed-checkpoint`` evidence and nothing
kept.  ``tests/adversarial/mutants.py`` weakens the check both ways; these tests kill it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forum_client.checkpoint import parse_unverified
from forum_client.cosignature import cosign, cosigner_vkey
from forum_client.entries import SignalItem
from forum_client.envelope import SigningKey
from forum_client.source import GrpcSource
from forum_client.store import LocalStore
from forum_client.sync import UNWITNESSED, Syncer, SyncSecurityError
from forum_server.admin.witnesses import add_witness
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

    def __init__(self, base: GrpcSource, signers: list[int]) -> None:
        super().__init__(base.stub, base.timeout)
        self.signers = signers

    def checkpoint_note(self) -> bytes:
        note = super().checkpoint_note()  # log-signed; no witness could be reached
        body = parse_unverified(note)[0].body()
        now = int(time.time())
        lines = [
            cosign(body, WITNESSES[i][0], WITNESSES[i][1], timestamp=now - n)
            for n, i in enumerate(self.signers)
        ]
        return note + "".join(lines).encode()


def _sync(forum: LocalForum, store: LocalStore, signers: list[int]) -> int:
    client = forum.client("carol")
    source = _FakeQuorumSource(GrpcSource(client.stub, 30), signers)
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
