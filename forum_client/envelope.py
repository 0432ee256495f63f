"""Signed log entries: DSSE PAE signing, key ids, weak-key rejection, proof of possession.

Every log entry is an :class:`Envelope`: a payload type, the exact body bytes, the signer's key
id (SHA-256 of the raw Ed25519 public key) and an Ed25519 signature over
``pae(payload_type, body)``.  An envelope may carry several signatures (DSSE allows it): board
entries need a threshold of the operator keys, counted by :func:`verify_signers`.
Verification is pure and fails with an exception, never a boolean.

Example::

    >>> key = SigningKey.generate()
    >>> env = key.sign("application/vnd.forum.submission.v1", b"serialized protobuf")
    >>> env.verify(key.public_bytes)                     # returns None, or raises
    >>> Envelope.from_leaf_bytes(env.leaf_bytes()) == env
    True
    >>> pae("http://example.com/HelloWorld", b"hello world")
    b'DSSEv1 29 http://example.com/HelloWorld 11 hello world'
    >>> sig = key.prove_possession("forum.example", "member-1")
    >>> verify_possession("forum.example", "member-1", key.public_bytes, sig)
    >>> check_public_key(bytes.fromhex("01" + "00" * 31))  # the identity point
    Traceback (most recent call last):
    ...
    forum_client.errors.WeakKeyError: signing_key: small-order point (order divides 8)

Raises: :class:`~forum_client.errors.VerificationError` for signatures that do not verify,
:class:`~forum_client.errors.WeakKeyError` for unacceptable public keys and
:class:`~forum_client.errors.InvalidInputError` for malformed input.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import itertools
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from forum_client.errors import InvalidInputError, VerificationError, WeakKeyError
from forum_client.files import FileTooLargeError
from forum_client.files import read_bounded as _read_bounded
from forum_client.files import write_new_file as _write_new_file

PUBLIC_KEY_SIZE = 32
"""Bytes in a raw Ed25519 public key."""
SIGNATURE_SIZE = 64
"""Bytes in an Ed25519 signature."""
KEY_ID_SIZE = 32
"""Bytes in a key id (SHA-256 of the raw public key)."""
LEAF_PREFIX = b"forum-leaf-v1\x00"
"""Domain separator that starts the canonical leaf encoding of a one-signature entry."""
MULTI_LEAF_PREFIX = b"forum-leaf-v2\x00"
"""Domain separator that starts the canonical leaf encoding of a multi-signature entry."""
MAX_SIGNATURES = 255
"""Most signatures one envelope may carry (the leaf encodes the count in one byte)."""
POP_PAYLOAD_TYPE = "application/vnd.forum.key-possession.v1"
"""Payload type of the proof-of-possession message."""
MAX_KEY_FILE_BYTES = 64 * 1024
"""Key files larger than this are rejected before parsing."""

_PUB_FILE_PREFIX = "ed25519 "
_POP_PREFIX = "possession "

# --- Edwards25519 arithmetic (public data only; used for key checks, never for signing) -------

_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_Point = tuple[int, int]
_IDENTITY: _Point = (0, 1)


def _decompress(raw: bytes) -> _Point:
    """Decode a 32-byte point encoding strictly (RFC 8032 5.1.3, canonical only).

    Raises ``ValueError`` naming the reason the encoding is rejected.
    """
    value = int.from_bytes(raw, "little")
    sign = value >> 255
    y = value & ((1 << 255) - 1)
    if y >= _P:
        raise ValueError("non-canonical encoding (y >= 2^255-19)")
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    # Candidate square root of u/v, RFC 8032: x = u v^3 (u v^7)^((p-5)/8).
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    vx2 = (v * x * x) % _P
    if vx2 == u:
        pass
    elif vx2 == (-u) % _P:
        x = (x * _SQRT_M1) % _P
    else:
        raise ValueError("not a point on the curve (no square root for x)")
    if x == 0 and sign == 1:
        raise ValueError("non-canonical encoding (x = 0 with the sign bit set)")
    if x & 1 != sign:
        x = _P - x
    return (x, y)


def _add(a: _Point, b: _Point) -> _Point:
    """Affine twisted-Edwards addition (a = -1); complete on edwards25519."""
    x1, y1 = a
    x2, y2 = b
    t = (_D * x1 * x2 * y1 * y2) % _P
    x3 = ((x1 * y2 + x2 * y1) * pow(1 + t, _P - 2, _P)) % _P
    y3 = ((y1 * y2 + x1 * x2) * pow(1 - t, _P - 2, _P)) % _P
    return (x3, y3)


@functools.lru_cache(maxsize=4096)
def _public_key_problem(raw: bytes) -> str | None:
    """The reason ``raw`` is not an acceptable public key, or ``None`` if it is."""
    if len(raw) != PUBLIC_KEY_SIZE:
        return f"must be {PUBLIC_KEY_SIZE} bytes, got {len(raw)}"
    try:
        point = _decompress(raw)
    except ValueError as exc:
        return str(exc)
    for _ in range(3):
        point = _add(point, point)
    if point == _IDENTITY:
        return "small-order point (order divides 8)"
    return None


def check_public_key(raw: bytes) -> None:
    """Accept only a 32-byte, canonically encoded Ed25519 point that is not of small order.

    ``cryptography`` (OpenSSL) accepts signatures under small-order keys that anyone can forge,
    so every key taken from outside must pass this check first.

    Raises:
        WeakKeyError: wrong length, non-canonical encoding, not on the curve, or small order.
    """
    if not isinstance(raw, bytes):
        raise WeakKeyError.field("signing_key", "must be bytes")
    problem = _public_key_problem(raw)
    if problem is not None:
        raise WeakKeyError.field("signing_key", problem)


# --- encodings ----------------------------------------------------------------------------------


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``.

    Lengths are byte lengths in ASCII decimal; the type is encoded as UTF-8.

    Raises:
        InvalidInputError: the payload type is not encodable as UTF-8.
    """
    type_bytes = _encode_type(payload_type)
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(body), body)


def key_id(public_key: bytes) -> bytes:
    """The 32-byte key id of a raw Ed25519 public key: SHA-256 of its 32 bytes.

    Raises:
        InvalidInputError: ``public_key`` is not 32 bytes.
    """
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidInputError.field(
            "public_key", f"must be {PUBLIC_KEY_SIZE} bytes, got {len(public_key)}"
        )
    return hashlib.sha256(public_key).digest()


def _encode_type(payload_type: str) -> bytes:
    try:
        return payload_type.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError.field("payload_type", "not encodable as UTF-8") from exc


def _verify_raw(public_key: bytes, signature: bytes, message: bytes, what: str) -> None:
    """Ed25519-verify ``signature`` (already length-checked) or raise VerificationError."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        raise VerificationError(f"{what}: signature does not verify") from None


# --- envelopes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """One signed log entry, exactly as stored in a leaf.

    A DSSE envelope may carry several signatures over the same ``pae(payload_type, body)``:
    ``key_id``/``signature`` is the one with the lowest key id and ``cosignatures`` the others,
    in strictly ascending key-id order (so one set of signatures has one encoding, and a key
    can never count twice).  A one-signature envelope has no cosignatures and keeps the v1
    leaf encoding byte for byte, so existing logs verify unchanged.

    Construction checks only that the fields fit the leaf encoding; call :meth:`verify` (one
    key) or :func:`verify_signers` (a threshold of a key set) before trusting anything in it.
    """

    payload_type: str
    body: bytes
    key_id: bytes
    signature: bytes
    cosignatures: tuple[tuple[bytes, bytes], ...] = ()

    def __post_init__(self) -> None:
        if (  # the common entry, one signature (a sync builds one per entry it receives)
            self.cosignatures == ()
            and type(self.payload_type) is str
            and type(self.body) is bytes
            and type(self.key_id) is bytes
            and type(self.signature) is bytes
            and len(self.payload_type) <= 0x3FFF  # at most 4 UTF-8 bytes a character
            and len(self.body) <= 0xFFFFFFFF
            and len(self.key_id) <= 0xFF
            and len(self.signature) <= 0xFF
        ):
            _encode_type(self.payload_type)  # raises for text UTF-8 cannot encode
            return
        self._check_fields()

    def _check_fields(self) -> None:
        if not isinstance(self.payload_type, str):
            raise InvalidInputError.field("payload_type", "must be str")
        for name in ("body", "key_id", "signature"):
            if not isinstance(getattr(self, name), bytes):
                raise InvalidInputError.field(name, "must be bytes")
        if len(_encode_type(self.payload_type)) > 0xFFFF:
            raise InvalidInputError.field("payload_type", "longer than 65535 bytes")
        if len(self.body) > 0xFFFFFFFF:
            raise InvalidInputError.field("body", "longer than 2^32-1 bytes")
        if not isinstance(self.cosignatures, tuple):
            raise InvalidInputError.field("cosignatures", "must be a tuple")
        if len(self.cosignatures) + 1 > MAX_SIGNATURES:
            raise InvalidInputError.field("signatures", f"more than {MAX_SIGNATURES}")
        previous = b""
        for i, pair in enumerate(self.signatures):
            where = "key_id" if i == 0 else f"cosignatures[{i - 1}]"
            if (
                not isinstance(pair, tuple)
                or len(pair) != 2
                or not all(isinstance(x, bytes) for x in pair)
            ):
                raise InvalidInputError.field(where, "must be a (key_id, signature) pair of bytes")
            kid, sig = pair
            if len(kid) > 0xFF:
                raise InvalidInputError.field(where, "longer than 255 bytes")
            if len(sig) > 0xFF:
                field = "signature" if i == 0 else where
                raise InvalidInputError.field(field, "longer than 255 bytes")
            if i and kid == previous:
                raise InvalidInputError.field(where, f"duplicated signature by key {kid.hex()}")
            if i and kid < previous:
                raise InvalidInputError.field(
                    where, "signatures must be in ascending key-id order (use with_signatures)"
                )
            previous = kid

    @property
    def signatures(self) -> tuple[tuple[bytes, bytes], ...]:
        """Every ``(key_id, signature)`` pair, in ascending key-id order."""
        return ((self.key_id, self.signature), *self.cosignatures)

    @property
    def signer_ids(self) -> tuple[bytes, ...]:
        """The key ids of every signature (unverified)."""
        return tuple(kid for kid, _ in self.signatures)

    @classmethod
    def with_signatures(
        cls, payload_type: str, body: bytes, signatures: Sequence[tuple[bytes, bytes]]
    ) -> Envelope:
        """An envelope carrying ``signatures`` in canonical order.

        Raises:
            InvalidInputError: no signatures, two by the same key id, or more than 255.
        """
        ordered = sorted(signatures, key=lambda pair: pair[0])
        if not ordered:
            raise InvalidInputError.field("signatures", "an envelope needs a signature")
        for a, b in itertools.pairwise(ordered):
            if a[0] == b[0]:
                raise InvalidInputError.field(
                    "signatures", f"duplicated signature by key {a[0].hex()}"
                )
        first, *rest = ordered
        return cls(payload_type, body, first[0], first[1], tuple(rest))

    def cosigned(self, key: SigningKey) -> Envelope:
        """This envelope with ``key``'s signature added.

        Raises:
            InvalidInputError: ``key`` has signed it already.
        """
        if key.key_id in self.signer_ids:
            raise InvalidInputError.field(
                "signatures", f"key {key.key_id.hex()} has signed this entry already"
            )
        signature = key.sign_raw(pae(self.payload_type, self.body))
        return Envelope.with_signatures(
            self.payload_type, self.body, [*self.signatures, (key.key_id, signature)]
        )

    def leaf_bytes(self) -> bytes:
        """The canonical leaf encoding (what the Merkle leaf hash covers).  One signature::

            "forum-leaf-v1\\0" || u16be(len(type)) || type || u32be(len(body)) || body
                               || u8(len(key_id)) || key_id || u8(len(sig)) || sig

        Two or more (ascending key ids, no key twice)::

            "forum-leaf-v2\\0" || u16be(len(type)) || type || u32be(len(body)) || body
                               || u8(n) || n * (u8(len(key_id)) || key_id || u8(len(sig)) || sig)

        An envelope read by :meth:`from_leaf_bytes` answers with the bytes it was read from:
        that reader accepts only this encoding, so they are the same bytes (a sync reads the
        leaves a forum serves and hashes them without encoding them again).
        """
        kept: bytes | None = self.__dict__.get("_leaf")
        if kept is not None:
            return kept
        type_bytes = _encode_type(self.payload_type)
        head = (
            struct.pack(">H", len(type_bytes)),
            type_bytes,
            struct.pack(">I", len(self.body)),
            self.body,
        )
        if not self.cosignatures:
            return b"".join(
                (
                    LEAF_PREFIX,
                    *head,
                    struct.pack(">B", len(self.key_id)),
                    self.key_id,
                    struct.pack(">B", len(self.signature)),
                    self.signature,
                )
            )
        parts = [MULTI_LEAF_PREFIX, *head, struct.pack(">B", len(self.signatures))]
        for kid, sig in self.signatures:
            parts += (struct.pack(">B", len(kid)), kid, struct.pack(">B", len(sig)), sig)
        return b"".join(parts)

    @classmethod
    def from_leaf_bytes(cls, data: bytes) -> Envelope:
        """Parse a canonical leaf encoding strictly (no short or trailing data; a v2 leaf
        carries at least two signatures, in ascending key-id order).

        Raises:
            InvalidInputError: the data is not exactly one canonical leaf encoding.
        """
        data = bytes(data)
        single = _single_signature_fields(data)
        # the common leaf, read in one pass (a server serves many, a sync reads many)
        envelope = cls(*single) if single is not None else cls._read_leaf(data)
        envelope.__dict__["_leaf"] = data  # its leaf_bytes(): canonical, so the same bytes
        return envelope

    @classmethod
    def _read_leaf(cls, data: bytes) -> Envelope:
        """:meth:`from_leaf_bytes` field by field, saying what is wrong."""
        reader = _Reader(data)
        prefix = reader.take(len(LEAF_PREFIX), "prefix")
        if prefix not in (LEAF_PREFIX, MULTI_LEAF_PREFIX):
            raise InvalidInputError.field(
                "leaf", "does not start with the forum-leaf-v1 or forum-leaf-v2 prefix"
            )
        type_bytes = reader.take(reader.uint(">H", "payload_type length"), "payload_type")
        body = reader.take(reader.uint(">I", "body length"), "body")
        count = 1 if prefix == LEAF_PREFIX else reader.uint(">B", "signature count")
        if count < 2 and prefix == MULTI_LEAF_PREFIX:
            raise InvalidInputError.field(
                "leaf", f"a forum-leaf-v2 leaf carries 2 or more signatures, not {count}"
            )
        pairs = []
        for _ in range(count):
            kid = reader.take(reader.uint(">B", "key_id length"), "key_id")
            signature = reader.take(reader.uint(">B", "signature length"), "signature")
            pairs.append((kid, signature))
        if reader.remaining():
            raise InvalidInputError.field("leaf", f"{reader.remaining()} bytes of trailing data")
        try:
            payload_type = type_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError.field("payload_type", "not valid UTF-8") from exc
        (kid, signature), *rest = pairs
        return cls(payload_type, body, kid, signature, tuple(rest))

    def verify(self, public_key: bytes) -> None:
        """Check that ``public_key`` signed exactly this payload type and body (its signature
        is found by key id among the envelope's signatures).

        Raises:
            WeakKeyError: ``public_key`` is not an acceptable Ed25519 key.
            VerificationError: no signature carries the key's id, the signature is not 64
                bytes, or it does not verify over ``pae(payload_type, body)``.
        """
        check_public_key(public_key)
        wanted = key_id(public_key)
        for kid, signature in self.signatures:
            if kid == wanted:
                _verify_signature(public_key, signature, self.payload_type, self.body)
                return
        raise VerificationError(
            f"envelope key_id {self.key_id.hex()} does not match the public key "
            f"(key_id {wanted.hex()})"
            if not self.cosignatures
            else f"envelope carries no signature by key {wanted.hex()}"
        )


def _single_signature_fields(data: bytes) -> tuple[str, bytes, bytes, bytes] | None:
    """``(payload type, body, key id, signature)`` of a well-formed forum-leaf-v1 leaf, or
    None for anything else (then :meth:`Envelope.from_leaf_bytes` reads it field by field
    and says what is wrong)."""
    if not data.startswith(LEAF_PREFIX):
        return None
    n = len(data)
    p = len(LEAF_PREFIX) + 2
    if p > n:
        return None
    type_end = p + int.from_bytes(data[p - 2 : p], "big")
    body_start = type_end + 4
    if body_start > n:
        return None
    body_end = body_start + int.from_bytes(data[type_end:body_start], "big")
    if body_end >= n:
        return None
    kid_end = body_end + 1 + data[body_end]
    if kid_end >= n or kid_end + 1 + data[kid_end] != n:
        return None
    try:
        payload_type = data[p:type_end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return (
        payload_type,
        data[body_start:body_end],
        data[body_end + 1 : kid_end],
        data[kid_end + 1 :],
    )


def _verify_signature(public_key: bytes, signature: bytes, payload_type: str, body: bytes) -> None:
    if len(signature) != SIGNATURE_SIZE:
        raise VerificationError(
            f"envelope signature must be {SIGNATURE_SIZE} bytes, got {len(signature)}"
        )
    _verify_raw(public_key, signature, pae(payload_type, body), f"envelope ({payload_type})")


def verify_signers(envelope: Envelope, allowed: Mapping[bytes, bytes]) -> frozenset[bytes]:
    """Verify every signature of ``envelope`` against ``allowed`` (key id -> public key) and
    return the key ids that signed.  Thresholds are the caller's to count.

    Raises:
        VerificationError: a signature by a key not in ``allowed``, or one that does not
            verify.  (Duplicates cannot occur: :class:`Envelope` refuses them.)
    """
    for kid, signature in envelope.signatures:
        public_key = allowed.get(kid)
        if public_key is None:
            raise VerificationError(f"signed by key {kid.hex()[:16]}, which is not in the set")
        try:
            _verify_signature(public_key, signature, envelope.payload_type, envelope.body)
        except VerificationError as exc:
            raise VerificationError(f"signature by key {kid.hex()[:16]}: {exc}") from None
    return frozenset(envelope.signer_ids)


class _Reader:
    """Bounds-checked cursor over bytes; every short read is an InvalidInputError."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.remaining():
            raise InvalidInputError.field(
                "leaf", f"truncated {what}: need {n} bytes, have {self.remaining()}"
            )
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def uint(self, fmt: str, what: str) -> int:
        raw = self.take(struct.calcsize(fmt), what)
        value: int = struct.unpack(fmt, raw)[0]
        return value


# --- proof of possession ------------------------------------------------------------------------


def pop_message(origin: str, member_id: str, public_key: bytes) -> bytes:
    """The message a new key signs to prove possession for ``member_id`` on forum ``origin``.

    ``pae(POP_PAYLOAD_TYPE, origin || "\\n" || member_id || "\\n" || public_key)``.

    Raises:
        InvalidInputError: origin or member_id is empty or contains a newline, or the public key
            is not 32 bytes.
    """
    parts = []
    for name, value in (("origin", origin), ("member_id", member_id)):
        if not value or "\n" in value:
            raise InvalidInputError.field(name, "must be non-empty and contain no newline")
        try:
            parts.append(value.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InvalidInputError.field(name, "not encodable as UTF-8") from exc
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidInputError.field(
            "public_key", f"must be {PUBLIC_KEY_SIZE} bytes, got {len(public_key)}"
        )
    return pae(POP_PAYLOAD_TYPE, parts[0] + b"\n" + parts[1] + b"\n" + public_key)


def verify_possession(origin: str, member_id: str, public_key: bytes, signature: bytes) -> None:
    """Check a proof of possession made by :meth:`SigningKey.prove_possession`.

    Raises:
        WeakKeyError: the public key is not acceptable (checked first).
        InvalidInputError: origin or member_id is malformed.
        VerificationError: the signature is not 64 bytes or does not verify.
    """
    check_public_key(public_key)
    message = pop_message(origin, member_id, public_key)
    if len(signature) != SIGNATURE_SIZE:
        raise VerificationError(
            f"proof of possession must be {SIGNATURE_SIZE} bytes, got {len(signature)}"
        )
    _verify_raw(public_key, signature, message, f"proof of possession for {member_id!r}")


# --- signing keys and key files -----------------------------------------------------------------

StrPath = str | os.PathLike[str]


class SigningKey:
    """An Ed25519 private key that signs envelopes, raw messages and proofs of possession."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise InvalidInputError.field("private_key", "must be an Ed25519PrivateKey")
        self._key = private_key
        self._public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id.hex()})"

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key with this 32-byte RFC 8032 private seed (for test vectors and imports).

        Raises:
            InvalidInputError: the seed is not 32 bytes.
        """
        if len(seed) != 32:
            raise InvalidInputError.field("seed", f"must be 32 bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return self._public

    @property
    def key_id(self) -> bytes:
        """SHA-256 of :attr:`public_bytes`."""
        return key_id(self._public)

    def sign_raw(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature over ``message`` exactly as given."""
        return self._key.sign(message)

    def sign(self, payload_type: str, body: bytes) -> Envelope:
        """Sign ``pae(payload_type, body)`` and wrap it in an :class:`Envelope`.

        Raises:
            InvalidInputError: the payload type or body does not fit the leaf encoding.
        """
        message = pae(payload_type, body)
        return Envelope(payload_type, body, self.key_id, self.sign_raw(message))

    def prove_possession(self, origin: str, member_id: str) -> bytes:
        """Sign :func:`pop_message` for this key (checked by :func:`verify_possession`)."""
        return self.sign_raw(pop_message(origin, member_id, self._public))

    def to_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        """Load an unencrypted PKCS#8 PEM Ed25519 private key.

        Raises:
            InvalidInputError: not a PEM private key, encrypted, or not Ed25519.
        """
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise InvalidInputError.field(
                "private_key", f"not an unencrypted PEM private key ({exc})"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidInputError.field("private_key", "not an Ed25519 key")
        return cls(key)

    def save(self, path: StrPath, possession: Sequence[tuple[str, str]] = ()) -> None:
        """Write the private key to ``path`` (mode 0600) and the public key to ``path.pub``
        (mode 0644): a line ``ed25519 <base64>``, then one line
        ``possession <origin> <member_id> <base64 signature>`` for each (origin, member_id)
        in ``possession`` (the proof an operator needs to register the key).

        Each file appears complete or not at all, and an existing file is never overwritten.

        Raises:
            FileExistsError: ``path`` or ``path.pub`` already exists.
            OSError: the files cannot be written.
        """
        private_path = Path(path)
        public_path = _pub_path(path)
        for target in (private_path, public_path):
            if target.exists():
                raise FileExistsError(f"refusing to overwrite {target}")
        lines = [f"{_PUB_FILE_PREFIX}{base64.b64encode(self._public).decode()}\n"]
        for origin, member_id in possession:
            sig = base64.b64encode(self.prove_possession(origin, member_id)).decode()
            lines.append(f"{_POP_PREFIX}{_check_token(origin)} {_check_token(member_id)} {sig}\n")
        _write_new_file(private_path, self.to_pem(), 0o600)
        try:
            _write_new_file(public_path, "".join(lines).encode("utf-8"), 0o644)
        except BaseException:
            private_path.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: StrPath) -> SigningKey:
        """Load a private key written by :meth:`save`.

        Raises:
            InvalidInputError: the file is too large or not a PEM Ed25519 private key.
            OSError: the file cannot be read.
        """
        return cls.from_pem(_read_small(Path(path), "private_key_file"))


@dataclass(frozen=True)
class PublicKeyFile:
    """A ``.pub`` file: the key and its proofs of possession by (origin, member_id)."""

    public_key: bytes
    possession: dict[tuple[str, str], bytes]


def load_public_key(path: StrPath) -> bytes:
    """Read a ``.pub`` file written by :meth:`SigningKey.save` and return the checked raw key.

    Raises:
        InvalidInputError: the file is not an ``ed25519 <base64 of 32 bytes>`` line followed
            by ``possession`` lines.
        WeakKeyError: the key is not acceptable (see :func:`check_public_key`).
        OSError: the file cannot be read.
    """
    return load_public_key_file(path).public_key


def load_public_key_file(path: StrPath) -> PublicKeyFile:
    """Read a ``.pub`` file with its proofs of possession (not verified here: see
    :func:`verify_possession`)."""
    data = _read_small(Path(path), "public_key_file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError.field("public_key_file", "not UTF-8 text") from None
    if text.endswith("\n"):
        text = text[:-1]
    first, *rest = text.split("\n")
    if not first.startswith(_PUB_FILE_PREFIX):
        raise InvalidInputError.field(
            "public_key_file", "expected a first line of the form 'ed25519 <base64>'"
        )
    raw = _b64(first[len(_PUB_FILE_PREFIX) :], "key")
    check_public_key(raw)
    possession: dict[tuple[str, str], bytes] = {}
    for line in rest:
        parts = line.split(" ")
        if len(parts) != 4 or parts[0] + " " != _POP_PREFIX:
            raise InvalidInputError.field(
                "public_key_file",
                "expected lines of the form 'possession <origin> <member_id> <base64>'",
            )
        possession[(parts[1], parts[2])] = _b64(parts[3], "possession signature")
    return PublicKeyFile(raw, possession)


def _b64(encoded: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError.field("public_key_file", f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != encoded:
        raise InvalidInputError.field("public_key_file", f"{what} is not canonical base64")
    return raw


def _check_token(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise InvalidInputError.field("possession", f"{text!r} must be non-empty, no spaces")
    return text


def _pub_path(path: StrPath) -> Path:
    return Path(os.fspath(path) + ".pub")


def _read_small(path: Path, field: str) -> bytes:
    try:
        return _read_bounded(path, MAX_KEY_FILE_BYTES, "a key file")
    except FileTooLargeError as exc:
        raise InvalidInputError.field(field, str(exc)) from None


__all__ = [
    "KEY_ID_SIZE",
    "LEAF_PREFIX",
    "MAX_KEY_FILE_BYTES",
    "MAX_SIGNATURES",
    "MULTI_LEAF_PREFIX",
    "POP_PAYLOAD_TYPE",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "Envelope",
    "PublicKeyFile",
    "SigningKey",
    "check_public_key",
    "key_id",
    "load_public_key",
    "load_public_key_file",
    "pae",
    "pop_message",
    "verify_possession",
    "verify_signers",
]
