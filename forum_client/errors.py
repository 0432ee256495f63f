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


class WeakKeyError(InvalidInputError):
    """A public key that must not be trusted: wrong length, non-canonical, small order."""


class ConfigError(ForumError):
    """A profile, bundle or forum directory is missing, incomplete or inconsistent."""


class StoreError(ForumError):
    """The local store cannot be read or written (corruption, disk full, bad schema)."""


class TransportError(ForumError):
    """The forum could not be reached or answered with an error status."""

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.code = code


__all__ = [
    "ConfigError",
    "ForumError",
    "InvalidInputError",
    "SecurityError",
    "StoreError",
    "TransportError",
    "VerificationError",
    "Violation",
    "WeakKeyError",
]
