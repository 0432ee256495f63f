"""PDQ perceptual image hashes: ``pdq``, 256 bits as 64 hex digits.

Normal form: surrounding whitespace stripped, hex digits in any case in, lowercase out; anything
else is rejected exactly as for ``sha256``.  The all-zero hash is accepted: it is what PDQ returns
for a blank or uniform image, and deciding whether such hashes are worth sharing (usually by their
quality, which is then 0) is a policy for the caller, not a parsing rule.

PDQ also reports a *quality* from 0 to 100; :func:`parse_pdq_quality` validates it.

>>> from forum_client.signals.base import normalize
>>> normalize("pdq", "F" * 64) == "f" * 64
True
>>> parse_pdq_quality(" 87 ")
87
>>> len(pdq_to_bytes("0" * 64))
32
"""

from __future__ import annotations

import re

from forum_client.errors import InvalidInputError
from forum_client.signals.base import ContentType, register
from forum_client.signals.hashes import HexSignalType

MIN_QUALITY = 0
MAX_QUALITY = 100

_INTEGER = re.compile(r"[+-]?[0-9]+")


@register
class Pdq(HexSignalType):
    """PDQ hash of an image (64 hex digits)."""

    name = "pdq"
    hex_digits = 64
    default_content_type = ContentType.IMAGE


_PDQ = Pdq()


def parse_pdq_quality(quality: int | str | None) -> int | None:
    """Validate an optional PDQ quality: an integer from 0 to 100 inclusive.

    ``None``, or a string that is empty after stripping (an empty CSV column), means "not given"
    and returns ``None``.  A string must be a plain decimal integer (optional sign, ASCII digits).
    ``bool`` is refused even though it is an ``int``.

    Raises:
        InvalidInputError: field ``"quality"``.
    """
    if quality is None:
        return None
    if type(quality) is int:
        number = quality
    elif isinstance(quality, str):
        text = quality.strip()
        if not text:
            return None
        if len(text) > 8 or not _INTEGER.fullmatch(text):
            raise InvalidInputError.field(
                "quality", f"must be an integer from 0 to 100, got {text[:20]!r}"
            )
        number = int(text)
    else:
        raise InvalidInputError.field(
            "quality", f"must be an integer or a string, got {type(quality).__name__}"
        )
    if not MIN_QUALITY <= number <= MAX_QUALITY:
        raise InvalidInputError.field("quality", f"must be from 0 to 100 inclusive, got {number}")
    return number


def pdq_to_bytes(pdq_hex: str) -> bytes:
    """The 32 bytes of a PDQ hash given as hex (normalised first, so any accepted form works).

    Raises:
        InvalidInputError: field ``"value"``, if ``pdq_hex`` is not a valid PDQ hash.
    """
    return bytes.fromhex(_PDQ.normalize(pdq_hex))


__all__ = ["MAX_QUALITY", "MIN_QUALITY", "Pdq", "parse_pdq_quality", "pdq_to_bytes"]
