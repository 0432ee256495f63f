"""Server storage behind one interface; SQLite (embedded, the default) implements it.

The sequencer is the only writer.  ``append`` must be durable when it returns: the server
acknowledges an entry only after that.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredLeaf:
    index: int
    leaf_bytes: bytes  # canonical leaf encoding of the signed entry
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class Credential:
    certificate_sha256: bytes
    member_id: str
    created_unix_ms: int
    revoked_unix_ms: int | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    time_unix_ms: int
    actor: str
    action: str
    target: str
    outcome: str
    detail: str


class ServerStore(Protocol):
    def append(self, leaves: Sequence[StoredLeaf], size: int, checkpoint_note: bytes) -> None:
        """Durably append contiguous leaves and the checkpoint signed over them."""

    def size(self) -> int: ...

    def leaves(self, start: int, end: int) -> Iterator[StoredLeaf]: ...

    def latest_checkpoint(self) -> tuple[int, bytes] | None: ...

    def register_credential(
        self, certificate_sha256: bytes, member_id: str, now_ms: int, revoke_others: bool
    ) -> int:
        """Allow a certificate for a member; return how many others were revoked."""

    def credential(self, certificate_sha256: bytes) -> Credential | None: ...

    def record_audit(
        self, now_ms: int, actor: str, action: str, target: str, outcome: str, detail: str
    ) -> None: ...

    def audit(self, limit: int = 0) -> list[AuditRecord]: ...

    def close(self) -> None: ...
