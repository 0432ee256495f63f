"""Domain names: ``domain``.

Normalisation, in order:

1. Strip surrounding whitespace.  Reject an empty value, one longer than 1024 characters, one
   containing ``*`` (wildcards: share the domain itself) and IP addresses (IPv4, IPv6, or either
   in brackets).
2. Drop one trailing dot (``example.com.`` -> ``example.com``).
3. Split into labels on ``.`` and on the IDNA dots U+3002, U+FF0E, U+FF61.
4. Convert each label to ASCII.  An ASCII label is lowercased.  Any other label, under the
   current rule (normalisation version 2), goes through UTS #46 non-transitional processing and
   IDNA 2008 with the ``idna`` package (``straße.de`` -> ``xn--strae-oqa.de``, ``ß`` kept as
   the IDNA 2008 standard and every browser now do).  Under version 1, the rule of the first
   release kept so that old log entries still verify, it went through IDNA 2003 ``ToASCII``
   (``encodings.idna``: nameprep, which maps ``ß`` -> ``ss`` and ``ς`` -> ``σ``).  See
   :mod:`forum_client.signals.versions`.  Version 2 takes only code points assigned in
   Unicode 14.0 (after the UTS #46 mapping): the ``idna`` package reads the running Python's
   ``unicodedata`` for its bidi, combining-mark and NFC checks, which is Unicode 14.0 on
   Python 3.11, 15.0 on 3.12 and 15.1 on 3.13, so without the pin a label of Unicode 15.0
   letters (``𞓐𞓑.example``, Nag Mundari) was refused on 3.11 and accepted on 3.12: one
   member's SDK would refuse a log entry another's signed.
5. Check each ASCII label: 1 to 63 characters from ``a-z``, ``0-9`` and ``-``, not starting or
   ending with ``-``.  A label starting with ``xn--`` must be valid punycode that round-trips
   through IDNA ``ToUnicode``.
6. Check the whole name: at most 253 characters, at least two labels (a single label such as
   ``localhost`` or ``com`` is not a public domain), and the last label must not look like a
   number (all digits, or ``0x`` + hex: such names are parsed as IPv4 addresses by browsers).

>>> from forum_client.signals.base import normalize
>>> normalize("domain", " WWW.Example.COM. ")
'www.example.com'
>>> normalize("domain", "straße.de"), normalize("domain", "xn--strae-oqa.de")
('xn--strae-oqa.de', 'xn--strae-oqa.de')
>>> normalize("domain", "straße.de", version=1)
'strasse.de'
"""

from __future__ import annotations

import bisect
import encodings.idna
import functools
import ipaddress
import re

import idna

from forum_client.errors import InvalidInputError
from forum_client.signals.base import ContentType, SignalType, register
from forum_client.signals.versions import CURRENT, V1

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
MAX_INPUT_LENGTH = 1024

_IDNA_DOTS = re.compile("[.\u3002\uff0e\uff61]")
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


def _invalid(reason: str) -> InvalidInputError:
    return InvalidInputError.field("value", reason)


def _assigned_ranges() -> tuple[list[int], list[int]]:
    from forum_client.signals._unicode14 import ASSIGNED_RANGES

    firsts: list[int] = []
    lasts: list[int] = []
    for item in "".join(ASSIGNED_RANGES).split():
        first, _, last = item.partition("-")
        firsts.append(int(first, 16))
        lasts.append(int(last, 16))
    return firsts, lasts


_UNICODE_VERSION = "14.0"
_FIRSTS, _LASTS = _assigned_ranges()


def _check_unicode_version(text: str, label: str) -> None:
    """Refuse a code point not assigned in Unicode 14.0 (version 2; see the module)."""
    for char in text:
        cp = ord(char)
        if cp < 0x80:
            continue
        at = bisect.bisect_right(_FIRSTS, cp) - 1
        if at < 0 or cp > _LASTS[at]:
            raise _invalid(
                f"label {label[:70]!r}: code point U+{cp:04X} is not assigned in Unicode "
                f"{_UNICODE_VERSION}, the version the forum's rules use on every Python"
            )


@functools.lru_cache(maxsize=4096)
def _idna2003_to_ascii(label: str) -> str:
    """Version 1: IDNA 2003 ToASCII of a non-ASCII label, lowercased (cached: IDNA costs ~50 µs).

    ``encodings.idna`` runs nameprep on the Unicode 3.2 tables (``unicodedata.ucd_3_2_0``), the
    same on every Python version.
    """
    try:
        return encodings.idna.ToASCII(label).decode("ascii").lower()
    except UnicodeError as exc:
        raise _invalid(f"label {label[:70]!r} is not a valid IDNA label: {exc}") from None


@functools.lru_cache(maxsize=4096)
def _idna2008_to_ascii(label: str) -> str:
    """Version 2: UTS #46 non-transitional mapping, then IDNA 2008 ToASCII, of one label."""
    try:
        _check_unicode_version(idna.uts46_remap(label, std3_rules=True, transitional=False), label)
        encoded = idna.encode(label, uts46=True, std3_rules=True, transitional=False)
    except (idna.IDNAError, UnicodeError) as exc:
        raise _invalid(f"label {label[:70]!r} is not a valid IDNA 2008 label: {exc}") from None
    ascii_label = encoded.decode("ascii")
    if "." in ascii_label:  # UTS #46 maps a few characters (U+2488 '⒈') to a dot
        raise _invalid(f"label {label[:70]!r} maps to more than one label under UTS #46")
    return ascii_label


@functools.lru_cache(maxsize=4096)
def _check_a_label(label: str, version: int) -> None:
    """Reject an ``xn--`` label that is not valid punycode for ``version`` (cached)."""
    try:
        if version == V1:
            encodings.idna.ToUnicode(label)
            return
        unicode_label = idna.decode(label)
        _check_unicode_version(unicode_label, label)
        if idna.encode(unicode_label) != label.encode("ascii"):
            raise idna.IDNAError("does not round-trip")
    except (idna.IDNAError, UnicodeError) as exc:
        raise _invalid(f"label {label!r} is not valid punycode: {exc}") from None


def _label_to_ascii(label: str, *, allow_underscore: bool, version: int) -> str:
    """One label in ASCII (lowercase), or InvalidInputError."""
    if not label:
        raise _invalid("empty label (leading dot or two dots in a row)")
    from_unicode = not label.isascii()
    if from_unicode:
        to_ascii = _idna2003_to_ascii if version == V1 else _idna2008_to_ascii
        ascii_label = to_ascii(label)
    else:
        ascii_label = label.lower()
    if len(ascii_label) > MAX_LABEL_LENGTH:
        raise _invalid(
            f"label {ascii_label[:20]!r}... is {len(ascii_label)} characters in ASCII "
            f"(at most {MAX_LABEL_LENGTH})"
        )
    pattern = _HOST_LABEL if allow_underscore else _LDH_LABEL
    if pattern.fullmatch(ascii_label) is None:
        allowed = "a-z, 0-9, '-' and '_'" if allow_underscore else "a-z, 0-9 and '-'"
        for char in ascii_label:
            if not (char.isascii() and (char.isalnum() or char in "-_")) or (
                char == "_" and not allow_underscore
            ):
                raise _invalid(
                    f"invalid character {char!r} in label {ascii_label!r}: only {allowed}"
                )
        raise _invalid(f"label {ascii_label!r} must not start or end with '-'")
    if not from_unicode and ascii_label.startswith("xn--"):  # ToASCII output is valid already
        _check_a_label(ascii_label, version)
    return ascii_label


def _host_to_ascii(
    host: str, *, allow_underscore: bool = False, version: int = CURRENT
) -> list[str]:
    """The ASCII labels of ``host`` (one trailing dot dropped), or InvalidInputError.

    Shared with :mod:`forum_client.signals.url`, which allows ``_`` in labels as browsers do.
    """
    if host and _IDNA_DOTS.fullmatch(host[-1]):
        host = host[:-1]
    if not host:
        raise _invalid("empty host name")
    labels = [
        _label_to_ascii(label, allow_underscore=allow_underscore, version=version)
        for label in _IDNA_DOTS.split(host)
    ]
    length = sum(map(len, labels)) + len(labels) - 1
    if length > MAX_NAME_LENGTH:
        raise _invalid(f"name is {length} characters in ASCII (at most {MAX_NAME_LENGTH})")
    return labels


def _ends_in_number(labels: list[str]) -> bool:
    """True if the last label is numeric, so a browser would parse the host as IPv4."""
    return _NUMERIC_LABEL.fullmatch(labels[-1]) is not None


def _is_ip_address(text: str) -> bool:
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@register
class Domain(SignalType):
    """A registrable or fully qualified DNS name, e.g. ``example.com``."""

    name = "domain"
    default_content_type = ContentType.URL

    def normalize(self, value: str, version: int = CURRENT) -> str:
        if not isinstance(value, str):
            raise _invalid(f"domain must be a string, got {type(value).__name__}")
        text = value.strip()
        if not text:
            raise _invalid("empty domain")
        if len(text) > MAX_INPUT_LENGTH:
            raise _invalid(f"domain is {len(text)} characters (at most {MAX_INPUT_LENGTH})")
        if "*" in text:
            raise _invalid("wildcards ('*') are not allowed: share the domain itself")
        if _is_ip_address(text):
            raise _invalid("an IP address is not a domain")
        if "/" in text or ":" in text:
            raise _invalid("a domain has no scheme, port or path: use the 'url' type for URLs")
        labels = _host_to_ascii(text, version=version)
        if len(labels) < 2:
            raise _invalid(
                f"single-label name {labels[0]!r} is not a public domain "
                "(need at least two labels, e.g. 'example.com')"
            )
        if _ends_in_number(labels):
            raise _invalid(
                f"last label {labels[-1]!r} is numeric: looks like an IPv4 address, not a domain"
            )
        return ".".join(labels)


__all__ = ["MAX_INPUT_LENGTH", "MAX_LABEL_LENGTH", "MAX_NAME_LENGTH", "Domain"]
