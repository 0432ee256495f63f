"""What readers of the local copy get: frozen records, never rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ..merkle import CompactRange
from ..verifier import LogState
from .schema import ACTIVE

INCIDENT_PREFIX: Final = "incident:"


@dataclass(frozen=True)
class Descriptor:
    """One member's description of a signal."""

    member_id: str
    labels: tuple[str, ...]
    content_type: str
    quality: int | None
    scope: str  # "" forum-wide, else the group it was shared with
    active: bool
    entry_index: int
    tlp: str = ""  # "TLP:RED" style; "" for entries written before scopes existed


@dataclass(frozen=True)
class Rollup:
    """Opinions on a signal, one per member (the latest), rolled up."""

    positive: int = 0
    negative: int = 0
    seen: int = 0

    @property
    def verdict(self) -> str:
        """``positive``, ``negative``, ``disputed`` (both) or ``none``."""
        if self.positive and self.negative:
            return "disputed"
        if self.positive:
            return "positive"
        return "negative" if self.negative else "none"


@dataclass(frozen=True)
class Signal:
    """A signal as the local copy knows it, with every member's descriptor."""

    type: str
    value: str
    status: str
    first_index: int
    descriptors: tuple[Descriptor, ...]
    rollup: Rollup

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label of the active descriptors, each once, sorted."""
        return tuple(sorted({x for d in self.descriptors if d.active for x in d.labels}))


@dataclass(frozen=True)
class SyncState:
    """What the last committed sync verified (``size`` 0 and no checkpoint for a new copy)."""

    size: int
    compact_range: CompactRange
    checkpoint_note: bytes | None
    proof: tuple[bytes, ...]
    log_state: LogState | None


@dataclass(frozen=True)
class Evidence:
    """A verification failure, kept until the member acknowledges it."""

    id: int
    detected_unix_ms: int
    what: str
    entry_index: int | None
    message: str
    stored_checkpoint: bytes | None
    served_checkpoint: bytes | None
    proof: tuple[bytes, ...]
    entry: bytes | None
    acknowledged_unix_ms: int | None


@dataclass(frozen=True)
class MatchResult:
    """One forum signal that matched: what it is, how close, and what members say.

    ``descriptors`` are the active ones (a member that retracted its own is left out);
    ``incidents`` are their ``incident:*`` labels.
    """

    type: str
    value: str
    distance: int
    first_index: int
    descriptors: tuple[Descriptor, ...]
    rollup: Rollup
    shares: tuple[float, float] | None = None
    """vpdq only: percent of the query's frames matched, percent of the shared video's."""

    @property
    def labels(self) -> tuple[str, ...]:
        """Every member's labels, each once, sorted."""
        return tuple(sorted({x for d in self.descriptors for x in d.labels}))

    @property
    def incidents(self) -> tuple[str, ...]:
        """Crisis-response incident tags (labels starting ``incident:``)."""
        return tuple(x for x in self.labels if x.startswith(INCIDENT_PREFIX))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``forum-client match`` prints)."""
        return {
            "type": self.type,
            "value": self.value,
            "distance": self.distance,
            "first_index": self.first_index,
            "members": [
                {
                    "member_id": d.member_id,
                    "labels": list(d.labels),
                    "content_type": d.content_type,
                    "quality": d.quality,
                    "scope": d.scope,
                    "tlp": d.tlp,
                    "entry_index": d.entry_index,
                }
                for d in self.descriptors
            ],
            "rollup": {
                "verdict": self.rollup.verdict,
                "positive": self.rollup.positive,
                "negative": self.rollup.negative,
                "seen": self.rollup.seen,
            },
            "incidents": list(self.incidents),
            **(
                {}
                if self.shares is None
                else {
                    "query_match_percent": round(self.shares[0], 2),
                    "compared_match_percent": round(self.shares[1], 2),
                }
            ),
        }


@dataclass(frozen=True)
class PdqDelta:
    """What the log changed for the PDQ index after a size it reflected: the copy's ``size``
    now, the SHA-256 of its last leaf (``tail``), every PDQ value an entry since then
    submitted, retracted or (un)listed as benign (``touched``, in log order), and which of
    them are active and not benign now (``active``)."""

    size: int
    tail: bytes
    touched: tuple[str, ...]
    active: frozenset[str]
