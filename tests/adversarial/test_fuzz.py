"""Fuzzing every parser that reads untrusted input: only the documented error, never an
unexpected exception.

Already fuzzed elsewhere (not repeated here): signal values
(``tests/unit/test_signals.py::test_arbitrary_text_only_raises_invalid_input`` and the
idempotence property), checkpoint notes (``tests/unit/test_checkpoint.py::test_fuzz_*``),
leaf parsing on arbitrary bytes
(``tests/unit/test_envelope.py::test_from_leaf_bytes_fuzz_only_raises_invalid_input``) and
``check_public_key`` on random bytes.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from forum_client import entries as e
from forum_client.checkpoint import Checkpoint, sign_checkpoint
from forum_client.envelope import Envelope, SigningKey, load_public_key_file
from forum_client.errors import (
    ConfigError,
    EntryRejectedError,
    InvalidInputError,
    SecurityError,
    VerificationError,
)
from forum_client.gossip import compare_checkpoints
from forum_client.inputfiles import read_signals
from forum_client.merkle import CompactRange, verify_consistency, verify_inclusion
from forum_client.profile import Bundle
from forum_client.verifier import LogState, TrustRoot, make_genesis

pytestmark = pytest.mark.adversarial

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

OP = SigningKey.from_seed(bytes(range(32)))
LOG = SigningKey.from_seed(bytes(range(1, 33)))
ALICE = SigningKey.from_seed(bytes(range(2, 34)))
ROOT = TrustRoot("fuzz.example", OP.public_bytes, LOG.public_bytes, "fuzz.example")
PUB = "behaviour:terrorist-publication"


def _header(seq: int = 1, member: str = "alice", key: SigningKey = ALICE) -> e.Header:
    return e.Header(ROOT.origin, member, key.key_id, seq, 1_700_000_000_000)


VALID_BODIES: list[e.Body] = [
    e.Submission(
        _header(),
        (
            e.SignalItem("md5", "a" * 32, (PUB,), "image"),
            e.SignalItem("pdq", "c" * 64, (), "image", 90),
        ),
        "",
        e.Tlp.GREEN,
    ),
    e.Retraction(_header(2), (e.SignalRef("md5", "a" * 32),), "mistake"),
    e.Opinion(_header(3), e.SignalRef("md5", "a" * 32), e.OpinionKind.AGREE, "note"),
    e.MemberAdmitted(_header(4, "operator", OP), "bob", "Bob", e.Role.MEMBER),
    e.MemberStatusChanged(_header(5, "operator", OP), "bob", e.MemberStatus.SUSPENDED, "r"),
    e.KeyAdded(_header(6, "operator", OP), "bob", ALICE.public_bytes, bytes(64)),
    e.KeyRevoked(_header(7, "operator", OP), "bob", ALICE.key_id, "lost"),
    e.Taxonomy(_header(8, "operator", OP), 2, (e.Label(PUB, "behaviour", "T", "D"),)),
    e.BenignList(_header(9, "operator", OP), (e.SignalRef("md5", "b" * 32),), ()),
    e.Incident(_header(10, "operator", OP), "inc-1", "Incident", True),
    e.Submission(
        _header(11),
        (e.SignalItem("pdq", "d" * 64, (PUB,), "image", 90),),
        "crisis-1",
        e.Tlp.RED,
        bytes(range(32)),
    ),
    e.Retraction(_header(12), (e.SignalRef("md5", "a" * 32),), "gone", "g", e.Tlp.AMBER, b"s" * 32),
    e.GroupCreated(_header(13, "operator", OP), "crisis-1", "Crisis", "a small circle"),
    e.GroupMember(_header(14, "operator", OP), "crisis-1", "bob", True),
    e.GroupClosed(_header(15, "operator", OP), "crisis-1", "over"),
]
ENCODED = [(e.payload_type_of(b), e.encode(b)) for b in VALID_BODIES]
PAYLOAD_TYPES = sorted(e.PAYLOAD_TYPES.values())


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and buf:
            del buf[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del buf[pos:]
    return bytes(buf)


@st.composite
def mutated_body(draw: st.DrawFn) -> tuple[str, bytes]:
    payload_type, data = draw(st.sampled_from(ENCODED))
    return payload_type, _mutate(data, draw)


# ---- entry bodies ----


@FUZZ
@given(
    payload_type=st.sampled_from(PAYLOAD_TYPES) | st.text(max_size=40), data=st.binary(max_size=400)
)
def test_decode_arbitrary_bytes_only_invalid_input(payload_type: str, data: bytes) -> None:
    """forum_client/entries.py:decode on arbitrary bytes."""
    with contextlib.suppress(InvalidInputError):
        e.decode(payload_type, data)


@FUZZ
@given(case=mutated_body())
def test_decode_mutated_bodies_only_invalid_input(case: tuple[str, bytes]) -> None:
    """forum_client/entries.py:decode on mutated valid bodies of every entry type."""
    try:
        decoded = e.decode(*case)
    except InvalidInputError:
        return
    e.encode(decoded)  # whatever parses can be re-encoded without a crash


def test_mutated_body_strategy_is_not_vacuous() -> None:
    for payload_type, data in ENCODED:
        assert e.encode(e.decode(payload_type, data)) == data


# ---- leaves through the verifier ----


def _state() -> tuple[LogState, list[Envelope]]:
    genesis = make_genesis(ROOT, OP, forum_name="Fuzz", created_unix_ms=0)
    state = LogState.from_genesis(genesis, ROOT)
    admit = e.MemberAdmitted(_header(2, "operator", OP), "alice", "Alice", e.Role.MEMBER)
    state.apply(1, OP.sign(e.payload_type_of(admit), e.encode(admit)))
    pop = ALICE.prove_possession(ROOT.origin, "alice")
    add = e.KeyAdded(_header(3, "operator", OP), "alice", ALICE.public_bytes, pop)
    state.apply(2, OP.sign(e.payload_type_of(add), e.encode(add)))
    sub = VALID_BODIES[0]
    return state, [ALICE.sign(e.payload_type_of(sub), e.encode(sub))]


STATE, GOOD = _state()


@FUZZ
@given(data=st.data())
def test_mutated_leaves_through_the_verifier_only_rejections(data: st.DataObject) -> None:
    """Envelope.from_leaf_bytes then LogState.check on mutated valid leaves: only
    InvalidInputError (parse) or EntryRejectedError (rules); never accepted unless unchanged."""
    leaf = GOOD[0].leaf_bytes()
    mutated = _mutate(leaf, data.draw)
    try:
        env = Envelope.from_leaf_bytes(mutated)
        STATE.check(3, env)
    except (InvalidInputError, EntryRejectedError):
        return
    assert mutated == leaf, "a changed leaf verified"


def test_the_good_leaf_verifies() -> None:
    STATE.check(3, GOOD[0])


# ---- proofs ----

HASH = st.binary(min_size=32, max_size=32)
ANY_HASH = st.one_of(HASH, st.binary(max_size=40))
SIZE = st.integers(-2, 2**64 + 2) | st.integers(0, 70)


@FUZZ
@given(leaf=ANY_HASH, index=SIZE, size=SIZE, proof=st.lists(ANY_HASH, max_size=70), root=ANY_HASH)
@example(leaf=bytes(32), index=0, size=1, proof=[], root=bytes(31))
def test_inclusion_proofs_only_verification_or_value_error(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> None:
    """forum_client/merkle.py:verify_inclusion with arbitrary hashes and sizes."""
    with contextlib.suppress(VerificationError, ValueError):
        verify_inclusion(leaf, index, size, proof, root)


@FUZZ
@given(size1=SIZE, size2=SIZE, proof=st.lists(ANY_HASH, max_size=70), r1=ANY_HASH, r2=ANY_HASH)
def test_consistency_proofs_only_verification_or_value_error(
    size1: int, size2: int, proof: list[bytes], r1: bytes, r2: bytes
) -> None:
    """forum_client/merkle.py:verify_consistency with arbitrary hashes and sizes."""
    with contextlib.suppress(VerificationError, ValueError):
        verify_consistency(size1, size2, proof, r1, r2)


@FUZZ
@given(data=st.binary(max_size=600))
def test_compact_range_bytes_only_value_error(data: bytes) -> None:
    """forum_client/merkle.py:CompactRange.from_bytes (the stored sync state)."""
    with contextlib.suppress(ValueError):
        CompactRange.from_bytes(data)


def test_a_huge_proof_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(VerificationError):
        verify_consistency(3, 7, [bytes(32)] * 1_000_000, bytes(32), bytes(32))
    assert time.monotonic() - started < 30  # refused by its length, not hashed through


# ---- checkpoints compared between members ----

NOTE = sign_checkpoint(Checkpoint(ROOT.origin, 5, bytes(32)), ROOT.log_key_name, LOG)


@FUZZ
@given(data=st.data())
def test_compare_checkpoints_on_mutated_notes(data: st.DataObject) -> None:
    """forum_client/gossip.py:compare_checkpoints: only VerificationError, ForkError
    (SecurityError) or InvalidInputError."""
    other = _mutate(NOTE, data.draw)
    with contextlib.suppress(SecurityError, InvalidInputError):
        compare_checkpoints(NOTE, other, ROOT, data.draw(st.none() | st.lists(ANY_HASH)))


# ---- CSV / JSONL input files ----

CSV_LIKE = st.lists(
    st.lists(
        st.sampled_from(
            [
                "type",
                "value",
                "labels",
                "md5",
                "a" * 32,
                "",
                "x,y",
                '"',
                "quality",
                "pdq",
                "c" * 64,
                "101",
                PUB,
                "\x00",
                "é",
            ]
        )
        | st.text(max_size=10),
        max_size=6,
    ).map(lambda r: ",".join(r)),
    max_size=6,
).map(lambda rows: "\n".join(rows))
JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["md5", "a" * 32, PUB, "pdq", "c" * 64]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
JSONL_DOC = (
    st.dictionaries(
        st.sampled_from(["type", "value", "labels", "content_type", "quality"]),
        JSON_VALUE,
        max_size=5,
    ).map(json.dumps)
    | JSON_VALUE.map(json.dumps)
    | st.text(max_size=40)
)


@FUZZ
@given(text=CSV_LIKE | st.text(max_size=200))
def test_csv_input_only_invalid_input(text: str) -> None:
    """forum_client/inputfiles.py:read_signals (CSV)."""
    with contextlib.suppress(InvalidInputError):
        list(read_signals(io.StringIO(text), "csv", name="in.csv"))


@FUZZ
@given(lines=st.lists(JSONL_DOC, max_size=4))
@example(lines=['{"type": "md5", "value": "' + "a" * 32 + '", "labels": 5}'])
@example(lines=['{"type": "md5", "value": "' + "a" * 32 + '", "labels": [1, null]}'])
@example(lines=['{"type": ["md5"], "value": {"a": 1}}'])
@example(lines=['{"type": "pdq", "value": "' + "c" * 64 + '", "quality": [1]}'])
def test_jsonl_input_only_invalid_input(lines: list[str]) -> None:
    """forum_client/inputfiles.py:read_signals (JSON Lines) with values of any JSON type."""
    with contextlib.suppress(InvalidInputError):
        list(read_signals(io.StringIO("\n".join(lines)), "jsonl", name="in.jsonl"))


# ---- credentials bundle and .pub files ----


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as d:
        yield Path(d)


GOOD_BUNDLE = {
    "format": "forum-bundle-v1",
    "member_id": "alice",
    "server": "127.0.0.1:1",
    "ca_certificate": "x",
    "client_certificate": "y",
    "client_key": "z",
    "trust_root": {
        "origin": ROOT.origin,
        "operator_public_key": "AAAA",
        "log_public_key": "AAAA",
        "log_key_name": ROOT.log_key_name,
    },
}


@st.composite
def bundle_docs(draw: st.DrawFn) -> object:
    if draw(st.booleans()):
        return draw(JSON_VALUE)
    doc = json.loads(json.dumps(GOOD_BUNDLE))
    for _ in range(draw(st.integers(1, 3))):
        target = doc if draw(st.booleans()) else doc.get("trust_root")
        if not isinstance(target, dict) or not target:
            break
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.booleans()):
            target[key] = draw(JSON_VALUE)
        else:
            del target[key]
    return doc


@FUZZ
@given(doc=bundle_docs())
@example(doc=[])
@example(doc=GOOD_BUNDLE | {"ca_certificate": 5})
@example(doc=GOOD_BUNDLE | {"trust_root": []})
def test_bundle_load_only_config_error(scratch: Path, doc: object) -> None:
    """forum_client/profile.py:Bundle.load on arbitrary JSON."""
    path = scratch / "bundle.json"
    path.write_text(json.dumps(doc))
    with contextlib.suppress(ConfigError):
        Bundle.load(path)


@FUZZ
@given(
    data=st.binary(max_size=300)
    | st.text(max_size=200).map(str.encode)
    | st.builds(
        lambda k, tail: f"ed25519 {k}\n{tail}".encode(),
        st.sampled_from(["", "AAAA", "=", "A" * 43 + "="]),
        st.text(max_size=60),
    )
)
def test_pub_files_only_invalid_input(scratch: Path, data: bytes) -> None:
    """forum_client/envelope.py:load_public_key_file (WeakKeyError is an InvalidInputError)."""
    path = scratch / "k.pub"
    path.write_bytes(data)
    with contextlib.suppress(InvalidInputError):
        load_public_key_file(path)
