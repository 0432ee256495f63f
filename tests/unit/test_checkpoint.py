"""Tests for forum_client.checkpoint: C2SP signed-note checkpoints."""

from __future__ import annotations

import base64
import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import forum_client.checkpoint as checkpoint_module
from forum_client.checkpoint import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    Checkpoint,
    _parse_unverified,
    _sign_note,
    _split_note,
    _verify_note_signatures,
    note_key_id,
    sign_checkpoint,
    verify_checkpoint,
    vkey,
)
from forum_client.envelope import SigningKey
from forum_client.errors import InvalidInputError, VerificationError, WeakKeyError

ORIGIN = "forum.example/log"
NAME = "forum.example/log"
ROOT = bytes(range(32))
EM = "\u2014"

# --- published vectors --------------------------------------------------------------------------
# golang.org/x/mod/sumdb/note (note.go documentation and note_test.go).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG_LINE = (
    f"{EM} PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG_LINE = (
    f"{EM} EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
# c2sp.org/signed-note example.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    f"{EM} example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# A real sum.golang.org checkpoint (transparency-dev/formats log/note_test.go,
# TestSumDBNoteParsing) and the Go checksum database key (cmd/go modfetch/key.go).
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_NOTE = (
    "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n\n"
    f"{EM} sum.golang.org "
    "Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4nPRYfvimWEPWL+o3GeoWwOoAw=\n"
)
# A real sum.golang.org checkpoint cosigned by a test witness (transparency-dev/witness README).
SUMDB_COSIGNED_NOTE = (
    "go.sum database tree\n15067302\ngJyioq6dwR9n+NjEWORfYmH+ubeYm3kH42BBQ0bTpYI=\n\n"
    f"{EM} sum.golang.org "
    "Az3grp1rvWOs5NKlr/xR4GLN/CDyzzakmt1o61uSxYKpK1SerqOP2ClbX/peKUZjYnyomH5Xz7GZG3TpB7OeKn4E2ww=\n"
    f"{EM} test.example.com "
    "qTGhC/xIPQ0AXKHK6Y+9ypRfuvMZWPjRXM8NiOg5M1WREn07VQXyuIXM3NRNav3ieVFLUqDRK77PWDmL6w8w84UqeAw=\n"
)


def _parse_vkey(text: str) -> tuple[str, bytes, bytes]:
    name, hex_id, material = text.split("+", 2)
    raw = base64.b64decode(material)
    assert raw[0] == 0x01
    return name, bytes.fromhex(hex_id), raw[1:]


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def note(key: SigningKey) -> bytes:
    return sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), NAME, key)


def _verify(note: bytes, key: SigningKey, **overrides: str) -> Checkpoint:
    args = {"origin": ORIGIN, "name": NAME} | overrides
    return verify_checkpoint(
        note, origin=args["origin"], name=args["name"], public_key=key.public_bytes
    )


def test_module_docstring_example_runs() -> None:
    result = doctest.testmod(checkpoint_module, raise_on_error=False)
    assert result.attempted > 0
    assert result.failed == 0


# --- known vectors ------------------------------------------------------------------------------


def test_go_signer_key_reproduces_published_note_byte_for_byte() -> None:
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert seed[0] == 0x01
    signer = SigningKey.from_seed(seed[1:])
    assert vkey("PeterNeumann", signer.public_bytes) == GO_VKEY
    assert note_key_id("PeterNeumann", signer.public_bytes).hex() == "c74f20a3"
    assert _sign_note(GO_TEXT, "PeterNeumann", signer) == (GO_TEXT + "\n" + GO_SIG_LINE).encode()


def test_go_note_verifies_and_unknown_cosigner_is_ignored() -> None:
    name, _, public = _parse_vkey(GO_VKEY)
    for note in (GO_SIG_LINE, GO_SIG_LINE + ENOCH_SIG_LINE, ENOCH_SIG_LINE + GO_SIG_LINE):
        text, sigs = _split_note((GO_TEXT + "\n" + note).encode())
        assert text == GO_TEXT
        _verify_note_signatures(text, sigs, name, public)
    tampered = GO_TEXT.replace("cryptography", "cryptographY")
    text, sigs = _split_note((tampered + "\n" + GO_SIG_LINE).encode())
    with pytest.raises(VerificationError, match="does not verify"):
        _verify_note_signatures(text, sigs, name, public)


def test_spec_example_note_verifies() -> None:
    name, kid, public = _parse_vkey(SPEC_VKEY)
    assert note_key_id(name, public) == kid
    assert vkey(name, public) == SPEC_VKEY
    text, sigs = _split_note(SPEC_NOTE.encode())
    _verify_note_signatures(text, sigs, name, public)


def test_real_sumdb_checkpoint_verifies() -> None:
    name, kid, public = _parse_vkey(SUMDB_VKEY)
    assert note_key_id(name, public) == kid
    cp = verify_checkpoint(
        SUMDB_NOTE.encode(), origin="go.sum database tree", name=name, public_key=public
    )
    assert cp.size == 6476701
    assert cp.root == base64.b64decode("mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=")
    assert cp.body().decode() == SUMDB_NOTE.split("\n\n")[0] + "\n"
    with pytest.raises(VerificationError, match="origin"):
        verify_checkpoint(SUMDB_NOTE.encode(), origin="Go rocks", name=name, public_key=public)
    with pytest.raises(VerificationError):
        verify_checkpoint(
            SUMDB_NOTE.replace("6476701", "6476702").encode(),
            origin="go.sum database tree",
            name=name,
            public_key=public,
        )


def test_real_cosigned_sumdb_checkpoint_ignores_witness_line() -> None:
    name, _, public = _parse_vkey(SUMDB_VKEY)
    cp = verify_checkpoint(
        SUMDB_COSIGNED_NOTE.encode(), origin="go.sum database tree", name=name, public_key=public
    )
    assert cp.size == 15067302
    _, sigs = _parse_unverified(SUMDB_COSIGNED_NOTE.encode())
    assert [n for n, _ in sigs] == ["sum.golang.org", "test.example.com"]


# --- round trip and format ----------------------------------------------------------------------


def test_body_format() -> None:
    cp = Checkpoint(ORIGIN, 42, ROOT)
    assert cp.body() == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n".encode()


def test_sign_format(key: SigningKey, note: bytes) -> None:
    body, sig_block = note.decode().split("\n\n")
    assert body + "\n" == Checkpoint(ORIGIN, 42, ROOT).body().decode()
    prefix = f"{EM} {NAME} "
    assert sig_block.startswith(prefix) and sig_block.endswith("\n")
    blob = base64.b64decode(sig_block[len(prefix) : -1])
    assert blob[:4] == note_key_id(NAME, key.public_bytes)
    assert len(blob) == 68


def test_round_trip(key: SigningKey, note: bytes) -> None:
    assert _verify(note, key) == Checkpoint(ORIGIN, 42, ROOT)


@settings(max_examples=50, deadline=None)
@given(
    st.text(alphabet=st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.binary(min_size=32, max_size=32),
)
def test_round_trip_property(origin: str, size: int, root: bytes) -> None:
    signer = SigningKey.from_seed(b"\x07" * 32)
    cp = Checkpoint(origin, size, root)
    note = sign_checkpoint(cp, NAME, signer)
    assert verify_checkpoint(note, origin=origin, name=NAME, public_key=signer.public_bytes) == cp
    assert _parse_unverified(note)[0] == cp


def test_size_zero_and_max(key: SigningKey) -> None:
    for size in (0, 2**64 - 1):
        note = sign_checkpoint(Checkpoint(ORIGIN, size, ROOT), NAME, key)
        assert _verify(note, key).size == size


def test_extension_lines_allowed_and_ignored(key: SigningKey) -> None:
    text = Checkpoint(ORIGIN, 7, ROOT).body().decode() + "ext one\next two\n"
    note = _sign_note(text, NAME, key)
    assert _verify(note, key) == Checkpoint(ORIGIN, 7, ROOT)


def test_checkpoint_validates_fields() -> None:
    for bad in (
        dict(origin="", size=1, root=ROOT),
        dict(origin="a\nb", size=1, root=ROOT),
        dict(origin="a\tb", size=1, root=ROOT),
        dict(origin=ORIGIN, size=-1, root=ROOT),
        dict(origin=ORIGIN, size=2**64, root=ROOT),
        dict(origin=ORIGIN, size=True, root=ROOT),
        dict(origin=ORIGIN, size=1, root=ROOT[:31]),
    ):
        with pytest.raises(InvalidInputError):
            Checkpoint(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\there", "nl\n"])
def test_bad_key_names_rejected(key: SigningKey, name: str, note: bytes) -> None:
    with pytest.raises(InvalidInputError):
        sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), name, key)
    with pytest.raises(InvalidInputError):
        vkey(name, key.public_bytes)
    with pytest.raises(InvalidInputError):
        verify_checkpoint(note, origin=ORIGIN, name=name, public_key=key.public_bytes)


def test_weak_verifier_key_rejected(note: bytes) -> None:
    with pytest.raises(WeakKeyError):
        verify_checkpoint(note, origin=ORIGIN, name=NAME, public_key=b"\x01" + bytes(31))


# --- tampering ----------------------------------------------------------------------------------


def test_tampered_size_root_origin_fail(key: SigningKey, note: bytes) -> None:
    text = note.decode()
    root_b64 = base64.b64encode(ROOT).decode()
    other_root = base64.b64encode(bytes(32)).decode()
    for tampered in (
        text.replace("\n42\n", "\n43\n"),
        text.replace(root_b64, other_root),
        text.replace(ORIGIN + "\n", "forum.example/lag\n", 1),
    ):
        with pytest.raises(VerificationError):
            verify_checkpoint(
                tampered.encode(),
                origin=tampered.split("\n")[0],
                name=NAME,
                public_key=key.public_bytes,
            )


def test_origin_mismatch_fails(key: SigningKey, note: bytes) -> None:
    with pytest.raises(VerificationError, match="origin"):
        _verify(note, key, origin="other.example/log")


def test_every_flipped_bit_fails(key: SigningKey, note: bytes) -> None:
    for bit in range(len(note) * 8):
        data = bytearray(note)
        data[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(VerificationError):
            _verify(bytes(data), key)


def test_wrong_key_fails(note: bytes) -> None:
    other = SigningKey.generate()
    with pytest.raises(VerificationError, match="no signature"):
        _verify(note, other)


def test_wrong_name_fails(key: SigningKey, note: bytes) -> None:
    with pytest.raises(VerificationError, match="no signature"):
        _verify(note, key, name="other.example/log")


def test_matching_key_id_with_bad_signature_rejects_note(key: SigningKey, note: bytes) -> None:
    body = Checkpoint(ORIGIN, 42, ROOT).body().decode()
    bad_blob = note_key_id(NAME, key.public_bytes) + bytes(64)
    bad_line = f"{EM} {NAME} {base64.b64encode(bad_blob).decode()}\n"
    good_line = note.decode().split("\n\n")[1]
    with pytest.raises(VerificationError, match="does not verify"):
        _verify((body + "\n" + bad_line + good_line).encode(), key)
    short_blob = note_key_id(NAME, key.public_bytes) + bytes(10)
    short_line = f"{EM} {NAME} {base64.b64encode(short_blob).decode()}\n"
    with pytest.raises(VerificationError, match="expected 64"):
        _verify((body + "\n" + short_line + good_line).encode(), key)


def test_repeated_signature_accepted(key: SigningKey, note: bytes) -> None:
    # Decided with issue #9: a repeat of the log key's valid signature is accepted (Go's
    # sumdb/note does the same); a repeat that does not verify still rejects the note.
    good_line = note.decode().split("\n\n")[1]
    assert _verify(note + good_line.encode(), key).size == 42


def test_extra_unknown_signature_lines_ignored(key: SigningKey, note: bytes) -> None:
    witness = SigningKey.generate()
    body = Checkpoint(ORIGIN, 42, ROOT).body().decode()
    witness_line = _sign_note(body, "witness.example", witness).decode().split("\n\n")[1]
    junk_line = f"{EM} unknown.example {base64.b64encode(b'short').decode()}\n"
    good_line = note.decode().split("\n\n")[1]
    for lines in (
        good_line + witness_line,
        witness_line + good_line,
        junk_line + good_line + witness_line,
    ):
        assert _verify((body + "\n" + lines).encode(), key) == Checkpoint(ORIGIN, 42, ROOT)
    # The witness alone does not make the note valid for the log key.
    with pytest.raises(VerificationError, match="no signature"):
        _verify((body + "\n" + witness_line).encode(), key)


# --- malformed notes ----------------------------------------------------------------------------


def _malformed(key: SigningKey, note: bytes) -> list[bytes]:
    text = note.decode()
    body, sig = text.split("\n\n")
    root_b64 = base64.b64encode(ROOT).decode()
    return [
        b"",
        b"\n\n",
        body.encode(),  # no signatures
        (body + "\n\n").encode(),  # blank line but no signature lines
        text[:-1].encode(),  # last signature line lacks a newline
        text.replace(EM, "--").encode(),
        text.replace(f"{EM} ", EM).encode(),
        text.replace(f"{NAME} ", f"{NAME}  ").encode(),  # double space
        text.replace("\n42\n", "\n042\n").encode(),  # leading zero
        text.replace("\n42\n", "\n+42\n").encode(),
        text.replace("\n42\n", "\n4_2\n").encode(),
        text.replace("\n42\n", "\n\u0664\u0662\n").encode(),  # Arabic-Indic digits
        text.replace("\n42\n", "\n-1\n").encode(),
        text.replace("\n42\n", f"\n{2**64}\n").encode(),
        text.replace("\n42\n", "\n\n").encode(),
        text.replace(root_b64, root_b64[:-1]).encode(),
        text.replace(root_b64, base64.b64encode(ROOT[:31]).decode()).encode(),
        text.replace(root_b64, base64.b64encode(ROOT + b"\x00").decode()).encode(),
        text.replace(root_b64, root_b64[:-2] + "9=").encode(),  # non-canonical padding bits
        text.replace(ORIGIN, "", 1).encode(),  # empty origin
        (body + "\n\n" + "\n" + sig).encode(),  # blank line in the signature block
        (body + "\next\n\next2\n\n" + sig).encode(),  # blank line among extension lines
        (f"{ORIGIN}\n42\n\n" + sig).encode(),  # missing root line
        text.replace("\n", "\r\n").encode(),
        text.replace("\n42", "\n42\x00").encode(),
        b"\xff" + note,  # not UTF-8
        note.replace(b"\n42\n", b"\n4\xc0\xb2\n"),  # overlong UTF-8
        (body + "\n\n" + sig * (MAX_SIGNATURES + 1)).encode(),
        note + b" " * MAX_NOTE_BYTES,
        (body + "\n\n" + f"{EM} {NAME} !!!!\n").encode(),
        (body + "\n\n" + f"{EM} {NAME} {base64.b64encode(b'abcd').decode()}\n").encode(),
        (body + "\n\n" + f"{EM} bad+name {sig.split(' ')[2]}").encode(),
    ]


def test_malformed_notes_rejected(key: SigningKey, note: bytes) -> None:
    cases = _malformed(key, note)
    for index, bad in enumerate(cases):
        with pytest.raises(VerificationError):
            _verify(bad, key)
            pytest.fail(f"case {index} accepted: {bad[:80]!r}")


def test_size_limit_is_checked_before_parsing(key: SigningKey) -> None:
    with pytest.raises(VerificationError, match="larger than"):
        _verify(b"\xff" * (MAX_NOTE_BYTES + 1), key)


def test_parse_unverified_returns_all_signatures(key: SigningKey, note: bytes) -> None:
    cp, sigs = _parse_unverified(note)
    assert cp == Checkpoint(ORIGIN, 42, ROOT)
    assert len(sigs) == 1
    name, blob = sigs[0]
    assert name == NAME and blob[:4] == note_key_id(NAME, key.public_bytes)
    with pytest.raises(VerificationError):
        _parse_unverified(b"not a note")


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bytes_only_verification_error(data: bytes) -> None:
    signer = SigningKey.from_seed(b"\x09" * 32)
    with pytest.raises(VerificationError):
        verify_checkpoint(data, origin=ORIGIN, name=NAME, public_key=signer.public_bytes)


@settings(max_examples=500)
@given(st.data())
def test_fuzz_mutated_notes_only_verification_error(data: st.DataObject) -> None:
    signer = SigningKey.from_seed(b"\x09" * 32)
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), NAME, signer)
    start = data.draw(st.integers(0, len(note)))
    end = data.draw(st.integers(start, len(note)))
    insert = data.draw(st.binary(max_size=20) | st.text(max_size=20).map(_utf8))
    mutated = note[:start] + insert + note[end:]
    try:
        cp = verify_checkpoint(mutated, origin=ORIGIN, name=NAME, public_key=signer.public_bytes)
    except VerificationError:
        return
    # Only a mutation that leaves the signed body and our signature intact may be accepted.
    assert cp == Checkpoint(ORIGIN, 42, ROOT)
    assert mutated.startswith(Checkpoint(ORIGIN, 42, ROOT).body() + b"\n")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
