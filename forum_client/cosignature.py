"""Witness cosignatures (C2SP ``tlog-cosignature``, Ed25519 ``cosignature/v1``) and the
quorum a member requires before it accepts a checkpoint.

A witness that checked a checkpoint is consistent with everything it saw before adds one
signature line to the note.  The line is a signed-note signature whose key id is
``SHA-256(name || "\\n" || 0x04 || public key)[:4]`` and whose signature is the 8-byte
big-endian POSIX timestamp followed by an Ed25519 signature over::

    cosignature/v1
    time <timestamp>
    <the whole checkpoint body, final newline included>

Everything here is pure (bytes in, verdict out; the time is the ``now=`` argument)::

    >>> from forum_client.envelope import SigningKey
    >>> from forum_client.checkpoint import Checkpoint
    >>> key = SigningKey.generate()
    >>> w = Witness("witness.example/w1", key.public_bytes)
    >>> body = Checkpoint("forum.example/log", 7, bytes(32)).body()
    >>> line = cosign(body, w.name, key, timestamp=1_700_000_000)
    >>> policy = WitnessPolicy((w,), quorum=1)
    >>> note = body + b"\\n" + line.encode()
    >>> verify_quorum(note, policy, now=1_700_000_060, max_age=3600).agreed
    ('witness.example/w1',)

:func:`require_quorum` raises :class:`QuorumError` (a VerificationError) naming every witness
that did not count and why; :func:`verify_quorum` returns the same facts as a
:class:`QuorumVerdict` without raising.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .checkpoint import NOTE_KEY_ID_SIZE, _name_problem, _split_note
from .envelope import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, check_public_key
from .errors import InvalidInputError, VerificationError

ALG_COSIGNATURE_V1 = 0x04
"""Signed-note signature type byte of timestamped Ed25519 cosignatures (``cosignature/v1``)."""
COSIGNATURE_HEADER = b"cosignature/v1\n"
"""The domain-separation line that starts every signed message."""
TIMESTAMP_SIZE = 8
"""Bytes of the big-endian timestamp in front of the Ed25519 signature."""
MAX_TIMESTAMP = 2**63 - 1
"""The largest timestamp a cosignature may carry (the spec's limit)."""
MAX_WITNESSES = 16
"""Witnesses in one policy, at most (signed-note verifiers must accept 16 signatures)."""


@dataclass(frozen=True)
class Witness:
    """One cosigner a policy trusts: its key ``name`` and Ed25519 ``public_key``, and where
    the log reaches it (``url``, the submission prefix; empty when unknown)."""

    name: str
    public_key: bytes
    url: str = ""

    def __post_init__(self) -> None:
        problem = _name_problem(self.name)
        if problem is not None:
            raise InvalidInputError.field("witness.name", problem)
        check_public_key(self.public_key)

    @property
    def key_id(self) -> bytes:
        return cosigner_key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        return cosigner_vkey(self.name, self.public_key)


@dataclass(frozen=True)
class WitnessPolicy:
    """The witnesses a checkpoint needs and how many of them (``quorum``) must agree.

    An empty policy (no witnesses, quorum 0) accepts every log-signed checkpoint: the state
    of a forum that has not named witnesses yet.
    """

    witnesses: tuple[Witness, ...] = ()
    quorum: int = 0
    version: int = 0  # the witness-set entry that stated it (0: none yet)

    def __post_init__(self) -> None:
        if len(self.witnesses) > MAX_WITNESSES:
            raise InvalidInputError.field("witnesses", f"more than {MAX_WITNESSES}")
        names = [w.name for w in self.witnesses]
        if len(set(names)) != len(names):
            raise InvalidInputError.field("witnesses", "two witnesses share a name")
        keys = [w.public_key for w in self.witnesses]
        if len(set(keys)) != len(keys):
            raise InvalidInputError.field("witnesses", "two witnesses share a public key")
        if isinstance(self.quorum, bool) or not isinstance(self.quorum, int):
            raise InvalidInputError.field("quorum", "must be an int")
        if self.witnesses and not 1 <= self.quorum <= len(self.witnesses):
            raise InvalidInputError.field(
                "quorum", f"must be 1..{len(self.witnesses)} (the number of witnesses)"
            )
        if not self.witnesses and self.quorum != 0:
            raise InvalidInputError.field("quorum", "must be 0 when there are no witnesses")

    @property
    def enforced(self) -> bool:
        return self.quorum > 0


@dataclass(frozen=True)
class QuorumVerdict:
    """What the cosignatures on one note showed: the witnesses whose cosignature verified
    (``agreed``, with their timestamps) and why each other witness does not count."""

    quorum: int
    agreed: tuple[str, ...] = ()
    timestamps: dict[str, int] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return len(self.agreed) >= self.quorum

    def explain(self) -> str:
        text = f"{len(self.agreed)} of the required {self.quorum} witness cosignatures"
        if self.agreed:
            text += "; agreed: " + ", ".join(self.agreed)
        if self.missing:
            text += "; not counted: " + "; ".join(f"{n}: {why}" for n, why in self.missing.items())
        return text


class QuorumError(VerificationError):
    """A checkpoint without a quorum of valid, fresh witness cosignatures."""

    def __init__(self, verdict: QuorumVerdict) -> None:
        super().__init__(f"checkpoint not witnessed: {verdict.explain()}")
        self.verdict = verdict


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """``SHA-256(name || "\\n" || 0x04 || public_key)[:4]`` (c2sp.org/tlog-cosignature).

    Raises:
        InvalidInputError: ``name`` is not a valid key name or the key is not 32 bytes.
    """
    problem = _name_problem(name)
    if problem is not None:
        raise InvalidInputError.field("name", problem)
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidInputError.field("public_key", f"must be {PUBLIC_KEY_SIZE} bytes")
    data = name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key
    return hashlib.sha256(data).digest()[:NOTE_KEY_ID_SIZE]


def cosigner_vkey(name: str, public_key: bytes) -> str:
    """The verifier key ``name+hex(key id)+base64(0x04 || public_key)``."""
    material = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + public_key).decode("ascii")
    return f"{name}+{cosigner_key_id(name, public_key).hex()}+{material}"


def parse_vkey(text: str) -> tuple[str, int, bytes]:
    """Split a signed-note verifier key into ``(name, signature type, public key)``, checking
    that its key id is the one the name and key derive (types 0x01 and 0x04, Ed25519).

    Raises:
        InvalidInputError: anything wrong with the string, naming the part.
    """
    parts = text.strip().split("+", 2)  # base64 may itself hold '+'; names never do
    if len(parts) != 3:
        raise InvalidInputError.field("vkey", "must be name+keyid+base64(type||key)")
    name, key_hex, material = parts
    problem = _name_problem(name)
    if problem is not None:
        raise InvalidInputError.field("vkey", f"name {problem}")
    if len(key_hex) != 2 * NOTE_KEY_ID_SIZE:
        raise InvalidInputError.field("vkey", "key id must be 8 hex digits")
    try:
        key_id = bytes.fromhex(key_hex)
        raw = base64.b64decode(material, validate=True)
    except (ValueError, binascii.Error):
        raise InvalidInputError.field("vkey", "key id is not hex or key is not base64") from None
    if len(raw) != 1 + PUBLIC_KEY_SIZE or raw[0] not in (0x01, ALG_COSIGNATURE_V1):
        raise InvalidInputError.field(
            "vkey", "key must be type 0x01 or 0x04 followed by a 32-byte Ed25519 key"
        )
    alg, public_key = raw[0], raw[1:]
    check_public_key(public_key)
    data = name.encode("utf-8") + b"\n" + bytes([alg]) + public_key
    if hashlib.sha256(data).digest()[:NOTE_KEY_ID_SIZE] != key_id:
        raise InvalidInputError.field("vkey", "key id does not match the name and key")
    return name, alg, public_key


def witness_from_vkey(text: str, url: str = "") -> Witness:
    """A :class:`Witness` from its ``cosignature/v1`` verifier key (type 0x04).

    Raises:
        InvalidInputError: not a valid vkey, or not a cosignature/v1 key.
    """
    name, alg, public_key = parse_vkey(text)
    if alg != ALG_COSIGNATURE_V1:
        raise InvalidInputError.field("vkey", "not a cosignature/v1 key (type 0x04)")
    return Witness(name, public_key, url)


def signed_message(body: bytes, timestamp: int) -> bytes:
    """The bytes a ``cosignature/v1`` signs: header line, time line, checkpoint body."""
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InvalidInputError.field("timestamp", f"must be in 0..{MAX_TIMESTAMP}")
    return COSIGNATURE_HEADER + b"time %d\n" % timestamp + body


def cosign(body: bytes, name: str, key: SigningKey, *, timestamp: int) -> str:
    """One signature line (``— name base64(key id || timestamp || sig)\\n``) cosigning
    the checkpoint ``body`` at ``timestamp``.

    Raises:
        InvalidInputError: a bad name or timestamp.
    """
    message = signed_message(body, timestamp)
    blob = (
        cosigner_key_id(name, key.public_bytes)
        + struct.pack(">Q", timestamp)
        + key.sign_raw(message)
    )
    return f"\u2014 {name} {base64.b64encode(blob).decode('ascii')}\n"


def verify_quorum(
    note: bytes, policy: WitnessPolicy, *, now: int, max_age: int | None, skew: int = 0
) -> QuorumVerdict:
    """Count the valid cosignatures on ``note`` by witnesses of ``policy``.

    A witness counts when exactly one line carries its name and key id, the line is
    ``key id || 8-byte timestamp || 64-byte signature``, the signature verifies over
    ``cosignature/v1`` + ``time T`` + the note text, and ``T`` is not after ``now`` (plus
    ``skew`` seconds of tolerated clock difference) nor, with ``max_age`` seconds, before
    ``now - max_age``.  Lines by other keys are ignored.

    Raises:
        VerificationError: the note itself is malformed (see checkpoint.py).
    """
    text, signatures = _split_note(note)
    message_body = text.encode("utf-8")
    by_id = {(w.name, w.key_id): w for w in policy.witnesses}
    seen: dict[str, list[bytes]] = {}
    for sig_name, blob in signatures:
        witness = by_id.get((sig_name, blob[:NOTE_KEY_ID_SIZE]))
        if witness is not None:
            seen.setdefault(witness.name, []).append(blob[NOTE_KEY_ID_SIZE:])
    agreed: list[str] = []
    timestamps: dict[str, int] = {}
    missing: dict[str, str] = {}
    for witness in policy.witnesses:
        # Every line by a known key is verified; repeats count once (the newest time).
        checked = [
            _check_one(witness, b, message_body, now, max_age, skew)
            for b in seen.get(witness.name, [])
        ]
        problems = [problem for problem, _ in checked if problem is not None]
        if not checked:
            missing[witness.name] = "no cosignature"
        elif problems:
            missing[witness.name] = problems[0]
        else:
            agreed.append(witness.name)
            timestamps[witness.name] = max(stamp for _, stamp in checked)
    return QuorumVerdict(policy.quorum, tuple(agreed), timestamps, missing)


def require_quorum(
    note: bytes, policy: WitnessPolicy, *, now: int, max_age: int | None, skew: int = 0
) -> QuorumVerdict:
    """:func:`verify_quorum`, raising :class:`QuorumError` when the quorum is not met."""
    verdict = verify_quorum(note, policy, now=now, max_age=max_age, skew=skew)
    if not verdict.ok:
        raise QuorumError(verdict)
    return verdict


def _check_one(
    witness: Witness, blob: bytes, body: bytes, now: int, max_age: int | None, skew: int
) -> tuple[str | None, int]:
    if len(blob) != TIMESTAMP_SIZE + SIGNATURE_SIZE:
        return f"cosignature is {len(blob)} bytes, expected {TIMESTAMP_SIZE + SIGNATURE_SIZE}", 0
    (stamp,) = struct.unpack(">Q", blob[:TIMESTAMP_SIZE])
    if stamp > MAX_TIMESTAMP:
        return "timestamp above 2^63-1", 0
    try:
        Ed25519PublicKey.from_public_bytes(witness.public_key).verify(
            blob[TIMESTAMP_SIZE:], signed_message(body, stamp)
        )
    except InvalidSignature:
        return "cosignature does not verify", 0
    if stamp > now + skew:
        return f"timestamp {stamp} is {stamp - now} s in the future", 0
    if max_age is not None and stamp < now - max_age:
        return f"timestamp {stamp} is {now - stamp} s old (freshness limit {max_age} s)", 0
    return None, stamp


def cosignature_lines(response: bytes, witness: Witness) -> list[str]:
    """The lines of a witness's ``add-checkpoint`` answer that carry ``witness``'s name and
    key id (others are ignored, as the spec says).  Syntax only: verify with
    :func:`verify_quorum` after adding them to the note.

    Raises:
        VerificationError: the answer is not UTF-8 signature lines.
    """
    try:
        text = response.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError("witness answer: not UTF-8") from None
    if not text.endswith("\n"):
        raise VerificationError("witness answer: does not end in a newline")
    kept = []
    for line in text[:-1].split("\n"):
        fields = line.split(" ")
        if len(fields) != 3 or fields[0] != "\u2014":
            raise VerificationError("witness answer: a line is not '— name signature'")
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except (ValueError, binascii.Error):
            raise VerificationError("witness answer: a signature is not base64") from None
        if fields[1] == witness.name and blob[:NOTE_KEY_ID_SIZE] == witness.key_id:
            kept.append(line + "\n")
    return kept


def add_signature_lines(note: bytes, lines: Sequence[str]) -> bytes:
    """``note`` with ``lines`` appended after its signatures, skipping ones already there."""
    have = set(note.decode("utf-8").split("\n"))
    extra = "".join(line for line in lines if line.rstrip("\n") not in have)
    return note + extra.encode("utf-8")


__all__ = [
    "ALG_COSIGNATURE_V1",
    "COSIGNATURE_HEADER",
    "MAX_TIMESTAMP",
    "MAX_WITNESSES",
    "QuorumError",
    "QuorumVerdict",
    "Witness",
    "WitnessPolicy",
    "add_signature_lines",
    "cosign",
    "cosignature_lines",
    "cosigner_key_id",
    "cosigner_vkey",
    "parse_vkey",
    "require_quorum",
    "signed_message",
    "verify_quorum",
    "witness_from_vkey",
]
