"""Replaying a run of small submissions at once: the shape a sync of one-signal entries needs.

A log written during a crisis is mostly one-signal submissions, one hash an entry.  Their
signatures are checked ahead on worker threads (:mod:`~forum_client.sigcheck`); what is left
on the thread that applies entries in log order was per-entry Python: an envelope
dataclass, the protobuf decode into dataclasses, the canonical-encoding check, the header,
scope and content checks one entry at a time, then the view rows, the leaf bytes, the leaf
hash and the compact range.  :func:`apply_submission_run` takes a stream message's entries
from ``start`` and replays as many as it can in one go:

1. **check**, entry by entry in log order, without changing anything: the entry is the
   next index, a forum-wide Submission with one signature whose key the checker verified,
   a member key active at that index whose author is active and may write
   (:meth:`LogState.check`), its body canonical and read straight from the bytes
   (:func:`~forum_client.submission_bytes.read_submission`, which also proves the header's
   origin, member and key id), its sequence number above the key's last (by at most the
   step), each signal's type, labels and content type clean
   (:func:`~forum_client.rules.signal_shape_clean`, once per distinct template), no signal
   twice.  The run ends at the first entry that is anything else;
2. **values**: every value of the run checked canonical per type in one call; if one is
   not, the run ends before the first entry holding one;
3. **apply** what remains: key state (each key's last sequence number, the size), the view
   rows in one hand-off (:meth:`ViewSink.add_submissions`), the leaf bytes and hashes, the
   compact range.

The entry the run stopped at goes through :meth:`Replay.apply` as before, which accepts it
or raises exactly as it always did; the run resumes after it.  So the same entries are
accepted, each only after every check passed, in log order, and a bad entry stops the sync
at the same index with the same error: nothing about fail-closed changes.  Between two
entries of a run nothing the checks read can change but the key's sequence number (only
operator entries change members, keys or the vocabulary, and they end a run), which the
run carries along.

Pure: no sockets and no SQL; the view is the caller's :class:`ViewSink`.  Measured
(``scripts/bench_apply.py``): see ``docs/benchmarks.md``, "Sync of small entries".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from . import entries as e
from .envelope import Envelope
from .errors import InvalidInputError
from .merkle import CompactRange, leaf_hash
from .rules import signal_shape_clean
from .signals import SIGNAL_TYPES
from .signals.versions import parse_version
from .submission_bytes import header_prefix, read_submission, signal_template
from .verifier import MAX_SEQUENCE, MAX_SEQUENCE_STEP, OPERATOR_ID, LogState

if TYPE_CHECKING:
    from .replay import ViewSink

SUBMISSION_TYPE: Final = e.PAYLOAD_TYPES[e.Submission]
_TLP_LABELS: Final = {int(t): t.label for t in e.Tlp}

SignalRow = tuple[int, str, str, tuple[str, ...], str, str, str]
"""``(index, type, value, labels, content type, member id, TLP label)``: one applied signal."""

_Checked = tuple[
    int, Envelope, int, int, str, str, int, list[tuple[str, str, tuple[str, ...], str]]
]
"""``(index, envelope, sequence, created_unix_ms, member, TLP label, version, [(type, value,
labels, content type)])``: an entry that passed step 1."""


@dataclass(frozen=True, slots=True)
class Run:
    """Where a run may start: ``items[start:]`` of a stream message, with the signature
    checker's answers for them (``verified``: log index -> the envelope submitted, the key it
    verified under; an entry without one ends the run) and ``end_index``, the first index the
    caller may not apply yet (past its checkpoint)."""

    items: Sequence[tuple[int, object]]
    start: int
    verified: Mapping[int, tuple[Envelope, bytes]]
    end_index: int


def apply_submission_run(
    state: LogState, rng: CompactRange, run: Run, view: ViewSink
) -> list[tuple[int, int]]:
    """Replay ``run``'s entries while they are small forum-wide submissions that pass every
    check (see the module); return ``(index, created_unix_ms)`` of each entry applied, in
    order (none: the entry at ``run.start`` needs :meth:`Replay.apply`).  Raises nothing for
    a bad entry: the run ends before it.
    """
    checked = _check_run(state, run.items, run.start, run.verified, run.end_index)
    checked = _values_canonical(checked)
    if not checked:
        return []
    return _apply(state, rng, checked, view)


def _check_run(
    state: LogState,
    items: Sequence[tuple[int, object]],
    start: int,
    verified: Mapping[int, tuple[Envelope, bytes]],
    end_index: int,
) -> list[_Checked]:
    """Step 1: the entries from ``start`` that pass every check but their values'."""
    keys, last_sequence = state.keys, state.last_sequence
    max_signals = state.limits.max_batch_signals
    authors: dict[bytes, tuple[str, bytes] | None] = {}  # key id -> (member, header prefix)
    shapes: dict[bytes, tuple[str, tuple[str, ...], str] | None] = {}
    versions: dict[int, int] = {}
    sequences: dict[bytes, int] = {}  # key id -> last sequence within the run
    checked: list[_Checked] = []
    index = state.size
    for position in range(start, len(items)):
        at, env = items[position]
        if at != index or at >= end_index or type(env) is not Envelope:
            break
        if env.payload_type != SUBMISSION_TYPE or env.cosignatures:
            break
        kid = env.key_id
        answer = verified.get(at)
        key = keys.get(kid)
        if answer is None or answer[0] is not env or key is None or answer[1] != key.public_key:
            break
        if not (key.valid_from < at and (key.valid_until is None or at < key.valid_until)):
            break
        author = authors[kid] if kid in authors else authors.setdefault(kid, _author(state, kid))
        if author is None:
            break
        read = read_submission(env.body, author[1])
        if read is None:
            break
        last = sequences.get(kid)
        if last is None:
            last = last_sequence.get(kid, 0)
        sequence, created_ms, _, normalization, tlp, read_signals = read
        if not last < sequence <= MAX_SEQUENCE or sequence - last > MAX_SEQUENCE_STEP:
            break
        version = versions.get(normalization)
        if version is None:
            try:
                version = versions[normalization] = parse_version(normalization)
            except InvalidInputError:
                break
        signals = []
        for template, value in read_signals:
            shape = shapes[template] if template in shapes else _shape(state, shapes, template)
            if shape is None:
                break
            signals.append((shape[0], value, shape[1], shape[2]))
        else:
            n = len(signals)
            if n > max_signals or (n > 1 and len({(s[0], s[1]) for s in signals}) != n):
                break
            sequences[kid] = sequence
            checked.append(
                (at, env, sequence, created_ms, author[0], _TLP_LABELS[tlp], version, signals)
            )
            index += 1
            continue
        break
    return checked


def _author(state: LogState, kid: bytes) -> tuple[str, bytes] | None:
    """The member a key belongs to and its entries' header prefix, if that member may
    write submissions now (not the operator: its entries are the board's)."""
    key = state.keys[kid]
    author = state.members.get(key.member_id)
    if (
        key.member_id == OPERATOR_ID
        or author is None
        or author.status is not e.MemberStatus.ACTIVE
        or author.role is not e.Role.MEMBER
    ):
        return None
    return key.member_id, header_prefix(state.origin, key.member_id, kid)


def _shape(
    state: LogState,
    shapes: dict[bytes, tuple[str, tuple[str, ...], str] | None],
    template: bytes,
) -> tuple[str, tuple[str, ...], str] | None:
    """A signal template's type, labels and content type if they break no rule."""
    read = signal_template(template)
    shape = None
    if read is not None and signal_shape_clean(state, *read):
        shape = read[0], read[1], read[2]
    shapes[template] = shape
    return shape


def _values_canonical(checked: list[_Checked]) -> list[_Checked]:
    """Step 2: ``checked`` up to the first entry holding a value not in canonical form."""
    by_kind: dict[tuple[str, int], list[str]] = {}
    for entry in checked:
        version = entry[6]
        for type_, value, _, _ in entry[7]:
            by_kind.setdefault((type_, version), []).append(value)
    if all(_all_canonical(t, v, values) for (t, v), values in by_kind.items()):
        return checked
    for n, entry in enumerate(checked):
        version = entry[6]
        if not all(_all_canonical(s[0], version, [s[1]]) for s in entry[7]):
            return checked[:n]
    return checked  # pragma: no cover - a value failed in the batch but in no entry


def _all_canonical(type_: str, version: int, values: list[str]) -> bool:
    try:
        return SIGNAL_TYPES[type_].all_canonical(values, version)
    except Exception:  # odd input: the entry goes through Replay.apply, which decides
        return False


def _apply(
    state: LogState, rng: CompactRange, checked: list[_Checked], view: ViewSink
) -> list[tuple[int, int]]:
    """Step 3: advance the key state, stage the rows, hash the leaves."""
    last_sequence = state.last_sequence
    rows: list[SignalRow] = []
    leaves: list[tuple[int, bytes]] = []
    hashes: list[bytes] = []
    created: list[tuple[int, int]] = []
    for at, env, sequence, created_ms, member, tlp, _, signals in checked:
        leaf = env.leaf_bytes()
        leaves.append((at, leaf))
        hashes.append(leaf_hash(leaf))
        last_sequence[env.key_id] = sequence
        rows += [(at, t, v, labels, ct, member, tlp) for t, v, labels, ct in signals]
        created.append((at, created_ms))
    state.size = checked[-1][0] + 1
    view.add_submissions(leaves, rows)
    rng.extend(hashes)
    return created
