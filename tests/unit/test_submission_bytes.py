"""read_submission against the general path: it never accepts bytes that
``entries.decode_canonical`` refuses or reads differently, and it accepts the common layout."""

from __future__ import annotations

import doctest
import random

import pytest

from forum_client import entries as e
from forum_client import submission_bytes
from forum_client.errors import InvalidInputError
from forum_client.scopes import new_salt
from forum_client.submission_bytes import header_prefix, read_submission, signal_template

ORIGIN = "forum.test"
KEY_ID = bytes(range(32))
SUBMISSION = e.PAYLOAD_TYPES[e.Submission]
LABELS = ("behaviour:terrorist-publication", "incident:x", "behaviour:glorification")


def test_module_example_runs() -> None:
    result = doctest.testmod(submission_bytes, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def _random_submission(rand: random.Random) -> e.Submission:
    member = rand.choice(["alice", "bob", "a" * 70])
    header = e.Header(
        rand.choice([ORIGIN, "x" * 150]),
        member,
        KEY_ID,
        rand.choice([1, 2, 127, 128, 2**40, 2**63 - 1]),
        rand.choice([0, 1, 1_700_000_000_000, 2**62]),
        rand.choice([0, 0, 0, 5, 2**50]),
        rand.choice([0, 0, 1, 2, 2**31]),
    )
    items = []
    for _ in range(rand.choice([1, 1, 1, 2, 3, 10])):
        kind = rand.choice(["md5", "sha256", "url", "pdq"])
        length = {"md5": 32, "sha256": 64, "url": 20, "pdq": 64}[kind]
        value = rand.randbytes(length // 2 + 1).hex()[:length]
        if rand.random() < 0.1:
            value = "é" + value  # not ASCII: declined
        if rand.random() < 0.05:
            value = "v" * 200  # a two-byte length
        labels = tuple(rand.sample(LABELS, rand.choice([0, 1, 1, 2])))
        content_type = rand.choice(["", "image", "video"])
        quality = rand.choice([None, None, None, 0, 90])
        items.append(e.SignalItem(kind, value, labels, content_type, quality))
    scoped = rand.random() < 0.15
    tlp = rand.choice([e.Tlp.UNSPECIFIED, e.Tlp.CLEAR, e.Tlp.GREEN, e.Tlp.AMBER])
    return e.Submission(
        header,
        tuple(items),
        "group-a" if scoped else "",
        e.Tlp.RED if scoped else tlp,
        new_salt() if scoped else b"",
    )


def _expected(body: e.Submission) -> tuple[object, ...]:
    """What read_submission should say of ``body`` (values as the general path reads them)."""
    h = body.header
    return (
        h.sequence,
        h.created_unix_ms,
        h.expires_unix_ms,
        h.normalization,
        int(body.tlp),
        [(s.type, s.labels, s.content_type, s.quality, s.value) for s in body.signals],
    )


def _read(data: bytes, prefix: bytes) -> tuple[object, ...] | None:
    read = read_submission(data, prefix)
    if read is None:
        return None
    *fields, signals = read
    shaped = []
    for template, value in signals:
        shape = signal_template(template)
        if shape is None:
            return None  # the caller declines the entry (a template that does not re-encode)
        shaped.append((*shape, value))
    return (*fields, shaped)


def _general(data: bytes) -> e.Submission | None:
    """The body the general path accepts ``data`` as, or None if it refuses it."""
    try:
        decoded, canonical = e.decode_canonical(SUBMISSION, data)
    except InvalidInputError:
        return None
    assert isinstance(decoded, e.Submission)
    return decoded if canonical else None


def _agrees(data: bytes, prefix: bytes) -> bool:
    """Accepted by read_submission only if the general path accepts it and reads the same."""
    fast = _read(data, prefix)
    if fast is None:
        return True
    body = _general(data)
    return body is not None and not body.scope and not body.salt and fast == _expected(body)


def _eligible(body: e.Submission) -> bool:
    return (
        not body.scope
        and body.tlp in (e.Tlp.UNSPECIFIED, e.Tlp.CLEAR, e.Tlp.GREEN)
        and all(s.value.isascii() for s in body.signals)
        and len(e.encode(body)) <= submission_bytes.MAX_BODY
    )


def test_canonical_bodies_are_read_as_the_general_path_reads_them() -> None:
    rand = random.Random(1)
    accepted = 0
    for _ in range(3000):
        body = _random_submission(rand)
        data = e.encode(body)
        h = body.header
        prefix = header_prefix(h.origin, h.member_id, h.key_id)
        assert _agrees(data, prefix)
        if _eligible(body):
            assert _read(data, prefix) == _expected(body), body
            accepted += 1
        else:
            assert read_submission(data, prefix) is None or not _eligible(body)
        other = header_prefix(h.origin, h.member_id + "x", h.key_id)
        assert read_submission(data, other) is None  # another author's prefix never matches
    assert accepted > 1000


def _mutants(data: bytes, rand: random.Random) -> list[bytes]:
    out = []
    for _ in range(30):
        pos = rand.randrange(len(data))
        how = rand.randrange(7)
        if how == 0:  # one byte changed
            out.append(data[:pos] + bytes([rand.randrange(256)]) + data[pos + 1 :])
        elif how == 1:  # one byte inserted
            out.append(data[:pos] + bytes([rand.randrange(256)]) + data[pos:])
        elif how == 2:  # one byte dropped
            out.append(data[:pos] + data[pos + 1 :])
        elif how == 3:  # a bit flipped
            out.append(data[:pos] + bytes([data[pos] ^ (1 << rand.randrange(8))]) + data[pos + 1 :])
        elif how == 4:  # a stray field appended (unknown, repeated or a default)
            out.append(data + rand.choice([b"\x30\x01", b"\x1a\x00", b"\x12\x00", b"\xf8\x01\x00"]))
        elif how == 5:  # a slice repeated
            end = min(len(data), pos + rand.randrange(1, 40))
            out.append(data[:end] + data[pos:end] + data[end:])
        else:  # truncated
            out.append(data[:pos])
    return out


def test_mangled_bodies_are_never_accepted_unless_the_general_path_agrees() -> None:
    rand = random.Random(2)
    for _ in range(600):
        body = _random_submission(rand)
        data = e.encode(body)
        h = body.header
        prefix = header_prefix(h.origin, h.member_id, h.key_id)
        for mutant in _mutants(data, rand):
            assert _agrees(mutant, prefix), (body, mutant.hex())


def _one(**header: object) -> tuple[bytes, bytes]:
    fields: dict[str, object] = {
        "origin": ORIGIN,
        "member_id": "alice",
        "key_id": KEY_ID,
        "sequence": 3,
        "created_unix_ms": 5,
    }
    fields.update(header)
    h = e.Header(**fields)  # type: ignore[arg-type]
    body = e.Submission(h, (e.SignalItem("md5", "0" * 32, LABELS[:1], "image"),))
    return e.encode(body), header_prefix(ORIGIN, "alice", KEY_ID)


@pytest.mark.parametrize(
    "edit",
    [
        # a field the encoder never writes: unknown in the header, the signal, the body
        lambda d: d.replace(b"\x22\x05image", b"\x22\x05image\x30\x01"),
        lambda d: d + b"\x38\x01",
        lambda d: d[:1] + bytes([d[1] + 2]) + d[2:].replace(b"\x28\x05", b"\x28\x05\x48\x01", 1),
        # a non-minimal varint (sequence 3 as two bytes), an explicit zero
        lambda d: d[:1] + bytes([d[1] + 1]) + d[2:].replace(b"\x20\x03", b"\x20\x83\x00", 1),
        lambda d: d.replace(b"\x20\x03\x28\x05", b"\x20\x03\x28\x00"),
        # fields out of order; the header twice
        lambda d: d.replace(b"\x20\x03\x28\x05", b"\x28\x05\x20\x03"),
        lambda d: d[: d[1] + 2] + d,
        # a scope, a salt, a TLP a forum-wide entry may not carry, an unknown TLP
        lambda d: d + b"\x1a\x01g",
        lambda d: d + b"\x82\x02\x01x",
        lambda d: d + b"\xf8\x01\x05",
        lambda d: d + b"\xf8\x01\x80\x01",
    ],
)
def test_layouts_the_encoder_never_writes_are_declined(edit: object) -> None:
    data, prefix = _one()
    assert read_submission(data, prefix) is not None
    mangled = edit(data)  # type: ignore[operator]
    assert mangled != data
    read = read_submission(mangled, prefix)
    assert read is None or _read(mangled, prefix) is None
    assert _agrees(mangled, prefix)


def test_a_signal_with_an_unknown_field_is_refused_by_its_template() -> None:
    # protobuf keeps unknown fields and writes them back: the template drops them first
    data, prefix = _one()
    header_end = 2 + data[1]
    signal = data[header_end + 2 :] + b"\x30\x01"  # SignalItem field 6, unknown
    assert len(signal) < 0x80
    mangled = data[:header_end] + b"\x12" + bytes([len(signal)]) + signal
    read = read_submission(mangled, prefix)
    assert read is not None  # the layout reads, but
    assert signal_template(read[5][0][0]) is None  # its template is refused
    assert _general(mangled) is None  # as the general path refuses the body


def test_normalization_beyond_uint32_is_declined() -> None:
    data, prefix = _one(normalization=2)
    big = data.replace(b"\xd0\x05\x02", b"\xd0\x05\x80\x80\x80\x80\x10")  # 2**32
    big = big[:1] + bytes([big[1] + 4]) + big[2:]
    assert read_submission(data, prefix) is not None
    assert read_submission(big, prefix) is None
