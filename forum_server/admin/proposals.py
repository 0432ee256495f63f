"""Board proposals: operator entries that board members sign apart, offline, on files.

A proposal is a JSON file holding one or more unsigned operator entries (their exact body
bytes, which never change again), the board in force when it was written, and an expiry.
Each board member adds a signature with their own key file; once a threshold of the board has
signed, the operator submits it and the forum appends the entries in order.

    >>> from forum_client.envelope import SigningKey
    >>> a, b = SigningKey.generate(), SigningKey.generate()
    >>> board = Board({a.key_id: a.public_bytes, b.key_id: b.public_bytes}, threshold=2)
    >>> h = e.Header("forum.test", "operator", b"", 7, 0, expires_unix_ms=10_000)
    >>> p = Proposal.create([e.Incident(h, "x", "Attack", True)], board, "open x", now_ms=0)
    >>> p.missing_signatures()
    2
    >>> p = p.signed(a, now_ms=1).signed(b, now_ms=2)
    >>> p.ready(now_ms=3)[0].signer_ids == tuple(sorted([a.key_id, b.key_id]))
    True

Everything that would make the forum refuse the proposal (a signer outside the board, a key
that signs twice, another forum's entries, an expired proposal) is refused here first, with
the same words, so nothing is sent that cannot be appended.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from forum_client import entries as e
from forum_client.envelope import Envelope, SigningKey, key_id, verify_signers
from forum_client.errors import InvalidInputError, VerificationError
from forum_client.files import PUBLIC, fsync_dir

FORMAT = "forum-proposal-v1"
MAX_PROPOSAL_BYTES = 64 * 1024 * 1024
DEFAULT_TTL_MS = 7 * 24 * 3600 * 1000
"""A proposal not submitted within a week expires (``--expires-in`` changes it)."""
MAX_TTL_MS = 365 * 24 * 3600 * 1000
"""At most a year: an expiry further off would hardly be one."""


@dataclass(frozen=True)
class Board:
    """An operator key set with its threshold, as a proposal records it."""

    keys: dict[bytes, bytes]  # key id -> raw public key
    threshold: int

    def to_doc(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "public_keys": [pk.hex() for pk in self.keys.values()]}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Board:
        keys = [bytes.fromhex(str(x)) for x in doc["public_keys"]]
        return cls({key_id(pk): pk for pk in keys}, int(doc["threshold"]))


@dataclass(frozen=True)
class Proposal:
    """Unsigned or partly signed operator entries, in the order they will be appended."""

    origin: str
    summary: str
    created_unix_ms: int
    expires_unix_ms: int
    board: Board
    envelopes: tuple[Envelope | tuple[str, bytes], ...]  # (type, body) until signed once
    submitted: tuple[int, ...] = field(default=())  # log indexes, once submitted

    @classmethod
    def create(
        cls, bodies: Sequence[e.Body], board: Board, summary: str, *, now_ms: int
    ) -> Proposal:
        """A proposal of ``bodies`` (headers already set: origin, sequence, expiry).

        Raises InvalidInputError for no bodies, mixed origins or expiries, or an expiry
        that has passed.
        """
        if not bodies:
            raise InvalidInputError.field("entries", "a proposal holds at least one entry")
        origins = {b.header.origin for b in bodies}
        expiries = {b.header.expires_unix_ms for b in bodies}
        if len(origins) != 1 or len(expiries) != 1:
            raise InvalidInputError.field("entries", "all entries share one origin and expiry")
        expires = expiries.pop()
        if expires <= now_ms:
            raise InvalidInputError.field("expires", "the proposal would expire immediately")
        return cls(
            origins.pop(),
            summary,
            now_ms,
            expires,
            board,
            tuple((e.payload_type_of(b), e.encode(b)) for b in bodies),
        )

    # ---- state ----

    def _parts(self) -> list[tuple[str, bytes, tuple[tuple[bytes, bytes], ...]]]:
        out = []
        for item in self.envelopes:
            if isinstance(item, Envelope):
                out.append((item.payload_type, item.body, item.signatures))
            else:
                out.append((item[0], item[1], ()))
        return out

    def signer_ids(self) -> frozenset[bytes]:
        """Key ids that have signed (every entry carries the same signers)."""
        parts = self._parts()
        return frozenset(kid for kid, _ in parts[0][2])

    def incoming_board(self) -> Board | None:
        """The board a rotation in this proposal installs (its keys must sign too)."""
        for body in self.bodies():
            if isinstance(body, e.BoardRotation):
                return Board({key_id(pk): pk for pk in body.public_keys}, body.threshold)
        return None

    def allowed_signers(self) -> dict[bytes, bytes]:
        incoming = self.incoming_board()
        return {**self.board.keys, **(incoming.keys if incoming else {})}

    def missing_signatures(self) -> int:
        """How many more signatures the threshold needs (0: ready to submit); a rotation
        needs a threshold of the board in force and one of the new board."""
        signers = self.signer_ids()
        missing = self.board.threshold - len(signers & self.board.keys.keys())
        incoming = self.incoming_board()
        if incoming is not None:
            missing = max(missing, incoming.threshold - len(signers & incoming.keys.keys()))
        return max(0, missing)

    def bodies(self) -> list[e.Body]:
        """The proposed bodies, decoded (for display; the signed bytes are the bodies')."""
        return [e.decode(t, b) for t, b, _ in self._parts()]

    def check_not_expired(self, now_ms: int) -> None:
        if now_ms > self.expires_unix_ms:
            raise InvalidInputError.field(
                "expires",
                f"the proposal expired at {_iso(self.expires_unix_ms)}: propose it again",
            )

    # ---- signing ----

    def signed(self, key: SigningKey, *, now_ms: int) -> Proposal:
        """This proposal with ``key``'s signature on every entry.

        Raises InvalidInputError: the key is not in the proposal's board, has signed already,
        the proposal was submitted, or it has expired.
        """
        if self.submitted:
            raise InvalidInputError.field("proposal", "already submitted")
        self.check_not_expired(now_ms)
        if key.key_id not in self.allowed_signers():
            raise InvalidInputError.field(
                "key",
                f"key {key.key_id.hex()[:16]} is not in the operator board this proposal "
                f"is for ({len(self.board.keys)} keys)",
            )
        if key.key_id in self.signer_ids():
            raise InvalidInputError.field(
                "key", f"key {key.key_id.hex()[:16]} has signed this proposal already"
            )
        signed: list[Envelope | tuple[str, bytes]] = []
        for payload_type, body, signatures in self._parts():
            fresh = key.sign(payload_type, body)
            signed.append(
                Envelope.with_signatures(payload_type, body, [*signatures, *fresh.signatures])
            )
        return replace(self, envelopes=tuple(signed))

    def ready(self, *, now_ms: int) -> list[Envelope]:
        """The signed entries, once every signature verifies and the threshold is met.

        Raises InvalidInputError (expired, below the threshold, submitted already) or
        VerificationError (a signature by a key outside the board, or one that does not
        verify).
        """
        if self.submitted:
            raise InvalidInputError.field(
                "proposal", f"already submitted (log index {self.submitted[0]})"
            )
        self.check_not_expired(now_ms)
        missing = self.missing_signatures()
        if missing:
            raise InvalidInputError.field(
                "signatures",
                f"below the threshold ({self.board.threshold} of {len(self.board.keys)}"
                f"{self._incoming_text()}): {missing} more signature(s) needed "
                "(forum-admin sign PROPOSAL --key KEY)",
            )
        out = []
        for item in self.envelopes:
            assert isinstance(item, Envelope)  # signed at least once: threshold >= 1
            verify_signers(item, self.allowed_signers())
            out.append(item)
        return out

    def _incoming_text(self) -> str:
        incoming = self.incoming_board()
        if incoming is None:
            return ""
        return f", and {incoming.threshold} of the {len(incoming.keys)} new keys"

    # ---- files ----

    def to_json(self) -> bytes:
        doc = {
            "format": FORMAT,
            "origin": self.origin,
            "summary": self.summary,
            "created_unix_ms": self.created_unix_ms,
            "expires_unix_ms": self.expires_unix_ms,
            "board": self.board.to_doc(),
            "entries": [
                {
                    "payload_type": t,
                    "body": base64.b64encode(b).decode(),
                    "signatures": [
                        {"key_id": kid.hex(), "signature": base64.b64encode(sig).decode()}
                        for kid, sig in sigs
                    ],
                }
                for t, b, sigs in self._parts()
            ],
            "submitted": list(self.submitted),
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    def save(self, path: Path | str, *, overwrite: bool = False) -> None:
        """Write the proposal atomically (a crash leaves the old file or the new one)."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise InvalidInputError.field("out", f"{path} exists: refusing to overwrite")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PUBLIC)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(path.parent)

    @classmethod
    def load(cls, path: Path | str) -> Proposal:
        """Read a proposal file.  Raises InvalidInputError naming what is wrong with it."""
        path = Path(path)
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_PROPOSAL_BYTES + 1)
        except OSError as exc:
            raise InvalidInputError.field("proposal", f"cannot read {path}: {exc}") from None
        if len(data) > MAX_PROPOSAL_BYTES:
            raise InvalidInputError.field("proposal", f"{path} is larger than 64 MiB")
        try:
            return cls._from_doc(json.loads(data))
        except (ValueError, KeyError, TypeError, IndexError, VerificationError) as exc:
            if isinstance(exc, InvalidInputError):
                raise InvalidInputError.field("proposal", f"{path}: {exc}") from None
            raise InvalidInputError.field(
                "proposal", f"{path} is not a forum proposal ({type(exc).__name__}: {exc})"
            ) from None

    @classmethod
    def _from_doc(cls, doc: dict[str, Any]) -> Proposal:
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, not {FORMAT!r}")
        items: list[Envelope | tuple[str, bytes]] = []
        for entry in doc["entries"]:
            payload_type = str(entry["payload_type"])
            body = base64.b64decode(entry["body"], validate=True)
            sigs = [
                (bytes.fromhex(s["key_id"]), base64.b64decode(s["signature"], validate=True))
                for s in entry["signatures"]
            ]
            if sigs:
                env = Envelope.with_signatures(payload_type, body, sigs)
                if env.signatures != tuple(sigs):
                    raise ValueError("signatures are not in ascending key-id order")
                items.append(env)
            else:
                items.append((payload_type, body))
        if not items:
            raise ValueError("no entries")
        proposal = cls(
            str(doc["origin"]),
            str(doc["summary"]),
            int(doc["created_unix_ms"]),
            int(doc["expires_unix_ms"]),
            Board.from_doc(doc["board"]),
            tuple(items),
            tuple(int(x) for x in doc.get("submitted", [])),
        )
        signer_sets = {frozenset(kid for kid, _ in sigs) for _, _, sigs in proposal._parts()}
        if len(signer_sets) != 1:
            raise ValueError("entries carry different signers")
        for decoded in proposal.bodies():
            if decoded.header.origin != proposal.origin:
                raise ValueError(f"an entry is for forum {decoded.header.origin!r}")
            if decoded.header.expires_unix_ms != proposal.expires_unix_ms:
                raise ValueError("an entry's signed expiry differs from the proposal's")
        return proposal


def _iso(unix_ms: int) -> str:
    return dt.datetime.fromtimestamp(unix_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
