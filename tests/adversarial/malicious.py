"""A malicious forum server for the adversarial tests.

It speaks the real protocol (``forum.v1.Forum``), over real mTLS on 127.0.0.1 port 0 with the
real forum's server certificate, key and CA, so the SDK under test connects to it exactly as
it would to the honest server.  It proxies a real forum (reading upstream with one member's
credentials) and lets each test decide what it tampers with, through a :class:`Tamper`:

* :class:`Tamper` itself is honest: every call is passed through;
* :class:`EditEntries` rewrites the stream of entries (flip a byte, drop, swap, ...);
* :class:`ServeLog` serves a whole fabricated history: leaves of the test's choosing, a
  checkpoint over them signed with the forum's real log key (read from the forum
  directory, as a compromised server would hold it) and consistency proofs from that tree.

Forging well-signed entries uses the real keys from the forum directory (operator
``admin.key``, server ``log.key``, the members' keys): see :func:`signed`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from forum_client import entries as e
from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client._proto.forum.v1 import forum_pb2_grpc as pb_grpc
from forum_client.checkpoint import Checkpoint, sign_checkpoint
from forum_client.client import ForumClient
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import InvalidInputError
from forum_client.merkle import MerkleTree, leaf_hash
from forum_client.transport import open_channel
from forum_client.verifier import TrustRoot
from forum_client.wire import envelope_from_pb, envelope_to_pb
from forum_server.testing import LocalForum

PUB = "behaviour:terrorist-publication"

Upstream = pb_grpc.ForumStub


# ---- forging ----


def log_key(forum: LocalForum) -> SigningKey:
    return SigningKey.load(forum.directory / "server" / "log.key")


def operator_key(forum: LocalForum) -> SigningKey:
    return SigningKey.load(forum.directory / "operator" / "admin.key")


def real_leaves(forum: LocalForum) -> list[bytes]:
    """Every leaf the real forum holds, in order (read from its store)."""
    store = forum.running.handle.sequencer.store
    return [leaf.leaf_bytes for leaf in store.leaves(0, store.size())]


def signed(key: SigningKey, body: e.Body) -> bytes:
    """The leaf bytes of ``body`` signed (PAE) by ``key``."""
    return key.sign(e.payload_type_of(body), e.encode(body)).leaf_bytes()


def header(root: TrustRoot, member: str, key: SigningKey, sequence: int) -> e.Header:
    return e.Header(root.origin, member, key.key_id, sequence, int(time.time() * 1000))


def submission(root: TrustRoot, member: str, key: SigningKey, sequence: int, value: str) -> bytes:
    """A well-formed, well-signed submission of one md5 signal."""
    body = e.Submission(
        header(root, member, key, sequence), (e.SignalItem("md5", value, (PUB,), "image"),), ""
    )
    return signed(key, body)


def last_sequence(leaves: list[bytes], key: SigningKey) -> int:
    """The highest sequence ``key`` used in ``leaves`` (0 if none)."""
    last = 0
    for leaf in leaves:
        env = Envelope.from_leaf_bytes(leaf)
        if env.key_id == key.key_id:
            last = max(last, e.decode(env.payload_type, env.body).header.sequence)
    return last


@dataclass
class FakeLog:
    """A fabricated history: any leaves, with checkpoints the real log key signs."""

    leaves: list[bytes]
    root: TrustRoot
    key: SigningKey

    def __post_init__(self) -> None:
        self.tree = MerkleTree.from_leaf_hashes(leaf_hash(x) for x in self.leaves)

    def note(self, size: int | None = None) -> bytes:
        size = self.tree.size if size is None else size
        cp = Checkpoint(self.root.origin, size, self.tree.root(size))
        return sign_checkpoint(cp, self.root.log_key_name, self.key)

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        return self.tree.consistency_proof(size1, size2)

    def entry(self, index: int, as_leaf: bool) -> pb.LogEntry:
        if as_leaf:
            return pb.LogEntry(index=index, leaf=self.leaves[index])
        env = Envelope.from_leaf_bytes(self.leaves[index])
        return pb.LogEntry(index=index, entry=envelope_to_pb(env))


# ---- what the server serves ----


class Tamper:
    """Honest: every call goes to the real forum.  Subclasses override what they forge."""

    def checkpoint(self, up: Upstream) -> bytes:
        note: bytes = up.GetCheckpoint(pb.GetCheckpointRequest()).note
        return note

    def consistency(self, up: Upstream, request: pb.GetConsistencyProofRequest) -> Any:
        return up.GetConsistencyProof(request)

    def entries(self, up: Upstream, request: pb.GetEntriesRequest) -> Iterator[pb.EntryBatch]:
        yield from up.GetEntries(request)

    def receipt(self, up: Upstream, request: pb.SubmitRequest) -> pb.Receipt:
        """The receipt of a submission relayed to the real forum (which appends it)."""
        receipt: pb.Receipt = up.Submit(request)
        return receipt


class AnswerLost(Exception):
    """Raised by a :class:`Tamper`: the client gets UNAVAILABLE, as if the connection had
    been cut before the answer came back."""


class LoseSubmitAnswer(Tamper):
    """Relays Submit calls, except the ``nth`` (counting from 1): that one is relayed to the
    real forum when ``commit`` (which appends it) or not at all, and its answer is lost.
    ``lost`` is that request."""

    def __init__(self, nth: int, *, commit: bool) -> None:
        self.nth = nth
        self.commit = commit
        self.submits = 0
        self.lost: pb.SubmitRequest | None = None

    def receipt(self, up: Upstream, request: pb.SubmitRequest) -> pb.Receipt:
        self.submits += 1
        if self.submits != self.nth:
            return super().receipt(up, request)
        self.lost = request
        if self.commit:
            up.Submit(request)
        raise AnswerLost(f"submit {self.nth}: the connection was cut before the answer")


class HoldSubmitAnswer(Tamper):
    """Relays Submit calls; the ``nth`` is appended by the real forum, then its answer is
    held (``committed`` is set) until ``release`` is set: time to kill the client."""

    def __init__(self, nth: int) -> None:
        self.nth = nth
        self.submits = 0
        self.committed = threading.Event()
        self.release = threading.Event()

    def receipt(self, up: Upstream, request: pb.SubmitRequest) -> pb.Receipt:
        self.submits += 1
        answer = super().receipt(up, request)
        if self.submits == self.nth:
            self.committed.set()
            self.release.wait(60)
            raise AnswerLost(f"submit {self.nth}: the client is gone")
        return answer


def batched(entries: Iterable[pb.LogEntry], size: int) -> Iterator[pb.EntryBatch]:
    batch = pb.EntryBatch()
    for entry in entries:
        batch.entries.append(entry)
        if len(batch.entries) >= size:
            yield batch
            batch = pb.EntryBatch()
    if batch.entries:
        yield batch


def as_leaf(x: pb.LogEntry) -> pb.LogEntry:
    """``x`` with its ``Entry`` message served as that envelope's leaf bytes (an entry
    whose fields no leaf can hold stays a message; leaf hashes stay as they are)."""
    if not x.HasField("entry"):
        return x
    try:
        return pb.LogEntry(index=x.index, leaf=envelope_from_pb(x.entry).leaf_bytes())
    except InvalidInputError:
        return x


class EditEntries(Tamper):
    """The real entries of the requested range, as ``Entry`` messages, passed through
    ``edit``, then served as the client asked: as leaves when it set
    ``GetEntriesRequest.leaves`` (as the forum does), unless ``as_entries`` (a forum that
    predates that field)."""

    def __init__(
        self, edit: Callable[[list[pb.LogEntry]], list[pb.LogEntry]], as_entries: bool = False
    ) -> None:
        self.edit = edit
        self.as_entries = as_entries

    def entries(self, up: Upstream, request: pb.GetEntriesRequest) -> Iterator[pb.EntryBatch]:
        upstream = pb.GetEntriesRequest()
        upstream.CopyFrom(request)
        upstream.leaves = False
        edited = self.edit([x for batch in up.GetEntries(upstream) for x in batch.entries])
        if request.leaves and not self.as_entries:
            edited = [as_leaf(x) for x in edited]
        yield from batched(edited, request.max_batch or 256)


class ServeLog(Tamper):
    """A whole fabricated history (``FakeLog``), optionally stopping at ``size``."""

    def __init__(self, log: FakeLog, size: int | None = None) -> None:
        self.log = log
        self.size = log.tree.size if size is None else size

    def checkpoint(self, up: Upstream) -> bytes:
        return self.log.note(self.size)

    def consistency(self, up: Upstream, request: pb.GetConsistencyProofRequest) -> Any:
        s1, s2 = request.size1, request.size2 or self.size
        return pb.ConsistencyProof(size1=s1, size2=s2, hashes=self.log.consistency(s1, s2))

    def entries(self, up: Upstream, request: pb.GetEntriesRequest) -> Iterator[pb.EntryBatch]:
        end = request.end or self.size
        yield from batched(
            (self.log.entry(i, request.leaves) for i in range(request.start, end)),
            request.max_batch or 256,
        )


class _Servicer(pb_grpc.ForumServicer):  # type: ignore[misc]
    def __init__(self, server: MaliciousForum) -> None:
        self.server = server

    def _up(self, context: grpc.ServicerContext, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except grpc.RpcError as exc:  # relay the real forum's refusal
            context.abort(exc.code(), exc.details())
        except AnswerLost as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    def GetStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._up(context, lambda: self.server.upstream.GetStatus(request))

    def GetCheckpoint(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.server.calls.append("GetCheckpoint")
        note = self._up(context, lambda: self.server.tamper.checkpoint(self.server.upstream))
        return pb.SignedCheckpoint(note=note)

    def GetConsistencyProof(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.server.calls.append("GetConsistencyProof")
        up = self.server.upstream
        return self._up(context, lambda: self.server.tamper.consistency(up, request))

    def Submit(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.server.calls.append("Submit")
        return self._up(context, lambda: self.server.tamper.receipt(self.server.upstream, request))

    def GetInclusionProof(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._up(context, lambda: self.server.upstream.GetInclusionProof(request))

    def GetEntries(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.server.calls.append("GetEntries")
        context.add_callback(self.server.streams_ended.release)  # done, or cancelled
        try:
            for batch in self.server.tamper.entries(self.server.upstream, request):
                if not context.is_active():
                    return
                self.server.sent_entries += len(batch.entries)
                yield batch
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details())


class MaliciousForum:
    """The server: ``address`` to connect to, ``tamper`` switchable between calls."""

    def __init__(self, forum: LocalForum, tamper: Tamper, upstream_member: str) -> None:
        self.forum = forum
        self.tamper = tamper
        self.calls: list[str] = []
        self.sent_entries = 0
        # Released once per GetEntries call that has ended: served to its end, or cancelled.
        self.streams_ended = threading.Semaphore(0)
        self._channel = open_channel(forum.members[upstream_member].bundle, forum.address)
        self.upstream = pb_grpc.ForumStub(self._channel)
        tls = forum.directory / "server" / "tls"
        credentials = grpc.ssl_server_credentials(
            [((tls / "server.key").read_bytes(), (tls / "server.crt").read_bytes())],
            root_certificates=(tls / "ca.crt").read_bytes(),
            require_client_auth=True,
        )
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_send_message_length", -1),
                ("grpc.max_receive_message_length", -1),
            ],
        )
        pb_grpc.add_ForumServicer_to_server(_Servicer(self), self.server)
        port = self.server.add_secure_port("127.0.0.1:0", credentials)
        assert port, "the malicious server could not bind"
        self.address = f"127.0.0.1:{port}"
        self.server.start()

    def client(self, member: str, timeout: float = 30.0) -> ForumClient:
        """A real SDK client of ``member``, pointed at this server."""
        return ForumClient(self.forum.members[member].bundle, server=self.address, timeout=timeout)

    def close(self) -> None:
        self.server.stop(grace=0).wait()
        self._channel.close()


@contextlib.contextmanager
def malicious_forum(
    forum: LocalForum, tamper: Tamper | None = None, upstream_member: str = "carol"
) -> Iterator[MaliciousForum]:
    server = MaliciousForum(forum, tamper or Tamper(), upstream_member)
    try:
        yield server
    finally:
        server.close()


def key_file(forum: LocalForum, member: str) -> Path:
    return forum.members[member].key_path
