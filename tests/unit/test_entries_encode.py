"""The direct Submission encoder gives exactly the generated code's deterministic bytes."""

from __future__ import annotations

import random

import pytest

from forum_client import entries as e

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
    header = e.Header(rng.choice(TEXT), rng.choice(TEXT), bytes(rng.randrange(40)),
                      rng.choice([0, 1, 2**40]), rng.choice([0, -5, 2**50]))
    body = e.Submission(header, tuple(_item(rng) for _ in range(rng.choice([0, 1, 7, 300]))),
                        rng.choice(TEXT))
    fast = e._encode_submission(body)
    assert fast is not None
    assert fast == e._to_message(body).SerializeToString(deterministic=True)
    assert e.decode(e.PAYLOAD_TYPES[e.Submission], fast) == body


@pytest.mark.parametrize("item", [
    e.SignalItem("md5", "a" * 32, ["x"]),  # type: ignore[arg-type]
    e.SignalItem("md5", "a" * 32, (), "", -1),
    e.SignalItem("md5", "a" * 32, (), "", 2**32),
    e.SignalItem("md5", "\ud800"),
])
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
