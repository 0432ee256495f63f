"""SignatureChecker: answers exactly what Envelope.verify answers, and LogState still decides."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from forum_client import entries as e
from forum_client import sigcheck
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import EntryRejectedError, VerificationError
from forum_client.sigcheck import SignatureChecker
from forum_client.verifier import LogState, TrustRoot, make_genesis
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


class RecordedLog(Log):
    """A Log that keeps every envelope it appends, genesis first."""

    def __init__(self) -> None:
        super().__init__()
        genesis = make_genesis(self.root, self.op, forum_name="T", created_unix_ms=0)
        self.state = LogState.from_genesis(genesis, self.root)
        self.envelopes = [genesis]

    def append(self, key: SigningKey, body: e.Body) -> int:
        envelope = self.signed(key, body)
        index = self.state.size
        self.state.apply(index, envelope)
        self.envelopes.append(envelope)
        return index


def _long_log() -> tuple[RecordedLog, SigningKey, SigningKey, SigningKey]:
    """Two members, many submissions each, alice's key replaced half way; returns the log,
    alice's first key, her second and bob's."""
    log = RecordedLog()
    alice, bob = log.admit("alice"), log.admit("bob")
    for _ in range(12):
        log.append(alice, log.submission(alice, "alice"))
        log.append(bob, log.submission(bob, "bob"))
    second = SigningKey.generate()
    log.add_key("alice", second, replaces=alice.key_id)
    for _ in range(12):
        log.append(second, log.submission(second, "alice"))
    return log, alice, second, bob


def _plain_replay(envelopes: list[Envelope], root: TrustRoot) -> tuple[LogState, str | None, int]:
    """Every entry verified inline: the state, and where and why it stopped (if it did)."""
    state = LogState.from_genesis(envelopes[0], root)
    for index, env in enumerate(envelopes[1:], 1):
        try:
            state.apply(index, env)
        except EntryRejectedError as exc:
            return state, exc.reason, index
    return state, None, len(envelopes)


def _checked_replay(
    envelopes: list[Envelope], root: TrustRoot
) -> tuple[LogState | None, str | None, int]:
    last, reached = None, 0
    try:
        for state, _, index in sigcheck.replay_checked(
            ((i, env, i) for i, env in enumerate(envelopes)), root, threads=2
        ):
            last, reached = state, index + 1
    except EntryRejectedError as exc:
        return last, exc.reason, reached
    return last, None, reached


def _summary(state: LogState | None) -> Any:
    assert state is not None
    keys = sorted((k.key_id, k.member_id, k.valid_from, k.valid_until) for k in state.keys.values())
    return state.size, sorted(state.last_sequence.items()), keys, sorted(state.members)


@pytest.mark.parametrize("ahead", [1, 5, 1024])
def test_a_replay_checked_ahead_reaches_the_state_of_a_plain_replay(
    monkeypatch: pytest.MonkeyPatch, ahead: int
) -> None:
    log, _, _, _ = _long_log()
    monkeypatch.setattr(sigcheck, "AHEAD_ENTRIES", ahead)
    inline = []
    verify = Envelope.verify
    monkeypatch.setattr(
        Envelope, "verify", lambda env, pk: (inline.append(env), verify(env, pk))[1]
    )
    plain, reason, _ = _plain_replay(log.envelopes, log.root)
    assert reason is None
    members = sum(1 for env in log.envelopes if env.key_id not in (log.op.key_id,))
    assert len(inline) == members  # the plain replay verified every member entry itself
    inline.clear()
    bodies, last = [], None
    for state, body, index in sigcheck.replay_checked(
        ((i, env, i) for i, env in enumerate(log.envelopes)), log.root, threads=2
    ):
        last = state
        bodies.append((index, type(body).__name__ if body is not None else None))
    assert _summary(last) == _summary(plain)
    assert bodies[0] == (0, None) and [i for i, _ in bodies] == list(range(len(log.envelopes)))
    if ahead < 1024:  # the checker's threads took the signatures the state could name
        assert len(inline) < members / 2, (len(inline), members)


@pytest.mark.parametrize("ahead", [1, 5])
@pytest.mark.parametrize("where", [3, 9, 30, 44, -1])
@pytest.mark.parametrize("how", ["bad-signature", "old-key", "other-member"])
def test_a_replay_checked_ahead_stops_where_a_plain_replay_stops(
    monkeypatch: pytest.MonkeyPatch, ahead: int, where: int, how: str
) -> None:
    """A stored log edited: the replay refuses the same entry, for the same reason, having
    yielded exactly the entries before it."""
    log, first, second, bob = _long_log()
    monkeypatch.setattr(sigcheck, "AHEAD_ENTRIES", ahead)
    envelopes = list(log.envelopes)
    if how == "old-key":  # an entry of alice's after her key was replaced
        targets = [i for i, env in enumerate(envelopes) if env.key_id == second.key_id]
    else:  # any member's entry
        targets = [i for i, env in enumerate(envelopes) if env.key_id != log.op.key_id]
    index = targets[where % len(targets)]
    env = envelopes[index]
    if how == "bad-signature":
        forged = Envelope(env.payload_type, env.body, env.key_id, bytes(64))
    elif how == "old-key":  # a valid signature by her replaced key
        forged = first.sign(env.payload_type, env.body)
    else:  # a valid signature by a key of the other member than the body names
        other = bob if env.key_id != bob.key_id else second
        forged = other.sign(env.payload_type, env.body)
    envelopes[index] = forged
    plain, plain_reason, plain_at = _plain_replay(envelopes, log.root)
    checked, reason, reached = _checked_replay(envelopes, log.root)
    assert plain_reason is not None and plain_at == index
    assert (reason, reached) == (plain_reason, index)
    assert _summary(checked) == _summary(plain)
