"""Where an export comes from (shared by every export format)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provenance:
    """Where an export comes from: the forum and the verified state it was read at."""

    origin: str
    log_size: int
    """The verified log size of the copy (entries ``[0, log_size)``)."""
    root: str
    """Hex Merkle root of those entries, recomputed by the sync."""
    checkpoint: str
    """The signed checkpoint note the copy verified (its size may be above ``log_size``:
    the copy is then a proven prefix of it)."""
    exported_unix_ms: int


__all__ = ["Provenance"]
