"""Cryptographic file digests: ``md5`` (32 hex digits), ``sha1`` (40), ``sha256`` (64).

Normal form: surrounding whitespace stripped, hex digits in any case in, lowercase out.  Anything
else is rejected: empty, wrong length, a non-hex character, or whitespace inside the digest.

>>> from forum_client.signals.base import normalize
>>> normalize("sha1", "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709\\n")
'da39a3ee5e6b4b0d3255bfef95601890afd80709'
"""

from __future__ import annotations

import re
from typing import ClassVar

from forum_client.errors import InvalidInputError
from forum_client.signals.base import ContentType, SignalType, register
from forum_client.signals.versions import CURRENT

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_LOWER_HEX = b"0123456789abcdef"


class HexSignalType(SignalType):
    """A fixed-length hex string.  Subclasses set ``name`` and ``hex_digits``."""

    hex_digits: ClassVar[int]
    _pattern: ClassVar[re.Pattern[str]]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "hex_digits" in cls.__dict__:
            cls._pattern = re.compile(f"[0-9a-fA-F]{{{cls.hex_digits}}}")

    def all_canonical(self, values: list[str], version: int = CURRENT) -> bool:
        # One regex over the whole batch: every value exactly ``hex_digits`` long, and all of
        # them together nothing but lowercase hex digits.
        if not values:
            return True
        if set(map(type, values)) != {str}:
            return super().all_canonical(values, version)
        if set(map(len, values)) != {self.hex_digits}:
            return False
        joined = "".join(values)
        # ASCII, and nothing left once every lowercase hex digit is deleted.
        return joined.isascii() and not joined.encode("ascii").translate(None, _LOWER_HEX)

    def normalize(self, value: str, version: int = CURRENT) -> str:
        # The same rule in every version.  Hot path: one precompiled fullmatch and one
        # lower() for already-clean input.
        if type(value) is str:
            if self._pattern.fullmatch(value) is not None:
                return value.lower()
            stripped = value.strip()
            if self._pattern.fullmatch(stripped) is not None:
                return stripped.lower()
            raise InvalidInputError.field("value", self._why_invalid(stripped))
        raise InvalidInputError.field(
            "value", f"{self.name} must be a string, got {type(value).__name__}"
        )

    def _why_invalid(self, stripped: str) -> str:
        """The precise reason ``stripped`` (already stripped) is not a valid digest."""
        if not stripped:
            return f"empty {self.name}"
        for position, char in enumerate(stripped):
            if char not in _HEX_DIGITS:
                what = "whitespace" if char.isspace() else f"non-hex character {char!r}"
                return f"{self.name} contains {what} at position {position}"
        return f"{self.name} must be exactly {self.hex_digits} hex digits, got {len(stripped)}"


@register
class Md5(HexSignalType):
    """MD5 of a file's bytes (32 hex digits)."""

    name = "md5"
    hex_digits = 32
    default_content_type = ContentType.OTHER


@register
class Sha1(HexSignalType):
    """SHA-1 of a file's bytes (40 hex digits)."""

    name = "sha1"
    hex_digits = 40
    default_content_type = ContentType.OTHER


@register
class Sha256(HexSignalType):
    """SHA-256 of a file's bytes (64 hex digits)."""

    name = "sha256"
    hex_digits = 64
    default_content_type = ContentType.OTHER


__all__ = ["HexSignalType", "Md5", "Sha1", "Sha256"]
