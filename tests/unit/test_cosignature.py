"""cosignature/v1 against the examples of c2sp.org/tlog-cosignature and tlog-witness, and
against an independent implementation written here from the spec text alone."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from forum_client.checkpoint import (
    Checkpoint,
    _sign_note,
    sign_checkpoint,
    verify_checkpoint,
)
from forum_client.cosignature import (
    QuorumError,
    Witness,
    WitnessPolicy,
    add_signature_lines,
    cosign,
    cosignature_lines,
    cosigner_key_id,
    cosigner_vkey,
    parse_vkey,
    require_quorum,
    signed_message,
    verify_quorum,
    witness_from_vkey,
)
from forum_client.envelope import SigningKey
from forum_client.errors import InvalidInputError, VerificationError

# c2sp.org/tlog-cosignature, "Format": a checkpoint carrying a cosignature.
SPEC_NOTE = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
    "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrD"
    "JsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
).encode()
# c2sp.org/tlog-cosignature, "Ed25519 signed message": the message for that cosignature.
SPEC_MESSAGE = (
    b"cosignature/v1\n"
    b"time 1679315147\n"
    b"example.com/behind-the-sofa\n"
    b"20852163\n"
    b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
NOW = 1_700_000_000


# ---- an independent implementation, from the spec text only ----


def spec_key_id(name: str, public_key: bytes) -> bytes:
    # "SHA-256(<name> || "\n" || 0x04 || 32-byte Ed25519 cosigner public key)[:4]"
    return hashlib.sha256(name.encode() + b"\n" + b"\x04" + public_key).digest()[:4]


def spec_cosign(private: Ed25519PrivateKey, name: str, note_body: bytes, t: int) -> str:
    pub = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    message = b"cosignature/v1\n" + b"time " + str(t).encode() + b"\n" + note_body
    sig = private.sign(message)
    blob = spec_key_id(name, pub) + t.to_bytes(8, "big") + sig
    return "— " + name + " " + base64.b64encode(blob).decode() + "\n"


def spec_verify(public: bytes, name: str, note: bytes) -> int:
    text, _, sigs = note.decode().rpartition("\n\n")
    for line in sigs.splitlines():
        _dash, line_name, b64 = line.split(" ")
        blob = base64.b64decode(b64)
        if line_name == name and blob[:4] == spec_key_id(name, public):
            t = int.from_bytes(blob[4:12], "big")
            message = b"cosignature/v1\ntime %d\n" % t + (text + "\n").encode()
            Ed25519PublicKey.from_public_bytes(public).verify(blob[12:], message)
            return t
    raise AssertionError("no cosignature by that key")


def _witness(name: str = "witness.example/w1") -> tuple[SigningKey, Witness]:
    key = SigningKey.generate()
    return key, Witness(name, key.public_bytes)


def _note(size: int = 7) -> tuple[bytes, bytes]:
    log = SigningKey.generate()
    note = sign_checkpoint(Checkpoint("forum.example", size, bytes(32)), "forum.example", log)
    return note, Checkpoint("forum.example", size, bytes(32)).body()


# ---- the spec's examples ----


def test_signed_message_is_the_spec_example_byte_for_byte() -> None:
    body = SPEC_NOTE.split(b"\n\n")[0] + b"\n"
    assert signed_message(body, 1679315147) == SPEC_MESSAGE


def test_the_spec_example_cosignature_line_has_the_spec_layout() -> None:
    line = SPEC_NOTE.decode().splitlines()[-1]
    _dash, name, b64 = line.split(" ")
    blob = base64.b64decode(b64)
    assert name == "witness.example.com/w1"
    assert len(blob) == 4 + 8 + 64  # key id, timestamp, Ed25519 signature
    assert struct.unpack(">Q", blob[4:12])[0] == 1679315147  # the time in SPEC_MESSAGE


def test_the_spec_example_note_parses_and_an_unknown_witness_is_ignored() -> None:
    _key, w = _witness("witness.example.com/w1")  # same name, another key: ignored
    verdict = verify_quorum(SPEC_NOTE, WitnessPolicy((w,), 1), now=NOW, max_age=None)
    assert verdict.agreed == ()
    assert verdict.missing == {"witness.example.com/w1": "no cosignature"}


def test_the_spec_witness_response_lines_are_read() -> None:
    # c2sp.org/tlog-witness, "Example response body" (three lines; keep w1's with our key id)
    response = (
        "— witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSv"
        "VjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==\n"
        "— witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKb"
        "YKA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==\n"
    ).encode()
    _key, w = _witness("witness.example/w1")
    assert cosignature_lines(response, w) == []  # its key id is not ours: ignored
    with pytest.raises(VerificationError):
        cosignature_lines(b"not a signature line\n", w)


# ---- ours against the independent implementation ----


def test_our_cosignature_verifies_with_the_spec_implementation() -> None:
    key, w = _witness()
    note, body = _note()
    full = note + cosign(body, w.name, key, timestamp=NOW - 5).encode()
    pub = key.public_bytes
    assert spec_verify(pub, w.name, full) == NOW - 5
    assert cosigner_key_id(w.name, pub) == spec_key_id(w.name, pub)


def test_the_spec_implementation_verifies_with_ours() -> None:
    private = Ed25519PrivateKey.generate()
    pub = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    note, body = _note()
    full = note + spec_cosign(private, "w.example/x", body, NOW - 10).encode()
    policy = WitnessPolicy((Witness("w.example/x", pub),), 1)
    verdict = require_quorum(full, policy, now=NOW, max_age=60)
    assert verdict.agreed == ("w.example/x",)
    assert verdict.timestamps == {"w.example/x": NOW - 10}


def test_vkey_round_trip_and_type_byte() -> None:
    key, w = _witness()
    vkey = cosigner_vkey(w.name, key.public_bytes)
    name, key_hex, material = vkey.split("+", 2)
    assert bytes.fromhex(key_hex) == spec_key_id(w.name, key.public_bytes)
    assert base64.b64decode(material) == b"\x04" + key.public_bytes
    assert parse_vkey(vkey) == (name, 0x04, key.public_bytes)
    assert witness_from_vkey(vkey, "http://x") == Witness(w.name, key.public_bytes, "http://x")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda v: v.replace("+", "", 1),
        lambda v: v[: v.index("+") + 1] + "00000000" + v[v.index("+") + 9 :],
        lambda v: v[:-4] + "!!!!",
        lambda v: "bad name" + v[v.index("+") :],
    ],
)
def test_a_bad_vkey_is_refused(mangle: object) -> None:
    key, w = _witness()
    with pytest.raises(InvalidInputError):
        parse_vkey(mangle(cosigner_vkey(w.name, key.public_bytes)))  # type: ignore[operator]


def test_a_log_key_vkey_is_not_a_witness() -> None:
    from forum_client.checkpoint import vkey

    key = SigningKey.generate()
    with pytest.raises(InvalidInputError, match="0x04"):
        witness_from_vkey(vkey("forum.example", key.public_bytes))


# ---- the quorum ----


def _cosigned(keys: list[tuple[SigningKey, Witness]], stamps: list[int]) -> bytes:
    note, body = _note()
    lines = [cosign(body, w.name, k, timestamp=t) for (k, w), t in zip(keys, stamps, strict=True)]
    return add_signature_lines(note, lines)


def test_quorum_counts_fresh_valid_cosignatures_only() -> None:
    ws = [_witness(f"w.example/{i}") for i in range(3)]
    policy = WitnessPolicy(tuple(w for _, w in ws), 2)
    note = _cosigned(ws, [NOW - 1, NOW + 30, NOW - 7200])
    verdict = verify_quorum(note, policy, now=NOW, max_age=3600)
    assert verdict.agreed == ("w.example/0",)
    assert "future" in verdict.missing["w.example/1"]
    assert "old" in verdict.missing["w.example/2"]
    with pytest.raises(QuorumError, match="1 of the required 2"):
        require_quorum(note, policy, now=NOW, max_age=3600)
    assert verify_quorum(note, policy, now=NOW + 60, max_age=None).ok


def test_a_cosignature_over_another_checkpoint_does_not_count() -> None:
    (key, w) = _witness()
    note, _body = _note(7)
    other = Checkpoint("forum.example", 8, bytes(32)).body()
    forged = note + cosign(other, w.name, key, timestamp=NOW).encode()
    verdict = verify_quorum(forged, WitnessPolicy((w,), 1), now=NOW, max_age=None)
    assert verdict.missing == {w.name: "cosignature does not verify"}


def test_a_log_signature_is_not_a_cosignature() -> None:
    # Same key used as a plain note key (type 0x01): another key id, so not counted.
    key, w = _witness()
    note, body = _note()
    as_log = _sign_note(body.decode(), w.name, key).split(b"\n\n")[1]
    verdict = verify_quorum(note + as_log, WitnessPolicy((w,), 1), now=NOW, max_age=None)
    assert verdict.missing == {w.name: "no cosignature"}


def test_duplicate_cosignatures_count_once_and_each_must_verify() -> None:
    key, w = _witness()
    note, body = _note()
    line = cosign(body, w.name, key, timestamp=NOW)
    twice = note + line.encode() + line.encode()
    policy = WitnessPolicy((w,), 1)
    assert verify_quorum(twice, policy, now=NOW, max_age=None).agreed == (w.name,)
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    blob[-1] ^= 1
    bad = f"— {w.name} {base64.b64encode(bytes(blob)).decode()}\n"
    assert not verify_quorum(twice + bad.encode(), policy, now=NOW, max_age=None).ok


def test_log_note_with_the_same_signature_twice_is_accepted() -> None:
    # Decision (documented in checkpoint.py and docs/protocol.md): like Go's sumdb/note,
    # a repeated signature line by the log key is accepted; every line is still verified.
    log = SigningKey.generate()
    cp = Checkpoint("forum.example", 3, bytes(32))
    note = sign_checkpoint(cp, "forum.example", log)
    twice = note + note.split(b"\n\n")[1]
    assert (
        verify_checkpoint(
            twice, origin="forum.example", name="forum.example", public_key=log.public_bytes
        )
        == cp
    )
    sig_line = note.split(b"\n\n")[1].decode()
    name, b64 = sig_line[2:].split(" ")
    blob = bytearray(base64.b64decode(b64))
    blob[-1] ^= 1
    broken = note + f"— {name} {base64.b64encode(bytes(blob)).decode()}\n".encode()
    with pytest.raises(VerificationError, match="does not verify"):
        verify_checkpoint(
            broken, origin="forum.example", name="forum.example", public_key=log.public_bytes
        )


def test_policy_rules() -> None:
    _k1, a = _witness("w.example/a")
    _k2, b = _witness("w.example/b")
    assert not WitnessPolicy().enforced
    with pytest.raises(InvalidInputError, match="quorum"):
        WitnessPolicy((a, b), 3)
    with pytest.raises(InvalidInputError, match="quorum"):
        WitnessPolicy((a, b), 0)
    with pytest.raises(InvalidInputError, match="name"):
        WitnessPolicy((a, Witness("w.example/a", b.public_key)), 1)
    with pytest.raises(InvalidInputError, match="key"):
        WitnessPolicy((a, Witness("w.example/c", a.public_key)), 1)
