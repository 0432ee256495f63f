"""The batch fast path of check_submission never passes what the item-by-item checks reject."""

from __future__ import annotations

import hashlib
import random

import pytest

from forum_client import entries as e
from forum_client import rules
from forum_client.envelope import SigningKey
from forum_client.errors import InvalidInputError
from forum_client.signals import SIGNAL_TYPES
from forum_client.taxonomy import DEFAULT_LABELS
from forum_client.verifier import LogState, TrustRoot, make_genesis

H = e.Header("t.test", "alice", b"k" * 32, 1, 0)


@pytest.fixture(scope="module")
def state() -> LogState:
    op, log = SigningKey.generate(), SigningKey.generate()
    root = TrustRoot("t.test", op.public_bytes, log.public_bytes, "t.test")
    s = LogState.from_genesis(make_genesis(root, op, forum_name="T", created_unix_ms=0))
    s.labels = {x.id: x for x in DEFAULT_LABELS}
    s.taxonomy_version = 1
    return s


def _slow(state: LogState, body: e.Submission) -> list[str] | None:
    """The item-by-item verdict (the fast path switched off)."""
    saved = rules._submission_clean
    rules._submission_clean = lambda _s, _b: False  # type: ignore[assignment]
    try:
        rules.check_submission(state, body)
        return None
    except InvalidInputError as exc:
        return [f"{v.field}: {v.reason}" for v in exc.violations]
    finally:
        rules._submission_clean = saved  # type: ignore[assignment]


MUTATIONS = [
    lambda s: e.SignalItem(s.type, s.value.upper(), s.labels, s.content_type),
    lambda s: e.SignalItem(s.type, s.value[:-1], s.labels, s.content_type),
    lambda s: e.SignalItem(s.type, " " + s.value[1:], s.labels, s.content_type),
    lambda s: e.SignalItem(s.type, "g" + s.value[1:], s.labels, s.content_type),
    lambda s: e.SignalItem(s.type, "\u0663" + s.value[1:], s.labels, s.content_type),
    lambda s: e.SignalItem("nope", s.value, s.labels, s.content_type),
    lambda s: e.SignalItem("md5" if s.type != "md5" else "sha1", s.value, s.labels),
    lambda s: e.SignalItem(s.type, s.value, ("no:such-label",), s.content_type),
    lambda s: e.SignalItem(s.type, s.value, s.labels * 2, s.content_type),
    lambda s: e.SignalItem(s.type, s.value, s.labels * 17, s.content_type),
    lambda s: e.SignalItem(s.type, s.value, s.labels, "hologram"),
    lambda s: e.SignalItem(s.type, s.value, s.labels, s.content_type, 50),
    lambda s: e.SignalItem("pdq", "0" * 64, s.labels, s.content_type, 101),
    lambda s: e.SignalItem("url", "HTTP://Example.com/a", s.labels, "url"),
    lambda s: e.SignalItem("url", "http://example.com/a", s.labels, "url"),
    lambda s: e.SignalItem("domain", "example.com", s.labels, ""),
]


def _good(rng: random.Random, n: int) -> list[e.SignalItem]:
    label = DEFAULT_LABELS[0].id
    out = []
    for i in range(n):
        t = rng.choice(["md5", "sha1", "sha256", "pdq"])
        digits = {"md5": 32, "sha1": 40, "sha256": 64, "pdq": 64}[t]
        v = hashlib.sha256(f"{rng.random()}/{i}".encode()).hexdigest() * 2
        out.append(e.SignalItem(t, v[:digits], (label,), rng.choice(["", "image"])))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_fast_and_slow_agree(state: LogState, seed: int) -> None:
    rng = random.Random(seed)
    items = _good(rng, rng.choice([1, 5, 50]))
    for _ in range(rng.choice([0, 0, 1, 2])):
        i = rng.randrange(len(items))
        items[i] = rng.choice(MUTATIONS)(items[i])
    if rng.random() < 0.15:
        items.append(items[0])  # the same signal twice
    body = e.Submission(H, tuple(items), rng.choice(["", "x" * 1025]))
    slow = _slow(state, body)
    if rules._submission_clean(state, body):
        assert slow is None
    try:
        rules.check_submission(state, body)
        fast = None
    except InvalidInputError as exc:
        fast = [f"{v.field}: {v.reason}" for v in exc.violations]
    assert fast == slow


def test_a_clean_batch_takes_the_fast_path(state: LogState) -> None:
    body = e.Submission(H, tuple(_good(random.Random(1), 200)))
    assert rules._submission_clean(state, body)


@pytest.mark.parametrize("name", ["md5", "sha1", "sha256", "pdq", "url", "domain"])
def test_all_canonical_matches_normalize(name: str) -> None:
    kind = SIGNAL_TYPES[name]
    samples = [
        "a" * 32,
        "A" * 32,
        "f" * 40,
        "0" * 64,
        " " + "0" * 63,
        "0" * 63 + "\n",
        "\u0663" * 64,
        "",
        "example.com",
        "http://example.com/",
        "Example.COM",
    ]
    for v in samples:
        try:
            expected = kind.normalize(v) == v
        except InvalidInputError:
            expected = False
        assert kind.all_canonical([v]) is expected, v
        assert kind.all_canonical(["0" * 32, v]) is (expected and kind.all_canonical(["0" * 32]))


@pytest.mark.parametrize("mutation", range(len(MUTATIONS) + 1))
def test_single_signal_fast_path_agrees(state: LogState, mutation: int) -> None:
    """One signal an entry (its own branch of the fast path): every mutation, both scopes."""
    for seed in range(8):
        item = _good(random.Random(seed), 1)[0]
        if mutation < len(MUTATIONS):
            item = MUTATIONS[mutation](item)
        for scope in ("", "x" * 1025):
            body = e.Submission(H, (item,), scope)
            slow = _slow(state, body)
            if rules._submission_clean(state, body):
                assert slow is None
            else:  # an unmutated signal in a forum-wide entry takes the fast path
                assert mutation < len(MUTATIONS) or scope
