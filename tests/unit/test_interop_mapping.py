"""Issue 15: how forum types are named in STIX, MISP and python-threatexchange, including a
type added later (``vpdq`` from issue 14 when it lands): carried, never dropped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forum_client.interop.mapping import label_to_tag, misp_type, tag_to_label, type_from_tags
from forum_client.interop.stix import pattern_for, signals_of_pattern


@pytest.mark.parametrize(
    ("type_", "value", "pattern"),
    [
        ("md5", "ab" * 16, f"[file:hashes.MD5 = '{'ab' * 16}']"),
        ("sha1", "ab" * 20, f"[file:hashes.'SHA-1' = '{'ab' * 20}']"),
        ("sha256", "ab" * 32, f"[file:hashes.'SHA-256' = '{'ab' * 32}']"),
        ("pdq", "cd" * 32, f"[file:hashes.PDQ = '{'cd' * 32}']"),
        ("url", "https://x.example/a'b\\c", "[url:value = 'https://x.example/a\\'b\\\\c']"),
        ("domain", "x.example", "[domain-name:value = 'x.example']"),
        ("vpdq", '["00ff,90,0.0"]', """[file:hashes.VPDQ = '["00ff,90,0.0"]']"""),
        ("future_type", "x", "[file:hashes.FUTURE_TYPE = 'x']"),
    ],
)
def test_stix_patterns_round_trip(type_: str, value: str, pattern: str) -> None:
    assert pattern_for(type_, value) == pattern
    if type_ != "future_type":
        assert signals_of_pattern(pattern) == [(type_, value)]
    else:  # a type this SDK does not know: the importer says so
        assert signals_of_pattern(pattern) == "unknown hash algorithm 'FUTURE_TYPE'"


def test_misp_types_and_tags() -> None:
    assert misp_type("md5") == ("md5", "Payload delivery", None)
    assert misp_type("domain") == ("domain", "Network activity", None)
    assert misp_type("pdq") == ("text", "Payload delivery", 'shared-signal-forum:signal-type="pdq"')
    assert misp_type("vpdq")[2] == 'shared-signal-forum:signal-type="vpdq"'
    assert type_from_tags(["tlp:amber", 'shared-signal-forum:signal-type="vpdq"']) == "vpdq"
    tag = label_to_tag("behaviour:terrorist-publication")
    assert tag == 'shared-signal-forum:behaviour="terrorist-publication"'
    assert tag_to_label(tag) == "behaviour:terrorist-publication"
    assert tag_to_label('misp-galaxy:threat-actor="x"') is None


def test_pytx_keys() -> None:
    pytest.importorskip("threatexchange")
    from threatexchange.signal_type.url_md5 import UrlMD5Signal

    from forum_client.interop.pytx_exchange import pytx_keys

    assert pytx_keys("md5", "ab" * 16, ["video"]) == [("video_md5", "ab" * 16)]
    assert pytx_keys("md5", "ab" * 16, ["image"]) == [("file_md5", "ab" * 16)]
    assert pytx_keys("sha256", "ab" * 32, ["video", "other"]) == [
        ("video_sha256", "ab" * 32),
        ("file_sha256", "ab" * 32),
    ]
    assert pytx_keys("sha1", "ab" * 20, []) == [("file_sha1", "ab" * 20)]
    url = "https://example.com/a"
    assert pytx_keys("url", url, []) == [
        ("forum_url", url),
        ("url", url),
        ("url_md5", UrlMD5Signal.hash_from_str(url)),
    ]
    assert pytx_keys("vpdq", "x", ["video"]) == [("vpdq", "x")]  # pytx's vpdq extension


def test_pytx_signal_types_normalise_queries_as_the_forum_does() -> None:
    pytest.importorskip("threatexchange")
    from forum_client.interop.pytx_signals import ForumDomainSignal, ForumURLSignal

    assert ForumURLSignal.matches_str("https://xn--strae-oqa.de/a", "HTTPS://Straße.DE:443/./a#x")[
        0
    ]
    assert not ForumURLSignal.matches_str("https://example.com/a", "https://example.com/b")[0]
    assert ForumDomainSignal.matches_str("bad.example", "http://www.BAD.example./x")[0]
    assert not ForumDomainSignal.matches_str("bad.example", "notbad.example")[0]
    assert ForumURLSignal.validate_signal_str("HTTP://A.example") == "http://a.example/"
    with pytest.raises(ValueError, match="scheme"):
        ForumURLSignal.validate_signal_str("ftp://x")


def test_values_agree_with_python_threatexchange() -> None:
    """Value by value against pytx 1.2.17's own parsers: MD5 and SHA-256 agree; PDQ agrees on
    the lower case the forum writes (pytx refuses upper case, the forum lowercases it); pytx
    compares URLs raw, so the forum's canonical spelling is what the exchange gives it."""
    pytest.importorskip("threatexchange")
    from threatexchange.signal_type.md5 import VideoMD5Signal
    from threatexchange.signal_type.pdq.signal import PdqSignal
    from threatexchange.signal_type.sha256 import VideoSHA256Signal

    from forum_client.signals import normalize

    for raw in ("D41D8CD98F00B204E9800998ECF8427E", " d41d8cd98f00b204e9800998ecf8427e\n"):
        assert VideoMD5Signal.validate_signal_str(raw) == normalize("md5", raw)
    sha = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
    assert VideoSHA256Signal.validate_signal_str(sha) == normalize("sha256", sha)
    pdq = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
    assert PdqSignal.validate_signal_str(pdq) == normalize("pdq", pdq.upper())
    with pytest.raises(ValueError):
        PdqSignal.validate_signal_str(pdq.upper())


def test_collab_paths_are_kept_absolute(tmp_path: Path) -> None:
    """``threatexchange config collab edit ... --profile acme.bundle.json --db acme.db`` (as the
    quickstart writes it) keeps absolute paths, so a later ``threatexchange fetch`` from another
    directory (a cron job) finds the same bundle and copy."""
    pytest.importorskip("threatexchange")
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {**os.environ, "HOME": str(home)}
    for args in (
        ["config", "extensions", "add", "forum_client.interop.pytx_exchange"],
        ["config", "collab", "edit", "shared_signal_forum", "acme-forum", "--create",
         "--profile", "acme.bundle.json", "--db", "acme.db", "--key", "~/acme.key"],
    ):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "threatexchange", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    saved = json.loads((home / ".threatexchange/collab_configs/acme-forum.json").read_text())
    assert saved["profile"] == str(work / "acme.bundle.json")
    assert saved["db"] == str(work / "acme.db")
    assert saved["key"] == str(home / "acme.key")
