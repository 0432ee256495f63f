"""The witness's decision, pure: parse an ``add-checkpoint`` body, check it against the log
keys the witness trusts and the checkpoint it holds for that origin, and say what to store.

No sockets, no SQLite, no clock here (``state.py`` stores, ``http.py`` serves).  Every way a
request can fail is a :class:`Refusal` carrying the HTTP status c2sp.org/tlog-witness gives
it::

    >>> from forum_client.envelope import SigningKey
    >>> from forum_client.checkpoint import Checkpoint, sign_checkpoint
    >>> from forum_client.merkle import EMPTY_ROOT
    >>> log = SigningKey.generate()
    >>> logs = {"forum.example": LogKey("forum.example", log.public_bytes)}
    >>> note = sign_checkpoint(Checkpoint("forum.example", 0, EMPTY_ROOT), "forum.example", log)
    >>> request = parse_request(b"old 0\\n\\n" + note)
    >>> decide(request, logs, None).size
    0
    >>> try:
    ...     decide(parse_request(b"old 5\\n\\n" + note), logs, None)
    ... except Refusal as exc:
    ...     print(exc.status, exc)
    400 old size 5 is larger than the checkpoint size 0
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from forum_client.checkpoint import Checkpoint, parse_unverified, verify_checkpoint
from forum_client.errors import ForumError, VerificationError
from forum_client.merkle import EMPTY_ROOT, verify_consistency

MAX_BODY_BYTES = 64 * 1024
"""A request larger than this (bytes) is refused with 413 before it is parsed.  The largest
valid request is 63 proof lines (45 bytes each) and one checkpoint note: a few kilobytes."""
MAX_PROOF_LINES = 63
"""Consistency proof lines a client may send, at most (the spec's limit)."""
SIZE_CONTENT_TYPE = "text/x.tlog.size"
"""The Content-Type of a 409 answer that carries the witness's size."""

_OLD_LINE = re.compile(r"old (0|[1-9][0-9]{0,19})\Z", re.ASCII)


class Refusal(ForumError):
    """The witness will not cosign: ``status`` is the HTTP status, ``body`` the answer."""

    def __init__(
        self, status: int, message: str, body: bytes | None = None, content_type: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = body if body is not None else (message + "\n").encode()
        self.content_type = content_type or "text/plain"


@dataclass(frozen=True)
class LogKey:
    """A log the witness follows: its origin (also the name its key signs as) and key."""

    origin: str
    public_key: bytes


@dataclass(frozen=True)
class Request:
    """A parsed ``add-checkpoint`` body; the note is not verified yet."""

    old_size: int
    proof: tuple[bytes, ...]
    note: bytes


@dataclass(frozen=True)
class Stored:
    """The latest checkpoint a witness cosigned for one origin."""

    size: int
    root: bytes


def parse_request(body: bytes, max_bytes: int = MAX_BODY_BYTES) -> Request:
    """Split ``old N\\n`` + proof lines + blank line + note.  Raises Refusal (400, or 413
    when ``body`` is over ``max_bytes``)."""
    if len(body) > max_bytes:
        raise Refusal(413, f"request body is larger than {max_bytes} bytes")
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        raise Refusal(400, "request body has no blank line before the checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise Refusal(400, "old size and proof lines must be ASCII") from None
    match = _OLD_LINE.match(lines[0])
    if match is None:
        raise Refusal(400, "first line must be 'old <size>' (decimal, no leading zeros)")
    proof_lines = lines[1:]
    if len(proof_lines) > MAX_PROOF_LINES:
        raise Refusal(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for number, line in enumerate(proof_lines, start=1):
        try:
            node = base64.b64decode(line, validate=True)
        except (ValueError, binascii.Error):
            raise Refusal(400, f"proof line {number} is not base64") from None
        if len(node) != 32 or base64.b64encode(node).decode("ascii") != line:
            raise Refusal(400, f"proof line {number} is not canonical base64 of 32 bytes")
        proof.append(node)
    return Request(int(match.group(1)), tuple(proof), note)


def decide(request: Request, logs: dict[str, LogKey], stored: Stored | None) -> Checkpoint:
    """Check ``request`` against the trusted ``logs`` and the ``stored`` checkpoint of its
    origin; return the checkpoint to store and cosign.

    Raises:
        Refusal: 400 malformed, 404 unknown origin, 403 no valid log signature, 409 stale
            old size (body: the stored size) or same size with another root, 422 a
            consistency proof that does not verify.
    """
    try:
        unverified, _signatures = parse_unverified(request.note)
    except VerificationError as exc:
        raise Refusal(400, f"not a checkpoint note: {exc}") from None
    log = logs.get(unverified.origin)
    if log is None:
        raise Refusal(404, f"unknown log origin {unverified.origin[:200]!r}")
    try:
        cp = verify_checkpoint(
            request.note, origin=log.origin, name=log.origin, public_key=log.public_key
        )
    except VerificationError as exc:
        raise Refusal(403, f"no valid signature by the log key: {exc}") from None
    old = request.old_size
    if old > cp.size:
        raise Refusal(400, f"old size {old} is larger than the checkpoint size {cp.size}")
    have = stored.size if stored is not None else 0
    if old != have:
        raise Refusal(
            409,
            f"old size {old} is not the size {have} this witness last cosigned",
            f"{have}\n".encode(),
            SIZE_CONTENT_TYPE,
        )
    previous_root = stored.root if stored is not None else EMPTY_ROOT
    if old == cp.size:
        if cp.root != previous_root:
            raise Refusal(409, f"checkpoint {cp.size} has another root than the one cosigned")
        if request.proof:
            raise Refusal(422, "a proof between two equal sizes must be empty")
        return cp
    if old == 0:
        if request.proof:
            raise Refusal(422, "the proof must be empty when the old size is 0")
        return cp
    try:
        verify_consistency(old, cp.size, request.proof, previous_root, cp.root)
    except VerificationError as exc:
        raise Refusal(422, f"consistency proof {old} -> {cp.size} does not verify: {exc}") from None
    return cp


__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PROOF_LINES",
    "SIZE_CONTENT_TYPE",
    "LogKey",
    "Refusal",
    "Request",
    "Stored",
    "decide",
    "parse_request",
]
