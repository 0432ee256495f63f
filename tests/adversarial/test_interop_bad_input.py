"""Issue 15, bad input to the STIX/MISP importers and the bulk readers: a clear error naming
the object, nothing submitted for an invalid object, memory bounded on a 1 GB one-line file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from forum_client.store import LocalStore
from forum_server.testing import LocalForum, local_forum

pytestmark = [pytest.mark.adversarial, pytest.mark.integration]

PUB = "behaviour:terrorist-publication"
GOOD_MD5 = "0123456789abcdef0123456789abcdef"
GOOD_SHA256 = "ab" * 32
BENIGN_COMMENT = '{"forum_type":"md5","benign":true}'  # as forum-client export writes it


@pytest.fixture(scope="module")
def forum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalForum]:
    with local_forum(tmp_path_factory.mktemp("bad-interop")) as f:
        yield f


# forum-client's main, printing its own peak RSS (KiB) on stderr at exit.
# The peak of this process image: VmHWM starts afresh at exec, while ru_maxrss keeps the
# high-water mark of the forked parent (a pytest-xdist worker may be 400 MB by then).
_MAIN_WITH_PEAK_RSS = (
    "import atexit, sys\n"
    "def peak():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            return int(line.split()[1])\n"
    "atexit.register(lambda: print('PEAK_RSS_KIB', peak(), file=sys.stderr))\n"
    "from forum_client.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def submit(forum: LocalForum, path: Path, fmt: str) -> subprocess.CompletedProcess[str]:
    alice = forum.members["alice"]
    return subprocess.run(
        [
            sys.executable,
            "-c",
            _MAIN_WITH_PEAK_RSS,
            "--profile",
            str(alice.bundle_path),
            "submit",
            "--key",
            str(alice.key_path),
            "--input",
            str(path),
            "--format",
            fmt,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def signals(forum: LocalForum, db: Path) -> set[tuple[str, str]]:
    with forum.client("carol") as client, LocalStore(db) as store:
        client.sync(store)
        return {(r.signal.type, r.signal.value) for r in store.scan()}


def indicator(ident: str, pattern: str, **extra: object) -> dict[str, object]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{ident}",
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
        "labels": [PUB],
        **extra,
    }


def test_stix_bundle_with_bad_objects(forum: LocalForum, tmp_path: Path) -> None:
    bundle = {
        "type": "bundle",
        "id": "bundle--00000000-0000-4000-8000-000000000000",
        "objects": [
            indicator("good", f"[file:hashes.MD5 = '{GOOD_MD5.upper()}']"),
            indicator("malformed", "[file:hashes.MD5 = 'abc'"),
            indicator("sha512", f"[file:hashes.'SHA-512' = '{'a' * 128}']"),
            indicator("and", f"[file:hashes.MD5 = '{GOOD_MD5}' AND file:name = 'x.exe']"),
            indicator("ipv4", "[ipv4-addr:value = '192.0.2.1']"),
            indicator(
                "half-bad", f"[file:hashes.'SHA-256' = '{GOOD_SHA256}' OR url:value = 'ftp://x']"
            ),
            indicator("gt", "[file:size > 10]"),
            indicator("revoked", f"[file:hashes.'SHA-256' = '{'cd' * 32}']", revoked=True),
            indicator("strange-label", "[domain-name:value = 'bad.example']", labels=["evil"]),
            # an exported forum's benign list is not submitted as terrorist content
            indicator("benign", f"[file:hashes.MD5 = '{'ee' * 16}']", indicator_types=["benign"]),
            {"type": "malware", "id": "malware--1", "name": "x"},
            "not an object",
        ],
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    before = signals(forum, tmp_path / "before.db")
    done = submit(forum, path, "stix")
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "skipped indicator--malformed: malformed pattern" in err
    assert "skipped indicator--sha512: unknown hash algorithm 'SHA-512'" in err
    assert "skipped indicator--and: pattern with AND cannot be represented" in err
    assert "skipped indicator--ipv4: ipv4-addr:value has no forum signal type" in err
    assert "skipped indicator--half-bad: invalid url value" in err
    assert "skipped indicator--gt: comparison file:size > 10 cannot be represented" in err
    assert "skipped indicator--revoked: revoked" in err
    assert "skipped malware--1: 'malware' is not an indicator" in err
    assert "skipped objects[11]: not a JSON object" in err
    assert "skipped indicator--benign: benign (indicator_types 'benign')" in err
    assert "note indicator--strange-label: label 'evil' is not a forum label" in err
    added = signals(forum, tmp_path / "after.db") - before
    # the half-bad object's valid SHA-256 is not submitted either: all or nothing per object
    assert added == {("md5", GOOD_MD5), ("domain", "bad.example")}


def test_misp_event_with_unknown_types(forum: LocalForum, tmp_path: Path) -> None:
    event = {
        "Event": {
            "info": "test",
            "Tag": [{"name": 'shared-signal-forum:behaviour="terrorist-publication"'}],
            "Attribute": [
                {"uuid": "a-good", "type": "sha256", "value": "ef" * 32},
                {"uuid": "a-ip", "type": "ip-dst", "value": "192.0.2.1"},
                {"uuid": "a-mail", "type": "email-src", "value": "x@example.com"},
                {"uuid": "a-bad", "type": "md5", "value": "xyz"},
                {"uuid": "a-text", "type": "text", "value": "just text"},
                {"uuid": "a-deleted", "type": "md5", "value": "11" * 16, "deleted": True},
                {"uuid": "a-benign", "type": "md5", "value": "2" * 32, "comment": BENIGN_COMMENT},
            ],
            "Object": [
                {"Attribute": [{"uuid": "o-url", "type": "url", "value": "HTTP://Obj.example/x"}]}
            ],
        }
    }
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    before = signals(forum, tmp_path / "before.db")
    done = submit(forum, path, "misp")
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert (
        "skipped Event[0].Attribute[1] (a-ip): MISP type 'ip-dst' has no forum signal type" in err
    )
    assert "skipped Event[0].Attribute[2] (a-mail): MISP type 'email-src'" in err
    assert "skipped Event[0].Attribute[3] (a-bad): invalid md5 value: md5 contains non-hex" in err
    assert (
        "skipped Event[0].Attribute[4] (a-text): MISP type 'text' has no forum signal type" in err
    )
    assert "skipped Event[0].Attribute[5] (a-deleted): deleted" in err
    assert "skipped Event[0].Attribute[6] (a-benign): benign (the exporting forum's benign" in err
    added = signals(forum, tmp_path / "after.db") - before
    assert added == {("sha256", "ef" * 32), ("url", "http://obj.example/x")}


def test_stix_import_without_the_stix_extra_is_a_configuration_error(
    forum: LocalForum, tmp_path: Path
) -> None:
    """Without stix2-patterns, ``submit --format stix`` says which extra to install (exit 3),
    not a traceback."""
    path = tmp_path / "bundle.json"
    bundle = {"type": "bundle", "objects": [indicator("x", "[url:value = 'a']")]}
    path.write_text(json.dumps(bundle))
    alice = forum.members["alice"]
    hide = (
        "import sys\n"
        "for name in ('stix2patterns', 'stix2patterns.pattern', 'stix2patterns.exceptions'):\n"
        "    sys.modules[name] = None\n"
        "from forum_client.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", hide, "--profile", str(alice.bundle_path), "submit", "--key",
         str(alice.key_path), "--input", str(path), "--format", "stix"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "needs the stix extra" in done.stderr and "Traceback" not in done.stderr


def test_deeply_nested_input_is_an_error_naming_it(forum: LocalForum, tmp_path: Path) -> None:
    """JSON nested 100,000 deep (json's decoder recurses per level) and a STIX pattern nested
    as deep: a clear error or a skipped object, never a RecursionError traceback."""
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "deep.json"
    path.write_text(deep)
    for fmt, what in (("stix", "STIX 2.1 bundle"), ("misp", "MISP event")):
        done = submit(forum, path, fmt)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert f"not a {what} (JSON nested too deeply)" in done.stderr
    lines = tmp_path / "deep.jsonl"
    lines.write_text(f'{{"type": "md5", "value": "{GOOD_MD5}"}}\n{deep}\n')
    done = submit(forum, lines, "jsonl")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "deep.jsonl:2: not JSON: nested too deeply" in done.stderr
    pattern = "(" * 50_000 + f"[file:hashes.MD5 = '{'f' * 32}']" + ")" * 50_000
    bundle = {"type": "bundle", "objects": [indicator("deep", pattern)]}
    path.write_text(json.dumps(bundle))
    before = signals(forum, tmp_path / "before.db")
    done = submit(forum, path, "stix")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "skipped indicator--deep: malformed pattern: nested too deeply" in done.stderr
    assert signals(forum, tmp_path / "after.db") == before


def test_not_a_bundle_and_not_an_event(forum: LocalForum, tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"type": "indicator"}')
    done = submit(forum, path, "stix")
    assert done.returncode != 0 and "not a STIX bundle" in done.stderr
    path.write_text("[1, 2]")
    done = submit(forum, path, "misp")
    assert done.returncode != 0 and "event 0 is not a MISP event" in done.stderr
    path.write_text("{not json")
    done = submit(forum, path, "misp")
    assert done.returncode != 0 and "not a MISP event (not JSON" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("stix", "a STIX 2.1 bundle larger than 268,435,456 bytes is refused"),
        ("misp", "a MISP event larger than 268,435,456 bytes is refused"),
        ("jsonl", "huge.json:1: line longer than 1,048,576 characters"),
        ("csv", "huge.json:1: line longer than 1,048,576 characters"),
    ],
)
def test_a_1gb_file_with_one_line_is_refused_in_bounded_memory(
    forum: LocalForum, tmp_path: Path, fmt: str, message: str
) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as f:  # 1 GiB with no newline (sparse: takes no disk)
        f.truncate(1 << 30)
    done = submit(forum, path, fmt)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    peak_kib = int(done.stderr.rsplit("PEAK_RSS_KIB", 1)[1].split()[0])
    assert peak_kib < 300 * 1024, peak_kib  # the file is 1 GiB
