from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_OPERATOR: _ClassVar[Role]
    ROLE_MEMBER: _ClassVar[Role]
    ROLE_OBSERVER: _ClassVar[Role]

class MemberStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMBER_STATUS_UNSPECIFIED: _ClassVar[MemberStatus]
    MEMBER_STATUS_ACTIVE: _ClassVar[MemberStatus]
    MEMBER_STATUS_SUSPENDED: _ClassVar[MemberStatus]

class OpinionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPINION_KIND_UNSPECIFIED: _ClassVar[OpinionKind]
    OPINION_KIND_AGREE: _ClassVar[OpinionKind]
    OPINION_KIND_DISAGREE: _ClassVar[OpinionKind]
    OPINION_KIND_FALSE_POSITIVE: _ClassVar[OpinionKind]
    OPINION_KIND_SEEN: _ClassVar[OpinionKind]

class IncidentStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INCIDENT_STAGE_UNSPECIFIED: _ClassVar[IncidentStage]
    INCIDENT_STAGE_DECLARED: _ClassVar[IncidentStage]
    INCIDENT_STAGE_UPDATE: _ClassVar[IncidentStage]
    INCIDENT_STAGE_CONCLUDED: _ClassVar[IncidentStage]
    INCIDENT_STAGE_DEBRIEF: _ClassVar[IncidentStage]

class Tlp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TLP_UNSPECIFIED: _ClassVar[Tlp]
    TLP_CLEAR: _ClassVar[Tlp]
    TLP_GREEN: _ClassVar[Tlp]
    TLP_AMBER: _ClassVar[Tlp]
    TLP_AMBER_STRICT: _ClassVar[Tlp]
    TLP_RED: _ClassVar[Tlp]
ROLE_UNSPECIFIED: Role
ROLE_OPERATOR: Role
ROLE_MEMBER: Role
ROLE_OBSERVER: Role
MEMBER_STATUS_UNSPECIFIED: MemberStatus
MEMBER_STATUS_ACTIVE: MemberStatus
MEMBER_STATUS_SUSPENDED: MemberStatus
OPINION_KIND_UNSPECIFIED: OpinionKind
OPINION_KIND_AGREE: OpinionKind
OPINION_KIND_DISAGREE: OpinionKind
OPINION_KIND_FALSE_POSITIVE: OpinionKind
OPINION_KIND_SEEN: OpinionKind
INCIDENT_STAGE_UNSPECIFIED: IncidentStage
INCIDENT_STAGE_DECLARED: IncidentStage
INCIDENT_STAGE_UPDATE: IncidentStage
INCIDENT_STAGE_CONCLUDED: IncidentStage
INCIDENT_STAGE_DEBRIEF: IncidentStage
TLP_UNSPECIFIED: Tlp
TLP_CLEAR: Tlp
TLP_GREEN: Tlp
TLP_AMBER: Tlp
TLP_AMBER_STRICT: Tlp
TLP_RED: Tlp

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("member_id", "role", "status", "origin", "forum_name", "log_size", "last_sequence_by_key_id", "labels", "groups")
    class LastSequenceByKeyIdEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    FORUM_NAME_FIELD_NUMBER: _ClassVar[int]
    LOG_SIZE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_BY_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    role: Role
    status: MemberStatus
    origin: str
    forum_name: str
    log_size: int
    last_sequence_by_key_id: _containers.ScalarMap[str, int]
    labels: _containers.RepeatedScalarFieldContainer[str]
    groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, member_id: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., status: _Optional[_Union[MemberStatus, str]] = ..., origin: _Optional[str] = ..., forum_name: _Optional[str] = ..., log_size: _Optional[int] = ..., last_sequence_by_key_id: _Optional[_Mapping[str, int]] = ..., labels: _Optional[_Iterable[str]] = ..., groups: _Optional[_Iterable[str]] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetEntriesRequest(_message.Message):
    __slots__ = ("start", "end", "follow", "max_batch", "leaves")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    LEAVES_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    follow: bool
    max_batch: int
    leaves: bool
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ..., follow: _Optional[bool] = ..., max_batch: _Optional[int] = ..., leaves: _Optional[bool] = ...) -> None: ...

class EntryBatch(_message.Message):
    __slots__ = ("entries", "checkpoint")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LogEntry]
    checkpoint: SignedCheckpoint
    def __init__(self, entries: _Optional[_Iterable[_Union[LogEntry, _Mapping]]] = ..., checkpoint: _Optional[_Union[SignedCheckpoint, _Mapping]] = ...) -> None: ...

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("index", "tree_size")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    index: int
    tree_size: int
    def __init__(self, index: _Optional[int] = ..., tree_size: _Optional[int] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("size1", "size2")
    SIZE1_FIELD_NUMBER: _ClassVar[int]
    SIZE2_FIELD_NUMBER: _ClassVar[int]
    size1: int
    size2: int
    def __init__(self, size1: _Optional[int] = ..., size2: _Optional[int] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("entry", "scope_claim_signature")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    SCOPE_CLAIM_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    scope_claim_signature: bytes
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ..., scope_claim_signature: _Optional[bytes] = ...) -> None: ...

class AppendOperatorEntryRequest(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ...) -> None: ...

class RegisterCredentialRequest(_message.Message):
    __slots__ = ("member_id", "certificate_sha256", "revoke_others", "not_after_unix")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SHA256_FIELD_NUMBER: _ClassVar[int]
    REVOKE_OTHERS_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_UNIX_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    certificate_sha256: bytes
    revoke_others: bool
    not_after_unix: int
    def __init__(self, member_id: _Optional[str] = ..., certificate_sha256: _Optional[bytes] = ..., revoke_others: _Optional[bool] = ..., not_after_unix: _Optional[int] = ...) -> None: ...

class RegisterCredentialResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: int
    def __init__(self, revoked: _Optional[int] = ...) -> None: ...

class ListMembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MemberInfo(_message.Message):
    __slots__ = ("member_id", "display_name", "role", "status", "active_key_ids", "admitted_at_index")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_KEY_IDS_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_AT_INDEX_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    display_name: str
    role: Role
    status: MemberStatus
    active_key_ids: _containers.RepeatedScalarFieldContainer[bytes]
    admitted_at_index: int
    def __init__(self, member_id: _Optional[str] = ..., display_name: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., status: _Optional[_Union[MemberStatus, str]] = ..., active_key_ids: _Optional[_Iterable[bytes]] = ..., admitted_at_index: _Optional[int] = ...) -> None: ...

class ListMembersResponse(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[MemberInfo]
    def __init__(self, members: _Optional[_Iterable[_Union[MemberInfo, _Mapping]]] = ...) -> None: ...

class ListAuditRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("id", "time_unix_ms", "actor", "action", "target", "outcome", "detail")
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    id: int
    time_unix_ms: int
    actor: str
    action: str
    target: str
    outcome: str
    detail: str
    def __init__(self, id: _Optional[int] = ..., time_unix_ms: _Optional[int] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., target: _Optional[str] = ..., outcome: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ListAuditResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("payload_type", "body", "key_id", "signature", "cosignatures")
    PAYLOAD_TYPE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    COSIGNATURES_FIELD_NUMBER: _ClassVar[int]
    payload_type: str
    body: bytes
    key_id: bytes
    signature: bytes
    cosignatures: _containers.RepeatedCompositeFieldContainer[EntrySignature]
    def __init__(self, payload_type: _Optional[str] = ..., body: _Optional[bytes] = ..., key_id: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., cosignatures: _Optional[_Iterable[_Union[EntrySignature, _Mapping]]] = ...) -> None: ...

class LogEntry(_message.Message):
    __slots__ = ("index", "entry", "leaf_hash", "leaf", "scope_claim")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    LEAF_FIELD_NUMBER: _ClassVar[int]
    SCOPE_CLAIM_FIELD_NUMBER: _ClassVar[int]
    index: int
    entry: Entry
    leaf_hash: bytes
    leaf: bytes
    scope_claim: ScopeClaim
    def __init__(self, index: _Optional[int] = ..., entry: _Optional[_Union[Entry, _Mapping]] = ..., leaf_hash: _Optional[bytes] = ..., leaf: _Optional[bytes] = ..., scope_claim: _Optional[_Union[ScopeClaim, _Mapping]] = ...) -> None: ...

class SignedCheckpoint(_message.Message):
    __slots__ = ("note", "pending_note", "witness_status")
    class WitnessStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NOTE_FIELD_NUMBER: _ClassVar[int]
    PENDING_NOTE_FIELD_NUMBER: _ClassVar[int]
    WITNESS_STATUS_FIELD_NUMBER: _ClassVar[int]
    note: bytes
    pending_note: bytes
    witness_status: _containers.ScalarMap[str, str]
    def __init__(self, note: _Optional[bytes] = ..., pending_note: _Optional[bytes] = ..., witness_status: _Optional[_Mapping[str, str]] = ...) -> None: ...

class InclusionProof(_message.Message):
    __slots__ = ("index", "tree_size", "hashes")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    index: int
    tree_size: int
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, index: _Optional[int] = ..., tree_size: _Optional[int] = ..., hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ConsistencyProof(_message.Message):
    __slots__ = ("size1", "size2", "hashes")
    SIZE1_FIELD_NUMBER: _ClassVar[int]
    SIZE2_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    size1: int
    size2: int
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, size1: _Optional[int] = ..., size2: _Optional[int] = ..., hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("index", "leaf_hash", "checkpoint", "proof")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    index: int
    leaf_hash: bytes
    checkpoint: SignedCheckpoint
    proof: InclusionProof
    def __init__(self, index: _Optional[int] = ..., leaf_hash: _Optional[bytes] = ..., checkpoint: _Optional[_Union[SignedCheckpoint, _Mapping]] = ..., proof: _Optional[_Union[InclusionProof, _Mapping]] = ...) -> None: ...

class EntryHeader(_message.Message):
    __slots__ = ("origin", "member_id", "key_id", "sequence", "created_unix_ms", "expires_unix_ms", "normalization")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    origin: str
    member_id: str
    key_id: bytes
    sequence: int
    created_unix_ms: int
    expires_unix_ms: int
    normalization: int
    def __init__(self, origin: _Optional[str] = ..., member_id: _Optional[str] = ..., key_id: _Optional[bytes] = ..., sequence: _Optional[int] = ..., created_unix_ms: _Optional[int] = ..., expires_unix_ms: _Optional[int] = ..., normalization: _Optional[int] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_batch_signals", "max_message_bytes", "max_labels_per_signal")
    MAX_BATCH_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_LABELS_PER_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    max_batch_signals: int
    max_message_bytes: int
    max_labels_per_signal: int
    def __init__(self, max_batch_signals: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_labels_per_signal: _Optional[int] = ...) -> None: ...

class Genesis(_message.Message):
    __slots__ = ("header", "forum_name", "operator_public_key", "log_public_key", "log_key_name", "limits", "board_public_keys", "board_threshold")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    FORUM_NAME_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    LOG_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    LOG_KEY_NAME_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    BOARD_PUBLIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    BOARD_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    forum_name: str
    operator_public_key: bytes
    log_public_key: bytes
    log_key_name: str
    limits: Limits
    board_public_keys: _containers.RepeatedScalarFieldContainer[bytes]
    board_threshold: int
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., forum_name: _Optional[str] = ..., operator_public_key: _Optional[bytes] = ..., log_public_key: _Optional[bytes] = ..., log_key_name: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., board_public_keys: _Optional[_Iterable[bytes]] = ..., board_threshold: _Optional[int] = ...) -> None: ...

class MemberAdmitted(_message.Message):
    __slots__ = ("header", "member_id", "display_name", "role")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    member_id: str
    display_name: str
    role: Role
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., member_id: _Optional[str] = ..., display_name: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ...) -> None: ...

class MemberStatusChanged(_message.Message):
    __slots__ = ("header", "member_id", "status", "reason")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    member_id: str
    status: MemberStatus
    reason: str
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., member_id: _Optional[str] = ..., status: _Optional[_Union[MemberStatus, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class KeyAdded(_message.Message):
    __slots__ = ("header", "member_id", "public_key", "possession_signature", "replaces_key_id")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    POSSESSION_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    REPLACES_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    member_id: str
    public_key: bytes
    possession_signature: bytes
    replaces_key_id: bytes
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., member_id: _Optional[str] = ..., public_key: _Optional[bytes] = ..., possession_signature: _Optional[bytes] = ..., replaces_key_id: _Optional[bytes] = ...) -> None: ...

class KeyRevoked(_message.Message):
    __slots__ = ("header", "member_id", "revoked_key_id", "reason")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKED_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    member_id: str
    revoked_key_id: bytes
    reason: str
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., member_id: _Optional[str] = ..., revoked_key_id: _Optional[bytes] = ..., reason: _Optional[str] = ...) -> None: ...

class SignalItem(_message.Message):
    __slots__ = ("type", "value", "labels", "content_type", "quality")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    type: str
    value: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    content_type: str
    quality: int
    def __init__(self, type: _Optional[str] = ..., value: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., content_type: _Optional[str] = ..., quality: _Optional[int] = ...) -> None: ...

class SignalRef(_message.Message):
    __slots__ = ("type", "value")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    type: str
    value: str
    def __init__(self, type: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Submission(_message.Message):
    __slots__ = ("header", "signals", "scope", "tlp", "salt")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    TLP_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    signals: _containers.RepeatedCompositeFieldContainer[SignalItem]
    scope: str
    tlp: Tlp
    salt: bytes
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., signals: _Optional[_Iterable[_Union[SignalItem, _Mapping]]] = ..., scope: _Optional[str] = ..., tlp: _Optional[_Union[Tlp, str]] = ..., salt: _Optional[bytes] = ...) -> None: ...

class Retraction(_message.Message):
    __slots__ = ("header", "signals", "reason", "scope", "tlp", "salt")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    TLP_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    signals: _containers.RepeatedCompositeFieldContainer[SignalRef]
    reason: str
    scope: str
    tlp: Tlp
    salt: bytes
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., signals: _Optional[_Iterable[_Union[SignalRef, _Mapping]]] = ..., reason: _Optional[str] = ..., scope: _Optional[str] = ..., tlp: _Optional[_Union[Tlp, str]] = ..., salt: _Optional[bytes] = ...) -> None: ...

class Opinion(_message.Message):
    __slots__ = ("header", "signal", "kind", "note", "scope", "tlp", "salt")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    TLP_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    signal: SignalRef
    kind: OpinionKind
    note: str
    scope: str
    tlp: Tlp
    salt: bytes
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., signal: _Optional[_Union[SignalRef, _Mapping]] = ..., kind: _Optional[_Union[OpinionKind, str]] = ..., note: _Optional[str] = ..., scope: _Optional[str] = ..., tlp: _Optional[_Union[Tlp, str]] = ..., salt: _Optional[bytes] = ...) -> None: ...

class Label(_message.Message):
    __slots__ = ("id", "kind", "title", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    title: str
    description: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class Taxonomy(_message.Message):
    __slots__ = ("header", "version", "labels")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    version: int
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., version: _Optional[int] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ...) -> None: ...

class BenignList(_message.Message):
    __slots__ = ("header", "add", "remove")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    add: _containers.RepeatedCompositeFieldContainer[SignalRef]
    remove: _containers.RepeatedCompositeFieldContainer[SignalRef]
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., add: _Optional[_Iterable[_Union[SignalRef, _Mapping]]] = ..., remove: _Optional[_Iterable[_Union[SignalRef, _Mapping]]] = ...) -> None: ...

class Incident(_message.Message):
    __slots__ = ("header", "incident_id", "title", "open", "stage", "level", "text", "occurred_unix_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    incident_id: str
    title: str
    open: bool
    stage: IncidentStage
    level: int
    text: str
    occurred_unix_ms: int
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., incident_id: _Optional[str] = ..., title: _Optional[str] = ..., open: _Optional[bool] = ..., stage: _Optional[_Union[IncidentStage, str]] = ..., level: _Optional[int] = ..., text: _Optional[str] = ..., occurred_unix_ms: _Optional[int] = ...) -> None: ...

class EntrySignature(_message.Message):
    __slots__ = ("key_id", "signature")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    key_id: bytes
    signature: bytes
    def __init__(self, key_id: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class BoardRotation(_message.Message):
    __slots__ = ("header", "public_keys", "threshold", "reason")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    public_keys: _containers.RepeatedScalarFieldContainer[bytes]
    threshold: int
    reason: str
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., public_keys: _Optional[_Iterable[bytes]] = ..., threshold: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Dispute(_message.Message):
    __slots__ = ("header", "dispute_id", "signal", "respondent", "reason", "appellant", "deadline_unix_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DISPUTE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    RESPONDENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    APPELLANT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    dispute_id: str
    signal: SignalRef
    respondent: str
    reason: str
    appellant: str
    deadline_unix_ms: int
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., dispute_id: _Optional[str] = ..., signal: _Optional[_Union[SignalRef, _Mapping]] = ..., respondent: _Optional[str] = ..., reason: _Optional[str] = ..., appellant: _Optional[str] = ..., deadline_unix_ms: _Optional[int] = ...) -> None: ...

class DisputeAnswer(_message.Message):
    __slots__ = ("header", "dispute_id", "retract", "rationale")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DISPUTE_ID_FIELD_NUMBER: _ClassVar[int]
    RETRACT_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    dispute_id: str
    retract: bool
    rationale: str
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., dispute_id: _Optional[str] = ..., retract: _Optional[bool] = ..., rationale: _Optional[str] = ...) -> None: ...

class DisputeDecision(_message.Message):
    __slots__ = ("header", "dispute_id", "remove", "rationale")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DISPUTE_ID_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    dispute_id: str
    remove: bool
    rationale: str
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., dispute_id: _Optional[str] = ..., remove: _Optional[bool] = ..., rationale: _Optional[str] = ...) -> None: ...

class ScopeClaim(_message.Message):
    __slots__ = ("group_id", "key_id", "signature")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    key_id: bytes
    signature: bytes
    def __init__(self, group_id: _Optional[str] = ..., key_id: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class GroupCreated(_message.Message):
    __slots__ = ("header", "group_id", "name", "description")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    group_id: str
    name: str
    description: str
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., group_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class GroupMember(_message.Message):
    __slots__ = ("header", "group_id", "member_id", "member")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    group_id: str
    member_id: str
    member: bool
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., group_id: _Optional[str] = ..., member_id: _Optional[str] = ..., member: _Optional[bool] = ...) -> None: ...

class GroupClosed(_message.Message):
    __slots__ = ("header", "group_id", "reason")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    group_id: str
    reason: str
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., group_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WitnessInfo(_message.Message):
    __slots__ = ("name", "public_key", "url")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    name: str
    public_key: bytes
    url: str
    def __init__(self, name: _Optional[str] = ..., public_key: _Optional[bytes] = ..., url: _Optional[str] = ...) -> None: ...

class WitnessSet(_message.Message):
    __slots__ = ("header", "version", "witnesses", "quorum")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WITNESSES_FIELD_NUMBER: _ClassVar[int]
    QUORUM_FIELD_NUMBER: _ClassVar[int]
    header: EntryHeader
    version: int
    witnesses: _containers.RepeatedCompositeFieldContainer[WitnessInfo]
    quorum: int
    def __init__(self, header: _Optional[_Union[EntryHeader, _Mapping]] = ..., version: _Optional[int] = ..., witnesses: _Optional[_Iterable[_Union[WitnessInfo, _Mapping]]] = ..., quorum: _Optional[int] = ...) -> None: ...
