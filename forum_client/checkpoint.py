"""C2SP signed-note checkpoints: the log's signed (origin, size, root) statements.

The format follows https://c2sp.org/tlog-checkpoint and https://c2sp.org/signed-note, so that
independent witnesses can cosign our checkpoints later.  A note looks like::

    forum.example/log
    42
    <base64 of the 32-byte root>

    — forum.example/log <base64 of 4-byte key id || 64-byte Ed25519 signature>

Example::

    >>> from forum_client.envelope import SigningKey
    >>> key = SigningKey.generate()
    >>> cp = Checkpoint("forum.example/log", 42, bytes(32))
    >>> note = sign_checkpoint(cp, "forum.example/log", key)
    >>> verify_checkpoint(
    ...     note, origin="forum.example/log", name="forum.example/log",
    ...     public_key=key.public_bytes,
    ... ) == cp
    True

:func:`verify_checkpoint` raises :class:`~forum_client.errors.VerificationError` for anything
wrong with a note (it comes from the server); bad arguments from the caller raise
:class:`~forum_client.errors.InvalidInputError` (or :class:`~forum_client.errors.WeakKeyError`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from forum_client.envelope import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, check_public_key
from forum_client.errors import InvalidInputError, VerificationError

MAX_NOTE_BYTES = 1024 * 1024
"""Notes larger than this (in bytes) are rejected before parsing."""
MAX_SIGNATURES = 100
"""Notes with more signature lines than this are rejected (the Go sumdb/note limit)."""
ROOT_SIZE = 32
"""Bytes in a Merkle root (SHA-256)."""
MAX_TREE_SIZE = 2**64 - 1
"""The largest tree size a checkpoint may state."""
ALG_ED25519 = 0x01
"""Signed-note signature type byte for Ed25519."""
NOTE_KEY_ID_SIZE = 4
"""Bytes in a signed-note key id."""

_SIG_PREFIX = "\u2014 "  # em dash, space
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)\Z", re.ASCII)
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")


@dataclass(frozen=True)
class Checkpoint:
    """A log state: ``origin`` (the log's identity), tree ``size`` and Merkle ``root``."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        problem = _text_line_problem(self.origin) if isinstance(self.origin, str) else "not str"
        if problem is not None:
            raise InvalidInputError.field("origin", problem)
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise InvalidInputError.field("size", "must be an int")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise InvalidInputError.field("size", "must be in 0..2^64-1")
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_SIZE:
            raise InvalidInputError.field("root", f"must be {ROOT_SIZE} bytes")

    def body(self) -> bytes:
        """The note text: ``origin\\nsize\\nbase64(root)\\n`` (what the signatures cover)."""
        root = base64.b64encode(self.root).decode("ascii")
        return f"{self.origin}\n{self.size}\n{root}\n".encode()


def _text_line_problem(line: str) -> str | None:
    if not line:
        return "must be non-empty"
    if any(ch < " " for ch in line):
        return "must not contain control characters or newlines"
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return "not encodable as UTF-8"
    return None


def _name_problem(name: str) -> str | None:
    if not isinstance(name, str) or not name:
        return "must be a non-empty str"
    if any(ch.isspace() or ch == "+" or ch < " " for ch in name):
        return "must not contain whitespace, control characters or '+'"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "not encodable as UTF-8"
    return None


def _check_name(name: str) -> None:
    problem = _name_problem(name)
    if problem is not None:
        raise InvalidInputError.field("name", problem)


def note_key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte signed-note key id: ``SHA-256(name || "\\n" || 0x01 || public_key)[:4]``.

    Raises:
        InvalidInputError: the name is not a valid key name or the key is not 32 bytes.
    """
    _check_name(name)
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidInputError.field("public_key", f"must be {PUBLIC_KEY_SIZE} bytes")
    data = name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key
    return hashlib.sha256(data).digest()[:NOTE_KEY_ID_SIZE]


def vkey(name: str, public_key: bytes) -> str:
    """The verifier key string ``name+hex(key id)+base64(0x01 || public_key)``.

    Raises:
        InvalidInputError: as :func:`note_key_id`.
    """
    material = base64.b64encode(bytes([ALG_ED25519]) + public_key).decode("ascii")
    return f"{name}+{note_key_id(name, public_key).hex()}+{material}"


def sign_checkpoint(cp: Checkpoint, name: str, key: SigningKey) -> bytes:
    """The signed note for ``cp``: its body, a blank line, one signature line by ``name``.

    Raises:
        InvalidInputError: ``name`` is not a valid key name.
    """
    return _sign_note(cp.body().decode("utf-8"), name, key)


def verify_checkpoint(note: bytes, *, origin: str, name: str, public_key: bytes) -> Checkpoint:
    """Parse ``note`` strictly and return its checkpoint if it is signed by ``(name, key)``.

    The origin must equal ``origin``; at least one signature line must carry ``name`` and the
    key's key id, and every such line must verify.  Lines by other keys (e.g. witness
    cosignatures) are ignored.  Extension lines after the root are allowed and ignored.

    Raises:
        VerificationError: anything wrong with the note: size, encoding, syntax, origin
            mismatch, no signature by the key, or a signature that does not verify.
        InvalidInputError: ``name`` is not a valid key name.
        WeakKeyError: ``public_key`` is not an acceptable Ed25519 key.
    """
    _check_name(name)
    check_public_key(public_key)
    text, signatures = _split_note(note)
    cp = _parse_body(text)
    if cp.origin != origin:
        raise VerificationError(
            f"checkpoint origin {cp.origin!r} does not match the expected origin {origin!r}"
        )
    _verify_note_signatures(text, signatures, name, public_key)
    return cp


def _sign_note(text: str, name: str, key: SigningKey) -> bytes:
    """Sign arbitrary note text (must end in a newline and contain no blank line)."""
    _check_name(name)
    if not text.endswith("\n") or "\n\n" in text or text.startswith("\n"):
        raise InvalidInputError.field("text", "must end in a newline and contain no blank line")
    message = text.encode("utf-8")
    blob = note_key_id(name, key.public_bytes) + key.sign_raw(message)
    signature_line = f"{_SIG_PREFIX}{name} {base64.b64encode(blob).decode('ascii')}\n"
    return (text + "\n" + signature_line).encode("utf-8")


def _split_note(note: bytes) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its text and ``(name, key id || signature)`` pairs.

    Syntax only; nothing is verified.  Raises VerificationError on any malformation.
    """
    if not isinstance(note, bytes):
        raise VerificationError("note: must be bytes")
    if len(note) > MAX_NOTE_BYTES:
        raise VerificationError(f"note: larger than {MAX_NOTE_BYTES} bytes")
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerificationError(f"note: not valid UTF-8 ({exc.reason} at {exc.start})") from None
    control = _CONTROL.search(decoded)
    if control is not None:
        raise VerificationError(
            f"note: control character {ord(control.group()):#04x} at {control.start()}"
        )
    split = decoded.rfind("\n\n")
    if split < 0:
        raise VerificationError("note: no blank line before the signatures")
    text, sig_block = decoded[: split + 1], decoded[split + 2 :]
    if not sig_block.endswith("\n"):
        raise VerificationError("note: no signature lines, or the last one lacks a newline")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError(f"note: more than {MAX_SIGNATURES} signature lines")
    signatures = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(_SIG_PREFIX):
            raise VerificationError(f"note: signature line {number} does not start with '— '")
        fields = line[len(_SIG_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise VerificationError(f"note: signature line {number} is not '— name signature'")
        sig_name, encoded = fields
        problem = _name_problem(sig_name)
        if problem is not None:
            raise VerificationError(f"note: signature line {number} key name {problem}")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except ValueError:  # binascii.Error, or non-ASCII input
            raise VerificationError(f"note: signature line {number} is not base64") from None
        if base64.b64encode(blob).decode("ascii") != encoded:
            raise VerificationError(f"note: signature line {number} is not canonical base64")
        if len(blob) <= NOTE_KEY_ID_SIZE:
            raise VerificationError(f"note: signature line {number} is too short")
        signatures.append((sig_name, blob))
    return text, signatures


def _parse_unverified(note: bytes) -> tuple[Checkpoint, list[tuple[str, bytes]]]:
    """Parse a checkpoint note WITHOUT verifying any signature (for tooling that compares
    notes).  Returns the checkpoint and ``(name, key id || signature)`` for each signature line.

    Raises:
        VerificationError: the note or its checkpoint body is malformed.
    """
    text, signatures = _split_note(note)
    return _parse_body(text), signatures


def _parse_body(text: str) -> Checkpoint:
    """Parse checkpoint note text (ending in a newline); VerificationError if malformed."""
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise VerificationError("checkpoint: body needs origin, size and root lines")
    origin, size_text, root_text = lines[:3]
    if not origin:
        raise VerificationError("checkpoint: empty origin line")
    if any(not extension for extension in lines[3:]):
        raise VerificationError("checkpoint: empty extension line in the body")
    if not _DECIMAL.match(size_text):
        raise VerificationError(
            f"checkpoint: size {size_text[:40]!r} is not a decimal without leading zeros"
        )
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise VerificationError("checkpoint: size larger than 2^64-1")
    try:
        root = base64.b64decode(root_text, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII input
        raise VerificationError("checkpoint: root is not base64") from None
    if base64.b64encode(root).decode("ascii") != root_text or len(root) != ROOT_SIZE:
        raise VerificationError(f"checkpoint: root is not canonical base64 of {ROOT_SIZE} bytes")
    return Checkpoint(origin, size, root)


def _verify_note_signatures(
    text: str, signatures: list[tuple[str, bytes]], name: str, public_key: bytes
) -> None:
    """Require one valid signature by ``(name, public_key)``; ignore other keys' lines.

    Every line with our name and key id must verify, or the note is rejected.  The same
    key's signature repeated is accepted (each copy is verified): a repeat adds no trust and
    hides nothing, and Go's sumdb/note accepts it too (it drops the repeat).
    """
    expected_id = note_key_id(name, public_key)
    message = text.encode("utf-8")
    found = False
    for sig_name, blob in signatures:
        if sig_name != name or blob[:NOTE_KEY_ID_SIZE] != expected_id:
            continue
        signature = blob[NOTE_KEY_ID_SIZE:]
        if len(signature) != SIGNATURE_SIZE:
            raise VerificationError(
                f"note: signature by {name}+{expected_id.hex()} is {len(signature)} bytes, "
                f"expected {SIGNATURE_SIZE}"
            )
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        except InvalidSignature:
            raise VerificationError(
                f"note: signature by {name}+{expected_id.hex()} does not verify"
            ) from None
        found = True
    if not found:
        raise VerificationError(f"note: no signature by {name}+{expected_id.hex()}")


def parse_unverified(note: bytes) -> tuple[Checkpoint, list[tuple[str, bytes]]]:
    """Parse a checkpoint note WITHOUT verifying any signature (the witness and the log's
    cosigner read a note's origin and size before they verify it).  Returns the checkpoint
    and ``(name, key id || signature)`` for each signature line.

    Raises:
        VerificationError: the note or its checkpoint body is malformed.
    """
    return _parse_unverified(note)


def key_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid signed-note key name, or None if it is."""
    return _name_problem(name)


__all__ = [
    "ALG_ED25519",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "NOTE_KEY_ID_SIZE",
    "ROOT_SIZE",
    "Checkpoint",
    "key_name_problem",
    "note_key_id",
    "parse_unverified",
    "sign_checkpoint",
    "verify_checkpoint",
    "vkey",
]
