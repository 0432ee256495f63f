"""Where a sync reads the log: :class:`ForumSource`, and :class:`GrpcSource` over gRPC.

The gRPC source converts the Forum service's messages into :data:`Batch` items (the one
conversion layer for sync) and guards a non-follow stream with an idle watchdog, so a
stalling forum cannot hold a sync open.  Tests use fake and malicious sources with the same
protocol.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from ._proto.forum.v1 import forum_pb2 as pb
from ._proto.forum.v1 import forum_pb2_grpc as pb_grpc
from .envelope import Envelope
from .errors import InvalidInputError, TransportError, VerificationError
from .scopes import ScopeClaim
from .transport import call, error_from_rpc
from .wire import envelope_from_pb, scope_claim_from_pb


@dataclass(frozen=True, slots=True)
class Redacted:
    """An entry served as its leaf hash only, with its author's scope claim (if any)."""

    leaf_hash: bytes
    claim: ScopeClaim | None


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An entry served as bytes that are not one envelope: a leaf that is not exactly one
    canonical leaf encoding, an ``Entry`` message whose fields no leaf can hold, or nothing
    (``data`` empty).  No author signed such a thing; the sync refuses it at its index and
    keeps ``data`` as the evidence."""

    data: bytes
    reason: str


Batch = tuple[list[tuple[int, Envelope | Redacted | Unreadable]], bytes | None]
"""``([(index, entry, Redacted or Unreadable)], checkpoint note or None)``."""


@dataclass(frozen=True, slots=True)
class PendingCheckpoint:
    """What a forum with witnesses says beside its checkpoint when its log has grown beyond
    the newest one a quorum cosigned: the newer checkpoint ``note`` (log-signed, with the
    cosignatures it got) and its word on each witness (``witness_status``, unverified)."""

    note: bytes
    witness_status: dict[str, str]


class ForumSource(Protocol):
    """Where a sync reads the log: the gRPC forum, or a fake or malicious one in tests."""

    def checkpoint_note(self) -> bytes: ...

    def pending_checkpoint(self) -> PendingCheckpoint | None:
        """What the last :meth:`checkpoint_note` answer (or, while following, the last
        checkpoint the stream carried) said of a newer checkpoint that no quorum of
        witnesses cosigned (None: nothing)."""

    def consistency_proof(self, size1: int, size2: int) -> tuple[bytes, ...]: ...

    def entries(self, start: int, end: int, follow: bool, max_batch: int) -> Iterator[Batch]:
        """Entries [start, end) (end 0 with ``follow``: keep streaming).  TransportError."""

    def cancel(self) -> None:
        """End a running :meth:`entries` stream from another thread."""


class GrpcSource:
    """:class:`ForumSource` over the Forum service (the one conversion layer for sync)."""

    def __init__(self, stub: pb_grpc.ForumStub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout
        self._call: Any = None  # the running stream (a grpc.Call)
        self._pending: PendingCheckpoint | None = None

    def checkpoint_note(self) -> bytes:
        answer = call(self.stub.GetCheckpoint, pb.GetCheckpointRequest(), self.timeout)
        self._pending = _pending_from(answer)
        note: bytes = answer.note
        return note

    def pending_checkpoint(self) -> PendingCheckpoint | None:
        return self._pending

    def consistency_proof(self, size1: int, size2: int) -> tuple[bytes, ...]:
        r = call(
            self.stub.GetConsistencyProof,
            pb.GetConsistencyProofRequest(size1=size1, size2=size2),
            self.timeout,
        )
        if r.size1 != size1 or r.size2 != size2:
            raise VerificationError(
                f"asked for a consistency proof {size1} -> {size2}, got {r.size1} -> {r.size2}"
            )
        return tuple(r.hashes)

    def entries(self, start: int, end: int, follow: bool, max_batch: int) -> Iterator[Batch]:
        """Without ``follow``, a stream that brings nothing new for ``timeout`` seconds is
        abandoned (TransportError): a stalling forum cannot hold a sync open.  The time the
        caller spends between messages (e.g. committing a large step) does not count."""
        request = pb.GetEntriesRequest(
            start=start, end=end, follow=follow, max_batch=max_batch, leaves=True
        )
        stream = self.stub.GetEntries(request)
        self._call = stream
        watchdog = None if follow else _Watchdog(self.timeout, stream.cancel)
        try:
            for message in stream:
                items = [(x.index, served_item(x)) for x in message.entries]
                note = None
                if message.HasField("checkpoint"):
                    note = message.checkpoint.note
                    self._pending = _pending_from(message.checkpoint)
                if watchdog is None:
                    yield items, note or None
                    continue
                if items or note:
                    watchdog.reset()
                watchdog.pause()
                yield items, note or None
                watchdog.resume()
        except grpc.RpcError as exc:
            if watchdog is not None and watchdog.fired:
                raise TransportError(
                    f"the entry stream made no progress for {self.timeout:g}s; abandoned",
                    "DEADLINE_EXCEEDED",
                ) from None
            raise error_from_rpc(exc) from None
        finally:
            if watchdog is not None:
                watchdog.close()
            self._call = None

    def cancel(self) -> None:
        running = self._call
        if running is not None:
            running.cancel()


def served_item(x: pb.LogEntry) -> Envelope | Redacted | Unreadable:
    """What one served ``LogEntry`` holds: its leaf (what the sync asks for), an ``Entry``
    message (a server that predates ``GetEntriesRequest.leaves``), or a leaf hash (an entry
    the member may not read).  None of them: unreadable."""
    content = x.WhichOneof("content")
    if content == "leaf":
        try:
            return Envelope.from_leaf_bytes(x.leaf)
        except InvalidInputError as exc:
            return Unreadable(x.leaf, str(exc))
    if content == "entry":
        try:
            return envelope_from_pb(x.entry)
        except InvalidInputError as exc:
            return Unreadable(x.entry.SerializeToString(), str(exc))
    if content == "leaf_hash":
        claim = scope_claim_from_pb(x.scope_claim) if x.HasField("scope_claim") else None
        return Redacted(x.leaf_hash, claim)
    return Unreadable(b"", "neither a leaf, an entry nor a leaf hash")


def _pending_from(message: pb.SignedCheckpoint) -> PendingCheckpoint | None:
    if not message.pending_note:
        return None
    return PendingCheckpoint(bytes(message.pending_note), dict(message.witness_status))


class _Watchdog:
    """Calls ``expire`` when :meth:`reset` has not been called for ``seconds``."""

    def __init__(self, seconds: float, expire: Callable[[], object]) -> None:
        self.seconds = seconds
        self.fired = False
        self._expire = expire
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + seconds
        self._left = seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sync-watchdog", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self._deadline = time.monotonic() + self.seconds

    def pause(self) -> None:
        """Stop the clock (keeping what is left of it) until :meth:`resume`."""
        with self._lock:
            self._left = self._deadline - time.monotonic()
            self._deadline = math.inf

    def resume(self) -> None:
        with self._lock:
            self._deadline = time.monotonic() + self._left

    def close(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                left = self._deadline - time.monotonic()
            if left <= 0:
                self.fired = True
                self._expire()
                return
            if self._done.wait(min(left, self.seconds)):  # paused: look again later
                return
