"""Normalisation versions: which rules turned a member's input into the value it signed.

Two members must sign byte-identical values for the same content, so the rules are pinned in
this package's own code (no rule follows the running Python's ``ipaddress`` or ``urllib``, whose
output changes between versions) and every change of a rule gets a new version number.  An
entry says which version it was normalised under in its header (``EntryHeader.normalization``,
0 meaning version 1), and the content rules check its values under that version, so entries
written under an older rule keep verifying forever.

- Version 1, the first release: IDNA 2003 (``encodings.idna``) for non-ASCII domain labels and
  URL hosts.
- Version 2: UTS #46 non-transitional + IDNA 2008 (the ``idna`` package): ``straße.de`` and
  ``xn--strae-oqa.de`` are the same domain, ``xn--strae-oqa.de``; version 1 mapped ``ß`` to
  ``ss`` and refused the A-label.  Emoji labels (IDNA 2003 only) are refused, and so is any
  code point not assigned in Unicode 14.0 (what Python 3.11's ``unicodedata``, which ``idna``
  consults, refused; pinned so that Python 3.12 and 3.13 refuse the same).

Both versions write IPv6 hosts the way browsers (WHATWG URL) do, in hexadecimal groups even
for IPv4-mapped addresses: ``[::ffff:c000:201]``, which is what Python 3.11 and 3.12 print
(3.13 prints ``[::ffff:192.0.2.1]``; the rule here does not ask Python).

>>> CURRENT, parse_version(0), parse_version(2)
(2, 1, 2)
"""

from __future__ import annotations

from forum_client.errors import InvalidInputError

V1 = 1
V2 = 2
CURRENT = V2
"""The version this SDK writes."""

KNOWN = (V1, V2)


def parse_version(header_value: int) -> int:
    """The version an entry header names (0, the proto3 default, is version 1).

    Raises:
        InvalidInputError: field ``"header.normalization"``, for a version this SDK does not know.
    """
    version = header_value or V1
    if version not in KNOWN:
        raise InvalidInputError.field(
            "header.normalization",
            f"unknown normalisation version {header_value} (this SDK knows {list(KNOWN)})",
        )
    return version


__all__ = ["CURRENT", "KNOWN", "V1", "V2", "parse_version"]
