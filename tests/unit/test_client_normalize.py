"""The fast path of batch normalisation gives the same items and errors as normalize_item."""

from __future__ import annotations

import random

import pytest

from forum_client.client import _normalize_all, _normalize_signals, normalize_item
from forum_client.errors import InvalidInputError

VALUES = [
    "a" * 32,
    "A" * 32,
    " " + "b" * 32 + "\n",
    "xyz",
    "",
    None,
    5,
    "0" * 64,
    "http://Example.com/a",
    "example.com",
]
TYPES = ["md5", "MD5", " sha256 ", "sha256", "pdq", "url", "domain", "nope", None, 3]
LABELS = [None, (), ("a",), (" a ", "", "b"), "a; b;", "", ["a"], ("a", 1), 7]
CONTENT = [None, "", " IMAGE ", "video", 5, "weird"]
QUALITY = [None, "", 5, "50", "x"]


def _outcome(fn: object, items: list[object]) -> object:
    try:
        return fn(items)  # type: ignore[operator]
    except InvalidInputError as exc:
        return ("invalid", str(exc), exc.violations)
    except Exception as exc:
        return ("error", type(exc))


@pytest.mark.parametrize("seed", range(60))
def test_same_items_and_errors(seed: int) -> None:
    rng = random.Random(seed)
    items: list[object] = []
    for _ in range(rng.choice([1, 3, 20])):
        item = {"type": rng.choice(TYPES), "value": rng.choice(VALUES)}
        if rng.random() < 0.7:
            item["labels"] = rng.choice(LABELS)
        if rng.random() < 0.7:
            item["content_type"] = rng.choice(CONTENT)
        if rng.random() < 0.2:
            item["quality"] = rng.choice(QUALITY)
        items.append(item)
    slow = _outcome(lambda xs: _normalize_all(xs, normalize_item), items)
    assert _outcome(_normalize_signals, items) == slow
