"""Content rules (forum_client.rules) with a fake SignalLookup."""

from __future__ import annotations

import pytest

from forum_client import entries as e
from forum_client.envelope import SigningKey
from forum_client.errors import EntryRejectedError, InvalidInputError
from forum_client.rules import MAX_VIOLATIONS, check_content
from forum_client.taxonomy import DEFAULT_LABELS
from forum_client.verifier import LogState, TrustRoot, make_genesis


class Lookup:
    def __init__(self, held: dict[tuple[str, str], set[str]]) -> None:
        self.held = held

    def signal_exists(self, type: str, value: str, scope: str = "") -> bool:
        return (type, value) in self.held and not scope

    def submitted_by(self, member_id: str, type: str, value: str, scope: str = "") -> bool:
        return member_id in self.held.get((type, value), set()) and not scope


@pytest.fixture
def state() -> LogState:
    op, log = SigningKey.generate(), SigningKey.generate()
    root = TrustRoot("t.test", op.public_bytes, log.public_bytes, "t.test")
    s = LogState.from_genesis(make_genesis(root, op, forum_name="T", created_unix_ms=0))
    s.members["alice"] = type(s.members["operator"])(
        "alice", "A", e.Role.MEMBER, e.MemberStatus.ACTIVE, 1
    )
    s.labels = {x.id: x for x in DEFAULT_LABELS}
    s.taxonomy_version = 1
    return s


H = e.Header("t.test", "alice", b"k" * 32, 1, 0)


def fields(exc: InvalidInputError) -> list[str]:
    return [v.field for v in exc.violations]


def test_a_good_submission_passes(state: LogState) -> None:
    body = e.Submission(H, (e.SignalItem("pdq", "f" * 64, ("entity:isil",), "image", 90),))
    check_content(state, body, Lookup({}))


def test_every_bad_item_is_named_and_capped(state: LogState) -> None:
    items = tuple(e.SignalItem("md5", "X" * 32) for _ in range(MAX_VIOLATIONS + 5))
    with pytest.raises(InvalidInputError) as info:
        check_content(state, e.Submission(H, items), Lookup({}))
    assert len(info.value.violations) == MAX_VIOLATIONS
    assert fields(info.value)[:2] == ["signals[0].value", "signals[1].value"]


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (e.SignalItem("nope", "1"), "signals[0].type"),
        (e.SignalItem("url", "HTTP://X.example/"), "signals[0].value"),
        (e.SignalItem("md5", "a" * 32, ("entity:unknown",)), "signals[0].labels"),
        (e.SignalItem("md5", "a" * 32, ("entity:isil", "entity:isil")), "signals[0].labels"),
        (e.SignalItem("md5", "a" * 32, (), "gif"), "signals[0].content_type"),
        (e.SignalItem("md5", "a" * 32, (), "", 3), "signals[0].quality"),
    ],
)
def test_bad_signals(state: LogState, item: e.SignalItem, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_content(state, e.Submission(H, (item,)), Lookup({}))
    assert fields(info.value) == [field]


def test_retraction_permissions(state: LogState) -> None:
    ref = e.SignalRef("md5", "a" * 32)
    held = Lookup({("md5", "a" * 32): {"bob"}})
    with pytest.raises(EntryRejectedError):
        check_content(state, e.Retraction(H, (ref,), "x"), held)
    check_content(state, e.Retraction(H, (ref,), "x"), Lookup({("md5", "a" * 32): {"alice"}}))
    op = e.Header("t.test", "operator", b"o" * 32, 2, 0)
    check_content(state, e.Retraction(op, (ref,), "legal order"), held)
    with pytest.raises(InvalidInputError) as info:
        check_content(state, e.Retraction(op, (ref,), "x"), Lookup({}))
    assert fields(info.value) == ["signals[0]"]


def _domains(header: e.Header, *values: str) -> e.Submission:
    return e.Submission(header, tuple(e.SignalItem("domain", v) for v in values))


@pytest.mark.parametrize("many", [False, True])  # one item: item by item; many: the batch path
def test_values_are_checked_under_the_normalisation_version_in_the_header(
    state: LogState, many: bool
) -> None:
    """An old entry (header without a version: rules version 1) keeps verifying after the
    rules changed, and the same value under the new rules is refused."""
    pad = tuple(f"d{i}.example" for i in range(40)) if many else ()
    legacy = ("strasse.de", "xn--ls8h.la", *pad)  # ß -> ss and an emoji label: IDNA 2003
    check_content(state, _domains(H, *legacy), Lookup({}))
    v2 = e.Header("t.test", "alice", b"k" * 32, 1, 0, normalization=2)
    with pytest.raises(InvalidInputError, match=r"signals\[1\].value: label .xn--ls8h"):
        check_content(state, _domains(v2, *legacy), Lookup({}))
    check_content(state, _domains(v2, "xn--strae-oqa.de", *pad), Lookup({}))
    with pytest.raises(InvalidInputError, match="xn--strae-oqa"):  # version 1 refused it
        check_content(state, _domains(H, "xn--strae-oqa.de", *pad), Lookup({}))
    unknown = e.Header("t.test", "alice", b"k" * 32, 1, 0, normalization=9)
    with pytest.raises(InvalidInputError, match="unknown normalisation version 9"):
        check_content(state, _domains(unknown, "example.com"), Lookup({}))
