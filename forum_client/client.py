"""ForumClient: the member's connection to a forum, verifying everything it is told.

    >>> from forum_client import ForumClient                    # doctest: +SKIP
    >>> with ForumClient.connect("acme.bundle.json") as forum:  # doctest: +SKIP
    ...     print(forum.status().log_size)

Every checkpoint is verified against the log key pinned in the bundle, and every receipt by
an inclusion proof, before the SDK returns it.

Submitting: values are normalised here, before they are signed; a batch of up to the forum's
``max_batch_signals`` (10,000 by default) is one entry with one signature::

    >>> key = SigningKey.load("acme.key")                       # doctest: +SKIP
    >>> receipt = forum.submit([SignalItem("md5", "D41D8CD98F00B204E9800998ECF8427E",
    ...                                    ("behaviour:terrorist-publication",))], key)
    ...                                                         # doctest: +SKIP
    >>> forum.retract([SignalRef("md5", "d41d8cd98f00b204e9800998ecf8427e")], key,
    ...               reason="false positive")                  # doctest: +SKIP
    >>> forum.opine(SignalRef("md5", "..."), "agree", key)      # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import grpc

from . import entries as e
from ._proto.forum.v1 import forum_pb2 as pb
from ._proto.forum.v1 import forum_pb2_grpc as pb_grpc
from .checkpoint import Checkpoint
from .entries import OpinionKind, SignalItem, SignalRef, Tlp
from .envelope import Envelope, SigningKey
from .errors import (
    InvalidInputError,
    SecurityError,
    TransportError,
    VerificationError,
    Violation,
    Violations,
)
from .merkle import leaf_hash, verify_consistency, verify_inclusion
from .profile import Bundle
from .receipts import verify_checkpoint_note, verify_receipt
from .scopes import new_salt, sharing, sign_scope_claim
from .signals import SIGNAL_TYPES, get_signal_type
from .signals.versions import CURRENT as NORMALIZATION
from .source import Unreadable, served_item
from .transport import MAX_MESSAGE_BYTES, call, error_from_rpc, open_channel
from .verifier import MAX_SEQUENCE, LogState
from .wire import Receipt, envelope_to_pb, receipt_from_pb

if TYPE_CHECKING:  # sync.py imports nothing from here; keep the import graph one-way
    from collections.abc import Callable

    from .store import LocalStore
    from .sync import SyncConfig, SyncProgress, SyncResult

_Stub = TypeVar("_Stub")
MAX_REPORTED_PROBLEMS = 100
MAX_ANSWER_WITHIN_MS = 365 * 24 * 3600 * 1000
"""A dispute's deadline is at most a year ahead (``forum-client dispute open --answer-within``)."""


@dataclass(frozen=True)
class SentBatch:
    """A batch :meth:`ForumClient.submit_batches` is about to send: with the same signals,
    these values rebuild its entry byte for byte (:meth:`ForumClient.prepare_submission`)."""

    signals: int  # how many, in the order they were read
    sequence: int
    created_unix_ms: int
    salt: bytes  # b"" for a forum-wide entry
    leaf_hash: bytes  # of the signed entry


class SignalLike(Protocol):
    """Anything with the fields of a signal to submit (e.g. :class:`entries.SignalItem`)."""

    @property
    def type(self) -> str: ...

    @property
    def value(self) -> str: ...


BATCH_VALUE_CHARS = 8 * 1024 * 1024
"""``submit_batches`` closes a batch once its values add up to this many characters, so that
batches of large values (vPDQ hashes of long videos) stay well under the message limit."""

SignalInput = SignalLike | Mapping[str, Any]
"""A signal to submit: an object with ``type``, ``value`` and optionally ``labels``,
``content_type`` and ``quality`` attributes, or a mapping with those keys."""


def _field(item: SignalInput, name: str, default: Any) -> Any:
    value = item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)
    return default if value is None else value


def normalize_item(item: SignalInput, where: str = "signal") -> SignalItem:
    """Normalise one signal to submit: canonical value, default content type, clean labels.

    Raises InvalidInputError naming ``where.type``, ``where.value``, ``where.labels`` or
    ``where.quality``.
    """
    type_ = str(_field(item, "type", ""))
    try:
        kind = get_signal_type(type_)
        value = kind.normalize(str(_field(item, "value", "")))
    except InvalidInputError as exc:
        v = exc.violations[0] if exc.violations else Violation("value", str(exc))
        raise InvalidInputError(
            f"{where}.{v.field}: {v.reason}", [Violation(f"{where}.{v.field}", v.reason)]
        ) from None
    labels = _field(item, "labels", ())
    if isinstance(labels, str):
        labels = labels.split(";")
    if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
        raise InvalidInputError.field(
            f"{where}.labels", "must be label ids (a list, or ';'-separated)"
        )
    labels = tuple(x.strip() for x in labels if x.strip())
    content_type = str(_field(item, "content_type", "")).strip().lower()
    content_type = content_type or kind.default_content_type.value
    quality = _field(item, "quality", None)
    if quality is not None and quality != "":
        try:
            quality = int(quality)
        except (TypeError, ValueError):
            raise InvalidInputError.field(
                f"{where}.quality", f"{quality!r} is not an integer"
            ) from None
    else:
        quality = None
    return SignalItem(kind.name, value, labels, content_type, quality)


def normalize_ref(ref: SignalInput, where: str = "signal") -> SignalRef:
    """Normalise a reference to a signal.  Raises InvalidInputError naming the field."""
    item = normalize_item(
        {"type": _field(ref, "type", ""), "value": _field(ref, "value", "")}, where
    )
    return SignalRef(item.type, item.value)


def _normalize_all(items: Iterable[SignalInput], fn: Any) -> list[Any]:
    out: list[Any] = []
    problems = Violations(MAX_REPORTED_PROBLEMS)
    for i, item in enumerate(items):
        try:
            out.append(fn(item, f"signals[{i}]"))
        except InvalidInputError as exc:
            problems.extend(exc.violations)
    problems.raise_if_any()
    return out


def _normalize_signals(items: Iterable[SignalInput]) -> list[SignalItem]:
    """:func:`_normalize_all` with :func:`normalize_item`, and a fast path for the common item:
    a plain dict whose type is an exact type name, whose labels are a tuple of strings or a
    string, with no quality.  Labels and content types are worked out once per distinct
    input; everything else (and any item that fails) goes through :func:`normalize_item`,
    so the results and errors are the same."""
    out: list[SignalItem] = []
    problems = Violations(MAX_REPORTED_PROBLEMS)
    labels_seen: dict[object, tuple[str, ...]] = {}
    content_seen: dict[object, dict[str, str]] = {}
    types = SIGNAL_TYPES
    make = e.new_signal_item
    for i, item in enumerate(items):
        if type(item) is dict:
            type_ = item.get("type")
            kind = types.get(type_) if type(type_) is str else None
            value = item.get("value")
            if kind is not None and type(value) is str and item.get("quality") is None:
                labels = item.get("labels")
                clean = labels_seen.get(labels) if type(labels) in _LABEL_INPUTS else None
                if clean is None and (
                    type(labels) is str
                    or (type(labels) is tuple and all(type(x) is str for x in labels))
                ):
                    clean = labels_seen[labels] = tuple(
                        x.strip()
                        for x in (labels.split(";") if type(labels) is str else labels)
                        if x.strip()
                    )
                elif labels is None:
                    clean = ()
                raw_ct = item.get("content_type")
                by_kind = content_seen.get(raw_ct) if type(raw_ct) in _CT_INPUTS else None
                if by_kind is None and type(raw_ct) in _CT_INPUTS:
                    by_kind = content_seen[raw_ct] = {}
                content_type = by_kind.get(kind.name) if by_kind is not None else None
                if content_type is None and by_kind is not None:
                    text = "" if raw_ct is None else str(raw_ct).strip().lower()
                    content_type = by_kind[kind.name] = text or kind.default_content_type.value
                if clean is not None and content_type is not None:
                    try:
                        canonical = kind.normalize(value)
                    except InvalidInputError:
                        pass  # reported below, the slow way
                    else:
                        out.append(make(kind.name, canonical, clean, content_type, None))
                        continue
        try:
            out.append(normalize_item(item, f"signals[{i}]"))
        except InvalidInputError as exc:
            problems.extend(exc.violations)
    problems.raise_if_any()
    return out


_LABEL_INPUTS = (tuple, str, type(None))
_CT_INPUTS = (str, type(None))


def parse_opinion_kind(kind: OpinionKind | str) -> OpinionKind:
    if isinstance(kind, OpinionKind):
        return kind
    try:
        return OpinionKind[str(kind).strip().upper().replace("-", "_")]
    except KeyError:
        choices = ", ".join(k.name.lower().replace("_", "-") for k in OpinionKind)
        raise InvalidInputError.field(
            "kind", f"unknown opinion {kind!r}: one of {choices}"
        ) from None


@dataclass(frozen=True)
class Status:
    member_id: str
    role: e.Role
    status: e.MemberStatus
    origin: str
    forum_name: str
    log_size: int
    last_sequence_by_key_id: dict[str, int]
    groups: tuple[str, ...] = ()  # open sharing groups the member is in (the server's word)
    labels: frozenset[str] = frozenset()  # what submissions may carry now (unverified hint)


class ForumClient:
    """A connection to one forum with one member's credentials.

    Raises TransportError when the forum cannot be reached or refuses a call, and
    SecurityError (VerificationError) when what it returns does not verify.
    """

    def __init__(self, bundle: Bundle, *, server: str | None = None, timeout: float = 60.0):
        self.bundle = bundle
        self.trust_root = bundle.trust_root
        self.timeout = timeout
        self.channel = open_channel(bundle, server)
        self.stub = pb_grpc.ForumStub(self.channel)
        self._limits: e.Limits | None = None

    @classmethod
    def connect(
        cls, profile: str | Path, *, server: str | None = None, timeout: float = 60.0
    ) -> ForumClient:
        return cls(Bundle.load(profile), server=server, timeout=timeout)

    def __enter__(self) -> ForumClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def service_stub(self, stub_class: Callable[[grpc.Channel], _Stub]) -> _Stub:
        """A stub of another ``forum.v1`` service (e.g. ``protocol.services.AdminStub``) on
        this client's authenticated channel, closed with the client."""
        return stub_class(self.channel)

    # ---- reading ----

    def status(self) -> Status:
        """The caller's membership as the forum sees it, and the log's size."""
        r = call(self.stub.GetStatus, pb.GetStatusRequest(), self.timeout)
        if r.origin != self.trust_root.origin:
            raise SecurityError(
                f"the server says it is forum {r.origin!r}; the bundle pins "
                f"{self.trust_root.origin!r}"
            )
        return Status(
            r.member_id,
            e.Role(r.role),
            e.MemberStatus(r.status),
            r.origin,
            r.forum_name,
            r.log_size,
            dict(r.last_sequence_by_key_id),
            tuple(r.groups),
            frozenset(r.labels),
        )

    def checkpoint(self) -> Checkpoint:
        """The latest checkpoint, verified with the pinned log key."""
        note = call(self.stub.GetCheckpoint, pb.GetCheckpointRequest(), self.timeout).note
        return verify_checkpoint_note(note, self.trust_root)

    # ---- writing ----

    def next_sequence(self, key: SigningKey) -> int:
        """The next sequence number for ``key`` (one above the last the log holds)."""
        last = self.status().last_sequence_by_key_id.get(key.key_id.hex(), 0)
        if last >= MAX_SEQUENCE:
            raise InvalidInputError.field(
                "key",
                f"key {key.key_id.hex()[:16]} has used every sequence number: ask the operator "
                "to rotate your key (forum-admin member rotate-key)",
            )
        return last + 1

    def header(
        self, key: SigningKey, sequence: int | None = None, created_unix_ms: int | None = None
    ) -> e.Header:
        """A body header for the next entry this member signs with ``key`` (``sequence`` and
        ``created_unix_ms``, when given, rebuild the header of an entry signed before)."""
        seq = self.next_sequence(key) if sequence is None else sequence
        created = int(time.time() * 1000) if created_unix_ms is None else created_unix_ms
        return e.Header(
            self.trust_root.origin,
            self.bundle.member_id,
            key.key_id,
            seq,
            created,
            normalization=NORMALIZATION,
        )

    def append(self, body: e.Body, key: SigningKey) -> Receipt:
        """Sign ``body`` once with ``key``, submit it, and verify the receipt."""
        envelope = key.sign(e.payload_type_of(body), e.encode(body))
        scope = body.scope if isinstance(body, e.MEMBER_BODY_TYPES) else ""
        return self.submit_envelope(envelope, self.scope_claim(envelope, scope, key))

    def submit_envelope(self, envelope: Envelope, scope_claim_signature: bytes = b"") -> Receipt:
        """Submit an already signed entry (resending the same bytes is idempotent: the forum
        returns the original receipt); an entry scoped to a group needs its
        :meth:`scope_claim`.

        Raises TransportError (``code`` and ``violations`` say what the forum refused; a
        message over the size limit is ``RESOURCE_EXHAUSTED`` with a clear message) and
        VerificationError when the receipt does not verify.
        """
        return self._finish_submit(envelope, *self._start_submit(envelope, scope_claim_signature))

    def _start_submit(self, envelope: Envelope, scope_claim_signature: bytes) -> tuple[Any, int]:
        """Send ``envelope`` without waiting for the answer: ``(call future, request size)``."""
        request, size = self._submit_request(envelope, scope_claim_signature)
        return self.stub.Submit.future(request, timeout=self.timeout), size

    def _submit_request(
        self, envelope: Envelope, scope_claim_signature: bytes
    ) -> tuple[pb.SubmitRequest, int]:
        """The Submit request of ``envelope`` and its size; InvalidInputError if too large."""
        request = pb.SubmitRequest(
            entry=envelope_to_pb(envelope), scope_claim_signature=scope_claim_signature
        )
        size = request.ByteSize()
        if size > MAX_MESSAGE_BYTES:
            raise InvalidInputError.field(
                "entry",
                f"{size} bytes: larger than the {MAX_MESSAGE_BYTES}-byte message "
                "limit; submit fewer signals per batch",
            )
        return request, size

    def _finish_submit(self, envelope: Envelope, future: Any, size: int) -> Receipt:
        """Wait for a submission :meth:`_start_submit` sent; verify and return its receipt."""
        try:
            response = future.result()
        except grpc.RpcError as exc:
            error = error_from_rpc(exc)
            if error.code == "RESOURCE_EXHAUSTED" and error.retry_after is None:
                raise TransportError(
                    f"RESOURCE_EXHAUSTED: the forum refused a {size}-byte message as too large "
                    f"({error}); submit fewer signals per batch",
                    error.code,
                    error.violations,
                    error.reason,
                ) from None
            raise error from None
        receipt = receipt_from_pb(response)
        verify_receipt(receipt, envelope, self.trust_root)
        return receipt

    # ---- signals ----

    def limits(self) -> e.Limits:
        """The forum's limits, from its genesis entry (verified against the trust root)."""
        if self._limits is None:
            for index, envelope in self.entries(0, 1):
                if index == 0:
                    self._limits = LogState.from_genesis(envelope, self.trust_root).limits
            if self._limits is None:
                raise VerificationError("the forum did not serve its genesis entry")
        return self._limits

    def prepare_submission(
        self,
        signals: Iterable[SignalInput],
        key: SigningKey,
        *,
        group: str = "",
        tlp: Tlp | str | None = None,
        sequence: int | None = None,
        created_unix_ms: int | None = None,
        salt: bytes | None = None,
    ) -> Envelope:
        """Normalise ``signals``, build one Submission and sign it once (not yet sent).

        ``group`` shares it with one group (default TLP:AMBER) instead of the whole forum
        (default TLP:GREEN); see :func:`~forum_client.scopes.sharing`.  ``sequence``,
        ``created_unix_ms`` and ``salt`` (a group's entry only) default to the next
        sequence number, now and a fresh salt; given the values of an entry signed before,
        with the same signals, the same entry comes out byte for byte (Ed25519 signatures
        are deterministic), which the forum takes idempotently.  Raises InvalidInputError
        naming each bad signal by position (``signals[3].value``), when there are none or
        more than the forum's batch limit, for a TLP that does not fit, or for a salt on a
        forum-wide entry.
        """
        scope, level = sharing(group, tlp)
        items = _normalize_signals(signals)
        self._check_count(items)
        if salt is None:
            salt = new_salt() if scope else b""
        elif salt and not scope:
            raise InvalidInputError.field("salt", "only an entry shared with a group has a salt")
        header = self.header(key, sequence, created_unix_ms)
        body = e.Submission(header, tuple(items), scope, level, salt)
        return key.sign(e.payload_type_of(body), e.encode(body))

    def submit(
        self,
        signals: Iterable[SignalInput],
        key: SigningKey,
        *,
        group: str = "",
        tlp: Tlp | str | None = None,
    ) -> Receipt:
        """Submit one batch of signals as one signed entry; return its verified receipt.

        Each signal has ``type``, ``value`` and optionally ``labels``, ``content_type``
        (default: the type's) and ``quality`` (pdq only).  With ``group``, only that group's
        members read it (others get its leaf hash).  Raises InvalidInputError for bad input
        found locally, TransportError when the forum refuses (its ``violations`` name each
        bad item; PERMISSION_DENIED names a group you are not in), VerificationError when
        the receipt does not verify.
        """
        envelope = self.prepare_submission(signals, key, group=group, tlp=tlp)
        return self.submit_envelope(envelope, self.scope_claim(envelope, group, key))

    def scope_claim(self, envelope: Envelope, group: str, key: SigningKey) -> bytes:
        """The author's scope claim signature over an entry shared with ``group`` (b"" for
        a forum-wide one): what members outside the group verify its redaction with."""
        if not group:
            return b""
        h = leaf_hash(envelope.leaf_bytes())
        return sign_scope_claim(key, self.trust_root.origin, group, h).signature

    def submit_batches(
        self,
        signals: Iterable[SignalInput],
        key: SigningKey,
        *,
        group: str = "",
        tlp: Tlp | str | None = None,
        batch_size: int | None = None,
        on_send: Callable[[SentBatch], None] | None = None,
    ) -> Iterator[tuple[int, Receipt]]:
        """Submit a stream of signals in batches; yield ``(signals in batch, receipt)``.

        The stream is read lazily, one batch at a time.  Sequence numbers are taken from
        the forum once and then counted locally.  ``on_send`` is called with each batch's
        :class:`SentBatch` just before it is sent: what rebuilds that exact entry (with
        :meth:`prepare_submission`) if its answer is lost (see :mod:`forum_client.bulk_submit`).
        """
        scope, _ = sharing(group, tlp)
        size = batch_size or self.limits().max_batch_signals
        sequence = self.next_sequence(key)
        # Pipelined: the next batch is normalised, encoded and signed while the forum works
        # on the previous one, which is still answered (and its receipt verified and
        # yielded) before the next is sent, so the forum sees the batches in order.
        in_flight: tuple[int, Envelope, Any, int] | None = None
        batch: list[SignalInput] = []
        iterator = iter(signals)
        while True:
            value_chars = 0  # large values (vpdq) close a batch before the message limit
            for item in iterator:
                batch.append(item)
                value = _field(item, "value", "")
                value_chars += len(value) if isinstance(value, str) else 0
                if len(batch) >= size or value_chars >= BATCH_VALUE_CHARS:
                    break
            if not batch:
                break
            created = int(time.time() * 1000)
            salt = new_salt() if scope else b""
            try:
                envelope = self.prepare_submission(
                    batch,
                    key,
                    group=group,
                    tlp=tlp,
                    sequence=sequence,
                    created_unix_ms=created,
                    salt=salt,
                )
            except BaseException:
                if in_flight is not None:  # the earlier batch's answer comes first
                    count, sent, future, nbytes = in_flight
                    in_flight = None
                    yield count, self._finish_submit(sent, future, nbytes)
                raise
            if in_flight is not None:
                count, sent, future, nbytes = in_flight
                in_flight = None
                yield count, self._finish_submit(sent, future, nbytes)
            request, nbytes = self._submit_request(envelope, self.scope_claim(envelope, group, key))
            if on_send is not None:
                h = leaf_hash(envelope.leaf_bytes())
                on_send(SentBatch(len(batch), sequence, created, salt, h))
            future = self.stub.Submit.future(request, timeout=self.timeout)
            in_flight = (len(batch), envelope, future, nbytes)
            sequence += 1
            batch = []
        if in_flight is not None:
            count, sent, future, nbytes = in_flight
            yield count, self._finish_submit(sent, future, nbytes)

    def retract(
        self,
        refs: Iterable[SignalInput],
        key: SigningKey,
        reason: str,
        *,
        group: str = "",
        tlp: Tlp | str | None = None,
    ) -> Receipt:
        """Withdraw signals (your own; the operator may withdraw any shared forum-wide)
        with a reason.  Signals you shared with a group are retracted in that group."""
        scope, level = sharing(group, tlp)
        items = _normalize_all(refs, normalize_ref)
        self._check_count(items)
        if not reason.strip():
            raise InvalidInputError.field("reason", "required")
        salt = new_salt() if scope else b""
        body = e.Retraction(self.header(key), tuple(items), reason, scope, level, salt)
        return self.append(body, key)

    def opine(
        self,
        ref: SignalInput,
        kind: OpinionKind | str,
        key: SigningKey,
        note: str = "",
        *,
        group: str = "",
        tlp: Tlp | str | None = None,
    ) -> Receipt:
        """Record your opinion on a signal (agree, disagree, false-positive, seen); it
        replaces your earlier one on the same signal.  On a signal shared with a group,
        give that group: the opinion is shared with it too."""
        scope, level = sharing(group, tlp)
        signal = normalize_ref(ref)
        salt = new_salt() if scope else b""
        body = e.Opinion(
            self.header(key), signal, parse_opinion_kind(kind), note, scope, level, salt
        )
        return self.append(body, key)

    def open_dispute(
        self,
        dispute_id: str,
        ref: SignalInput,
        respondent: str,
        reason: str,
        key: SigningKey,
        *,
        answer_within_ms: int = 14 * 24 * 3600 * 1000,
    ) -> Receipt:
        """Dispute a signal ``respondent`` submitted, with a reason.  The respondent answers
        (retract, or keep with a rationale); unsettled after ``answer_within_ms`` (14 days by
        default), the board may decide.  Raises InvalidInputError / TransportError."""
        if not reason.strip():
            raise InvalidInputError.field("reason", "required")
        if answer_within_ms <= 0:
            raise InvalidInputError.field("deadline", "must be in the future")
        if answer_within_ms > MAX_ANSWER_WITHIN_MS:
            raise InvalidInputError.field("deadline", "at most 365 days ahead")
        signal = normalize_ref(ref)  # before the header: a bad signal costs no round trip
        header = self.header(key)
        deadline = header.created_unix_ms + answer_within_ms
        body = e.Dispute(header, dispute_id, signal, respondent, reason, "", deadline)
        return self.append(body, key)

    def answer_dispute(
        self, dispute_id: str, *, retract: bool, rationale: str, key: SigningKey, ref: SignalInput
    ) -> list[Receipt]:
        """Answer a dispute on your signal ``ref``: keep it with a rationale, or retract it
        (a Retraction entry, then the answer).  Returns the receipts in log order."""
        if not rationale.strip():
            raise InvalidInputError.field("rationale", "required")
        receipts = []
        if retract:
            receipts.append(self.retract([ref], key, f"dispute {dispute_id}: {rationale}"))
        body = e.DisputeAnswer(self.header(key), dispute_id, retract, rationale)
        receipts.append(self.append(body, key))
        return receipts

    def _check_count(self, items: list[Any]) -> None:
        if not items:
            raise InvalidInputError.field("signals", "empty: at least one signal")
        limit = self.limits().max_batch_signals
        if len(items) > limit:
            raise InvalidInputError.field(
                "signals", f"{len(items)} signals: at most {limit} in one entry"
            )

    # ---- the log ----

    def entries(self, start: int = 0, end: int = 0) -> Iterator[tuple[int, Envelope]]:
        """Stream entries ``[start, end)`` (``end`` 0: up to the current size), unverified:
        verify them with :class:`~forum_client.verifier.LogState` before trusting them.
        Entries the caller may not read (served as their leaf hash) are left out; one served
        as bytes that are no envelope raises InvalidInputError."""
        request = pb.GetEntriesRequest(start=start, end=end, leaves=True)
        try:
            for batch in self.stub.GetEntries(request, timeout=self.timeout):
                for entry in batch.entries:
                    item = served_item(entry)
                    if isinstance(item, Unreadable):
                        raise InvalidInputError.field(
                            "entry", f"entry {entry.index} is unreadable: {item.reason}"
                        )
                    if isinstance(item, Envelope):
                        yield entry.index, item
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None

    def verify_included(self, receipt: Receipt, envelope: Envelope, cp: Checkpoint) -> None:
        """Check that ``envelope`` is at ``receipt.index`` of the tree ``cp`` names (a
        later checkpoint than the receipt's).  Raises VerificationError."""
        response = call(
            self.stub.GetInclusionProof,
            pb.GetInclusionProofRequest(index=receipt.index, tree_size=cp.size),
            self.timeout,
        )
        verify_inclusion(
            leaf_hash(envelope.leaf_bytes()), receipt.index, cp.size, list(response.hashes), cp.root
        )

    def verify_consistent(self, old: Checkpoint, new: Checkpoint) -> None:
        """Check that the log at ``new`` extends the log at ``old``.  Raises
        VerificationError (the forum rewrote or forked its history)."""
        if new.size < old.size:
            raise VerificationError(f"the log shrank from {old.size} to {new.size}")
        response = call(
            self.stub.GetConsistencyProof,
            pb.GetConsistencyProofRequest(size1=old.size, size2=new.size),
            self.timeout,
        )
        verify_consistency(old.size, new.size, list(response.hashes), old.root, new.root)

    # ---- verified sync (forum_client.sync) ----

    def sync(
        self,
        store: LocalStore,
        *,
        follow: bool = False,
        progress: Callable[[SyncProgress], None] | None = None,
        config: SyncConfig | None = None,
    ) -> SyncResult:
        """Verify and apply the forum's new entries to ``store`` (see :mod:`forum_client.sync`).

        With ``follow``, keep applying entries as they commit until interrupted, and return
        the last result.  Raises SyncSecurityError (keeping the evidence in ``store``),
        SecurityError, TransportError, StoreError or ConfigError.
        """
        from .source import GrpcSource
        from .sync import Syncer

        syncer = Syncer(
            GrpcSource(self.stub, self.timeout),
            store,
            self.trust_root,
            config,
            progress,
            reader=self.bundle.member_id,
        )
        if not follow:
            return syncer.gossip(syncer.sync())
        last: list[SyncResult] = []
        try:
            syncer.follow(last.append)
        finally:
            syncer.stop()
        return last[-1] if last else syncer.sync()
