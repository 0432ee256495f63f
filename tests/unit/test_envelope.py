"""Tests for forum_client.envelope: PAE, envelopes, leaf encoding, weak keys, PoP, key files."""

from __future__ import annotations

import base64
import dataclasses
import doctest
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

import forum_client.envelope as envelope_module
from forum_client.envelope import (
    LEAF_PREFIX,
    POP_PAYLOAD_TYPE,
    Envelope,
    SigningKey,
    check_public_key,
    key_id,
    load_public_key,
    pae,
    pop_message,
    verify_possession,
)
from forum_client.errors import InvalidInputError, VerificationError, WeakKeyError

P = 2**255 - 19
D = (-121665 * pow(121666, P - 2, P)) % P
TYPE = "application/vnd.forum.submission.v1"
BODY = b"\x0a\x03abc\x12\x00 serialized protobuf bytes"

# The eight points of order dividing 8, canonically encoded (ed25519-speccheck / "Taming the
# many EdDSAs", Chalkias et al. 2020, Table 6).
SMALL_ORDER_POINTS = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity, order 1
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2 (y = -1)
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4 (y = 0)
    "0000000000000000000000000000000000000000000000000000000000000080",  # order 4 (y = 0, -x)
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",  # order 8
]
IDENTITY = bytes.fromhex(SMALL_ORDER_POINTS[0])
# The Ed25519 base point B (RFC 8032), an honest full-order point.
BASE_POINT = bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666")
# RFC 8032 section 7.1, TEST 1.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIG_EMPTY = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def _encode(y: int, sign: int) -> bytes:
    return (y | (sign << 255)).to_bytes(32, "little")


def _on_curve(y: int) -> bool:
    """Independent of the module: y is on the curve iff (y^2-1)/(d y^2+1) is a square mod p."""
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    ratio = (u * pow(v, P - 2, P)) % P
    return ratio == 0 or pow(ratio, (P - 1) // 2, P) == 1


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


def test_module_docstring_example_runs() -> None:
    result = doctest.testmod(envelope_module, raise_on_error=False)
    assert result.attempted > 0
    assert result.failed == 0


# --- PAE and key ids ----------------------------------------------------------------------------


def test_pae_dsse_spec_example() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_lengths_are_utf8_byte_lengths() -> None:
    assert pae("é", b"") == b"DSSEv1 2 \xc3\xa9 0 "


def test_pae_rejects_unencodable_type() -> None:
    with pytest.raises(InvalidInputError):
        pae("\ud800", b"")


def test_key_id_is_sha256_of_raw_key(key: SigningKey) -> None:
    assert key.key_id == hashlib.sha256(key.public_bytes).digest() == key_id(key.public_bytes)
    assert len(key.key_id) == 32
    with pytest.raises(InvalidInputError):
        key_id(b"\x01" * 31)


def test_rfc8032_known_answer() -> None:
    signer = SigningKey.from_seed(RFC8032_SEED)
    assert signer.public_bytes == RFC8032_PUBLIC
    assert signer.sign_raw(b"") == RFC8032_SIG_EMPTY


# --- sign / verify ------------------------------------------------------------------------------


def test_sign_verify_round_trip(key: SigningKey) -> None:
    env = key.sign(TYPE, BODY)
    assert env.payload_type == TYPE and env.body == BODY and env.key_id == key.key_id
    assert len(env.signature) == 64
    env.verify(key.public_bytes)
    Ed25519PublicKey.from_public_bytes(key.public_bytes).verify(env.signature, pae(TYPE, BODY))


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_every_flipped_bit_in_body_and_signature_fails(key: SigningKey) -> None:
    env = key.sign(TYPE, BODY)
    for bit in range(len(BODY) * 8):
        with pytest.raises(VerificationError):
            Envelope(TYPE, _flip(BODY, bit), env.key_id, env.signature).verify(key.public_bytes)
    for bit in range(len(env.signature) * 8):
        with pytest.raises(VerificationError):
            Envelope(TYPE, BODY, env.key_id, _flip(env.signature, bit)).verify(key.public_bytes)


def test_every_flipped_bit_in_type_fails(key: SigningKey) -> None:
    env = key.sign(TYPE, BODY)
    raw = TYPE.encode()
    for bit in range(len(raw) * 8):
        try:
            other = _flip(raw, bit).decode()
        except UnicodeDecodeError:
            continue
        with pytest.raises(VerificationError):
            Envelope(other, BODY, env.key_id, env.signature).verify(key.public_bytes)


def test_every_flipped_bit_in_key_id_fails(key: SigningKey) -> None:
    env = key.sign(TYPE, BODY)
    for bit in range(256):
        bad = Envelope(TYPE, BODY, _flip(env.key_id, bit), env.signature)
        with pytest.raises(VerificationError, match="key_id"):
            bad.verify(key.public_bytes)


def test_signature_over_raw_body_not_pae_fails(key: SigningKey) -> None:
    bad = Envelope(TYPE, BODY, key.key_id, key.sign_raw(BODY))
    with pytest.raises(VerificationError, match="does not verify"):
        bad.verify(key.public_bytes)


def test_signature_moved_to_other_type_fails(key: SigningKey) -> None:
    env = key.sign(TYPE, BODY)
    with pytest.raises(VerificationError):
        Envelope("application/vnd.forum.retraction.v1", BODY, env.key_id, env.signature).verify(
            key.public_bytes
        )


def test_wrong_key_fails(key: SigningKey) -> None:
    other = SigningKey.generate()
    env = key.sign(TYPE, BODY)
    with pytest.raises(VerificationError, match="key_id"):
        env.verify(other.public_bytes)
    # Even with the key id relabelled, the signature itself must not verify.
    relabelled = Envelope(TYPE, BODY, other.key_id, env.signature)
    with pytest.raises(VerificationError, match="does not verify"):
        relabelled.verify(other.public_bytes)


@pytest.mark.parametrize("length", [0, 63, 65, 255])
def test_wrong_signature_length_fails(key: SigningKey, length: int) -> None:
    env = Envelope(TYPE, BODY, key.key_id, b"\x00" * length)
    with pytest.raises(VerificationError, match="64 bytes"):
        env.verify(key.public_bytes)


def test_verify_rejects_weak_key_even_with_valid_forgery() -> None:
    forged = Envelope(TYPE, BODY, key_id(IDENTITY), IDENTITY + bytes(32))
    # cryptography alone accepts it...
    Ed25519PublicKey.from_public_bytes(IDENTITY).verify(forged.signature, pae(TYPE, BODY))
    # ...our verify does not.
    with pytest.raises(WeakKeyError):
        forged.verify(IDENTITY)


# --- leaf encoding ------------------------------------------------------------------------------


def test_leaf_bytes_layout(key: SigningKey) -> None:
    env = Envelope("t", b"body", b"K" * 32, b"S" * 64)
    assert env.leaf_bytes() == (
        LEAF_PREFIX + b"\x00\x01t" + b"\x00\x00\x00\x04body" + b"\x20" + b"K" * 32 + b"\x40"
        + b"S" * 64
    )  # fmt: skip
    signed = key.sign(TYPE, BODY)
    assert Envelope.from_leaf_bytes(signed.leaf_bytes()) == signed


def test_leaf_rejects_truncation_and_trailing_data(key: SigningKey) -> None:
    leaf = key.sign(TYPE, BODY).leaf_bytes()
    for cut in range(len(leaf)):
        with pytest.raises(InvalidInputError):
            Envelope.from_leaf_bytes(leaf[:cut])
    with pytest.raises(InvalidInputError, match="trailing"):
        Envelope.from_leaf_bytes(leaf + b"\x00")


def test_leaf_rejects_bad_prefix_and_bad_utf8() -> None:
    good = Envelope("t", b"", b"", b"").leaf_bytes()
    with pytest.raises(InvalidInputError, match="prefix"):
        Envelope.from_leaf_bytes(b"forum-leaf-v3\x00" + good[len(LEAF_PREFIX) :])
    bad_type = LEAF_PREFIX + b"\x00\x01\xff" + good[len(LEAF_PREFIX) + 3 :]
    with pytest.raises(InvalidInputError, match="UTF-8"):
        Envelope.from_leaf_bytes(bad_type)


def test_envelope_rejects_fields_that_do_not_fit() -> None:
    with pytest.raises(InvalidInputError):
        Envelope("x" * 65536, b"", b"", b"")
    with pytest.raises(InvalidInputError):
        Envelope("t", b"", b"k" * 256, b"")
    with pytest.raises(InvalidInputError):
        Envelope("t", b"", b"", b"s" * 256)
    with pytest.raises(InvalidInputError):
        Envelope("t", "not bytes", b"", b"")  # type: ignore[arg-type]


@settings(max_examples=300)
@given(
    st.text(max_size=40),
    st.binary(max_size=300),
    st.binary(max_size=255),
    st.binary(max_size=255),
)
def test_leaf_round_trip(payload_type: str, body: bytes, kid: bytes, sig: bytes) -> None:
    try:
        env = Envelope(payload_type, body, kid, sig)
    except InvalidInputError:
        return  # lone surrogates in the generated text
    leaf = env.leaf_bytes()
    assert Envelope.from_leaf_bytes(leaf) == env
    assert Envelope.from_leaf_bytes(leaf).leaf_bytes() == leaf


@settings(max_examples=500)
@given(st.binary(max_size=400))
def test_from_leaf_bytes_fuzz_only_raises_invalid_input(data: bytes) -> None:
    for candidate in (data, LEAF_PREFIX + data):
        try:
            env = Envelope.from_leaf_bytes(candidate)
        except InvalidInputError:
            continue
        # anything accepted is canonical: encoding it afresh (not the bytes it was read
        # from, which leaf_bytes() answers with) gives the same bytes
        assert dataclasses.replace(env).leaf_bytes() == candidate
        assert env.leaf_bytes() == candidate


def _field_by_field(data: bytes) -> Envelope | str:
    """What from_leaf_bytes answered before its one-pass reader: the envelope, or the error."""
    saved = envelope_module._single_signature_fields
    envelope_module._single_signature_fields = lambda _data: None  # type: ignore[assignment]
    try:
        return Envelope.from_leaf_bytes(data)
    except InvalidInputError as exc:
        return str(exc)
    finally:
        envelope_module._single_signature_fields = saved


@settings(max_examples=300)
@given(st.binary(max_size=120), st.data())
def test_one_pass_leaf_reader_answers_as_the_field_by_field_one(
    body: bytes, data: st.DataObject
) -> None:
    leaf = Envelope("application/vnd.forum.x.v1", body, b"k" * 32, b"s" * 64).leaf_bytes()
    cut = data.draw(st.integers(0, len(leaf)))
    extra = data.draw(st.binary(max_size=3))
    flip = data.draw(st.integers(0, len(leaf) - 1))
    mangled = leaf[:flip] + bytes([leaf[flip] ^ 0xFF]) + leaf[flip + 1 :]
    for candidate in (leaf, leaf[:cut], leaf + extra, leaf[:cut] + extra + leaf[cut:], mangled):
        try:
            answer: Envelope | str = Envelope.from_leaf_bytes(candidate)
        except InvalidInputError as exc:
            answer = str(exc)
        assert answer == _field_by_field(candidate)


# --- weak keys ----------------------------------------------------------------------------------


def test_honest_keys_accepted(key: SigningKey) -> None:
    check_public_key(key.public_bytes)
    check_public_key(BASE_POINT)
    check_public_key(RFC8032_PUBLIC)


@pytest.mark.parametrize("hex_point", SMALL_ORDER_POINTS)
def test_small_order_points_rejected(hex_point: str) -> None:
    with pytest.raises(WeakKeyError, match="small-order") as info:
        check_public_key(bytes.fromhex(hex_point))
    assert isinstance(info.value, InvalidInputError)
    assert info.value.violations[0].field == "signing_key"


@pytest.mark.parametrize("hex_point", SMALL_ORDER_POINTS)
def test_cryptography_accepts_forgeries_under_small_order_keys(hex_point: str) -> None:
    """Why the check exists: with R = identity and S = 0, OpenSSL's verification equation
    [S]B = R + [k]A holds whenever [k]A is the identity, i.e. when k is a multiple of A's order
    (always for the identity key, one message in <= 8 otherwise).  Anyone can forge."""
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_point))
    forged = IDENTITY + bytes(32)
    for attempt in range(256):
        message = b"forged entry %d" % attempt
        try:
            public.verify(forged, message)
        except InvalidSignature:
            continue
        break
    else:
        pytest.fail("expected cryptography to accept a forged signature under a small-order key")


def test_identity_key_accepts_forgery_for_any_message() -> None:
    public = Ed25519PublicKey.from_public_bytes(IDENTITY)
    for message in (b"", b"anything", pae(TYPE, BODY)):
        public.verify(IDENTITY + bytes(32), message)


@pytest.mark.parametrize("offset", range(19))
@pytest.mark.parametrize("sign", [0, 1])
def test_non_canonical_y_rejected(offset: int, sign: int) -> None:
    """Every y in [p, 2^255) is a non-canonical encoding of y - p (19 values, both signs);
    these include the non-canonical identity (y = p + 1) and order-2/4 points."""
    with pytest.raises(WeakKeyError) as info:
        check_public_key(_encode(P + offset, sign))
    assert "non-canonical" in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        _encode(1, 1),  # identity with the sign bit set (x = 0)
        _encode(P - 1, 1),  # order-2 point with the sign bit set (x = 0)
    ],
)
def test_x_zero_with_sign_bit_rejected(raw: bytes) -> None:
    with pytest.raises(WeakKeyError, match="x = 0"):
        check_public_key(raw)


def test_points_off_the_curve_rejected() -> None:
    off_curve = [y for y in range(2, 200) if not _on_curve(y)]
    assert len(off_curve) > 50
    for y in off_curve:
        with pytest.raises(WeakKeyError, match="not a point on the curve"):
            check_public_key(_encode(y, 0))
    on_curve = [y for y in range(2, 200) if _on_curve(y)]
    for y in on_curve:  # small y on the curve are full-order points: accepted
        check_public_key(_encode(y, 0))


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_wrong_length_rejected(length: int) -> None:
    with pytest.raises(WeakKeyError, match="32 bytes"):
        check_public_key(b"\x58" * length)


@settings(max_examples=200)
@given(st.binary(min_size=32, max_size=32))
def test_check_public_key_total_on_random_bytes(raw: bytes) -> None:
    try:
        check_public_key(raw)
    except WeakKeyError:
        return
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    assert y < P and _on_curve(y)


# --- proof of possession ------------------------------------------------------------------------


def test_pop_message_layout(key: SigningKey) -> None:
    expected = pae(POP_PAYLOAD_TYPE, b"forum.example\nmember-1\n" + key.public_bytes)
    assert pop_message("forum.example", "member-1", key.public_bytes) == expected


def test_pop_round_trip(key: SigningKey) -> None:
    sig = key.prove_possession("forum.example", "member-1")
    verify_possession("forum.example", "member-1", key.public_bytes, sig)


@pytest.mark.parametrize(
    ("origin", "member"),
    [("forum.example", "member-2"), ("other.example", "member-1"), ("forum.exampl", "member-1")],
)
def test_pop_bound_to_origin_and_member(key: SigningKey, origin: str, member: str) -> None:
    sig = key.prove_possession("forum.example", "member-1")
    with pytest.raises(VerificationError):
        verify_possession(origin, member, key.public_bytes, sig)


def test_pop_by_other_key_fails(key: SigningKey) -> None:
    other = SigningKey.generate()
    sig = other.prove_possession("forum.example", "member-1")
    with pytest.raises(VerificationError):
        verify_possession("forum.example", "member-1", key.public_bytes, sig)
    with pytest.raises(VerificationError, match="64 bytes"):
        verify_possession("forum.example", "member-1", key.public_bytes, sig[:63])


def test_pop_rejects_weak_key_before_verifying() -> None:
    forged = IDENTITY + bytes(32)
    Ed25519PublicKey.from_public_bytes(IDENTITY).verify(
        forged, pop_message("forum.example", "m", IDENTITY)
    )
    with pytest.raises(WeakKeyError):
        verify_possession("forum.example", "m", IDENTITY, forged)


@pytest.mark.parametrize(("origin", "member"), [("a\nb", "m"), ("o", "m\n"), ("", "m"), ("o", "")])
def test_pop_rejects_ambiguous_fields(key: SigningKey, origin: str, member: str) -> None:
    with pytest.raises(InvalidInputError):
        pop_message(origin, member, key.public_bytes)


# --- key files ----------------------------------------------------------------------------------


def test_pem_round_trip(key: SigningKey) -> None:
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert SigningKey.from_pem(pem).public_bytes == key.public_bytes


@pytest.mark.parametrize("data", [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n"])
def test_from_pem_rejects_garbage(data: bytes) -> None:
    with pytest.raises(InvalidInputError):
        SigningKey.from_pem(data)


def test_from_pem_rejects_other_key_types() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidInputError, match="Ed25519"):
        SigningKey.from_pem(pem)


def test_save_and_load(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "member.key"
    old_umask = os.umask(0o077)  # the promised modes must not depend on the umask
    try:
        key.save(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pub = tmp_path / "member.key.pub"
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["member.key", "member.key.pub"]
    assert SigningKey.load(path).public_bytes == key.public_bytes
    assert load_public_key(pub) == key.public_bytes
    text = pub.read_text()
    assert text.startswith("ed25519 ") and text.endswith("\n") and text.count("\n") == 1


def test_save_refuses_to_overwrite(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "member.key"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        key.save(path)
    assert path.read_bytes() == b"precious"
    assert not (tmp_path / "member.key.pub").exists()

    path2 = tmp_path / "second.key"
    (tmp_path / "second.key.pub").write_text("precious")
    with pytest.raises(FileExistsError):
        key.save(path2)
    assert not path2.exists()
    assert (tmp_path / "second.key.pub").read_text() == "precious"


def test_load_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(b"not a key")
    with pytest.raises(InvalidInputError):
        SigningKey.load(path)
    path.write_bytes(b"x" * (envelope_module.MAX_KEY_FILE_BYTES + 1))
    with pytest.raises(InvalidInputError, match="larger"):
        SigningKey.load(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage\n",
        b"ed25519\n",
        b"ssh-ed25519 AAAA\n",
        b"ed25519 not*base64\n",
        b"ed25519 AAAA\n",  # 3 bytes
        b"ed25519 " + base64.b64encode(BASE_POINT) + b"\nextra\n",
        b"ed25519  " + base64.b64encode(BASE_POINT) + b"\n",
        b"\xff\xfe\n",
    ],
)
def test_load_public_key_rejects_garbage(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "k.pub"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError):
        load_public_key(path)


def test_load_public_key_rejects_weak_key(tmp_path: Path) -> None:
    path = tmp_path / "k.pub"
    path.write_text(f"ed25519 {base64.b64encode(IDENTITY).decode()}\n")
    with pytest.raises(WeakKeyError):
        load_public_key(path)
    path.write_text(f"ed25519 {base64.b64encode(BASE_POINT).decode()}")  # no final newline: ok
    assert load_public_key(path) == BASE_POINT


def test_repr_does_not_leak_private_key(key: SigningKey) -> None:
    assert key.key_id.hex() in repr(key)
    assert "PRIVATE" not in repr(key)


def test_envelope_written_into_a_message_equals_the_one_built(key: SigningKey) -> None:
    from forum_client._proto.forum.v1 import forum_pb2 as pb
    from forum_client.wire import envelope_from_pb, envelope_into_pb, envelope_to_pb

    single = key.sign("application/vnd.forum.x.v1", b"body")
    cosigned = single.cosigned(SigningKey.generate()).cosigned(SigningKey.generate())
    for env in (single, cosigned):
        batch = pb.EntryBatch()
        envelope_into_pb(env, batch.entries.add(index=3).entry)
        assert batch.entries[0].entry == envelope_to_pb(env)
        assert envelope_from_pb(batch.entries[0].entry) == env
