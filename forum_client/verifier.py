"""The pure verification core: replay signed entries against the log's own key state.

No sockets, no SQLite, no clock.  The server runs every incoming entry through the same
:meth:`LogState.check` before it appends it, and the SDK runs every synced entry through
:meth:`LogState.apply`, so the server can never append what members would refuse.

Key validity is positional: a key added by the entry at index ``i`` signs entries at
indexes ``> i``, until the entry that replaces or revokes it.

The operator is a board: a set of keys and a threshold m-of-n, named by genesis (a forum
whose genesis names none has the 1-of-1 board of its operator key).  Every entry whose author
is the operator, whatever its type, needs m valid signatures of the board in force at its
index (:meth:`LogState.check` routes it through one board check); a ``BoardRotation`` needs a
threshold of the old set and of the new one.

>>> from forum_client.envelope import SigningKey
>>> op = SigningKey.generate()
>>> log_key = SigningKey.generate()
>>> root = TrustRoot("forum.test", op.public_bytes, log_key.public_bytes, "forum.test")
>>> genesis = make_genesis(root, op, forum_name="Test forum", created_unix_ms=0)
>>> state = LogState.from_genesis(genesis, root)
>>> state.size, state.member(OPERATOR_ID).role.label
(1, 'operator')
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import entries as e
from .cosignature import Witness, WitnessPolicy
from .envelope import (
    Envelope,
    SigningKey,
    check_public_key,
    key_id,
    verify_possession,
    verify_signers,
)
from .errors import (
    REJECT_BODY,
    REJECT_CONFLICT,
    REJECT_KEY_INACTIVE,
    REJECT_ORIGIN,
    REJECT_PERMISSION,
    REJECT_SEQUENCE,
    REJECT_SIGNATURE,
    REJECT_SUSPENDED,
    REJECT_THRESHOLD,
    REJECT_UNKNOWN_KEY,
    EntryRejectedError,
    InvalidInputError,
    VerificationError,
)
from .scopes import SALT_BYTES, ScopeClaim, verify_scope_claim
from .taxonomy import check_labels

OPERATOR_ID = "operator"
# Sequence numbers: signed 64-bit (SQLite's INTEGER), and each entry may step at most
# MAX_SEQUENCE_STEP above its key's last, so no single entry can use up a key: it takes
# 2^43 entries to reach the bound.
MAX_SEQUENCE = 2**63 - 1
MAX_SEQUENCE_STEP = 2**20
MEMBER_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,62}")
INCIDENT_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
GROUP_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
MAX_GROUP_TEXT = 1024  # name, description, reason
MAX_BOARD_KEYS = 32


def check_member_id(member_id: str) -> str:
    """Member ids are 2-63 characters of a-z, 0-9, '.', '_', '-', starting alphanumeric."""
    if not MEMBER_ID_RE.fullmatch(member_id):
        raise InvalidInputError.field(
            "member_id",
            f"{member_id!r} is not a member id (2-63 of a-z 0-9 . _ -, starting a-z or 0-9)",
        )
    return member_id


@dataclass(frozen=True)
class TrustRoot:
    """What a member pins: the forum's origin and the operator's and log's public keys, and
    the witness policy the log stated when the bundle was issued (a newer one learnt from
    the verified log replaces it; it is not part of the forum's identity, so equality
    ignores it)."""

    origin: str
    operator_public_key: bytes
    log_public_key: bytes
    log_key_name: str
    witness_policy: WitnessPolicy = field(default_factory=WitnessPolicy, compare=False)


def policy_from_entry(body: e.WitnessSet) -> WitnessPolicy:
    """The :class:`WitnessPolicy` a witness-set entry states.

    Raises:
        InvalidInputError: a bad witness name, URL, key, or quorum.
    """
    for w in body.witnesses:
        if len(w.url) > 2048 or (w.url and not w.url.startswith(("http://", "https://"))):
            raise InvalidInputError.field("witnesses.url", f"{w.url[:80]!r} is not an http(s) URL")
    witnesses = tuple(Witness(w.name, w.public_key, w.url) for w in body.witnesses)
    return WitnessPolicy(witnesses, body.quorum, body.version)


@dataclass
class KeyRecord:
    key_id: bytes
    member_id: str
    public_key: bytes
    valid_from: int  # index of the entry that added it; signs entries after it
    valid_until: int | None = None  # index of the entry that replaced or revoked it

    def active_at(self, index: int) -> bool:
        return self.valid_from < index and (self.valid_until is None or index < self.valid_until)


@dataclass
class MemberRecord:
    member_id: str
    display_name: str
    role: e.Role
    status: e.MemberStatus
    admitted_at: int
    # (index, status) of every status change, for "status at index" questions
    history: list[tuple[int, e.MemberStatus]] = field(default_factory=list)


@dataclass
class DisputeRecord:
    """Where a dispute stands: ``open``, ``kept`` (answered, signal kept), ``retracted``
    (by the respondent), ``upheld`` or ``removed`` (decided by the board)."""

    dispute_id: str
    signal_type: str
    signal_value: str
    opener: str
    respondent: str
    deadline_unix_ms: int
    opened_at: int
    status: str = "open"


DISPUTE_FINAL = frozenset({"retracted", "upheld", "removed"})


@dataclass
class GroupRecord:
    """A sharing group as the log states it.  Membership is positional, like key validity:
    a member added by the entry at index ``i`` is in the group for entries at indexes
    ``> i``, until the entry that removes it."""

    group_id: str
    name: str
    description: str
    created_at: int
    closed_at: int | None = None
    # member id -> [(index, in the group after it)], in log order
    history: dict[str, list[tuple[int, bool]]] = field(default_factory=dict)

    def member_at(self, member_id: str, index: int) -> bool:
        """Whether ``member_id`` is in the group for the entry at ``index``."""
        inside = False
        for at, member in self.history.get(member_id, ()):
            if at >= index:
                break
            inside = member
        return inside

    def members(self) -> list[str]:
        """Who is in the group now (for the next entry)."""
        return sorted(m for m, h in self.history.items() if h and h[-1][1])


def make_genesis(
    root: TrustRoot,
    operator_key: SigningKey,
    *,
    forum_name: str,
    created_unix_ms: int,
    limits: e.Limits | None = None,
    board: tuple[bytes, ...] = (),
    threshold: int = 0,
) -> Envelope:
    """The operator-signed first entry of a forum's log.

    ``board`` (raw public keys, the operator key among them) and ``threshold`` name the
    operator board; the default is the 1-of-1 board of ``operator_key``.  Genesis itself is
    signed by the operator key that members pin: that signature vouches for the board.

    Raises InvalidInputError when the key does not match the root or the board is not valid.
    """
    if operator_key.public_bytes != root.operator_public_key:
        raise InvalidInputError.field("operator_key", "does not match the trust root")
    header = e.Header(root.origin, OPERATOR_ID, operator_key.key_id, 1, created_unix_ms)
    body = e.Genesis(
        header,
        forum_name,
        root.operator_public_key,
        root.log_public_key,
        root.log_key_name,
        limits or e.Limits(),
        tuple(board),
        threshold,
    )
    if board:
        if operator_key.public_bytes not in board:
            raise InvalidInputError.field("board", "the operator key must be one of the board")
        problem = board_problem(body.board_public_keys, threshold)
        if problem is not None:
            raise InvalidInputError.field("board", problem)
    return operator_key.sign(e.payload_type_of(body), e.encode(body))


def _check_canonical(index: int, envelope: Envelope, body: e.Body) -> None:
    """A signed body must be the one canonical encoding of what it says (decode, re-encode,
    compare): fields in number order, each once, minimal varints, no unknown fields and no
    default values written out.  Otherwise an author could hide bytes in a signed entry that
    every member then stores."""
    if e.encode(body) != envelope.body:
        raise EntryRejectedError(
            REJECT_BODY,
            "body",
            "not in canonical encoding (unknown or repeated fields, fields out of order, "
            "non-minimal varints or explicit defaults)",
            index,
        )


def board_problem(public_keys: tuple[bytes, ...], threshold: int) -> str | None:
    """Why ``public_keys`` with ``threshold`` is not a valid board, or None if it is: 1 to
    32 distinct acceptable Ed25519 keys and 1 <= threshold <= their number."""
    if not 1 <= len(public_keys) <= MAX_BOARD_KEYS:
        return f"a board has 1 to {MAX_BOARD_KEYS} keys, not {len(public_keys)}"
    if len(set(public_keys)) != len(public_keys):
        return "a key is named twice"
    for i, pk in enumerate(public_keys):
        try:
            check_public_key(pk)
        except InvalidInputError as exc:
            return f"key {i}: {exc}"
    if not 1 <= threshold <= len(public_keys):
        return f"threshold {threshold} is not between 1 and {len(public_keys)}"
    return None


class LogState:
    """Membership, keys and sequence numbers after replaying a log prefix."""

    def __init__(self, genesis: e.Genesis, operator_key_id: bytes) -> None:
        self.origin = genesis.header.origin
        self.forum_name = genesis.forum_name
        self.limits = genesis.limits
        self.log_public_key = genesis.log_public_key
        self.log_key_name = genesis.log_key_name
        self.size = 1
        self.members: dict[str, MemberRecord] = {
            OPERATOR_ID: MemberRecord(
                OPERATOR_ID, genesis.forum_name, e.Role.OPERATOR, e.MemberStatus.ACTIVE, 0
            )
        }
        # The operator key signs genesis itself, so it is valid from "before" index 0.
        self.keys: dict[bytes, KeyRecord] = {
            operator_key_id: KeyRecord(
                operator_key_id, OPERATOR_ID, genesis.operator_public_key, -1
            )
        }
        self.last_sequence: dict[bytes, int] = {operator_key_id: genesis.header.sequence}
        # The operator board in force: key ids (their records are in ``keys``) and threshold.
        self.board: set[bytes] = {operator_key_id}
        self.board_threshold = 1
        for pk in genesis.board_public_keys:
            kid = key_id(pk)
            if kid not in self.keys:
                self.keys[kid] = KeyRecord(kid, OPERATOR_ID, pk, 0)
            self.board.add(kid)
        if genesis.board_public_keys:
            self.board_threshold = genesis.board_threshold
        # Board entries' sequence numbers: each used once (proposals signed concurrently
        # may be submitted in any order); ``board_last_sequence`` is the highest.
        self.board_sequences: set[int] = {genesis.header.sequence}
        self.board_last_sequence = genesis.header.sequence
        self.taxonomy_version = 0
        self.labels: dict[str, e.Label] = {}
        self.incidents: dict[str, bool] = {}  # incident id -> open
        self.concluded: set[str] = set()  # concluded by the crisis protocol: label refused
        self.debriefed: set[str] = set()
        self.declared: set[str] = set()  # declared by the crisis protocol (not legacy)
        self.disputes: dict[str, DisputeRecord] = {}
        self.witness_policy = WitnessPolicy()  # no witnesses until an operator names some
        self.groups: dict[str, GroupRecord] = {}

    @classmethod
    def from_genesis(cls, envelope: Envelope, root: TrustRoot | None = None) -> LogState:
        """Verify the genesis entry (against a pinned trust root, if given) and start a state.

        Raises VerificationError when genesis is malformed, self-inconsistent or not the
        pinned forum's.
        """
        try:
            body = e.decode(envelope.payload_type, envelope.body)
        except InvalidInputError as exc:
            raise EntryRejectedError(REJECT_BODY, "body", f"genesis: {exc}", 0) from None
        if not isinstance(body, e.Genesis):
            raise EntryRejectedError(REJECT_BODY, "payload_type", "entry 0 is not genesis", 0)
        _check_canonical(0, envelope, body)
        if key_id(body.operator_public_key) not in envelope.signer_ids:
            raise EntryRejectedError(
                REJECT_UNKNOWN_KEY, "key_id", "genesis not signed by its operator key", 0
            )
        if body.board_public_keys:
            problem = board_problem(body.board_public_keys, body.board_threshold)
            if problem is None and body.operator_public_key not in body.board_public_keys:
                problem = "the operator key is not one of the board"
            if problem is not None:
                raise EntryRejectedError(REJECT_BODY, "board_public_keys", problem, 0)
        board = {key_id(pk): pk for pk in (body.operator_public_key, *body.board_public_keys)}
        try:
            verify_signers(envelope, board)
        except VerificationError as exc:
            raise EntryRejectedError(REJECT_SIGNATURE, "signature", f"genesis: {exc}", 0) from None
        if root is not None:
            mine = TrustRoot(
                body.header.origin,
                body.operator_public_key,
                body.log_public_key,
                body.log_key_name,
            )
            if mine != root:
                raise VerificationError(
                    "entry 0: genesis does not match the pinned trust root "
                    f"(origin {body.header.origin!r})"
                )
        return cls(body, envelope.key_id)

    def copy(self) -> LogState:
        return copy.deepcopy(self)

    def member(self, member_id: str) -> MemberRecord:
        return self.members[member_id]

    def entitled(self, member_id: str, group_id: str, index: int) -> bool:
        """Whether ``member_id`` may read an entry at ``index`` scoped to ``group_id`` ("":
        forum-wide).  The operator reads everything (it runs the server that checks it)."""
        if not group_id:
            return True
        reader = self.members.get(member_id)
        if reader is not None and reader.role is e.Role.OPERATOR:
            return True
        group = self.groups.get(group_id)
        return group is not None and group.member_at(member_id, index)

    def check_redacted(self, index: int, leaf_hash: bytes, claim: ScopeClaim) -> GroupRecord:
        """Verify a redacted entry at ``index`` (its leaf hash and its author's scope claim);
        return its group.  Pure.  Raises EntryRejectedError naming the rule that failed.

        The claim must be signed by a member key active at ``index``, whose member may
        write and is in the claimed (open) group there: exactly the author the full entry
        would need.  Operator entries are never scoped, so never redacted.
        """
        key = self._signing_key(index, claim.key_id, "scope_claim.key_id")
        author = self.members[key.member_id]
        if author.role is e.Role.OPERATOR:
            raise EntryRejectedError(
                REJECT_PERMISSION,
                "scope_claim",
                "operator entries are forum-wide and are never redacted",
                index,
            )
        try:
            verify_scope_claim(key.public_key, self.origin, claim, leaf_hash)
        except VerificationError as exc:
            raise EntryRejectedError(REJECT_SIGNATURE, "scope_claim", str(exc), index) from None
        if author.status is not e.MemberStatus.ACTIVE or author.role is e.Role.OBSERVER:
            raise EntryRejectedError(
                REJECT_PERMISSION,
                "scope_claim",
                f"{author.member_id} cannot write entries at this index",
                index,
            )
        return self._scope_group(index, author.member_id, claim.group_id)

    def _signing_key(self, index: int, kid: bytes, field: str) -> KeyRecord:
        """The key ``kid`` if it may sign the entry at ``index`` (the next one)."""
        if index != self.size:
            raise EntryRejectedError(
                REJECT_CONFLICT, "index", f"expected index {self.size}, got {index}", index
            )
        key = self.keys.get(kid)
        if key is None:
            raise EntryRejectedError(
                REJECT_UNKNOWN_KEY,
                field,
                f"signed by unknown key {kid.hex()}",
                index,
            )
        if not key.active_at(index):
            raise EntryRejectedError(
                REJECT_KEY_INACTIVE,
                field,
                f"key {kid.hex()[:16]} of {key.member_id} is not valid at this "
                f"index (valid from {key.valid_from + 1} until {key.valid_until})",
                index,
            )
        return key

    def skip(self, index: int) -> None:
        """Advance past a redacted entry that :meth:`check_redacted` accepted."""
        self.size = index + 1

    def active_keys(self, member_id: str) -> list[KeyRecord]:
        return [k for k in self.keys.values() if k.member_id == member_id and k.valid_until is None]

    # ---- verification ----

    def check(self, index: int, envelope: Envelope, verified_key: bytes | None = None) -> e.Body:
        """Verify that ``envelope`` may stand at log ``index`` now; return its body.

        ``verified_key``: the public key a :class:`~forum_client.sigcheck.SignatureChecker`
        already verified this envelope's signature under. The Ed25519 call is skipped only
        when it is exactly the key this state resolves for the entry; every other check runs.

        Pure: changes nothing.  Raises EntryRejectedError naming the rule that failed.
        """
        if index != self.size:
            raise EntryRejectedError(
                REJECT_CONFLICT, "index", f"expected index {self.size}, got {index}", index
            )
        key = self.keys.get(envelope.key_id)
        if envelope.cosignatures or (key is not None and key.member_id == OPERATOR_ID):
            return self._check_board_entry(index, envelope)
        key = self._signing_key(index, envelope.key_id, "key_id")
        try:
            if verified_key is None or verified_key != key.public_key:
                envelope.verify(key.public_key)
        except VerificationError as exc:
            raise EntryRejectedError(REJECT_SIGNATURE, "signature", str(exc), index) from None
        try:
            body = e.decode(envelope.payload_type, envelope.body)
        except InvalidInputError as exc:
            raise EntryRejectedError(REJECT_BODY, "body", str(exc), index) from None
        _check_canonical(index, envelope, body)
        self._check_header(index, envelope, key, body)
        self._check_body(index, body)
        if isinstance(body, e.MEMBER_BODY_TYPES):
            self._check_scope(index, body)
        return body

    def check_proposal(self, bodies: Sequence[e.Body]) -> None:
        """Check operator ``bodies`` against the log's rules as if appended next, in order,
        before the board signs them (a proposal): the same body, rotation and scope rules
        as :meth:`check`, without signatures, sequence numbers or the clock.

        Pure: works on a copy.  Raises EntryRejectedError naming the field that failed.
        """
        state = self.copy()
        for body in bodies:
            index = state.size
            if isinstance(body, e.BoardRotation):
                state._check_rotation(index, body)
            state._check_body(index, body)
            if isinstance(body, e.MEMBER_BODY_TYPES):
                state._check_scope(index, body)
            state._apply(index, body)
            state.size = index + 1

    def board_keys(self) -> dict[bytes, bytes]:
        """The board in force after this prefix: key id -> public key."""
        return {kid: self.keys[kid].public_key for kid in sorted(self.board)}

    def _check_board_entry(self, index: int, envelope: Envelope) -> e.Body:
        """An entry signed by the operator board: every signature by a key of the board in
        force (a rotation also admits the keys it names), at least ``threshold`` of them
        valid, and a rotation signed by a threshold of the new set too."""

        def reject(reason: str, field: str, message: str) -> EntryRejectedError:
            return EntryRejectedError(reason, field, message, index)

        try:
            body = e.decode(envelope.payload_type, envelope.body)  # unverified until counted
        except InvalidInputError as exc:
            raise reject(REJECT_BODY, "body", str(exc)) from None
        _check_canonical(index, envelope, body)
        allowed = self.board_keys()
        incoming: dict[bytes, bytes] = {}
        if isinstance(body, e.BoardRotation):
            incoming = self._check_rotation(index, body)
            allowed = {**allowed, **incoming}
        for kid in envelope.signer_ids:
            if kid not in allowed:
                former = self.keys.get(kid)
                if former is not None and former.member_id == OPERATOR_ID:
                    raise reject(
                        REJECT_KEY_INACTIVE,
                        "signatures",
                        f"key {kid.hex()[:16]} left the operator board at entry "
                        f"{former.valid_until}: it signs nothing after that",
                    )
                raise reject(
                    REJECT_UNKNOWN_KEY,
                    "signatures",
                    f"signed by key {kid.hex()[:16]}, which is not an operator board key",
                )
        try:
            signers = verify_signers(envelope, allowed)
        except VerificationError as exc:
            raise reject(REJECT_SIGNATURE, "signatures", str(exc)) from None
        have = len(signers & self.board)
        if have < self.board_threshold:
            raise reject(
                REJECT_THRESHOLD,
                "signatures",
                f"{type(body).__name__} needs {self.board_threshold} of the "
                f"{len(self.board)} board keys, has {have}",
            )
        if isinstance(body, e.BoardRotation):
            have_new = len(signers & incoming.keys())
            if have_new < body.threshold:
                raise reject(
                    REJECT_THRESHOLD,
                    "signatures",
                    f"the new board needs {body.threshold} of its {len(incoming)} keys to "
                    f"sign the rotation, has {have_new}",
                )
        h = body.header
        if h.origin != self.origin:
            raise reject(
                REJECT_ORIGIN,
                "header.origin",
                f"entry is for forum {h.origin!r}, not {self.origin!r}",
            )
        if h.member_id != OPERATOR_ID:
            raise reject(
                REJECT_PERMISSION,
                "header.member_id",
                f"body names {h.member_id!r} but the board signed it",
            )
        if h.key_id and h.key_id not in signers:  # empty: a proposal signed by the board
            raise reject(
                REJECT_PERMISSION, "header.key_id", "the key named in the header did not sign"
            )
        if h.sequence in self.board_sequences or not 0 < h.sequence <= MAX_SEQUENCE:
            raise reject(
                REJECT_SEQUENCE,
                "header.sequence",
                f"board sequence {h.sequence} is already used (or 0, or above {MAX_SEQUENCE})",
            )
        if type(body) is e.Genesis:
            raise reject(REJECT_BODY, "payload_type", "a second genesis")
        self._check_body(index, body)
        if isinstance(body, e.MEMBER_BODY_TYPES):  # an operator retraction: never scoped
            self._check_scope(index, body)
        return body

    def _check_rotation(self, index: int, body: e.BoardRotation) -> dict[bytes, bytes]:
        problem = board_problem(body.public_keys, body.threshold)
        if problem is not None:
            raise EntryRejectedError(REJECT_BODY, "public_keys", problem, index)
        incoming = {key_id(pk): pk for pk in body.public_keys}
        for kid in incoming:
            known = self.keys.get(kid)
            if known is not None and (known.member_id != OPERATOR_ID or kid not in self.board):
                raise EntryRejectedError(
                    REJECT_CONFLICT,
                    "public_keys",
                    f"key {kid.hex()[:16]} is already registered (to {known.member_id}); "
                    "a board key is never reused",
                    index,
                )
        return incoming

    def apply(self, index: int, envelope: Envelope, verified_key: bytes | None = None) -> e.Body:
        """Verify the entry at ``index`` and advance the state past it (``verified_key`` as
        in :meth:`check`)."""
        body = self.check(index, envelope, verified_key)
        self.advance(index, envelope, body)
        return body

    def advance(self, index: int, envelope: Envelope, body: e.Body) -> None:
        """Advance past an entry that :meth:`check` accepted at ``index`` (no re-check)."""
        self._apply(index, body)
        h = body.header
        if h.member_id == OPERATOR_ID:
            self.board_sequences.add(h.sequence)
            self.board_last_sequence = max(self.board_last_sequence, h.sequence)
            for kid in self.board:  # the next direct proposal of any board key goes above
                self.last_sequence[kid] = self.board_last_sequence
        else:
            self.last_sequence[envelope.key_id] = h.sequence
        self.size = index + 1

    def _check_header(self, index: int, envelope: Envelope, key: KeyRecord, body: e.Body) -> None:
        h = body.header
        if h.origin != self.origin:
            raise EntryRejectedError(
                REJECT_ORIGIN,
                "header.origin",
                f"entry is for forum {h.origin!r}, not {self.origin!r}",
                index,
            )
        if h.key_id != envelope.key_id or h.member_id != key.member_id:
            raise EntryRejectedError(
                REJECT_PERMISSION,
                "header.member_id",
                f"body names {h.member_id!r} but the key belongs to {key.member_id!r}",
                index,
            )
        last = self.last_sequence.get(envelope.key_id, 0)
        if h.sequence <= last:
            raise EntryRejectedError(
                REJECT_SEQUENCE,
                "header.sequence",
                f"sequence {h.sequence} is not above {last}, the last of this key",
                index,
            )
        if h.sequence > MAX_SEQUENCE or h.sequence - last > MAX_SEQUENCE_STEP:
            raise EntryRejectedError(
                REJECT_SEQUENCE,
                "header.sequence",
                f"sequence {h.sequence} jumps more than {MAX_SEQUENCE_STEP} above {last}, the "
                f"last of this key, or above {MAX_SEQUENCE}",
                index,
            )
        author = self.members[key.member_id]
        if author.status is not e.MemberStatus.ACTIVE:
            raise EntryRejectedError(
                REJECT_SUSPENDED,
                "header.member_id",
                f"member {author.member_id} is suspended",
                index,
            )
        kind = type(body)
        if kind in e.OPERATOR_BODIES and author.role is not e.Role.OPERATOR:
            raise EntryRejectedError(
                REJECT_PERMISSION,
                "payload_type",
                f"{kind.__name__} entries are the operator's, not {author.member_id}'s",
                index,
            )
        if kind in e.MEMBER_BODIES and author.role is e.Role.OBSERVER:
            raise EntryRejectedError(
                REJECT_PERMISSION,
                "payload_type",
                f"{author.member_id} is an observer and cannot write {kind.__name__}",
                index,
            )
        if kind is e.Genesis:
            raise EntryRejectedError(REJECT_BODY, "payload_type", "a second genesis", index)

    def _check_body(self, index: int, body: e.Body) -> None:
        def bad(field: str, message: str, reason: str = REJECT_BODY) -> EntryRejectedError:
            return EntryRejectedError(reason, field, message, index)

        if isinstance(body, e.MemberAdmitted):
            try:
                check_member_id(body.member_id)
            except InvalidInputError as exc:
                raise bad("member_id", str(exc)) from None
            if body.member_id in self.members:
                raise bad("member_id", f"{body.member_id} is already a member", REJECT_CONFLICT)
            if body.role is e.Role.OPERATOR:
                raise bad("role", "the forum has one operator")
        elif isinstance(body, e.MemberStatusChanged):
            target = self._existing_member(index, body.member_id)
            if target.role is e.Role.OPERATOR:
                raise bad("member_id", "the operator cannot be suspended")
            if target.status is body.status:
                raise bad(
                    "status", f"{body.member_id} is already {body.status.label}", REJECT_CONFLICT
                )
        elif isinstance(body, e.KeyAdded):
            self._existing_member(index, body.member_id)
            try:
                check_public_key(body.public_key)
                verify_possession(
                    self.origin, body.member_id, body.public_key, body.possession_signature
                )
            except InvalidInputError as exc:  # weak key, or an id PoP cannot bind
                raise bad("public_key", str(exc)) from None
            except VerificationError as exc:
                raise bad("possession_signature", f"no proof of possession: {exc}") from None
            if key_id(body.public_key) in self.keys:
                raise bad("public_key", "key is already registered", REJECT_CONFLICT)
            if body.replaces_key_id:
                self._member_key(index, body.member_id, body.replaces_key_id, "replaces_key_id")
        elif isinstance(body, e.KeyRevoked):
            self._member_key(index, body.member_id, body.revoked_key_id, "revoked_key_id")
        elif isinstance(body, e.Taxonomy):
            if body.version <= self.taxonomy_version:
                raise bad(
                    "version",
                    f"version {body.version} is not above {self.taxonomy_version}",
                    REJECT_CONFLICT,
                )
            try:
                check_labels(body.labels)
            except InvalidInputError as exc:
                raise bad(exc.violations[0].field, exc.violations[0].reason) from None
        elif isinstance(body, e.Dispute | e.DisputeAnswer | e.DisputeDecision):
            self._check_dispute(index, body)
        elif isinstance(body, (e.GroupCreated, e.GroupMember, e.GroupClosed)):
            self._check_group(index, body)
        elif isinstance(body, e.WitnessSet):
            if body.version <= self.witness_policy.version:
                raise bad(
                    "version",
                    f"version {body.version} is not above {self.witness_policy.version}",
                    REJECT_CONFLICT,
                )
            try:
                policy_from_entry(body)
            except InvalidInputError as exc:
                field = exc.violations[0].field if exc.violations else "witnesses"
                raise bad(field, str(exc)) from None
        elif isinstance(body, e.Incident):
            if not INCIDENT_ID_RE.fullmatch(body.incident_id):
                raise bad("incident_id", f"{body.incident_id!r} is not 1-63 of a-z 0-9 -")
            if body.stage is e.IncidentStage.LEGACY:
                if body.incident_id in self.declared:
                    raise bad(
                        "stage",
                        f"incident {body.incident_id} follows the crisis protocol: "
                        "update, conclude or debrief it",
                    )
                if self.incidents.get(body.incident_id) is body.open:
                    state = "open" if body.open else "closed"
                    raise bad(
                        "open", f"incident {body.incident_id} is already {state}", REJECT_CONFLICT
                    )
            else:
                self._check_incident_stage(index, body)

    def _check_dispute(self, index: int, body: e.Body) -> None:
        """Dispute order: opened once by a member (not the respondent) or the board; answered
        once by the respondent; decided by the board once not settled, after the deadline
        unless answered.  Time is the entries' own ``created_unix_ms``."""

        def bad(field: str, message: str, reason: str = REJECT_BODY) -> EntryRejectedError:
            return EntryRejectedError(reason, field, message, index)

        author = body.header.member_id
        if isinstance(body, e.Dispute):
            if not INCIDENT_ID_RE.fullmatch(body.dispute_id):
                raise bad("dispute_id", f"{body.dispute_id!r} is not 1-63 of a-z 0-9 -")
            if body.dispute_id in self.disputes:
                raise bad("dispute_id", f"dispute {body.dispute_id} exists", REJECT_CONFLICT)
            respondent = self.members.get(body.respondent)
            if respondent is None or respondent.role is not e.Role.MEMBER:
                raise bad("respondent", f"{body.respondent!r} is not a member")
            if author == body.respondent:
                raise bad("respondent", "a member cannot dispute its own signal")
            if body.appellant and author != OPERATOR_ID:
                raise bad("appellant", "only the board files disputes for outside appellants")
            if body.deadline_unix_ms <= body.header.created_unix_ms:
                raise bad("deadline_unix_ms", "the deadline must be after the dispute is opened")
            return
        assert isinstance(body, e.DisputeAnswer | e.DisputeDecision)
        record = self.disputes.get(body.dispute_id)
        if record is None:
            raise bad("dispute_id", f"no dispute {body.dispute_id}")
        if record.status in DISPUTE_FINAL:
            raise bad(
                "dispute_id", f"dispute {body.dispute_id} is {record.status}", REJECT_CONFLICT
            )
        if isinstance(body, e.DisputeAnswer):
            if author != record.respondent:
                raise EntryRejectedError(
                    REJECT_PERMISSION,
                    "header.member_id",
                    f"only {record.respondent} answers dispute {body.dispute_id}",
                    index,
                )
            if record.status != "open":
                raise bad("dispute_id", f"dispute {body.dispute_id} is answered", REJECT_CONFLICT)
            if not body.rationale.strip():
                raise bad("rationale", "an answer needs a rationale")
            return
        if record.status == "open" and body.header.created_unix_ms < record.deadline_unix_ms:
            raise bad(
                "dispute_id",
                f"dispute {body.dispute_id} is unanswered and its deadline has not passed",
                REJECT_CONFLICT,
            )
        if not body.rationale.strip():
            raise bad("rationale", "a decision needs a rationale")

    def _check_incident_stage(self, index: int, body: e.Incident) -> None:
        """The crisis protocol's order: declared, updates while open, one conclusion, one
        debrief; the ``open`` flag must say what the stage does."""

        def bad(field: str, message: str, reason: str = REJECT_BODY) -> EntryRejectedError:
            return EntryRejectedError(
                reason, field, f"incident {body.incident_id}: {message}", index
            )

        stage, known = body.stage, body.incident_id in self.incidents
        is_open = self.incidents.get(body.incident_id, False)
        if body.open is not (stage in (e.IncidentStage.DECLARED, e.IncidentStage.UPDATE)):
            raise bad("open", f"a {stage.label} entry has open={body.open}")
        if stage is e.IncidentStage.DECLARED:
            if known:
                raise bad(
                    "incident_id", "is already declared (ids are never reused)", REJECT_CONFLICT
                )
            if body.level not in e.INCIDENT_LEVELS:
                raise bad("level", f"level {body.level} is not 1, 2 or 3")
            if not body.title.strip():
                raise bad("title", "a declaration needs a title")
        elif stage in (e.IncidentStage.UPDATE, e.IncidentStage.CONCLUDED):
            if not is_open:
                raise bad("stage", f"a {stage.label} needs an open incident", REJECT_CONFLICT)
            if not body.text.strip():
                raise bad("text", f"a {stage.label} needs text")
        elif stage is e.IncidentStage.DEBRIEF:
            if body.incident_id not in self.concluded:
                raise bad("stage", "a debrief follows the conclusion", REJECT_CONFLICT)
            if body.incident_id in self.debriefed:
                raise bad("stage", "has its debrief already", REJECT_CONFLICT)
            if not body.text.strip():
                raise bad("text", "a debrief needs text")

    def disputes_on(self, type: str, value: str) -> list[DisputeRecord]:
        """Every dispute about the signal ``(type, value)``, oldest first."""
        return [
            d for d in self.disputes.values() if (d.signal_type, d.signal_value) == (type, value)
        ]

    def _check_scope(self, index: int, body: e.MemberBody) -> None:
        """A member entry is forum-wide (TLP:CLEAR/GREEN, no salt) or scoped to an open
        group its author is in at ``index`` (TLP:AMBER and above, a 32-byte salt)."""
        author = body.header.member_id
        if not body.scope:
            if body.tlp.scoped:
                raise EntryRejectedError(
                    REJECT_BODY,
                    "tlp",
                    f"{body.tlp.label} shares with a group: a forum-wide entry is "
                    "TLP:CLEAR or TLP:GREEN",
                    index,
                )
            if body.salt:
                raise EntryRejectedError(
                    REJECT_BODY, "salt", "a forum-wide entry carries no salt", index
                )
            return
        if self.members[author].role is e.Role.OPERATOR:
            raise EntryRejectedError(
                REJECT_PERMISSION,
                "scope",
                f"operator entries are forum-wide: scope {body.scope!r} refused",
                index,
            )
        self._scope_group(index, author, body.scope)
        if not body.tlp.scoped:
            raise EntryRejectedError(
                REJECT_BODY,
                "tlp",
                f"an entry shared with group {body.scope} is TLP:AMBER, TLP:AMBER+STRICT or "
                f"TLP:RED, not {body.tlp.label or 'unspecified'}",
                index,
            )
        if len(body.salt) != SALT_BYTES:
            raise EntryRejectedError(
                REJECT_BODY,
                "salt",
                f"a scoped entry carries a fresh {SALT_BYTES}-byte salt, not {len(body.salt)} "
                "bytes",
                index,
            )

    def _scope_group(self, index: int, author: str, group_id: str) -> GroupRecord:
        group = self.groups.get(group_id)
        if group is None:
            raise EntryRejectedError(REJECT_BODY, "scope", f"there is no group {group_id!r}", index)
        if group.closed_at is not None:
            raise EntryRejectedError(
                REJECT_PERMISSION, "scope", f"group {group_id} is closed", index
            )
        if not group.member_at(author, index):
            raise EntryRejectedError(
                REJECT_PERMISSION,
                "scope",
                f"{author} is not a member of group {group_id} and cannot share with it",
                index,
            )
        return group

    def _check_group(
        self, index: int, body: e.GroupCreated | e.GroupMember | e.GroupClosed
    ) -> None:
        def bad(field: str, message: str, reason: str = REJECT_BODY) -> EntryRejectedError:
            return EntryRejectedError(reason, field, message, index)

        if isinstance(body, e.GroupCreated):
            if not GROUP_ID_RE.fullmatch(body.group_id):
                raise bad("group_id", f"{body.group_id!r} is not 1-63 of a-z 0-9 . _ -")
            if body.group_id in self.groups:
                raise bad("group_id", f"group {body.group_id} exists already", REJECT_CONFLICT)
            if not body.name.strip():
                raise bad("name", "required")
            if max(len(body.name), len(body.description)) > MAX_GROUP_TEXT:
                raise bad("name", f"name and description are at most {MAX_GROUP_TEXT} characters")
            return
        group = self.groups.get(body.group_id)
        if group is None:
            raise bad("group_id", f"there is no group {body.group_id!r}")
        if group.closed_at is not None:
            raise bad("group_id", f"group {body.group_id} is closed", REJECT_CONFLICT)
        if isinstance(body, e.GroupClosed):
            if len(body.reason) > MAX_GROUP_TEXT:
                raise bad("reason", f"longer than {MAX_GROUP_TEXT} characters")
            return
        target = self._existing_member(index, body.member_id)
        if target.role is e.Role.OPERATOR:
            raise bad("member_id", "the operator reads every group; it is no member of one")
        inside = group.member_at(body.member_id, index)
        if inside is body.member:
            where = "already in" if inside else "not in"
            raise bad(
                "member", f"{body.member_id} is {where} group {body.group_id}", REJECT_CONFLICT
            )

    def label_known(self, label: str) -> bool:
        """Whether ``label`` may be used on a new submission: in the current vocabulary, or
        ``incident:ID`` of a known incident that was not concluded by the crisis protocol
        (legacy closed incidents keep their label valid, as they always did)."""
        if label in self.labels:
            return True
        kind, _, name = label.partition(":")
        return kind == "incident" and name in self.incidents and name not in self.concluded

    def _existing_member(self, index: int, member_id: str) -> MemberRecord:
        found = self.members.get(member_id)
        if found is None:
            raise EntryRejectedError(
                REJECT_BODY, "member_id", f"{member_id} is not a member", index
            )
        return found

    def _member_key(self, index: int, member_id: str, kid: bytes, field: str) -> KeyRecord:
        self._existing_member(index, member_id)
        key = self.keys.get(kid)
        if key is None or key.member_id != member_id or key.valid_until is not None:
            raise EntryRejectedError(
                REJECT_BODY,
                field,
                f"{kid.hex()[:16]} is not an active key of {member_id}",
                index,
            )
        if member_id == OPERATOR_ID:
            raise EntryRejectedError(
                REJECT_BODY, field, "the operator key changes by a new genesis only", index
            )
        return key

    def _apply(self, index: int, body: e.Body) -> None:
        if isinstance(body, e.MemberAdmitted):
            self.members[body.member_id] = MemberRecord(
                body.member_id,
                body.display_name,
                body.role,
                e.MemberStatus.ACTIVE,
                index,
                [(index, e.MemberStatus.ACTIVE)],
            )
        elif isinstance(body, e.MemberStatusChanged):
            record = self.members[body.member_id]
            record.status = body.status
            record.history.append((index, body.status))
        elif isinstance(body, e.KeyAdded):
            kid = key_id(body.public_key)
            self.keys[kid] = KeyRecord(kid, body.member_id, body.public_key, index)
            if body.replaces_key_id:
                self.keys[body.replaces_key_id].valid_until = index
        elif isinstance(body, e.KeyRevoked):
            self.keys[body.revoked_key_id].valid_until = index
        elif isinstance(body, e.Taxonomy):
            self.taxonomy_version = body.version
            self.labels = {label.id: label for label in body.labels}
        elif isinstance(body, e.Incident):
            self.incidents[body.incident_id] = body.open
            if body.stage is e.IncidentStage.DECLARED:
                self.declared.add(body.incident_id)
            elif body.stage is e.IncidentStage.CONCLUDED:
                self.concluded.add(body.incident_id)
            elif body.stage is e.IncidentStage.DEBRIEF:
                self.debriefed.add(body.incident_id)
        elif isinstance(body, e.Dispute):
            self.disputes[body.dispute_id] = DisputeRecord(
                body.dispute_id,
                body.signal.type,
                body.signal.value,
                body.header.member_id,
                body.respondent,
                body.deadline_unix_ms,
                index,
            )
        elif isinstance(body, e.DisputeAnswer):
            self.disputes[body.dispute_id].status = "retracted" if body.retract else "kept"
        elif isinstance(body, e.DisputeDecision):
            self.disputes[body.dispute_id].status = "removed" if body.remove else "upheld"
        elif isinstance(body, e.GroupCreated):
            self.groups[body.group_id] = GroupRecord(
                body.group_id, body.name, body.description, index
            )
        elif isinstance(body, e.GroupMember):
            history = self.groups[body.group_id].history
            history.setdefault(body.member_id, []).append((index, body.member))
        elif isinstance(body, e.GroupClosed):
            self.groups[body.group_id].closed_at = index
        elif isinstance(body, e.BoardRotation):
            incoming = {key_id(pk): pk for pk in body.public_keys}
            for kid in self.board - incoming.keys():
                self.keys[kid].valid_until = index
            for kid, pk in incoming.items():
                if kid not in self.keys:
                    self.keys[kid] = KeyRecord(kid, OPERATOR_ID, pk, index)
            self.board = set(incoming)
            self.board_threshold = body.threshold
        elif isinstance(body, e.WitnessSet):
            self.witness_policy = policy_from_entry(body)
