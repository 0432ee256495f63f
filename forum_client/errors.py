"""One error hierarchy for the SDK (and the server, which builds on it).

Every public function documents which of these it raises.  Callers that only care whether
something went wrong catch :class:`ForumError`; callers that must treat a misbehaving forum
differently from a bad argument catch :class:`SecurityError`.
"""

from __future__ import annotations

from dataclasses import dataclass


class ForumError(Exception):
    """Base class of every error the forum packages raise on purpose."""


class SecurityError(ForumError):
    """The forum (or a local copy) was shown to misbehave: forged, dropped, reordered,
    rewritten, rolled back or forked history.  Never retried silently."""


class VerificationError(SecurityError):
    """A signature, proof or checkpoint did not verify."""


@dataclass(frozen=True)
class Violation:
    """One bad field: where it is and why it is rejected."""

    field: str
    reason: str


class InvalidInputError(ForumError, ValueError):
    """Input that can never be accepted.  ``violations`` names each bad field."""

    def __init__(self, message: str, violations: list[Violation] | None = None) -> None:
        super().__init__(message)
        self.violations: list[Violation] = violations or []

    @classmethod
    def field(cls, field: str, reason: str) -> InvalidInputError:
        return cls(f"{field}: {reason}", [Violation(field, reason)])


class Violations:
    """Collects bad fields, at most ``limit``, and raises them as one InvalidInputError whose
    message names the first (``"signals[3].value: reason (and 2 more)"``)."""

    def __init__(self, limit: int = 100) -> None:
        self.items: list[Violation] = []
        self.limit = limit

    def add(self, field: str, reason: str) -> None:
        if len(self.items) < self.limit:
            self.items.append(Violation(field, reason))

    def extend(self, violations: list[Violation]) -> None:
        self.items += violations[: self.limit - len(self.items)]

    def raise_if_any(self, what: str = "") -> None:
        if self.items:
            first = self.items[0]
            more = f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""
            prefix = f"{what} rejected: " if what else ""
            raise InvalidInputError(f"{prefix}{first.field}: {first.reason}{more}", self.items)


class WeakKeyError(InvalidInputError):
    """A public key that must not be trusted: wrong length, non-canonical, small order."""


class ConfigError(ForumError):
    """A profile, bundle or forum directory is missing, incomplete or inconsistent."""


class StoreError(ForumError):
    """The local store cannot be read or written (corruption, disk full, bad schema)."""


class TransportError(ForumError):
    """The forum could not be reached or answered with an error status.

    ``code`` is the gRPC status name (``"INVALID_ARGUMENT"``...), ``violations`` the fields the
    server named, ``reason`` its machine-readable reason and ``retry_after`` (seconds) when
    it asked to be called again later.
    """

    def __init__(
        self,
        message: str,
        code: str = "UNKNOWN",
        violations: list[Violation] | None = None,
        reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.violations: list[Violation] = violations or []
        self.reason = reason
        self.retry_after = retry_after


class QuorumUnavailableError(ForumError):
    """The forum's log holds entries beyond the newest checkpoint a quorum of its witnesses
    cosigned: the witnesses of the policy named in ``missing`` (name -> why it does not
    count) did not cosign checkpoint ``log_size``.  The member refuses those entries (fails
    closed) and its copy stays at the last verified quorum checkpoint, ``cosigned_size``.

    Not proof that the forum misbehaves (witnesses go down), so no evidence blocks later
    syncs: sync again once a quorum cosigns.  ``forum_says`` is what the server reports of
    each witness (its word, unverified).
    """

    def __init__(
        self,
        message: str,
        *,
        log_size: int,
        cosigned_size: int,
        missing: dict[str, str],
        agreed: tuple[str, ...] = (),
        forum_says: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.log_size = log_size
        self.cosigned_size = cosigned_size
        self.missing = dict(missing)
        self.agreed = agreed
        self.forum_says = dict(forum_says or {})


class EntryRejectedError(VerificationError):
    """An entry that the log's rules do not allow at its position.

    ``reason`` is one of the ``REJECT_*`` constants; the server maps it to a gRPC status code
    and the SDK reports it with the log ``index`` it was found at.
    """

    def __init__(self, reason: str, field: str, message: str, index: int | None = None) -> None:
        where = f"entry {index}: " if index is not None else ""
        super().__init__(f"{where}{message}")
        self.reason = reason
        self.field = field
        self.index = index


REJECT_SIGNATURE = "bad-signature"
REJECT_UNKNOWN_KEY = "unknown-key"
REJECT_KEY_INACTIVE = "key-inactive"
REJECT_SEQUENCE = "stale-sequence"
REJECT_ORIGIN = "wrong-origin"
REJECT_PERMISSION = "not-permitted"
REJECT_SUSPENDED = "member-suspended"
REJECT_BODY = "invalid-body"
REJECT_CONFLICT = "conflict"
REJECT_THRESHOLD = "below-threshold"
REJECT_EXPIRED = "expired"


__all__ = [
    "ConfigError",
    "EntryRejectedError",
    "ForumError",
    "InvalidInputError",
    "QuorumUnavailableError",
    "SecurityError",
    "StoreError",
    "TransportError",
    "VerificationError",
    "Violation",
    "Violations",
    "WeakKeyError",
]
