"""Issue 15: the forum as a python-threatexchange exchange, driven through the real
``threatexchange`` CLI (a subprocess with its own HOME, so its own config directory), and
through the same ``SignalExchangeAPI`` calls HMA's fetcher makes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("threatexchange")

from forum_client.interop.pytx_exchange import (
    ForumCheckpoint,
    ForumCollabConfig,
    ForumSignalExchangeAPI,
    ForumSignalMetadata,
)
from forum_client.store import LocalStore
from forum_server.testing import LocalForum, local_forum

pytestmark = pytest.mark.integration

PUB = "behaviour:terrorist-publication"
GLORY = "behaviour:glorification-terrorist-acts"


def pdq(seed: int) -> str:
    return np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8).tobytes().hex()


def near(value: str, bits: int) -> str:
    b = np.unpackbits(np.frombuffer(bytes.fromhex(value), np.uint8))
    b[:bits] ^= 1
    return np.packbits(b).tobytes().hex()


KEPT, RETRACTED, BENIGN, LATER = pdq(21), pdq(22), pdq(23), pdq(24)


class TX:
    """The real threatexchange CLI in a subprocess, HOME in a temporary directory."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "HOME": str(home)}

    def __call__(self, *args: str, ok: bool = True, stderr: bool = False) -> str:
        """The command's stdout (its stderr with ``stderr``)."""
        done = subprocess.run(
            [sys.executable, "-m", "threatexchange", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        if ok:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stderr if stderr else done.stdout


@pytest.fixture(scope="module")
def forum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalForum]:
    with local_forum(tmp_path_factory.mktemp("pytx")) as f:
        alice, bob = f.members["alice"], f.members["bob"]
        with f.client("alice") as client:
            client.submit(
                [
                    {"type": "pdq", "value": KEPT, "labels": [PUB], "content_type": "image"},
                    {"type": "pdq", "value": RETRACTED, "labels": [PUB]},
                    # pytx 1.2.17's PDQ index finds nothing after a save and load when it
                    # holds exactly one hash, so the forum holds two from the start.
                    {"type": "pdq", "value": pdq(25), "labels": [PUB]},
                    {"type": "url", "value": "https://example.com/a?x=1", "labels": [GLORY]},
                    {"type": "domain", "value": "bad.example", "labels": [GLORY]},
                    {"type": "md5", "value": "ab" * 16, "labels": [PUB]},
                    {"type": "sha1", "value": "cd" * 20, "labels": [PUB]},
                ],
                alice.signing_key,
            )
            client.retract([{"type": "pdq", "value": RETRACTED}], alice.signing_key, "wrong")
        with f.client("bob") as client:
            client.submit([{"type": "pdq", "value": BENIGN, "labels": [PUB]}], bob.signing_key)
            client.submit([{"type": "pdq", "value": KEPT, "labels": [GLORY]}], bob.signing_key)
            client.opine({"type": "pdq", "value": KEPT}, "agree", bob.signing_key)
        with f.operator() as op:
            op.publish_benign(add=[{"type": "pdq", "value": BENIGN}])
        yield f


def test_threatexchange_fetch_match_label_through_the_extension(
    forum: LocalForum, tmp_path: Path
) -> None:
    alice = forum.members["alice"]
    tx = TX(tmp_path / "home")
    tx("config", "extensions", "add", "forum_client.interop.pytx_exchange")
    tx(
        "config", "collab", "edit", "shared_signal_forum", "forum", "--create",
        "--profile", str(alice.bundle_path), "--db", str(tmp_path / "copy.db"),
        "--key", str(alice.key_path),
    )  # fmt: skip
    first = tx("-v", "fetch", stderr=True)
    assert "deltas from log size 0" in first, first
    found = tx("match", "-H", "photo", "--", near(KEPT, 5))
    assert found.startswith("pdq 5 (forum) POSITIVE_CLASS"), found
    assert GLORY in found and PUB in found
    assert tx("match", "-H", "photo", "--", near(RETRACTED, 2)).strip() == ""
    assert tx("match", "-H", "photo", "--", near(BENIGN, 2)).strip() == ""
    # URLs and domains in any spelling, normalised as the forum does
    assert "forum_url" in tx("match", "url", "--", "HTTPS://Example.COM:443/./a?x=1#top")
    assert "forum_domain" in tx("match", "url", "--", "http://www.BAD.example/anything")
    assert tx("match", "url", "--", "https://example.com/b").strip() == ""
    assert "file_md5" in tx("match", "-H", "-S", "file_md5", "file", "--", "AB" * 16)

    # More submissions and a retraction after the first fetch: the second fetch is incremental
    with forum.client("bob") as client:
        client.submit(
            [{"type": "pdq", "value": LATER, "labels": [PUB]}], forum.members["bob"].signing_key
        )
    with forum.client("alice") as client:
        client.retract([{"type": "pdq", "value": KEPT}], alice.signing_key, "withdrawn")
    with LocalStore(tmp_path / "copy.db") as store:
        fetched = store.size
    second = tx("-v", "fetch", stderr=True)
    # incremental: the deltas start at the size the first fetch reached, and carry 2 signals
    assert f"deltas from log size {fetched}" in second, second
    assert "fetch() with 2 new records" in second, second
    assert "(forum) POSITIVE_CLASS" in tx("match", "-H", "photo", "--", near(LATER, 3))
    # bob's descriptor on KEPT is still active: it matches, with bob's label only
    still = tx("match", "-H", "photo", "--", near(KEPT, 1))
    assert GLORY in still and PUB not in still

    # threatexchange label -> a signed forum opinion
    tx("label", "--as-hash", "pdq", "--labels", PUB, "forum", "photo", "--", LATER)
    with forum.client("carol") as client, LocalStore(tmp_path / "check.db") as store:
        client.sync(store)
        assert ("alice", "agree", f"labels: {PUB}") in store.opinions("pdq", LATER)


def test_the_calls_hma_makes_fetch_deltas_and_resume(forum: LocalForum, tmp_path: Path) -> None:
    """HMA's fetcher: for_collab, get_checkpoint_cls, fetch_iter(types, checkpoint) delta by
    delta, naive_convert_to_signal_type; the checkpoint is the verified log size.  HMA's
    storage: the collab from ``POST /c/exchanges``'s api_json and the checkpoint through
    pytx's dataclass_json, each record's metadata pickled (docs/member-quickstart.md)."""
    import pickle

    from threatexchange.cli.main import _DEFAULT_SIGNAL_TYPES
    from threatexchange.utils import dataclass_json

    from forum_client.interop.pytx_exchange import TX_MANIFEST

    types = [*_DEFAULT_SIGNAL_TYPES, *TX_MANIFEST.signal_types]
    api_json: dict[str, object] = {
        "profile": str(forum.members["carol"].bundle_path),
        "db": str(tmp_path / "hma.db"),
    }
    # what HMA's exchange_create adds, then how it builds and stores the config
    api_json.update(name="ACME_FORUM", enabled=True, api="shared_signal_forum")
    collab = dataclass_json.dataclass_load_dict(api_json, ForumSignalExchangeAPI.get_config_cls())
    assert isinstance(collab, ForumCollabConfig) and collab.key is None
    stored = dataclass_json.dataclass_dump_dict(collab)
    assert dataclass_json.dataclass_load_dict(stored, ForumCollabConfig) == collab
    api = ForumSignalExchangeAPI.for_collab(collab)
    assert ForumSignalExchangeAPI.get_checkpoint_cls() is ForumCheckpoint
    deltas = list(api.fetch_iter(types, None))
    last = deltas[-1].checkpoint
    assert dataclass_json.dataclass_dump_dict(last) == {"log_size": last.log_size}
    assert dataclass_json.dataclass_load_dict({"log_size": last.log_size}, ForumCheckpoint) == last
    assert not last.is_stale()  # HMA refetches from scratch when a checkpoint is stale
    for delta in deltas:
        for value in delta.updates.values():
            assert value is None or pickle.loads(pickle.dumps(value)) == value
    state: dict[tuple[str, str], ForumSignalMetadata] = {}
    for delta in deltas:
        ForumSignalExchangeAPI.naive_fetch_merge(state, delta.updates)
    size = deltas[-1].checkpoint.log_size
    with LocalStore(tmp_path / "hma.db") as store:
        assert size == store.size
        # Changes since a size come in chunks closed by the log size they cover
        from forum_client.store.scan import changed_keys

        touched = {key for _, key in changed_keys(store.leaves(2, size))}
        chunks = list(store.changed(2, chunk=2))
        uptos = [upto for upto, _ in chunks]
        assert len(chunks) > 1 and uptos == sorted(set(uptos)) and uptos[-1] == size
        got = [(r.signal.type, r.signal.value) for _, records in chunks for r in records]
        assert set(got) == touched
    assert ("pdq", RETRACTED) not in state and ("pdq", BENIGN) not in state
    from threatexchange.signal_type.url_md5 import UrlMD5Signal

    assert ("file_sha1", "cd" * 20) in state
    assert ("url_md5", UrlMD5Signal.hash_from_str("https://example.com/a?x=1")) in state
    assert GLORY in state[("pdq", KEPT)].labels and "bob" in state[("pdq", KEPT)].members
    by_type = ForumSignalExchangeAPI.naive_convert_to_signal_type(types, collab, state)
    assert {t.get_name() for t in by_type} >= {"pdq", "forum_url", "url", "url_md5", "forum_domain"}
    # Nothing new: one empty delta at the same checkpoint
    again = list(api.fetch_iter(types, ForumCheckpoint(size)))
    assert [(d.updates, d.checkpoint.log_size) for d in again] == [({}, size)]
    # A change: only the touched signal comes back, with the new size
    with forum.client("bob") as client:
        client.opine(
            {"type": "pdq", "value": KEPT}, "false-positive", forum.members["bob"].signing_key
        )
    delta = list(api.fetch_iter(types, ForumCheckpoint(size)))
    assert list(delta[-1].updates) == [("pdq", KEPT)]
    meta = delta[-1].updates[("pdq", KEPT)]
    assert (
        meta is not None
        and meta.negative_members == ("bob",)
        and delta[-1].checkpoint.log_size == size + 1
    )


def test_deltas_and_exports_carry_incidents_scopes_and_tlp(
    forum: LocalForum, tmp_path: Path
) -> None:
    """The metadata of a signal shared with a group (scope, TLP) and of one tagged with an
    incident, in pytx's deltas and in the STIX and MISP exports; a member outside the group
    gets neither (its entry is redacted for it)."""
    import io
    import json

    from threatexchange.cli.main import _DEFAULT_SIGNAL_TYPES

    from forum_client.interop.export import export

    scoped, tagged = pdq(31), pdq(32)
    with forum.operator() as op:
        op.set_incident("flood-2", open=True, title="a test incident")
        op.create_group("cell", "Crisis cell")
        op.set_group_member("cell", "alice", member=True)
        op.set_group_member("cell", "bob", member=True)
    alice = forum.members["alice"]
    with forum.client("alice") as client:
        client.submit(
            [{"type": "pdq", "value": scoped, "labels": [PUB]}],
            alice.signing_key,
            group="cell",
            tlp="red",
        )
        client.submit(
            [{"type": "pdq", "value": tagged, "labels": [PUB, "incident:flood-2"]}],
            alice.signing_key,
        )

    def fetched(member: str) -> dict[tuple[str, str], ForumSignalMetadata | None]:
        collab = ForumCollabConfig(
            name="forum",
            api="shared_signal_forum",
            profile=str(forum.members[member].bundle_path),
            db=str(tmp_path / f"{member}.db"),
        )
        state: dict[tuple[str, str], ForumSignalMetadata | None] = {}
        for delta in ForumSignalExchangeAPI.for_collab(collab).fetch_iter(
            _DEFAULT_SIGNAL_TYPES, None
        ):
            state.update(delta.updates)
        return state

    bob = fetched("bob")
    meta = bob[("pdq", scoped)]
    assert meta is not None and (meta.scopes, meta.tlp) == (("cell",), ("TLP:RED",))
    meta = bob[("pdq", tagged)]
    assert meta is not None and meta.incidents == ("incident:flood-2",)
    assert meta.scopes == () and meta.tlp == ("TLP:GREEN",)
    assert ("pdq", scoped) not in fetched("carol")  # outside the group: redacted for it

    with LocalStore(tmp_path / "bob.db") as store:
        stix, misp = io.StringIO(), io.StringIO()
        export(store, stix, "stix")
        export(store, misp, "misp")
    indicators = {
        o["pattern"]: o for o in json.loads(stix.getvalue())["objects"] if o["type"] == "indicator"
    }
    red = indicators[f"[file:hashes.PDQ = '{scoped}']"]
    assert (red["x_forum_scopes"], red["x_forum_tlp"]) == (["cell"], ["TLP:RED"])
    assert indicators[f"[file:hashes.PDQ = '{tagged}']"]["x_forum_incidents"] == [
        "incident:flood-2"
    ]
    attributes = {a["value"]: a for a in json.loads(misp.getvalue())["Event"]["Attribute"]}
    assert "tlp:red" in {t["name"] for t in attributes[scoped]["Tag"]}
    assert 'shared-signal-forum:incident="flood-2"' in {
        t["name"] for t in attributes[tagged]["Tag"]
    }


def test_vpdq_is_fetched_under_the_name_of_pytx_vpdq_extension(tmp_path: Path) -> None:
    """pytx's vPDQ extension (``threatexchange.extensions.vpdq.manifest``; it imports Meta's
    ``vpdq`` binding) calls its type ``vpdq`` and stores python-threatexchange's vPDQ JSON,
    which is the forum's normal form: the value arrives unchanged and pytx reads it back."""
    try:
        from threatexchange.extensions.vpdq.vpdq import VPDQSignal

        vpdq_type: type = VPDQSignal
    except ImportError:  # no binding here: a stand-in with the extension's name
        VPDQSignal = None
        vpdq_type = type("VPDQSignal", (), {"get_name": staticmethod(lambda: "vpdq")})
    frames = [f"{pdq(40 + t)},{90 + t},{float(t):.3}" for t in range(5)]
    value = "[" + ", ".join(f'"{f}"' for f in frames) + "]"
    with local_forum(tmp_path / "forum") as forum:
        with forum.client("alice") as client:
            client.submit(
                [{"type": "vpdq", "value": value, "labels": [PUB]}],
                forum.members["alice"].signing_key,
            )
        collab = ForumCollabConfig(
            name="forum",
            api="shared_signal_forum",
            profile=str(forum.members["bob"].bundle_path),
            db=str(tmp_path / "copy.db"),
        )
        api = ForumSignalExchangeAPI.for_collab(collab)
        state: dict[tuple[str, str], ForumSignalMetadata] = {}
        for delta in api.fetch_iter([vpdq_type], None):
            ForumSignalExchangeAPI.naive_fetch_merge(state, delta.updates)
    assert list(state) == [("vpdq", value)]
    assert state[("vpdq", value)].labels == (PUB,)
    if VPDQSignal is not None:
        assert VPDQSignal.validate_signal_str(value) == value
        assert VPDQSignal.compare_hash(value, value).match
