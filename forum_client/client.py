"""ForumClient: the member's connection to a forum, verifying everything it is told.

    >>> from forum_client import ForumClient                    # doctest: +SKIP
    >>> with ForumClient.connect("acme.bundle.json") as forum:  # doctest: +SKIP
    ...     print(forum.status().log_size)

Every checkpoint is verified against the log key pinned in the bundle, and every receipt by
an inclusion proof, before the SDK returns it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from . import entries as e
from ._proto.forum.v1 import forum_pb2 as pb
from ._proto.forum.v1 import forum_pb2_grpc as pb_grpc
from .checkpoint import Checkpoint
from .envelope import Envelope, SigningKey
from .errors import SecurityError
from .profile import Bundle
from .receipts import verify_checkpoint_note, verify_receipt
from .transport import call, open_channel
from .wire import Receipt, envelope_to_pb, receipt_from_pb


@dataclass(frozen=True)
class Status:
    member_id: str
    role: e.Role
    status: e.MemberStatus
    origin: str
    forum_name: str
    log_size: int
    last_sequence_by_key_id: dict[str, int]


class ForumClient:
    """A connection to one forum with one member's credentials.

    Raises TransportError when the forum cannot be reached or refuses a call, and
    SecurityError (VerificationError) when what it returns does not verify.
    """

    def __init__(self, bundle: Bundle, *, server: str | None = None, timeout: float = 60.0):
        self.bundle = bundle
        self.trust_root = bundle.trust_root
        self.timeout = timeout
        self.channel = open_channel(bundle, server)
        self.stub = pb_grpc.ForumStub(self.channel)

    @classmethod
    def connect(
        cls, profile: str | Path, *, server: str | None = None, timeout: float = 60.0
    ) -> ForumClient:
        return cls(Bundle.load(profile), server=server, timeout=timeout)

    def __enter__(self) -> ForumClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    # ---- reading ----

    def status(self) -> Status:
        """The caller's membership as the forum sees it, and the log's size."""
        r = call(self.stub.GetStatus, pb.GetStatusRequest(), self.timeout)
        if r.origin != self.trust_root.origin:
            raise SecurityError(
                f"the server says it is forum {r.origin!r}; the bundle pins "
                f"{self.trust_root.origin!r}"
            )
        return Status(
            r.member_id, e.Role(r.role), e.MemberStatus(r.status), r.origin, r.forum_name,
            r.log_size, dict(r.last_sequence_by_key_id),
        )

    def checkpoint(self) -> Checkpoint:
        """The latest checkpoint, verified with the pinned log key."""
        note = call(self.stub.GetCheckpoint, pb.GetCheckpointRequest(), self.timeout).note
        return verify_checkpoint_note(note, self.trust_root)

    # ---- writing ----

    def next_sequence(self, key: SigningKey) -> int:
        """The next sequence number for ``key`` (one above the last the log holds)."""
        last = self.status().last_sequence_by_key_id.get(key.key_id.hex(), 0)
        return last + 1

    def header(self, key: SigningKey, sequence: int | None = None) -> e.Header:
        """A body header for the next entry this member signs with ``key``."""
        seq = self.next_sequence(key) if sequence is None else sequence
        return e.Header(
            self.trust_root.origin, self.bundle.member_id, key.key_id, seq,
            int(time.time() * 1000),
        )

    def append(self, body: e.Body, key: SigningKey) -> Receipt:
        """Sign ``body`` once with ``key``, submit it, and verify the receipt."""
        envelope = key.sign(e.payload_type_of(body), e.encode(body))
        return self.submit_envelope(envelope)

    def submit_envelope(self, envelope: Envelope) -> Receipt:
        """Submit an already signed entry (resending the same bytes is idempotent)."""
        response = call(
            self.stub.Submit, pb.SubmitRequest(entry=envelope_to_pb(envelope)), self.timeout
        )
        receipt = receipt_from_pb(response)
        verify_receipt(receipt, envelope, self.trust_root)
        return receipt
