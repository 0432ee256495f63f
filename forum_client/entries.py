"""Entry bodies as frozen dataclasses: the one conversion layer between ``_pb2`` and the SDK.

Authors build a body, encode it once and sign those bytes; verifiers decode the exact bytes
they received.  Nothing else in the packages touches the generated body messages.

>>> h = Header(origin="forum.test", member_id="acme", key_id=b"k" * 32, sequence=1,
...            created_unix_ms=0)
>>> body = encode(MemberStatusChanged(h, member_id="bad", status=MemberStatus.SUSPENDED,
...                                   reason="abuse"))
>>> decode(PAYLOAD_TYPES[MemberStatusChanged], body).status
<MemberStatus.SUSPENDED: 2>
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, TypeAlias

from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from ._proto.forum.v1 import forum_pb2 as pb
from .errors import InvalidInputError

MAX_BODY_BYTES = 32 * 1024 * 1024


class Role(enum.IntEnum):
    OPERATOR = pb.ROLE_OPERATOR
    MEMBER = pb.ROLE_MEMBER
    OBSERVER = pb.ROLE_OBSERVER

    @property
    def label(self) -> str:
        return self.name.lower()

    def __str__(self) -> str:  # print(status.role) shows "member", not "2"
        return self.label

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.upper()]
        except KeyError:
            choices = ", ".join(r.label for r in cls)
            raise InvalidInputError.field(
                "role", f"unknown role {text!r}: one of {choices}"
            ) from None


class MemberStatus(enum.IntEnum):
    ACTIVE = pb.MEMBER_STATUS_ACTIVE
    SUSPENDED = pb.MEMBER_STATUS_SUSPENDED

    @property
    def label(self) -> str:
        return self.name.lower()

    def __str__(self) -> str:
        return self.label


class Tlp(enum.IntEnum):
    """Traffic Light Protocol 2.0 levels.  ``UNSPECIFIED``: written before scopes existed."""

    UNSPECIFIED = pb.TLP_UNSPECIFIED
    CLEAR = pb.TLP_CLEAR
    GREEN = pb.TLP_GREEN
    AMBER = pb.TLP_AMBER
    AMBER_STRICT = pb.TLP_AMBER_STRICT
    RED = pb.TLP_RED

    @property
    def label(self) -> str:
        """``TLP:AMBER+STRICT`` style, as TLP 2.0 writes it (``""`` for unspecified)."""
        if self is Tlp.UNSPECIFIED:
            return ""
        return "TLP:" + self.name.replace("_", "+")

    @property
    def scoped(self) -> bool:
        """Whether the level shares with a group (AMBER and above) rather than the forum."""
        return self >= Tlp.AMBER

    @classmethod
    def parse(cls, text: str) -> Tlp:
        name = text.strip().upper().removeprefix("TLP:").replace("+", "_").replace("-", "_")
        try:
            level = cls[name]
        except KeyError:
            level = cls.UNSPECIFIED
        if level is cls.UNSPECIFIED:
            raise InvalidInputError.field(
                "tlp",
                f"unknown TLP level {text!r}: one of clear, green, amber, amber+strict, red",
            )
        return level


class OpinionKind(enum.IntEnum):
    AGREE = pb.OPINION_KIND_AGREE
    DISAGREE = pb.OPINION_KIND_DISAGREE
    FALSE_POSITIVE = pb.OPINION_KIND_FALSE_POSITIVE
    SEEN = pb.OPINION_KIND_SEEN


@dataclass(frozen=True, slots=True)
class Header:
    origin: str
    member_id: str
    key_id: bytes
    sequence: int
    created_unix_ms: int
    expires_unix_ms: int = 0  # the server refuses the entry after this (0 = never)
    normalization: int = 0
    """The normalisation version of the signal values in the body (0 means version 1;
    :mod:`forum_client.signals.versions`)."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_batch_signals: int = 10_000
    max_message_bytes: int = 64 * 1024 * 1024  # what the server and SDK use (was 16 MiB)
    max_labels_per_signal: int = 16


@dataclass(frozen=True, slots=True)
class Genesis:
    header: Header
    forum_name: str
    operator_public_key: bytes
    log_public_key: bytes
    log_key_name: str
    limits: Limits
    board_public_keys: tuple[bytes, ...] = ()  # empty: the 1-of-1 board of the operator key
    board_threshold: int = 0  # 0: 1


@dataclass(frozen=True, slots=True)
class MemberAdmitted:
    header: Header
    member_id: str
    display_name: str
    role: Role


@dataclass(frozen=True, slots=True)
class MemberStatusChanged:
    header: Header
    member_id: str
    status: MemberStatus
    reason: str


@dataclass(frozen=True, slots=True)
class KeyAdded:
    header: Header
    member_id: str
    public_key: bytes
    possession_signature: bytes
    replaces_key_id: bytes = b""


@dataclass(frozen=True, slots=True)
class KeyRevoked:
    header: Header
    member_id: str
    revoked_key_id: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class SignalItem:
    type: str
    value: str
    labels: tuple[str, ...] = ()
    content_type: str = ""
    quality: int | None = None


def _signal_item_maker() -> Any:
    # SignalItem(...) without the frozen dataclass __init__ (which goes through
    # object.__setattr__ per field): the slots' own setters, about twice as fast.  For
    # building thousands of items at once (decoding, normalising a batch); same object.
    new = object.__new__
    slots: dict[str, Any] = dict(vars(SignalItem))
    set_type, set_value = slots["type"].__set__, slots["value"].__set__
    set_labels, set_quality = slots["labels"].__set__, slots["quality"].__set__
    set_content_type = slots["content_type"].__set__

    def make(
        type: str, value: str, labels: tuple[str, ...], content_type: str, quality: int | None
    ) -> SignalItem:
        item = new(SignalItem)
        set_type(item, type)
        set_value(item, value)
        set_labels(item, labels)
        set_content_type(item, content_type)
        set_quality(item, quality)
        return item

    return make


new_signal_item = _signal_item_maker()
"""``SignalItem(type, value, labels, content_type, quality)``, faster, all five arguments."""


@dataclass(frozen=True, slots=True)
class SignalRef:
    type: str
    value: str


# Member entries carry a scope: ``scope`` is "" (forum-wide) or the id of the group the entry
# is shared with, ``tlp`` its TLP level and ``salt`` 32 fresh random bytes when scoped.


@dataclass(frozen=True, slots=True)
class Submission:
    header: Header
    signals: tuple[SignalItem, ...]
    scope: str = ""
    tlp: Tlp = Tlp.UNSPECIFIED
    salt: bytes = b""


@dataclass(frozen=True, slots=True)
class Retraction:
    header: Header
    signals: tuple[SignalRef, ...]
    reason: str
    scope: str = ""
    tlp: Tlp = Tlp.UNSPECIFIED
    salt: bytes = b""


@dataclass(frozen=True, slots=True)
class Opinion:
    header: Header
    signal: SignalRef
    kind: OpinionKind
    note: str = ""
    scope: str = ""
    tlp: Tlp = Tlp.UNSPECIFIED
    salt: bytes = b""


@dataclass(frozen=True, slots=True)
class Label:
    id: str
    kind: str
    title: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Taxonomy:
    header: Header
    version: int
    labels: tuple[Label, ...]


@dataclass(frozen=True, slots=True)
class BenignList:
    header: Header
    add: tuple[SignalRef, ...] = ()
    remove: tuple[SignalRef, ...] = ()


class IncidentStage(enum.IntEnum):
    LEGACY = pb.INCIDENT_STAGE_UNSPECIFIED  # open/close by the ``open`` flag
    DECLARED = pb.INCIDENT_STAGE_DECLARED
    UPDATE = pb.INCIDENT_STAGE_UPDATE
    CONCLUDED = pb.INCIDENT_STAGE_CONCLUDED
    DEBRIEF = pb.INCIDENT_STAGE_DEBRIEF

    @property
    def label(self) -> str:
        return self.name.lower()


INCIDENT_LEVELS = {1: "incident", 2: "content incident", 3: "crisis protocol"}


@dataclass(frozen=True, slots=True)
class Incident:
    header: Header
    incident_id: str
    title: str
    open: bool
    stage: IncidentStage = IncidentStage.LEGACY
    level: int = 0
    text: str = ""
    occurred_unix_ms: int = 0


@dataclass(frozen=True, slots=True)
class GroupCreated:
    header: Header
    group_id: str
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class GroupMember:
    header: Header
    group_id: str
    member_id: str
    member: bool  # True: added, False: removed


@dataclass(frozen=True, slots=True)
class GroupClosed:
    header: Header
    group_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class BoardRotation:
    header: Header
    public_keys: tuple[bytes, ...]
    threshold: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Dispute:
    header: Header
    dispute_id: str
    signal: SignalRef
    respondent: str
    reason: str
    appellant: str = ""
    deadline_unix_ms: int = 0


@dataclass(frozen=True, slots=True)
class DisputeAnswer:
    header: Header
    dispute_id: str
    retract: bool
    rationale: str


@dataclass(frozen=True, slots=True)
class DisputeDecision:
    header: Header
    dispute_id: str
    remove: bool
    rationale: str


@dataclass(frozen=True, slots=True)
class WitnessInfo:
    name: str
    public_key: bytes
    url: str


@dataclass(frozen=True, slots=True)
class WitnessSet:
    """The witness policy (issue #9): every witness, and how many must cosign."""

    header: Header
    version: int
    witnesses: tuple[WitnessInfo, ...]
    quorum: int


Body: TypeAlias = (
    Genesis
    | MemberAdmitted
    | MemberStatusChanged
    | KeyAdded
    | KeyRevoked
    | Submission
    | Retraction
    | Opinion
    | Taxonomy
    | BenignList
    | Incident
    | GroupCreated
    | GroupMember
    | GroupClosed
    | BoardRotation
    | Dispute
    | DisputeAnswer
    | DisputeDecision
    | WitnessSet
)
MemberBody: TypeAlias = Submission | Retraction | Opinion

_PREFIX = "application/vnd.forum."
PAYLOAD_TYPES: dict[type[Any], str] = {
    Genesis: _PREFIX + "genesis.v1",
    MemberAdmitted: _PREFIX + "member-admitted.v1",
    MemberStatusChanged: _PREFIX + "member-status.v1",
    KeyAdded: _PREFIX + "key-added.v1",
    KeyRevoked: _PREFIX + "key-revoked.v1",
    Submission: _PREFIX + "submission.v1",
    Retraction: _PREFIX + "retraction.v1",
    Opinion: _PREFIX + "opinion.v1",
    Taxonomy: _PREFIX + "taxonomy.v1",
    BenignList: _PREFIX + "benign-list.v1",
    Incident: _PREFIX + "incident.v1",
    GroupCreated: _PREFIX + "group-created.v1",
    GroupMember: _PREFIX + "group-member.v1",
    GroupClosed: _PREFIX + "group-closed.v1",
    BoardRotation: _PREFIX + "board-rotation.v1",
    Dispute: _PREFIX + "dispute.v1",
    DisputeAnswer: _PREFIX + "dispute-answer.v1",
    DisputeDecision: _PREFIX + "dispute-decision.v1",
    WitnessSet: _PREFIX + "witness-set.v1",
}
BODY_TYPES: dict[str, type[Any]] = {v: k for k, v in PAYLOAD_TYPES.items()}
_MESSAGES: dict[type[Any], Any] = {cls: getattr(pb, cls.__name__) for cls in PAYLOAD_TYPES}
"""Each body type's generated message class."""
OPERATOR_BODIES: frozenset[type[Any]] = frozenset(
    {
        Genesis,
        MemberAdmitted,
        MemberStatusChanged,
        KeyAdded,
        KeyRevoked,
        Taxonomy,
        BenignList,
        Incident,
        GroupCreated,
        GroupMember,
        GroupClosed,
        BoardRotation,
        DisputeDecision,
        WitnessSet,
    }
)
MEMBER_BODIES: frozenset[type[Any]] = frozenset(
    {Submission, Retraction, Opinion, Dispute, DisputeAnswer}
)
MEMBER_BODY_TYPES = (Submission, Retraction, Opinion)  # for isinstance
BOARD_BODIES: frozenset[type[Any]] = frozenset(BODY_TYPES.values())
"""What the operator board may sign: any entry type (an operator retraction too); the log's
rules decide (the Admin service appends these)."""


def pb_enum(value: enum.IntEnum) -> Any:
    """An SDK enum as the generated message's enum field takes it."""
    return int(value)


def payload_type_of(body: Body) -> str:
    return PAYLOAD_TYPES[type(body)]


# ---- decoding (bytes as received -> dataclasses) ----


def _header(m: pb.EntryHeader) -> Header:
    return Header(
        m.origin,
        m.member_id,
        m.key_id,
        m.sequence,
        m.created_unix_ms,
        m.expires_unix_ms,
        m.normalization,
    )


def _refs(items: Any) -> tuple[SignalRef, ...]:
    return tuple(SignalRef(r.type, r.value) for r in items)


def _enum(cls: type[enum.IntEnum], value: int, field: str) -> Any:
    member = _ENUM_MEMBERS[cls].get(value)  # a dict lookup: calling the enum costs more
    if member is None:
        raise InvalidInputError.field(field, f"unknown value {value}")
    return member


_ENUM_MEMBERS: dict[type[enum.IntEnum], dict[int, Any]] = {
    cls: {int(m): m for m in cls} for cls in (Role, MemberStatus, Tlp, OpinionKind, IncidentStage)
}


def _decode_message(m: Any) -> Body:
    h = _header(m.header)
    if isinstance(m, pb.Submission):
        make = new_signal_item
        return Submission(
            h,
            tuple(
                [
                    make(
                        s.type,
                        s.value,
                        tuple(s.labels),
                        s.content_type,
                        s.quality if s.HasField("quality") else None,
                    )
                    for s in m.signals
                ]
            ),
            m.scope,
            _enum(Tlp, m.tlp, "tlp"),
            m.salt,
        )
    if isinstance(m, pb.Retraction):
        return Retraction(h, _refs(m.signals), m.reason, m.scope, _enum(Tlp, m.tlp, "tlp"), m.salt)
    if isinstance(m, pb.Opinion):
        return Opinion(
            h,
            SignalRef(m.signal.type, m.signal.value),
            _enum(OpinionKind, m.kind, "kind"),
            m.note,
            m.scope,
            _enum(Tlp, m.tlp, "tlp"),
            m.salt,
        )
    if isinstance(m, pb.Genesis):
        lim = m.limits
        return Genesis(
            h,
            m.forum_name,
            m.operator_public_key,
            m.log_public_key,
            m.log_key_name,
            Limits(lim.max_batch_signals, lim.max_message_bytes, lim.max_labels_per_signal),
            tuple(m.board_public_keys),
            m.board_threshold,
        )
    if isinstance(m, pb.MemberAdmitted):
        return MemberAdmitted(h, m.member_id, m.display_name, _enum(Role, m.role, "role"))
    if isinstance(m, pb.MemberStatusChanged):
        return MemberStatusChanged(
            h, m.member_id, _enum(MemberStatus, m.status, "status"), m.reason
        )
    if isinstance(m, pb.KeyAdded):
        return KeyAdded(h, m.member_id, m.public_key, m.possession_signature, m.replaces_key_id)
    if isinstance(m, pb.KeyRevoked):
        return KeyRevoked(h, m.member_id, m.revoked_key_id, m.reason)
    if isinstance(m, pb.Taxonomy):
        labels = tuple(Label(x.id, x.kind, x.title, x.description) for x in m.labels)
        return Taxonomy(h, m.version, labels)
    if isinstance(m, pb.BenignList):
        return BenignList(h, _refs(m.add), _refs(m.remove))
    if isinstance(m, pb.Incident):
        return Incident(
            h,
            m.incident_id,
            m.title,
            m.open,
            _enum(IncidentStage, m.stage, "stage"),
            m.level,
            m.text,
            m.occurred_unix_ms,
        )
    if isinstance(m, pb.GroupCreated):
        return GroupCreated(h, m.group_id, m.name, m.description)
    if isinstance(m, pb.GroupMember):
        return GroupMember(h, m.group_id, m.member_id, m.member)
    if isinstance(m, pb.GroupClosed):
        return GroupClosed(h, m.group_id, m.reason)
    if isinstance(m, pb.BoardRotation):
        return BoardRotation(h, tuple(m.public_keys), m.threshold, m.reason)
    if isinstance(m, pb.Dispute):
        return Dispute(
            h,
            m.dispute_id,
            SignalRef(m.signal.type, m.signal.value),
            m.respondent,
            m.reason,
            m.appellant,
            m.deadline_unix_ms,
        )
    if isinstance(m, pb.DisputeAnswer):
        return DisputeAnswer(h, m.dispute_id, m.retract, m.rationale)
    if isinstance(m, pb.DisputeDecision):
        return DisputeDecision(h, m.dispute_id, m.remove, m.rationale)
    if isinstance(m, pb.WitnessSet):
        witnesses = tuple(WitnessInfo(w.name, w.public_key, w.url) for w in m.witnesses)
        return WitnessSet(h, m.version, witnesses, m.quorum)
    raise AssertionError(f"unhandled message {type(m).__name__}")  # pragma: no cover


def decode(payload_type: str, body: bytes) -> Body:
    """Parse the body bytes of an entry (unverified: verify the envelope first).

    Raises InvalidInputError for an unknown payload type or bytes that do not parse.
    """
    return _decode(payload_type, body)[0]


def decode_canonical(payload_type: str, body: bytes) -> tuple[Body, bool]:
    """:func:`decode`, and whether ``body`` is the one canonical encoding of what it says,
    ``encode(decoded) == body`` (fields in number order, each once, minimal varints, no
    unknown fields, no default written out).

    A Submission, the entry a sync meets most, is checked on the message protobuf already
    parsed: its unknown fields dropped and re-serialised in C, compared with ``body``.  That
    is the same answer, since :func:`encode` gives ``SerializeToString(deterministic=True)``
    of a message that holds every field a Submission has (the tests check both claims), at
    a fifth of the cost of encoding the decoded body again in Python.  Other types compare
    ``encode(decoded)``.  Raises as :func:`decode`.
    """
    decoded, message = _decode(payload_type, body)
    if type(decoded) is Submission:
        message.DiscardUnknownFields()
        return decoded, message.SerializeToString(deterministic=True) == body
    return decoded, encode(decoded) == body


def _decode(payload_type: str, body: bytes) -> tuple[Body, Any]:
    """The decoded body and the generated message it was read from."""
    cls = BODY_TYPES.get(payload_type)
    if cls is None:
        raise InvalidInputError.field("payload_type", f"unknown payload type {payload_type!r}")
    if len(body) > MAX_BODY_BYTES:
        raise InvalidInputError.field("body", f"larger than {MAX_BODY_BYTES} bytes")
    message = _MESSAGES[cls]()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise InvalidInputError.field("body", f"not a valid {cls.__name__}: {exc}") from None
    if not message.HasField("header"):
        raise InvalidInputError.field("body.header", "missing")
    if cls is Submission:
        if len(message.signals) >= _FAST_DECODE_MIN:
            items = _submission_items(body, len(message.signals))
            if items is not None:
                return Submission(
                    _header(message.header),
                    items,
                    message.scope,
                    _enum(Tlp, message.tlp, "tlp"),
                    message.salt,
                ), message
    elif cls in OPERATOR_BODIES and UnknownFieldSet(message):
        # e.g. a scope smuggled onto an operator entry: operator entries are forum-wide
        raise InvalidInputError.field(
            "body", f"{cls.__name__} carries fields it does not define (a scope?)"
        )
    return _decode_message(message), message


_FAST_DECODE_MIN = 32


def _varint_at(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it (bytes already parsed by protobuf)."""
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _submission_items(body: bytes, count: int) -> tuple[SignalItem, ...] | None:
    """The signals of a Submission ``body`` (which protobuf has parsed already) read straight
    from the bytes, or None unless it is laid out as the deterministic encoder writes it.

    Each signal is ``type, value, rest``; everything but the value repeats across a batch,
    so each distinct ``(type, rest)`` is parsed once by the generated code, and accepted
    only if it re-encodes to exactly those bytes (no stray or repeated field can hide in
    it).  Reading the generated message field by field per signal cost more than the parse.
    """
    templates: dict[tuple[bytes, bytes], tuple[str, tuple[str, ...], str, int | None] | None] = {}
    out: list[SignalItem] = []
    make = new_signal_item
    n = len(body)
    pos = 0
    while pos < n:
        item_start = pos
        tag = body[pos]
        if tag >= 0x80:  # tlp (31), salt (32): after the signals, read from the message
            break
        length = body[pos + 1]
        pos += 2
        if length >= 0x80:
            length, pos = _varint_at(body, pos - 1)
        end = pos + length
        if tag != 0x12:  # the header (1) or the scope (3): already read from the message
            if tag != 0x0A and tag != 0x1A:
                return None
            pos = end
            continue
        # A signal: 0x0A type, 0x12 value, then the rest (labels, content type, quality).
        if end - pos < 4 or body[pos] != 0x0A:
            return None
        type_end = pos + 2 + body[pos + 1]
        if body[pos + 1] >= 0x80 or type_end + 2 > end or body[type_end] != 0x12:
            return None
        value_len = body[type_end + 1]
        value_start = type_end + 2
        if value_len >= 0x80:
            value_len, value_start = _varint_at(body, type_end + 1)
        value_end = value_start + value_len
        if value_len == 0 or value_end > end:
            return None
        key = (body[pos:type_end], body[value_end:end])
        if not out and count > 1:  # the common batch: every signal alike but for its value
            uniform = _uniform_items(body, item_start, end, value_start, value_end, count, key)
            if uniform is not None:
                return uniform
        if key in templates:
            template = templates[key]
        else:
            template = templates[key] = _signal_template(key[0] + key[1])
        if template is None:
            return None
        type_, labels, content_type, quality = template
        out.append(
            make(type_, body[value_start:value_end].decode("utf-8"), labels, content_type, quality)
        )
        pos = end
    if len(out) != count:
        return None
    return tuple(out)


def _uniform_items(
    body: bytes,
    start: int,
    first_end: int,
    value_start: int,
    value_end: int,
    count: int,
    key: tuple[bytes, bytes],
) -> tuple[SignalItem, ...] | None:
    """All ``count`` signals at once when they are byte for byte the first one (from
    ``start`` to ``first_end``) but for the value, each the same length, and what follows
    them is at most the scope; else None.  Checked a byte column at a time (C speed)."""
    stride = first_end - start
    segment_end = start + stride * count
    if segment_end > len(body):
        return None
    if not _only_scope_fields(body[segment_end:]):
        return None
    segment = body[start:segment_end]
    if not segment.isascii():
        return None
    first = segment[:stride]
    v0, v1 = value_start - start, value_end - start
    for j in (*range(v0), *range(v1, stride)):
        if segment[j::stride] != first[j : j + 1] * count:
            return None
    template = _signal_template(key[0] + key[1])
    if template is None:
        return None
    type_, labels, content_type, quality = template
    text = segment.decode("ascii")
    width = v1 - v0
    make = new_signal_item
    return tuple(
        [
            make(type_, text[k : k + width], labels, content_type, quality)
            for k in range(v0, len(text), stride)
        ]
    )


def _only_scope_fields(data: bytes) -> bool:
    """Whether ``data`` (already parsed by protobuf) holds only a Submission's scope (3),
    tlp (31) and salt (32) fields."""
    pos, n = 0, len(data)
    try:
        while pos < n:
            tag, pos = _varint_at(data, pos)
            if tag == 0x1A or tag == (32 << 3 | 2):
                length, pos = _varint_at(data, pos)
                pos += length
            elif tag == 31 << 3:
                _, pos = _varint_at(data, pos)
            else:
                return False
    except IndexError:  # not field-aligned: the uniform-layout guess was wrong
        return False
    return pos == n


def _signal_template(data: bytes) -> tuple[str, tuple[str, ...], str, int | None] | None:
    m = pb.SignalItem()
    try:
        m.ParseFromString(data)
    except DecodeError:
        return None
    if m.value or m.SerializeToString(deterministic=True) != data:
        return None
    return (m.type, tuple(m.labels), m.content_type, m.quality if m.HasField("quality") else None)


# ---- encoding (authors only: done once, then the bytes are signed) ----


def _header_pb(h: Header) -> pb.EntryHeader:
    return pb.EntryHeader(
        origin=h.origin,
        member_id=h.member_id,
        key_id=h.key_id,
        sequence=h.sequence,
        created_unix_ms=h.created_unix_ms,
        expires_unix_ms=h.expires_unix_ms,
        normalization=h.normalization,
    )


def _refs_pb(refs: tuple[SignalRef, ...]) -> list[pb.SignalRef]:
    return [pb.SignalRef(type=r.type, value=r.value) for r in refs]


def _to_message(b: Body) -> Any:
    h = _header_pb(b.header)
    if isinstance(b, Submission):
        items = [
            pb.SignalItem(
                type=s.type,
                value=s.value,
                labels=s.labels,
                content_type=s.content_type,
                quality=s.quality,
            )
            for s in b.signals
        ]
        return pb.Submission(
            header=h, signals=items, scope=b.scope, tlp=pb_enum(b.tlp), salt=b.salt
        )
    if isinstance(b, Retraction):
        return pb.Retraction(
            header=h,
            signals=_refs_pb(b.signals),
            reason=b.reason,
            scope=b.scope,
            tlp=pb_enum(b.tlp),
            salt=b.salt,
        )
    if isinstance(b, Opinion):
        ref = pb.SignalRef(type=b.signal.type, value=b.signal.value)
        return pb.Opinion(
            header=h,
            signal=ref,
            kind=pb_enum(b.kind),
            note=b.note,
            scope=b.scope,
            tlp=pb_enum(b.tlp),
            salt=b.salt,
        )
    if isinstance(b, Genesis):
        lim = pb.Limits(
            max_batch_signals=b.limits.max_batch_signals,
            max_message_bytes=b.limits.max_message_bytes,
            max_labels_per_signal=b.limits.max_labels_per_signal,
        )
        return pb.Genesis(
            header=h,
            forum_name=b.forum_name,
            operator_public_key=b.operator_public_key,
            log_public_key=b.log_public_key,
            log_key_name=b.log_key_name,
            limits=lim,
            board_public_keys=b.board_public_keys,
            board_threshold=b.board_threshold,
        )
    if isinstance(b, MemberAdmitted):
        return pb.MemberAdmitted(
            header=h, member_id=b.member_id, display_name=b.display_name, role=pb_enum(b.role)
        )
    if isinstance(b, MemberStatusChanged):
        return pb.MemberStatusChanged(
            header=h, member_id=b.member_id, status=pb_enum(b.status), reason=b.reason
        )
    if isinstance(b, KeyAdded):
        return pb.KeyAdded(
            header=h,
            member_id=b.member_id,
            public_key=b.public_key,
            possession_signature=b.possession_signature,
            replaces_key_id=b.replaces_key_id,
        )
    if isinstance(b, KeyRevoked):
        return pb.KeyRevoked(
            header=h, member_id=b.member_id, revoked_key_id=b.revoked_key_id, reason=b.reason
        )
    if isinstance(b, Taxonomy):
        labels = [
            pb.Label(id=x.id, kind=x.kind, title=x.title, description=x.description)
            for x in b.labels
        ]
        return pb.Taxonomy(header=h, version=b.version, labels=labels)
    if isinstance(b, BenignList):
        return pb.BenignList(header=h, add=_refs_pb(b.add), remove=_refs_pb(b.remove))
    if isinstance(b, Incident):
        return pb.Incident(
            header=h,
            incident_id=b.incident_id,
            title=b.title,
            open=b.open,
            stage=pb_enum(b.stage),
            level=b.level,
            text=b.text,
            occurred_unix_ms=b.occurred_unix_ms,
        )
    if isinstance(b, GroupCreated):
        return pb.GroupCreated(
            header=h, group_id=b.group_id, name=b.name, description=b.description
        )
    if isinstance(b, GroupMember):
        return pb.GroupMember(header=h, group_id=b.group_id, member_id=b.member_id, member=b.member)
    if isinstance(b, GroupClosed):
        return pb.GroupClosed(header=h, group_id=b.group_id, reason=b.reason)
    if isinstance(b, BoardRotation):
        return pb.BoardRotation(
            header=h, public_keys=b.public_keys, threshold=b.threshold, reason=b.reason
        )
    if isinstance(b, Dispute):
        return pb.Dispute(
            header=h,
            dispute_id=b.dispute_id,
            signal=pb.SignalRef(type=b.signal.type, value=b.signal.value),
            respondent=b.respondent,
            reason=b.reason,
            appellant=b.appellant,
            deadline_unix_ms=b.deadline_unix_ms,
        )
    if isinstance(b, DisputeAnswer):
        return pb.DisputeAnswer(
            header=h, dispute_id=b.dispute_id, retract=b.retract, rationale=b.rationale
        )
    if isinstance(b, DisputeDecision):
        return pb.DisputeDecision(
            header=h, dispute_id=b.dispute_id, remove=b.remove, rationale=b.rationale
        )
    if isinstance(b, WitnessSet):
        witnesses = [
            pb.WitnessInfo(name=w.name, public_key=w.public_key, url=w.url) for w in b.witnesses
        ]
        return pb.WitnessSet(header=h, version=b.version, witnesses=witnesses, quorum=b.quorum)
    raise AssertionError(f"unhandled body {type(b).__name__}")  # pragma: no cover


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINTS = [_varint(n) for n in range(128 * 128)]  # every length below 16 KiB


def _string_field(tag: int, text: str) -> bytes:
    data = text.encode("utf-8")
    return bytes((tag,)) + _varint(len(data)) + data


_UINT32_MAX = 2**32 - 1


def _encode_submission(b: Submission) -> bytes | None:
    """The deterministic protobuf encoding of a Submission, built directly (the generated
    message per signal dominated the cost of preparing a batch), or None for anything
    unusual, which goes through the generated message instead.

    Byte-for-byte what ``SerializeToString(deterministic=True)`` gives (fields in number
    order, proto3 defaults omitted, the optional ``quality`` present when set); the tests
    check it against the generated code.
    """
    # The bytes of each signal around its value, by (type, labels, content type, quality).
    templates: dict[tuple[object, ...], tuple[bytes, bytes]] = {}
    varints = _VARINTS
    header = _header_pb(b.header).SerializeToString(deterministic=True)
    parts = [b"\x0a", _varint(len(header)), header]
    uniform = _encode_uniform_signals(b.signals)
    if uniform is not None:
        parts.append(uniform)
    for s in () if uniform is not None else b.signals:
        value = s.value
        key = (s.type, s.labels, s.content_type, s.quality)
        template = templates.get(key)
        if template is None:
            made = _signal_template_bytes(key)
            if made is None:
                return None
            template = templates[key] = made
        if type(value) is not str:
            return None
        head, tail = template
        if value:
            data = value.encode("utf-8")
            n = len(data)
            item = b"".join((head, b"\x12", varints[n] if n < 16384 else _varint(n), data, tail))
        else:
            item = head + tail
        n = len(item)
        parts.append(b"\x12")
        parts.append(varints[n] if n < 16384 else _varint(n))
        parts.append(item)
    if type(b.scope) is not str or type(b.salt) is not bytes or not isinstance(b.tlp, int):
        return None
    if b.scope:
        parts.append(_string_field(0x1A, b.scope))
    if b.tlp:
        parts.append(b"\xf8\x01" + _varint(int(b.tlp)))
    if b.salt:
        parts.append(b"\x82\x02" + _varint(len(b.salt)) + b.salt)
    return b"".join(parts)


_SIGNAL_KEY = attrgetter("type", "labels", "content_type", "quality")
_SIGNAL_VALUE = attrgetter("value")


def _signal_template_bytes(key: tuple[object, ...]) -> tuple[bytes, bytes] | None:
    """The bytes of a signal before and after its value, or None for an unusual one."""
    type_, labels, content_type, quality = key
    if (
        type(type_) is not str
        or type(labels) is not tuple
        or type(content_type) is not str
        or any(type(x) is not str for x in labels)
        or not (quality is None or (type(quality) is int and 0 <= quality <= _UINT32_MAX))
    ):
        return None
    head = _string_field(0x0A, type_) if type_ else b""
    tail = b"".join(_string_field(0x1A, x) for x in labels)
    if content_type:
        tail += _string_field(0x22, content_type)
    if quality is not None:
        tail += b"\x28" + _varint(quality)
    return head, tail


def _encode_uniform_signals(signals: tuple[SignalItem, ...]) -> bytes | None:
    """The common batch, encoded in C: every signal alike but for an ASCII value, all of one
    length.  The same bytes as the loop in :func:`_encode_submission`; None otherwise."""
    if len(signals) < 2:
        return None
    keys = set(map(_SIGNAL_KEY, signals))
    if len(keys) != 1:
        return None
    values = list(map(_SIGNAL_VALUE, signals))
    if any(type(v) is not str for v in values) or len(set(map(len, values))) != 1:
        return None
    width = len(values[0])
    joined = "".join(values)
    if not width or not joined.isascii():
        return None
    template = _signal_template_bytes(next(iter(keys)))
    if template is None:
        return None
    head, tail = template
    item_length = len(head) + 1 + len(_varint(width)) + width + len(tail)
    prefix = b"\x12" + _varint(item_length) + head + b"\x12" + _varint(width)
    # latin-1 maps bytes 0-255 to the same code points, so the join happens on str in C
    between = (tail + prefix).decode("latin-1")
    return prefix + between.join(values).encode("latin-1") + tail


def encode(body: Body) -> bytes:
    """Serialise a body once, for signing.  The signed bytes are these bytes, forever."""
    if type(body) is Submission:
        try:
            fast = _encode_submission(body)
        except (TypeError, UnicodeError):  # unhashable labels, unencodable text
            fast = None
        if fast is not None:
            return fast
    data: bytes = _to_message(body).SerializeToString(deterministic=True)
    return data
