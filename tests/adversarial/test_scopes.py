"""Sharing scopes under attack: a server that withholds, leaks or relabels scoped entries,
members who scope where they may not, and a brute force against a redacted leaf.

alice and bob are in group ``g``; carol is not.  The malicious server (``malicious.py``)
proxies the real forum with one member's credentials, so serving bob what carol may read
(redacted) or carol what bob may read (in full) is exactly what a lying server could do.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from forum_client import entries as e
from forum_client._proto.forum.v1 import forum_pb2 as pb
from forum_client.envelope import Envelope
from forum_client.errors import TransportError
from forum_client.merkle import leaf_hash
from forum_client.scopes import new_salt, sign_scope_claim
from forum_client.store import LocalStore, verify_store
from forum_client.sync import LEAK, WITHHELD, SyncSecurityError
from forum_client.transport import call
from forum_client.wire import envelope_to_pb
from forum_server.testing import LocalForum, local_forum

from .malicious import PUB, EditEntries, log_key, malicious_forum, operator_key

pytestmark = pytest.mark.adversarial

SECRET = "e8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


@pytest.fixture
def forum(tmp_path: Path) -> Iterator[LocalForum]:
    with local_forum(tmp_path, members=["alice", "bob", "carol"], observers=()) as f:
        with f.operator() as op:
            op.create_group("g", "Crisis cell")
            op.set_group_member("g", "alice", member=True)
            op.set_group_member("g", "bob", member=True)
        yield f


def _share(forum: LocalForum, value: str = SECRET) -> int:
    with forum.client("alice") as alice:
        item = e.SignalItem("pdq", value, (PUB,), "image", 90)
        return alice.submit([item], forum.members["alice"].signing_key, group="g", tlp="red").index


def _stored(forum: LocalForum, index: int) -> Envelope:
    store = forum.running.handle.sequencer.store
    return Envelope.from_leaf_bytes(next(iter(store.leaves(index, index + 1))).leaf_bytes)


def _redact(index: int, claim: pb.ScopeClaim | None) -> EditEntries:
    """Serve the entry at ``index`` as its leaf hash only, with ``claim``."""

    def edit(entries: list[pb.LogEntry]) -> list[pb.LogEntry]:
        out = []
        for x in entries:
            if x.index == index:
                env = Envelope(
                    x.entry.payload_type, x.entry.body, x.entry.key_id, x.entry.signature
                )
                x = pb.LogEntry(index=index, leaf_hash=leaf_hash(env.leaf_bytes()))
                if claim is not None:
                    x.scope_claim.CopyFrom(claim)
            out.append(x)
        return out

    return EditEntries(edit)


def test_withholding_an_entry_from_a_group_member_is_detected(
    forum: LocalForum, tmp_path: Path
) -> None:
    """replay.py:Replay.apply_redacted: a redaction must name a group the reader is not in."""
    index = _share(forum)
    # carol's honest view (the entry redacted, with alice's real claim), served to bob
    with (
        malicious_forum(forum, upstream_member="carol") as evil,
        evil.client("bob") as bob,
        LocalStore(tmp_path / "bob.db") as store,
    ):
        with pytest.raises(SyncSecurityError) as failed:
            bob.sync(store)
        assert failed.value.what == WITHHELD and failed.value.index == index
        assert "group g" in str(failed.value) and "withheld" in str(failed.value)
        assert store.size == 0  # nothing of the bad range applied
        assert [(x.what, x.entry_index) for x in store.evidence()] == [(WITHHELD, index)]


@pytest.mark.parametrize("forgery", ["no claim", "log key", "another entry's claim", "operator"])
def test_hiding_a_forum_wide_entry_behind_a_redaction_is_detected(
    forum: LocalForum, tmp_path: Path, forgery: str
) -> None:
    """verifier.py:LogState.check_redacted: the claim must be the author's, for this leaf."""
    real_claim = forum.running.handle.sequencer.claims[_share(forum)]
    with forum.client("alice") as alice:
        open_index = alice.submit(
            [e.SignalItem("md5", "a" * 32, (PUB,))], forum.members["alice"].signing_key
        ).index
    h = leaf_hash(_stored(forum, open_index).leaf_bytes())
    claims = {
        "no claim": None,
        "log key": sign_scope_claim(log_key(forum), forum.trust_root.origin, "g", h),
        "another entry's claim": real_claim,
        "operator": sign_scope_claim(operator_key(forum), forum.trust_root.origin, "g", h),
    }
    claim = claims[forgery]
    served = (
        None
        if claim is None
        else pb.ScopeClaim(group_id=claim.group_id, key_id=claim.key_id, signature=claim.signature)
    )
    with (
        malicious_forum(forum, _redact(open_index, served)) as evil,
        evil.client("carol") as carol,
        LocalStore(tmp_path / "carol.db") as store,
    ):
        with pytest.raises(SyncSecurityError) as failed:
            carol.sync(store)
        assert failed.value.what == WITHHELD and failed.value.index == open_index
        assert store.size == 0


def test_a_leaked_body_is_reported_and_not_kept(forum: LocalForum, tmp_path: Path) -> None:
    """replay.py:Replay.apply and sync.py:Syncer._report_leak: a scoped body for a
    non-member is dropped and reported."""
    index = _share(forum)
    db = tmp_path / "carol.db"
    # bob's view (the entry in full), served to carol
    with (
        malicious_forum(forum, upstream_member="bob") as evil,
        evil.client("carol") as carol,
        LocalStore(db) as store,
    ):
        leaked = carol.sync(store)
        evidence = store.evidence()
        assert [(x.what, x.entry_index) for x in evidence] == [(LEAK, index)]
        assert "alice" in evidence[0].message and "group g" in evidence[0].message
        assert evidence[0].entry is None  # the evidence keeps no body either
        assert "TLP" not in evidence[0].message  # nor what the claim does not say (its TLP)
        assert store.lookup("pdq", SECRET) is None and store.match("pdq", SECRET) == []
        assert [(i, g) for i, _, g, _ in store.redacted()] == [(index, "g")]
        assert verify_store(store).ok
    with forum.client("carol") as carol, LocalStore(db) as store:
        honest = carol.sync(store)  # a reported leak does not block syncing
        assert (honest.size, honest.root) == (leaked.size, leaked.root)
    body = _stored(forum, index).body
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("carol.db*"))
    assert body not in on_disk and SECRET.encode() not in on_disk


def test_scoping_to_a_group_one_is_not_in_is_refused(forum: LocalForum) -> None:
    """verifier.py:LogState._scope_group (the server runs it before appending)."""
    with forum.client("carol") as carol, pytest.raises(TransportError) as refused:
        carol.submit(
            [e.SignalItem("pdq", SECRET, (PUB,))],
            forum.members["carol"].signing_key,
            group="g",
            tlp="red",
        )
    assert refused.value.code == "PERMISSION_DENIED"
    assert "carol is not a member of group g" in str(refused.value)
    assert [v.field for v in refused.value.violations] == ["scope"]


def test_a_scoped_entry_needs_its_authors_claim(forum: LocalForum) -> None:
    """sequencer.py:_scope_claim: without the claim no outsider could verify the redaction."""
    with forum.client("alice") as alice:
        key = forum.members["alice"].signing_key
        envelope = alice.prepare_submission(
            [e.SignalItem("pdq", SECRET, (PUB,))], key, group="g", tlp="red"
        )
        for signature in (b"", bytes(64)):
            with pytest.raises(TransportError) as refused:
                alice.submit_envelope(envelope, signature)
            assert refused.value.code == "INVALID_ARGUMENT"
            assert [v.field for v in refused.value.violations] == ["scope_claim_signature"]
        forum_wide = alice.prepare_submission([e.SignalItem("md5", "b" * 32)], key)
        with pytest.raises(TransportError):  # and a forum-wide one carries none
            alice.submit_envelope(forum_wide, bytes(64))


def test_a_redacted_leaf_confirms_none_of_1000_likely_values(
    forum: LocalForum, tmp_path: Path
) -> None:
    """The salt: the attacker knows everything of the entry but the salt (header, labels,
    TLP, group, even the author's signature) and tries the 1,000 most likely values."""
    # the likeliest candidates: the secret itself and its 999 nearest neighbours (every
    # one-bit flip, then two-bit flips), as re-encodes of one image would give
    flips = [1 << i for i in range(256)] + [
        (1 << i) | (1 << j) for i, j in itertools.islice(itertools.combinations(range(256), 2), 743)
    ]
    candidates = [SECRET] + [f"{int(SECRET, 16) ^ f:064x}" for f in flips]
    assert len(set(candidates)) == 1000
    index = _share(forum)
    with forum.client("carol") as carol, LocalStore(tmp_path / "carol.db") as store:
        carol.sync(store)
        [(at, redacted_hash, group, author)] = store.redacted()
    assert (at, group, author) == (index, "g", "alice")
    real = _stored(forum, index)
    body = e.decode(real.payload_type, real.body)
    assert isinstance(body, e.Submission)

    def leaf_for(value: str, salt: bytes) -> bytes:
        item = e.SignalItem("pdq", value, (PUB,), "image", 90)
        guess = e.Submission(body.header, (item,), "g", e.Tlp.RED, salt)
        env = Envelope(real.payload_type, e.encode(guess), real.key_id, real.signature)
        return leaf_hash(env.leaf_bytes())

    for salt in (b"", bytes(32), new_salt()):
        assert all(leaf_for(value, salt) != redacted_hash for value in candidates)
    # control: with the salt (which only the group holds) the same reconstruction matches
    assert leaf_for(SECRET, body.salt) == redacted_hash


def test_a_scope_on_an_operator_entry_is_refused(forum: LocalForum) -> None:
    """verifier.py:LogState._check_scope and entries.decode: operator entries are forum-wide."""
    with forum.operator() as op:
        key, origin = op.admin_key, op.origin
        header = op.forum.header(key)
        ref = e.SignalRef("md5", "a" * 32)
        body = e.Retraction(header, (ref,), "dispute", "g", e.Tlp.RED, new_salt())
        envelope = key.sign(e.payload_type_of(body), e.encode(body))
        claim = sign_scope_claim(key, origin, "g", leaf_hash(envelope.leaf_bytes()))
        with pytest.raises(TransportError) as refused:
            op.forum.submit_envelope(envelope, claim.signature)
        assert refused.value.code == "PERMISSION_DENIED"
        assert "operator entries are forum-wide" in str(refused.value)
        # a scope smuggled onto a group entry as an extra field
        group = e.GroupCreated(op.forum.header(key), "h", "Other")
        smuggled = e.encode(group) + b"\xf2\x01\x01g"
        bad = key.sign(e.payload_type_of(group), smuggled)
        request = pb.AppendOperatorEntryRequest(entry=envelope_to_pb(bad))
        with pytest.raises(TransportError) as refused:
            call(op.admin.AppendOperatorEntry, request, 30)
        assert refused.value.code == "INVALID_ARGUMENT"
        assert "fields it does not define" in str(refused.value)


@pytest.mark.parametrize("hidden", ["a forum-wide submission", "an operator entry"])
def test_a_group_member_colluding_with_the_server_can_hide_an_entry_from_outsiders(
    forum: LocalForum, tmp_path: Path, hidden: str
) -> None:
    """A limit, not a defence (docs/security.md, "Not defended (scopes)", item 6).

    A scope claim binds a group and a leaf hash, not the leaf's author or entry type: an
    outsider sees neither.  So a server that gets one group member (alice) to sign a claim
    over somebody else's leaf can serve that leaf redacted to every member outside the group,
    and their copies verify the same root without it, a forum-wide signal or an operator entry
    included.  The group's members read it in full and are not affected.  If this test
    fails, the limit is gone: update the docs.
    """
    value = "c" * 32
    with forum.client("bob") as bob:
        index = bob.submit(
            [e.SignalItem("md5", value, (PUB,))], forum.members["bob"].signing_key
        ).index
    if hidden == "an operator entry":  # the operator lists the signal as benign
        with forum.operator() as op:
            index = op.publish_benign(add=[{"type": "md5", "value": value}]).index
    h = leaf_hash(_stored(forum, index).leaf_bytes())
    claim = sign_scope_claim(forum.members["alice"].signing_key, forum.trust_root.origin, "g", h)
    served = pb.ScopeClaim(group_id="g", key_id=claim.key_id, signature=claim.signature)
    honest_db, fooled_db = tmp_path / "honest.db", tmp_path / "carol.db"
    with forum.client("carol") as carol, LocalStore(honest_db) as honest:
        expected = carol.sync(honest)
    with (
        malicious_forum(forum, _redact(index, served)) as evil,
        evil.client("carol") as carol,
        LocalStore(fooled_db) as fooled,
    ):
        result = carol.sync(fooled)  # no security failure: the redaction verifies
        assert (result.size, result.root) == (expected.size, expected.root)
        assert fooled.evidence() == []
        assert [(i, g, a) for i, _, g, a in fooled.redacted()] == [(index, "g", "alice")]
        assert verify_store(fooled).ok
    with forum.client("carol") as carol, LocalStore(fooled_db) as fooled:
        carol.sync(fooled)  # nor does a later honest sync notice
        with LocalStore(honest_db) as honest:
            if hidden == "a forum-wide submission":  # carol never gets bob's signal
                assert honest.lookup("md5", value) is not None
                assert fooled.lookup("md5", value) is None
            else:  # carol still matches what the operator listed as benign
                assert honest.match("md5", value) == []
                assert fooled.match("md5", value) != []
