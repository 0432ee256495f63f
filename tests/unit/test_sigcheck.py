"""SignatureChecker: answers exactly what Envelope.verify answers, and LogState still decides."""

from __future__ import annotations

import doctest

import pytest

from forum_client import sigcheck
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import EntryRejectedError, VerificationError
from forum_client.sigcheck import SignatureChecker
from tests.unit.test_verifier import Log


def test_module_example_runs() -> None:
    result = doctest.testmod(sigcheck)
    assert result.attempted > 0 and result.failed == 0


def _tampered(env: Envelope, how: int, other: SigningKey) -> Envelope:
    """One of several ways to break an envelope (each rejected by Envelope.verify)."""
    if how == 0:
        return Envelope(env.payload_type, env.body + b"x", env.key_id, env.signature)
    if how == 1:
        return Envelope(env.payload_type + "x", env.body, env.key_id, env.signature)
    if how == 2:
        sig = bytes([env.signature[0] ^ 1]) + env.signature[1:]
        return Envelope(env.payload_type, env.body, env.key_id, sig)
    if how == 3:
        return Envelope(env.payload_type, env.body, other.key_id, env.signature)
    return Envelope(env.payload_type, env.body, env.key_id, env.signature[:63])


def _verify_answer(env: Envelope, public_key: bytes) -> bytes | None:
    try:
        env.verify(public_key)
    except VerificationError:
        return None
    return public_key


@pytest.mark.parametrize("threads,chunk", [(1, 1), (2, 7), (3, 64)])
def test_answers_equal_envelope_verify(threads: int, chunk: int) -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    items = []
    for i in range(200):
        env = key.sign("forum.v1.Test", b"entry %d" % i)
        if i % 5 == 1:
            env = _tampered(env, i % 25 // 5, other)
        pk = other.public_bytes if i % 17 == 3 else key.public_bytes  # asked under a wrong key
        items.append((1000 + i, env, pk))
    with SignatureChecker(threads=threads, chunk=chunk) as checker:
        checks = checker.submit(items)
        got = [checks.verified_key(index, env) for index, env, _ in items]
        assert checks.verified_key(5, items[0][1]) is None  # never submitted
    want = [_verify_answer(env, pk) for _, env, pk in items]
    assert got == want
    assert got.count(None) > 40  # the tampered and wrong-key cases really were rejected


def test_weak_or_malformed_keys_never_verify() -> None:
    key = SigningKey.generate()
    env = key.sign("forum.v1.Test", b"body")
    identity_point = bytes([1]) + bytes(31)  # small order: anyone can forge under it
    with SignatureChecker(threads=2) as checker:
        checks = checker.submit(
            [(0, env, identity_point), (1, env, b"short"), (2, env, key.public_bytes)]
        )
        assert [checks.verified_key(i, env) for i in range(3)] == [None, None, key.public_bytes]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        SignatureChecker(threads=0)
    with pytest.raises(ValueError):
        SignatureChecker(threads=1, chunk=0)


def test_log_state_skips_only_the_signature_and_only_for_the_resolved_key() -> None:
    log = Log()
    alice = log.admit("alice")
    bob = log.admit("bob")
    env = log.signed(alice, log.submission(alice, "alice"))
    forged = Envelope(env.payload_type, env.body + b"\x00", env.key_id, env.signature)
    index = log.state.size
    # A pre-check under another key (bob's) does not stand in for alice's signature.
    with pytest.raises(EntryRejectedError) as info:
        log.state.check(index, forged, verified_key=bob.public_bytes)
    assert info.value.reason == "bad-signature"
    # Every other rule still runs with a pre-checked signature: the index must be next ...
    with pytest.raises(EntryRejectedError) as info:
        log.state.check(index + 1, env, verified_key=alice.public_bytes)
    assert info.value.reason != "bad-signature"
    # ... and the body must name the signer.
    wrong = log.signed(alice, log.submission(alice, "bob"))
    with pytest.raises(EntryRejectedError):
        log.state.check(index, wrong, verified_key=alice.public_bytes)
    # With the right key the entry applies exactly as without a pre-check.
    with SignatureChecker(threads=2) as checker:
        checks = checker.submit([(index, env, alice.public_bytes)])
        key = checks.verified_key(index, env)
    assert key == alice.public_bytes
    log.state.apply(index, env, verified_key=key)
    assert log.state.size == index + 1


def test_an_answer_belongs_to_the_envelope_checked_not_to_its_index() -> None:
    """A server that sends index i twice (forged, then genuine) gets no pass for the forged
    one: the answer is tied to the envelope object, and only an index's first envelope counts."""
    key = SigningKey.generate()
    good = key.sign("forum.v1.Test", b"genuine")
    forged = Envelope("forum.v1.Test", b"forged", key.key_id, good.signature)
    copy = key.sign("forum.v1.Test", b"genuine")  # equal bytes, another object
    with SignatureChecker(threads=2, chunk=1) as checker:
        checks = checker.submit([(9, forged, key.public_bytes), (9, good, key.public_bytes)])
        assert checks.verified_key(9, forged) is None
        assert checks.verified_key(9, good) is None  # not the first envelope at 9
        checks = checker.submit([(9, good, key.public_bytes), (9, forged, key.public_bytes)])
        assert checks.verified_key(9, good) == key.public_bytes
        assert checks.verified_key(9, forged) is None
        assert checks.verified_key(9, copy) is None


@pytest.mark.parametrize("chunk", [1, 2, 64])
def test_all_answers_at_once_equal_the_answers_one_by_one(chunk: int) -> None:
    """verified_keys() (what the sync uses, one wait per batch) answers exactly as
    verified_key() for every envelope, repeated and forged indexes included."""
    key, other = SigningKey.generate(), SigningKey.generate()
    good = [key.sign("forum.v1.Test", b"entry %d" % i) for i in range(40)]
    forged = [_tampered(env, i % 5, other) for i, env in enumerate(good)]
    items = []
    for i in range(40):
        if i % 7 == 3:  # the same index twice: forged first, then genuine
            items += [(i, forged[i], key.public_bytes), (i, good[i], key.public_bytes)]
        elif i % 7 == 5:  # genuine first, then forged
            items += [(i, good[i], key.public_bytes), (i, forged[i], key.public_bytes)]
        else:
            items.append((i, forged[i] if i % 3 == 0 else good[i], key.public_bytes))
    with SignatureChecker(threads=2, chunk=chunk) as checker:
        checks = checker.submit(items)
        answers = checks.verified_keys()
        for index, env, _ in items:
            found = answers.get(index)
            at_once = found[1] if found is not None and found[0] is env else None
            assert at_once == checks.verified_key(index, env)
    assert 10 < len(answers) < 40
