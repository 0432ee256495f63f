"""A small forum-wide Submission read straight from its signed bytes, when they are canonical.

In a sync of one-signal entries, decoding the bodies cost more than anything but the
signatures: protobuf parsed each one, Python read every field into dataclasses, and the
canonical-encoding check serialised the message again to compare.  :func:`read_submission`
does all three in one pass over the bytes, for the layout the deterministic encoder writes
for a forum-wide submission from a known author::

    >>> from forum_client import entries as e
    >>> h = e.Header("forum.test", "alice", bytes(32), 7, 1_700_000_000_000)
    >>> item = e.SignalItem("md5", "d41d8cd98f00b204e9800998ecf8427e", (), "image")
    >>> body = e.encode(e.Submission(h, (item,), tlp=e.Tlp.GREEN))
    >>> read = read_submission(body, header_prefix("forum.test", "alice", bytes(32)))
    >>> sequence, created, expires, normalization, tlp, signals = read
    >>> sequence, created, tlp, [value for _, value in signals]
    (7, 1700000000000, 2, ['d41d8cd98f00b204e9800998ecf8427e'])
    >>> signal_template(signals[0][0])
    ('md5', (), 'image', None)
    >>> read_submission(body + b"\\x00", header_prefix("forum.test", "alice", bytes(32)))

It answers only when the bytes are, field for field, what ``encode`` writes: the header
starting with exactly the expected origin, member and key id (``header_prefix``, the
encoder's own bytes), then its integers each once, in field order, minimal varints, none
zero; each signal's fields other than its value (type, labels, content type) checked by
protobuf itself, parsed and re-encoded to the same bytes (:func:`signal_template`); an
ASCII value that is not empty; no scope, no salt; a TLP of CLEAR or GREEN (or none); and
nothing else, no byte left over.  Anything else is None, and the caller takes the general
path (:func:`~forum_client.entries.decode_canonical`), which decides.  So it may decline
what the general path accepts, but it never accepts bytes that path refuses or reads them
differently (``tests/unit/test_submission_bytes.py`` compares both on mangled bodies).

Pure: bytes in, values out; it checks no rule of the log (the caller does).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from google.protobuf.message import DecodeError

from ._proto.forum.v1 import forum_pb2 as pb

MAX_BODY: Final = 4096
"""Longer bodies (hundreds of signals) take the general path, where decoding is not what
costs: they are bounded by SQLite."""

_HEADER: Final = 0x0A  # Submission.header (1), length-delimited
_SIGNAL: Final = 0x12  # Submission.signals (2)
_TYPE: Final = 0x0A  # SignalItem.type (1)
_VALUE: Final = 0x12  # SignalItem.value (2)
_SEQUENCE: Final = 0x20  # EntryHeader.sequence (4), varint
_CREATED: Final = 0x28  # EntryHeader.created_unix_ms (5)
_EXPIRES: Final = b"\xc0\x02"  # EntryHeader.expires_unix_ms (40)
_NORMALIZATION: Final = b"\xd0\x05"  # EntryHeader.normalization (90)
_TLP: Final = b"\xf8\x01"  # Submission.tlp (31)
_FORUM_WIDE_TLP: Final = frozenset({pb.TLP_CLEAR, pb.TLP_GREEN})


ReadSubmission = tuple[int, int, int, int, int, list[tuple[bytes, str]]]
"""What :func:`read_submission` read: ``(sequence, created_unix_ms, expires_unix_ms,
normalization, tlp, signals)``, each signal as the bytes of its other fields (the key of
:func:`signal_template`) and its value.  (A plain tuple: a sync reads one per entry.)"""


def header_prefix(origin: str, member_id: str, key_id: bytes) -> bytes:
    """The first bytes of every canonical header of ``member_id``'s entries signed with
    ``key_id`` in forum ``origin`` (as the encoder writes them)."""
    header = pb.EntryHeader(origin=origin, member_id=member_id, key_id=key_id)
    data: bytes = header.SerializeToString(deterministic=True)
    return data


@lru_cache(maxsize=4096)
def signal_template(key: bytes) -> tuple[str, tuple[str, ...], str, int | None] | None:
    """A signal's type, labels, content type and quality from the bytes of its fields but
    the value (``ReadSubmission.signals``), or None unless protobuf parses them without a
    value and, unknown fields dropped, re-encodes them to the same bytes."""
    m = pb.SignalItem()
    try:
        m.ParseFromString(key)
    except DecodeError:
        return None
    if m.value:
        return None
    m.DiscardUnknownFields()
    if m.SerializeToString(deterministic=True) != key:
        return None
    return (m.type, tuple(m.labels), m.content_type, m.quality if m.HasField("quality") else None)


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """The minimal varint at ``pos`` (ending before ``end``, below 2**63) and the position
    after it; ``(-1, pos)`` for anything else."""
    if pos >= end:
        return -1, pos
    b = data[pos]
    if b < 0x80:
        return b, pos + 1
    result, shift, pos = b & 0x7F, 7, pos + 1
    while pos < end and shift < 63:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result, pos) if b else (-1, pos)  # a last byte of 0 is not minimal
        shift += 7
    return -1, pos


def read_submission(body: bytes, prefix: bytes) -> ReadSubmission | None:
    """Read ``body`` if it is the canonical encoding of a forum-wide Submission whose
    header starts with ``prefix`` (:func:`header_prefix`); else None (see the module)."""
    n = len(body)
    if n > MAX_BODY or n < 2 or body[0] != _HEADER:
        return None
    pos = 2
    end = body[1]
    if end >= 0x80:
        end, pos = _varint(body, 1, n)
        if end < 0:
            return None
    end += pos
    p = pos + len(prefix)
    if end > n or p > end or not body.startswith(prefix, pos):
        return None
    fields = [0, 0, 0, 0]  # sequence, created, expires, normalization: each at most once
    slot = 0
    while p < end:  # the header's integers, in field order
        tag = body[p]
        if tag == _SEQUENCE and slot < 1:
            slot, p = 1, p + 1
        elif tag == _CREATED and slot < 2:
            slot, p = 2, p + 1
        elif body.startswith(_EXPIRES, p) and slot < 3:
            slot, p = 3, p + 2
        elif body.startswith(_NORMALIZATION, p) and slot < 4:
            slot, p = 4, p + 2
        else:
            return None
        value, p = _varint(body, p, end)
        if value <= 0:  # malformed, or zero: a default is never written out
            return None
        fields[slot - 1] = value
    if p != end or fields[3] > 0xFFFFFFFF:  # normalization is a uint32: no truncation
        return None
    signals: list[tuple[bytes, str]] = []
    while p < n and body[p] == _SIGNAL:
        length, q = _varint(body, p + 1, n)
        end = q + length
        if length < 4 or end > n or body[q] != _TYPE or body[q + 1] >= 0x80:
            return None
        type_end = q + 2 + body[q + 1]
        if type_end + 2 > end or body[type_end] != _VALUE:
            return None
        length = body[type_end + 1]
        value_start = type_end + 2
        if length >= 0x80:
            length, value_start = _varint(body, type_end + 1, end)
        value_end = value_start + length
        if length <= 0 or value_end > end:
            return None
        raw = body[value_start:value_end]
        if not raw.isascii():
            return None
        signals.append((body[q:type_end] + body[value_end:end], raw.decode("ascii")))
        p = end
    tlp = 0
    if p + 3 == n and body.startswith(_TLP, p):
        tlp = body[p + 2]
        if tlp not in _FORUM_WIDE_TLP:
            return None
        p = n
    if p != n or not signals:
        return None
    return fields[0], fields[1], fields[2], fields[3], tlp, signals


__all__ = ["MAX_BODY", "ReadSubmission", "header_prefix", "read_submission", "signal_template"]
