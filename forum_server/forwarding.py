"""Submissions that reach a server which does not sequence, handed to the one that does.

With a shared store (PostgreSQL) every server accepts ``Submit``; a non-leader writes the
entry, the body types its call allows and the authenticated author to the store's
``forwarded`` table, the leader sequences it exactly as if it had been sent there and writes
back the log index or the error, and the non-leader answers with a receipt from its own,
verified copy of the tree.  Forwarding is idempotent: an entry already in the log gets its
original index, so a leader that dies between sequencing and answering loses nothing.

Errors cross the store as small JSON objects, rebuilt into the same exceptions here so
that the member sees the same status code whichever server it reached.
"""

from __future__ import annotations

from typing import Any

from forum_client import entries as e
from forum_client.errors import (
    EntryRejectedError,
    ForumError,
    InvalidInputError,
    StoreError,
    Violation,
)

from .ratelimit import RateLimitedError

BODIES = {"member": e.MEMBER_BODIES, "operator": e.OPERATOR_BODIES, "board": e.BOARD_BODIES}


def bodies_name(allowed: frozenset[type]) -> str:
    for name, bodies in BODIES.items():
        if bodies == allowed:
            return name
    raise ValueError(f"no name for the body set {sorted(t.__name__ for t in allowed)}")


def error_to_json(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, EntryRejectedError):
        return {"kind": "rejected", "reason": exc.reason, "field": exc.field, "message": str(exc)}
    if isinstance(exc, InvalidInputError):
        return {
            "kind": "invalid",
            "message": str(exc),
            "violations": [[v.field, v.reason] for v in exc.violations],
        }
    if isinstance(exc, RateLimitedError):
        return {"kind": "rate", "message": str(exc), "retry_after": exc.retry_after}
    return {"kind": "store", "message": str(exc)}


def error_from_json(doc: dict[str, Any]) -> ForumError:
    kind = doc.get("kind")
    message = str(doc.get("message", ""))
    if kind == "rejected":
        return EntryRejectedError(str(doc["reason"]), str(doc["field"]), message)
    if kind == "invalid":
        violations = [Violation(str(f), str(r)) for f, r in doc.get("violations", [])]
        return InvalidInputError(message, violations)
    if kind == "rate":
        return RateLimitedError(message, float(doc["retry_after"]))
    return StoreError(f"the leader could not sequence the entry: {message}")
