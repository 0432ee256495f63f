"""Content rules for member entries: what a submission, retraction or opinion may say.

Pure, like :mod:`forum_client.verifier`: the server checks every entry with these rules
before it appends it, and the SDK checks every synced entry with the same rules, so a
server that accepts what the rules forbid is caught.  Questions about existing signals go
through a :class:`SignalLookup` (the server's view, or the member's local store).

Semantics (the materialised view both sides maintain):

- A signal is ``(type, value)`` with the value normalised by its type.  Each member that
  submits it has one descriptor on it (labels, content type, quality, scope); resubmitting
  replaces the member's descriptor.
- A member's retraction deactivates its own descriptors; a member may not retract a signal
  it has no active descriptor on.  The operator's retraction deactivates every descriptor
  (upheld dispute, legal order).  A signal with no active descriptor is retracted and
  never matches; a later submission makes it active again.
- An opinion is one per member per signal (the latest replaces the earlier) and needs an
  existing signal.
- Scopes (issue #10): a descriptor has the scope of the submission that set it ("" for
  forum-wide, else a group id).  A retraction or opinion names its scope, and speaks only
  of descriptors in that scope: a member retracts its descriptor in the retraction's scope,
  an opinion needs the signal submitted in the opinion's scope, and the operator's
  (always forum-wide) retraction needs the signal submitted forum-wide.  So retractions and
  opinions on a signal shared with a group carry that group's scope.

Every rule failure raises :class:`~forum_client.errors.InvalidInputError` naming each bad
item by position (``signals[3].value``), capped at :data:`MAX_VIOLATIONS`, or
:class:`~forum_client.errors.EntryRejectedError` when the author is not allowed.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Protocol

from . import entries as e
from .errors import REJECT_PERMISSION, EntryRejectedError, InvalidInputError, Violations
from .signals import SIGNAL_TYPES, ContentType
from .signals.versions import parse_version
from .verifier import LogState

MAX_VIOLATIONS = 100
MAX_TEXT = 1024  # reason, note, scope
CONTENT_TYPES = frozenset(c.value for c in ContentType)
_CONTENT_TYPES_OR_NONE = CONTENT_TYPES | {""}
_TYPE = attrgetter("type")
_VALUE = attrgetter("value")
_LABELS = attrgetter("labels")
_CONTENT_TYPE = attrgetter("content_type")
_QUALITY = attrgetter("quality")


class SignalLookup(Protocol):
    def signal_exists(self, type: str, value: str, scope: str = "") -> bool:
        """Whether the signal was ever submitted in ``scope`` (retracted or not)."""

    def submitted_by(self, member_id: str, type: str, value: str, scope: str = "") -> bool:
        """Whether ``member_id`` has an active descriptor in ``scope`` on the signal."""


class BlindLookup:
    """The lookup for entries of a group whose earlier entries this member received
    redacted: it cannot know their signals, so it grants what only they could refute (the
    server, and every member who saw the whole group, check those rules)."""

    def signal_exists(self, type: str, value: str, scope: str = "") -> bool:
        return True

    def submitted_by(self, member_id: str, type: str, value: str, scope: str = "") -> bool:
        return True


def _no_such(scope: str) -> str:
    return f"no such signal in group {scope}" if scope else "no such signal"


def _check_ref(p: Violations, field: str, type_: str, value: str, version: int) -> bool:
    kind = SIGNAL_TYPES.get(type_)
    if kind is None:
        p.add(f"{field}.type", f"unknown signal type {type_!r}")
        return False
    try:
        normal = kind.normalize(value, version)
    except InvalidInputError as exc:
        p.add(f"{field}.value", exc.violations[0].reason if exc.violations else str(exc))
        return False
    if normal != value:
        p.add(f"{field}.value", f"not normalised (expected {normal!r}, rules version {version})")
        return False
    return True


def _check_text(p: Violations, field: str, text: str, required: bool = False) -> None:
    if required and not text.strip():
        p.add(field, "required")
    if len(text) > MAX_TEXT:
        p.add(field, f"longer than {MAX_TEXT} characters")


def _check_count(p: Violations, n: int, limit: int) -> None:
    if n == 0:
        p.add("signals", "empty: at least one signal")
    elif n > limit:
        p.add("signals", f"{n} signals: at most {limit} in one entry")


def signal_shape_clean(
    state: LogState, type_: str, labels: tuple[str, ...], content_type: str, quality: int | None
) -> bool:
    """True only if a submitted signal's type, labels, content type and quality break no
    rule of :func:`check_submission` (its value is checked apart, by its type's
    ``all_canonical``).  False for a quality: rare (pdq only), checked item by item."""
    return (
        quality is None
        and content_type in _CONTENT_TYPES_OR_NONE
        and len(labels) <= state.limits.max_labels_per_signal
        and len(set(labels)) == len(labels)
        and all(map(state.label_known, labels))
        and type_ in SIGNAL_TYPES
    )


def _submission_clean(state: LogState, body: e.Submission) -> bool:
    """True only if :func:`check_submission` would find nothing wrong with ``body``.

    The common case checked a batch at a time: each signal type's values in one pass
    (:meth:`SignalType.all_canonical`), each distinct label tuple and content type once.
    Any doubt (False, or an unexpected value that raises) sends the submission through the
    item-by-item checks, which name every problem.
    """
    limits = state.limits
    signals = body.signals
    version = parse_version(body.header.normalization)
    n = len(signals)
    if n == 0 or n > limits.max_batch_signals or len(body.scope) > MAX_TEXT:
        return False
    if n == 1:  # the crisis case, one hash an entry: the same checks without the sets
        s = signals[0]
        kind = SIGNAL_TYPES.get(s.type)
        return (
            signal_shape_clean(state, s.type, s.labels, s.content_type, s.quality)
            and kind is not None
            and kind.all_canonical([s.value], version)
        )
    if set(map(_QUALITY, signals)) != {None}:
        return False  # quality is rare (pdq only): checked item by item
    if not set(map(_CONTENT_TYPE, signals)) <= _CONTENT_TYPES_OR_NONE:
        return False
    max_labels = limits.max_labels_per_signal
    for labels in set(map(_LABELS, signals)):
        if len(labels) > max_labels or len(set(labels)) != len(labels):
            return False
        if not all(map(state.label_known, labels)):
            return False
    types = list(map(_TYPE, signals))
    values = list(map(_VALUE, signals))
    kinds = set(types)
    if len(kinds) == 1:
        by_type = {types[0]: values}
    else:
        by_type = {t: [] for t in kinds}
        for t, v in zip(types, values, strict=True):
            by_type[t].append(v)
    for type_, group in by_type.items():
        kind = SIGNAL_TYPES.get(type_)
        if kind is None or not kind.all_canonical(group, version):
            return False
    return len(set(zip(types, values, strict=True))) == n


def check_submission(state: LogState, body: e.Submission) -> None:
    try:
        if _submission_clean(state, body):
            return
    except Exception:  # odd input: the item-by-item checks below decide
        pass
    version = parse_version(body.header.normalization)
    p = Violations(MAX_VIOLATIONS)
    limits = state.limits
    _check_count(p, len(body.signals), limits.max_batch_signals)
    _check_text(p, "scope", body.scope)
    seen: set[tuple[str, str]] = set()
    for i, s in enumerate(body.signals):
        field = f"signals[{i}]"
        if _check_ref(p, field, s.type, s.value, version):
            if (s.type, s.value) in seen:
                p.add(f"{field}.value", "the same signal twice in one submission")
            seen.add((s.type, s.value))
        if len(s.labels) > limits.max_labels_per_signal:
            p.add(
                f"{field}.labels", f"{len(s.labels)} labels: at most {limits.max_labels_per_signal}"
            )
        if len(set(s.labels)) != len(s.labels):
            p.add(f"{field}.labels", "a label twice")
        for label in s.labels:
            if not state.label_known(label):
                p.add(
                    f"{field}.labels",
                    f"unknown label {label!r} (taxonomy version {state.taxonomy_version})",
                )
        if s.content_type and s.content_type not in CONTENT_TYPES:
            p.add(
                f"{field}.content_type",
                f"unknown content type {s.content_type!r}: one of "
                f"{', '.join(sorted(CONTENT_TYPES))}",
            )
        if s.quality is not None and (s.type != "pdq" or not 0 <= s.quality <= 100):
            p.add(f"{field}.quality", "only for pdq, 0 to 100")
    p.raise_if_any("submission")


def check_retraction(
    state: LogState, body: e.Retraction, lookup: SignalLookup, index: int | None = None
) -> None:
    version = parse_version(body.header.normalization)
    p = Violations(MAX_VIOLATIONS)
    _check_count(p, len(body.signals), state.limits.max_batch_signals)
    _check_text(p, "reason", body.reason, required=True)
    author = body.header.member_id
    scope = body.scope
    is_operator = state.members[author].role is e.Role.OPERATOR
    for i, ref in enumerate(body.signals):
        field = f"signals[{i}]"
        if not _check_ref(p, field, ref.type, ref.value, version):
            continue
        if is_operator:
            if not lookup.signal_exists(ref.type, ref.value, scope):
                p.add(field, _no_such(scope))
        elif not lookup.submitted_by(author, ref.type, ref.value, scope):
            if lookup.signal_exists(ref.type, ref.value, scope):
                raise EntryRejectedError(
                    REJECT_PERMISSION,
                    f"{field}",
                    f"{author} cannot retract {ref.type} {ref.value}: it has no active "
                    "descriptor on it (only its submitters and the operator can)",
                    index,
                )
            p.add(field, _no_such(scope))
    p.raise_if_any("retraction")


def check_opinion(state: LogState, body: e.Opinion, lookup: SignalLookup) -> None:
    version = parse_version(body.header.normalization)
    p = Violations(MAX_VIOLATIONS)
    ref = body.signal
    if _check_ref(p, "signal", ref.type, ref.value, version) and not lookup.signal_exists(
        ref.type, ref.value, body.scope
    ):
        p.add("signal", _no_such(body.scope))
    _check_text(p, "note", body.note)
    p.raise_if_any("opinion")


def check_dispute(body: e.Dispute, lookup: SignalLookup) -> None:
    """A dispute names a signal the respondent has an active descriptor on, and a reason."""
    version = parse_version(body.header.normalization)
    p = Violations(MAX_VIOLATIONS)
    ref = body.signal
    if _check_ref(p, "signal", ref.type, ref.value, version):
        if not lookup.signal_exists(ref.type, ref.value):
            p.add("signal", "no such signal")
        elif not lookup.submitted_by(body.respondent, ref.type, ref.value):
            p.add("respondent", f"{body.respondent} has no active descriptor on this signal")
    _check_text(p, "reason", body.reason, required=True)
    _check_text(p, "appellant", body.appellant)
    p.raise_if_any("dispute")


def check_benign_list(body: e.BenignList) -> None:
    version = parse_version(body.header.normalization)
    p = Violations(MAX_VIOLATIONS)
    for name, refs in (("add", body.add), ("remove", body.remove)):
        for i, ref in enumerate(refs):
            _check_ref(p, f"{name}[{i}]", ref.type, ref.value, version)
    p.raise_if_any("benign list")


def check_content(
    state: LogState, body: e.Body, lookup: SignalLookup, index: int | None = None
) -> None:
    """Apply the content rules of ``body``'s type (entries without content pass)."""
    if isinstance(body, e.Submission):
        check_submission(state, body)
    elif isinstance(body, e.Retraction):
        check_retraction(state, body, lookup, index)
    elif isinstance(body, e.Opinion):
        check_opinion(state, body, lookup)
    elif isinstance(body, e.BenignList):
        check_benign_list(body)
    elif isinstance(body, e.Dispute):
        check_dispute(body, lookup)
