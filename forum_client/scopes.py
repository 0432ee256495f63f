"""Sharing scopes: the salt of a scoped body and the author's signed claim of its group.

A member entry is forum-wide (``scope == ""``, TLP:CLEAR or TLP:GREEN) or shared with one
group (TLP:AMBER, TLP:AMBER+STRICT or TLP:RED).  A member outside the group receives a scoped
entry redacted: its index, its leaf hash and a :class:`ScopeClaim`, the author's signature
over ``(origin, group, leaf hash)``.  The claim lets the outsider verify that the entry really
is scoped to a group it is not in (so a server cannot hide a forum-wide entry behind a
redaction), without learning anything of the body: the body carries :data:`SALT_BYTES`
fresh random bytes, so no guess of its contents can be confirmed against the leaf hash.

>>> from forum_client.envelope import SigningKey
>>> key = SigningKey.generate()
>>> claim = sign_scope_claim(key, "forum.test", "crisis-1", b"h" * 32)
>>> verify_scope_claim(key.public_bytes, "forum.test", claim, b"h" * 32)
>>> len(new_salt())
32
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .entries import Tlp
from .envelope import SIGNATURE_SIZE, SigningKey, _verify_raw, pae
from .errors import InvalidInputError, VerificationError

SALT_BYTES = 32
SCOPE_CLAIM_TYPE = "application/vnd.forum.scope-claim.v1"


@dataclass(frozen=True, slots=True)
class ScopeClaim:
    """Which group a redacted entry is scoped to, signed by the entry's author."""

    group_id: str
    key_id: bytes
    signature: bytes


def new_salt() -> bytes:
    """32 bytes from the operating system's CSPRNG, fresh for every scoped body."""
    return secrets.token_bytes(SALT_BYTES)


def scope_claim_bytes(origin: str, group_id: str, leaf_hash: bytes) -> bytes:
    """What the author signs: ``PAE(SCOPE_CLAIM_TYPE, origin \\n group \\n hex(leaf hash))``."""
    text = f"{origin}\n{group_id}\n{leaf_hash.hex()}"
    return pae(SCOPE_CLAIM_TYPE, text.encode("utf-8"))


def sign_scope_claim(key: SigningKey, origin: str, group_id: str, leaf_hash: bytes) -> ScopeClaim:
    signature = key.sign_raw(scope_claim_bytes(origin, group_id, leaf_hash))
    return ScopeClaim(group_id, key.key_id, signature)


def verify_scope_claim(public_key: bytes, origin: str, claim: ScopeClaim, leaf_hash: bytes) -> None:
    """Raises VerificationError unless ``claim`` is signed by ``public_key`` for this leaf."""
    if len(claim.signature) != SIGNATURE_SIZE:
        raise VerificationError(
            f"scope claim signature must be {SIGNATURE_SIZE} bytes, got {len(claim.signature)}"
        )
    _verify_raw(
        public_key,
        claim.signature,
        scope_claim_bytes(origin, claim.group_id, leaf_hash),
        "scope claim",
    )


def sharing(group: str = "", tlp: Tlp | str | None = None) -> tuple[str, Tlp]:
    """The ``(scope, tlp)`` of an entry a member is about to sign, with the defaults:
    forum-wide is TLP:GREEN, a group TLP:AMBER.  Raises InvalidInputError for a level that
    does not fit the scope (TLP:RED without a group, TLP:GREEN with one)."""
    level = Tlp.parse(tlp) if isinstance(tlp, str) else tlp
    if not group:
        level = Tlp.GREEN if level is None else level
        if level.scoped:
            raise InvalidInputError.field(
                "tlp", f"{level.label} shares with a group: name the group (--group)"
            )
        return "", level
    level = Tlp.AMBER if level is None else level
    if not level.scoped:
        raise InvalidInputError.field(
            "tlp",
            f"{level.label or 'unspecified'} is forum-wide; an entry shared with group {group} "
            "is TLP:AMBER, TLP:AMBER+STRICT or TLP:RED",
        )
    return group, level
