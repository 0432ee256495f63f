"""The Shared-Signal Forum SDK: submit signed signals, keep a verified local copy, match.

    from forum_client import ForumClient, LocalStore

    with ForumClient.connect("acme.bundle.json") as forum, LocalStore("forum.db") as store:
        forum.sync(store)                       # every signature and the log itself verified
        store.lookup("md5", "d41d8cd98f00b204e9800998ecf8427e")

Everything not listed in ``__all__`` (and every ``_``-prefixed module) may change.
"""

from __future__ import annotations

from .client import ForumClient, Status
from .entries import MemberStatus, OpinionKind, Role, SignalItem, SignalRef, Tlp
from .envelope import SigningKey
from .errors import (
    ConfigError,
    EntryRejectedError,
    ForumError,
    InvalidInputError,
    SecurityError,
    StoreError,
    TransportError,
    VerificationError,
    WeakKeyError,
)
from .profile import Bundle
from .signals import ContentType, Signal
from .store import LocalStore
from .sync import SyncResult, SyncSecurityError
from .verifier import TrustRoot
from .wire import Receipt

__all__ = [
    "Bundle",
    "ConfigError",
    "ContentType",
    "EntryRejectedError",
    "ForumClient",
    "ForumError",
    "InvalidInputError",
    "LocalStore",
    "MemberStatus",
    "OpinionKind",
    "Receipt",
    "Role",
    "SecurityError",
    "Signal",
    "SignalItem",
    "SignalRef",
    "SigningKey",
    "Status",
    "StoreError",
    "SyncResult",
    "SyncSecurityError",
    "Tlp",
    "TransportError",
    "TrustRoot",
    "VerificationError",
    "WeakKeyError",
]
