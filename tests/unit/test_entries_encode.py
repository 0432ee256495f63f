"""The direct Submission encoder gives exactly the generated code's deterministic bytes."""

from __future__ import annotations

import dataclasses
import random

import pytest

from forum_client import entries as e
from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client.errors import InvalidInputError

TEXT = ["", "a", "sha256", "ünï", "\U0001f600", "x" * 200, "y" * 20000, "\x00"]


def _item(rng: random.Random) -> e.SignalItem:
    return e.SignalItem(
        rng.choice(TEXT),
        rng.choice([*TEXT, f"{rng.getrandbits(256):064x}"]),
        tuple(rng.choice(TEXT) for _ in range(rng.choice([0, 1, 3]))),
        rng.choice(TEXT),
        rng.choice([None, 0, 1, 100, 127, 128, 300, 2**32 - 1]),
    )


@pytest.mark.parametrize("seed", range(30))
def test_fast_submission_encoding_is_the_generated_one(seed: int) -> None:
    rng = random.Random(seed)
    header = e.Header(
        rng.choice(TEXT),
        rng.choice(TEXT),
        bytes(rng.randrange(40)),
        rng.choice([0, 1, 2**40]),
        rng.choice([0, -5, 2**50]),
    )
    body = e.Submission(
        header, tuple(_item(rng) for _ in range(rng.choice([0, 1, 7, 300]))), rng.choice(TEXT)
    )
    fast = e._encode_submission(body)
    assert fast is not None
    assert fast == e._to_message(body).SerializeToString(deterministic=True)
    assert e.decode(e.PAYLOAD_TYPES[e.Submission], fast) == body


@pytest.mark.parametrize(
    "item",
    [
        e.SignalItem("md5", "a" * 32, ["x"]),  # type: ignore[arg-type]
        e.SignalItem("md5", "a" * 32, (), "", -1),
        e.SignalItem("md5", "a" * 32, (), "", 2**32),
        e.SignalItem("md5", "\ud800"),
    ],
)
def test_odd_items_take_the_generated_path(item: e.SignalItem) -> None:
    body = e.Submission(e.Header("o", "m", b"k", 1, 0), (item,))
    try:
        expected: object = e._to_message(body).SerializeToString(deterministic=True)
    except Exception as exc:
        expected = type(exc)
    try:
        got: object = e.encode(body)
    except Exception as exc:
        got = type(exc)
    assert got == expected


def test_new_signal_item_is_a_signal_item() -> None:
    import dataclasses

    fast = e.new_signal_item("pdq", "0" * 64, ("a",), "image", 5)
    slow = e.SignalItem("pdq", "0" * 64, ("a",), "image", 5)
    assert type(fast) is e.SignalItem and fast == slow and hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.value = "x"  # type: ignore[misc]


def _slow_decode(data: bytes) -> e.Body:
    saved = e._FAST_DECODE_MIN
    e._FAST_DECODE_MIN = 10**9
    try:
        return e.decode(e.PAYLOAD_TYPES[e.Submission], data)
    finally:
        e._FAST_DECODE_MIN = saved


def _batch(rng: random.Random, n: int, uniform: bool) -> e.Submission:
    header = e.Header("o", "m", b"k" * 32, 7, 0)
    items = []
    for _ in range(n):
        if uniform:
            items.append(e.SignalItem("sha256", f"{rng.getrandbits(256):064x}", ("a:b",), "image"))
        else:
            items.append(
                _item(rng)
                if rng.random() < 0.2
                else e.SignalItem(
                    "md5", f"{rng.getrandbits(128):032x}", ("x",), "", rng.choice([None, 3])
                )
            )
    return e.Submission(header, tuple(items), rng.choice(["", "eu"]))


@pytest.mark.parametrize("seed", range(20))
def test_fast_decode_is_the_generated_one(seed: int) -> None:
    rng = random.Random(seed)
    body = _batch(rng, rng.choice([40, 200]), uniform=seed % 2 == 0)
    data = e.encode(body)
    # canonical bytes, and bytes mangled in ways protobuf still accepts
    variants = [data]
    tail = b"\x12\x24\x0a\x03md5\x12\x20" + b"f" * 32 + b"\x12\x00"  # a value set twice
    variants.append(data + tail)
    variants.append(data + b"\x1a\x02zz")  # the scope again (the last one counts)
    variants.append(data + b"\x0a\x00")  # the header again (merged)
    variants.append(data + b"\x12\x26\x0a\x03md5\x12\x20" + b"e" * 32 + b"\xa0\x06\x01")  # unknown
    variants.append(data + b"\x12\x05\x12\x03abc")  # a signal with no type
    variants.append(data + "\x12\x0a\x0a\x03md5\x12\x03é!".encode())  # non-ASCII value
    for v in variants:
        try:
            expected: object = _slow_decode(v)
        except Exception as exc:
            expected = (type(exc), str(exc))
        try:
            got: object = e.decode(e.PAYLOAD_TYPES[e.Submission], v)
        except Exception as exc:
            got = (type(exc), str(exc))
        assert got == expected
    assert not isinstance(_slow_decode(data), tuple)


def test_fast_decode_takes_the_uniform_path() -> None:
    body = _batch(random.Random(3), 100, uniform=True)
    data = e.encode(body)
    items = e._submission_items(data, 100)
    assert items == body.signals


@pytest.mark.parametrize(
    ("width", "labels", "quality", "value_char"),
    [
        (32, ("behaviour:x",), None, "a"),
        (1, (), 300, "b"),  # quality's varint has bytes >= 0x80
        (127, ("é-label", "x"), 2**32 - 1, "c"),  # non-ASCII label bytes around the values
        (128, (), 0, "d"),  # the value's length takes two varint bytes
        (5000, ("l",) * 3, 7, "e"),  # so does each signal's
        (8, (), None, "é"),  # non-ASCII values take the general loop
    ],
)
def test_uniform_batches_encode_as_the_generated_code(
    width: int, labels: tuple[str, ...], quality: int | None, value_char: str
) -> None:
    header = e.Header("o", "m", b"k" * 32, 9, 1)
    items = tuple(
        e.SignalItem("md5", (value_char * width)[:-1] + str(i % 10), labels, "image", quality)
        for i in range(50)
    )
    body = e.Submission(header, items, "scope")
    fast = e._encode_submission(body)
    assert fast == e._to_message(body).SerializeToString(deterministic=True)
    assert e.decode(e.PAYLOAD_TYPES[e.Submission], fast) == body


def _mangled(data: bytes) -> list[bytes]:
    """``data`` (a canonical Submission) and variants protobuf still parses, each breaking
    the canonical encoding in one way (or, for some, not at all)."""
    header_len = data[1]
    header = data[2 : 2 + header_len]
    rest = data[2 + header_len :]
    return [
        data,
        data + b"\xfa\x06\x01x",  # an unknown field at the end
        data + b"\x0a\x00",  # the header again (protobuf merges it)
        data[:1] + bytes([header_len | 0x80, 0]) + data[2:],  # a non-minimal length
        rest + data[: 2 + header_len],  # the header after the signals
        data + b"\x1a\x00",  # an explicit empty scope
        data + b"\xf8\x01\x00",  # an explicit TLP 0
        data + b"\x82\x02\x00",  # an explicit empty salt
        # an unknown field inside the header, at its end (survives a plain re-serialisation)
        b"\x0a" + bytes([header_len + 3]) + header + b"\xa0\x06\x01" + rest,
        # an unknown field at the end of the last signal
        data + b"\x12\x2a\x0a\x03md5\x12\x20" + b"e" * 32 + b"\xa0\x06\x01",
        data + b"\x12\x27\x0a\x03md5\x12\x20" + b"e" * 32,  # a well-formed extra signal
        data + b"\x12\x29\x0a\x03md5\x12\x20" + b"e" * 32 + b"\x28\x00",  # quality 0, present
        data + b"\x12\x27\x12\x20" + b"e" * 32 + b"\x0a\x03md5",  # value before type
    ]


@pytest.mark.parametrize("seed", range(12))
def test_decode_canonical_answers_as_encoding_again(seed: int) -> None:
    """decode_canonical's answer for a Submission (checked on the parsed message, in C) is
    exactly ``encode(decode(data)) == data``, the check every verifier ran before."""
    rng = random.Random(seed)
    n = rng.choice([1, 1, 2, 10, 40, 200])
    body = _batch(rng, n, uniform=seed % 2 == 0)
    if seed % 3 == 0:
        body = e.Submission(body.header, body.signals, "eu", e.Tlp.RED, b"s" * 32)
    accepted = 0
    for data in _mangled(e.encode(body)):
        try:
            expected = e.encode(e.decode(e.PAYLOAD_TYPES[e.Submission], data)) == data
        except InvalidInputError:
            with pytest.raises(InvalidInputError):
                e.decode_canonical(e.PAYLOAD_TYPES[e.Submission], data)
            continue
        decoded, canonical = e.decode_canonical(e.PAYLOAD_TYPES[e.Submission], data)
        assert decoded == e.decode(e.PAYLOAD_TYPES[e.Submission], data)
        assert canonical is expected, data
        accepted += canonical
    assert e.decode_canonical(e.PAYLOAD_TYPES[e.Submission], e.encode(body)) == (body, True)
    assert accepted >= 1 + (body.scope == "")  # with no field after them, an extra signal too


def test_every_submission_field_survives_decoding() -> None:
    """What decode_canonical relies on: a Submission's dataclasses carry every field its
    message has, so ``encode(decode(m))`` re-serialises all of ``m``'s known fields."""
    for message, cls in (
        (pb.Submission, e.Submission),
        (pb.EntryHeader, e.Header),
        (pb.SignalItem, e.SignalItem),
    ):
        wire = {f.name for f in message.DESCRIPTOR.fields}
        assert wire == {f.name for f in dataclasses.fields(cls)}, message.DESCRIPTOR.name
