"""Server storage behind one interface; SQLite (embedded, the default) implements it.

The sequencer is the only writer.  ``append`` must be durable when it returns: the server
acknowledges an entry only after that.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol

from forum_client.errors import StoreError
from forum_client.scopes import ScopeClaim


@dataclass(frozen=True, slots=True)
class StoredLeaf:
    index: int
    leaf_bytes: bytes  # canonical leaf encoding of the signed entry
    leaf_hash: bytes
    claim: ScopeClaim | None = None  # an entry scoped to a group: its author's scope claim


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


# Operations on the materialised view (signals, descriptors, opinions), applied in order.
# Each names its row shape; see forum_server/view.py for the semantics.
OP_SIGNAL = "signal"  # (type, value, index): the signal exists and is active
OP_DESCRIPTOR = "descriptor"  # (type, value, member, labels, content_type, quality, scope, index)
OP_RETRACT_MEMBER = "retract-member"  # (type, value, member): that descriptor inactive
OP_RETRACT_ALL = "retract-all"  # (type, value): every descriptor inactive
OP_REFRESH_STATUS = "refresh-status"  # (type, value): active iff an active descriptor remains
OP_OPINION = "opinion"  # (type, value, member, kind, note, index)
VIEW_OPS = frozenset(
    {OP_SIGNAL, OP_DESCRIPTOR, OP_RETRACT_MEMBER, OP_RETRACT_ALL, OP_REFRESH_STATUS, OP_OPINION}
)

Row = tuple[object, ...]
# The primary key of the two upserts' rows: their first 2 and 3 columns.
UPSERT_KEY_WIDTH = {OP_SIGNAL: 2, OP_DESCRIPTOR: 3}


def key_ordered(rows: Sequence[Row], width: int) -> list[Row]:
    """``rows`` in the order of their first ``width`` columns: one stable sort per column,
    the last first. Half the time of one sort keyed by a tuple (no tuple built per row):
    0.27 s against 0.52 for a pass of 400,000 descriptor rows; the keyed sort took 12% of
    the server's samples into a 5M-signal forum (docs/benchmarks.md, "Session 10")."""
    out = sorted(rows, key=itemgetter(width - 1))
    for column in range(width - 2, -1, -1):
        out.sort(key=itemgetter(column))
    return out


@dataclass
class ViewDelta:
    """The view changes of a group of entries: runs of ``(op, rows)`` in log order."""

    runs: list[tuple[str, list[Row]]] = field(default_factory=list)
    # Set on merged upserts and their key ranges (forum_server.view): each run in key
    # order with every key once, so a store writes the runs as they are, in turn.
    in_key_order: bool = False

    def add(self, op: str, rows: list[Row]) -> None:
        if not rows:
            return
        if self.runs and self.runs[-1][0] == op:
            self.runs[-1][1].extend(rows)
        else:
            self.runs.append((op, rows))

    def __len__(self) -> int:
        return sum(len(rows) for _, rows in self.runs)


@dataclass(frozen=True, slots=True)
class Descriptor:
    member_id: str
    labels: tuple[str, ...]
    content_type: str
    quality: int | None
    scope: str
    active: bool
    index: int  # log index of the submission that set it


@dataclass(frozen=True, slots=True)
class OpinionRow:
    member_id: str
    kind: int
    note: str
    index: int


class NotLeaderError(StoreError):
    """This server's leadership epoch has ended: another server sequences the log now."""


@dataclass(frozen=True, slots=True)
class ForwardedEntry:
    """A ``Submit`` a non-leader handed to the leader through a shared store."""

    ticket: int
    leaf_bytes: bytes
    bodies: str  # a key of forwarding.BODIES: the body types the receiving call accepts
    author: str  # the member the receiving server authenticated
    scope_signature: bytes = b""  # the author's scope claim, for an entry scoped to a group


class ServerStore(Protocol):
    def append(
        self,
        leaves: Sequence[StoredLeaf],
        size: int,
        checkpoint_note: bytes,
        view: ViewDelta | None = None,
        *,
        records_view_size: bool = True,
    ) -> None:
        """Durably append contiguous leaves, the checkpoint signed over them and the view
        changes they make, all in one transaction: all of it is written, or none.  With
        ``records_view_size`` False the recorded view size stays as it was: rows of these
        or earlier entries are held back, written later with :meth:`write_view` (deferred
        view rows, own store only)."""

    def plan_view(self, view: ViewDelta) -> None:
        """Prepare the writes of ``view`` ahead of the :meth:`append` that stores it (the
        sequencer calls this on its own thread while the group before is being written).
        A store with nothing to prepare does nothing; :meth:`append` must write ``view``
        whether or not it was planned."""

    def view_size(self) -> int:
        """The log size the stored view reflects (equals ``size()`` unless it needs a replay)."""

    def write_view(self, view: ViewDelta, size: int | None) -> None:
        """Apply view changes of already stored leaves (a replay) and record ``size``; with
        ``size`` None the recorded size stays (one key range of a pass of deferred rows,
        whose last range records it: own store only)."""

    def signal_exists(self, type: str, value: str, scope: str = "") -> bool:
        """Whether some member's descriptor of the signal is in ``scope`` ("" forum-wide, else
        a group), active or not."""

    def descriptor_holders(self, type: str, value: str, scope: str) -> set[str]:
        """The members whose descriptor of the signal is in ``scope``, active or not."""

    def has_active_descriptor(
        self, member_id: str, type: str, value: str, scope: str = ""
    ) -> bool: ...

    def signal_status(self, type: str, value: str) -> str | None:
        """``"active"``, ``"retracted"``, or None for a signal never submitted."""

    def descriptors(self, type: str, value: str) -> list[Descriptor]: ...

    def opinions(self, type: str, value: str) -> list[OpinionRow]: ...

    def signal_count(self) -> int: ...

    def size(self) -> int: ...

    def leaves(self, start: int, end: int) -> Iterator[StoredLeaf]:
        """Stored leaves in ``[start, end)`` (their ``claim`` is not filled in)."""

    def scope_claims(self, start: int = 0) -> Iterator[tuple[int, ScopeClaim]]:
        """``(index, claim)`` of every entry from ``start`` on scoped to a group, in order."""

    def latest_checkpoint(self) -> tuple[int, bytes] | None: ...

    def checkpoints(self, up_to: int) -> list[tuple[int, bytes]]:
        """Every stored ``(size, note)`` with size at most ``up_to``, by size (backups)."""

    def credentials(self) -> list[Credential]:
        """Every registered certificate (backups)."""

    def restore_credential(self, credential: Credential) -> None:
        """Store ``credential`` as it was (restores); an existing one is left alone."""

    def register_credential(
        self, certificate_sha256: bytes, member_id: str, now_ms: int, revoke_others: bool
    ) -> int:
        """Allow a certificate for a member; return how many others were revoked."""

    def credential(self, certificate_sha256: bytes) -> Credential | None: ...

    def record_audit(
        self, now_ms: int, actor: str, action: str, target: str, outcome: str, detail: str
    ) -> None: ...

    def audit(self, limit: int = 0) -> list[AuditRecord]: ...

    def save_witnessed(self, doc: str, cosigned_size: int) -> None:
        """Store what the (leading) cosigner serves (a JSON document: the newest cosigned
        checkpoint of size ``cosigned_size``, the pending one, the witnesses' status) for the
        other servers and for this server after a restart; a document with a smaller
        cosigned size than the stored one is ignored (a stale leader cannot take the served
        checkpoint back)."""

    def witnessed(self) -> str | None:
        """The document :meth:`save_witnessed` stored last, or None."""

    def close(self) -> None: ...


class SharedStore(ServerStore, Protocol):
    """A store several servers share (PostgreSQL): one of them leads, fenced by an epoch
    that every append checks; the others forward submissions through the store."""

    epoch: int | None

    def try_lead(self, holder: str, lease_seconds: float) -> int | None: ...

    def renew(self, epoch: int, lease_seconds: float) -> bool: ...

    def leader(self) -> tuple[int, str] | None: ...

    def forward(
        self, leaf_bytes: bytes, bodies: str, author: str, scope_signature: bytes = b""
    ) -> int: ...

    def forwarded_outcome(self, ticket: int) -> tuple[int | None, dict[str, Any] | None] | None: ...

    def take_forwarded(self, after: int, limit: int = 256) -> list[ForwardedEntry]: ...

    def finish_forwarded(
        self, ticket: int, index: int | None, error: dict[str, Any] | None
    ) -> None: ...


def is_database_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def open_store(location: str | Path) -> ServerStore:
    """The store at ``location``: a ``postgresql://`` URL, or the path of a SQLite file.

    Raises StoreError (or ConfigError when the ``postgres`` extra is missing)."""
    if isinstance(location, str) and is_database_url(location):
        from .postgres import PostgresStore

        return PostgresStore(location)
    from .sqlite import SQLiteStore

    return SQLiteStore(location)
