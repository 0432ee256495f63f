"""The Shared-Signal Forum SDK: submit signed signals, keep a verified local copy, match.

    from forum_client import ForumClient, LocalStore

    with ForumClient.connect("acme.bundle.json") as forum, LocalStore("forum.db") as store:
        forum.sync(store)                       # every signature and the log itself verified
        store.lookup("md5", "d41d8cd98f00b204e9800998ecf8427e")

Everything not listed in ``__all__`` (and every ``_``-prefixed module) may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigError,
    EntryRejectedError,
    ForumError,
    InvalidInputError,
    QuorumUnavailableError,
    SecurityError,
    StoreError,
    TransportError,
    VerificationError,
    WeakKeyError,
)

if TYPE_CHECKING:
    from .client import ForumClient, Status
    from .entries import MemberStatus, OpinionKind, Role, SignalItem, SignalRef, Tlp
    from .envelope import SigningKey
    from .profile import Bundle
    from .signals import ContentType, Signal
    from .store import LocalStore
    from .sync import SyncResult, SyncSecurityError
    from .verifier import TrustRoot
    from .wire import Receipt

# Loaded on first use (PEP 562), so that importing a light module of the package (the CLI's
# --help, hashing) does not load grpc, SQLite and numpy.
_LAZY = {
    "ForumClient": "client",
    "Status": "client",
    "MemberStatus": "entries",
    "OpinionKind": "entries",
    "Role": "entries",
    "SignalItem": "entries",
    "SignalRef": "entries",
    "Tlp": "entries",
    "SigningKey": "envelope",
    "Bundle": "profile",
    "ContentType": "signals",
    "Signal": "signals",
    "LocalStore": "store",
    "SyncResult": "sync",
    "SyncSecurityError": "sync",
    "TrustRoot": "verifier",
    "Receipt": "wire",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'forum_client' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


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
    "QuorumUnavailableError",
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
