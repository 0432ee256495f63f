"""A corpus of tricky values with the exact output each normalisation version must give.

The rules are pinned in our own code, so these outputs are the same on every Python version;
CI runs one interpreter, and the values that differ between Python versions (IPv4-mapped IPv6,
``ipaddress``/``urlsplit`` edge cases) are spelled out here so a change shows up as a diff.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import idna
import pytest

from forum_client.errors import InvalidInputError
from forum_client.signals import normalize
from forum_client.signals.versions import CURRENT, V1, V2, parse_version

# (type, input, version 1 output, version 2 output); None = rejected.
CORPUS: list[tuple[str, str, str | None, str | None]] = [
    # Domains: IDNA 2003 vs UTS #46 / IDNA 2008.
    ("domain", "straße.de", "strasse.de", "xn--strae-oqa.de"),
    ("domain", "xn--strae-oqa.de", None, "xn--strae-oqa.de"),
    ("domain", "STRASSE.de", "strasse.de", "strasse.de"),
    ("domain", "Bücher.example.", "xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("domain", "xn--bcher-kva.example", "xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("domain", "ΚΑΦΕΣ.gr", "xn--mxain2bn.gr", "xn--mxain2bn.gr"),  # Σ lowercases to σ
    ("domain", "καφές.gr", "xn--ixah0a1bn.gr", "xn--ixah0a8as.gr"),  # final ς kept in IDNA 2008
    ("domain", "ﬁsh.example", "fish.example", "fish.example"),
    ("domain", "例え。テスト", "xn--r8jz45g.xn--zckzah", "xn--r8jz45g.xn--zckzah"),
    ("domain", "ｅｘａｍｐｌｅ．com", "example.com", "example.com"),
    ("domain", "xn--ls8h.la", "xn--ls8h.la", None),  # an emoji label: IDNA 2003 only
    ("domain", "xn--a.example", None, None),  # not punycode
    ("domain", "xn--STRAE-OQA.de", None, "xn--strae-oqa.de"),
    ("domain", "ab--c.example", "ab--c.example", "ab--c.example"),
    ("domain", "-bad.example", None, None),
    ("domain", "localhost", None, None),
    ("domain", "192.0.2.1", None, None),
    ("domain", "example.0x10", None, None),
    ("domain", "a..example", None, None),
    ("domain", "*.example.com", None, None),
    ("domain", "under_score.example", None, None),
    # Unicode 15.0 letters (Nag Mundari): version 2 refuses them on every Python, not only on
    # 3.11; version 1 (IDNA 2003 on Unicode 3.2 tables, which Python never changes) took them.
    ("domain", "\U0001e4d0\U0001e4d1.example", "xn--oh5hc.example", None),
    ("domain", "xn--oh5hc.example", "xn--oh5hc.example", None),
    ("url", "https://\U0001e4d0\U0001e4d1.example/", "https://xn--oh5hc.example/", None),
    # URLs: hosts as above, IPs pinned, percent-encoding, paths.
    ("url", "https://straße.de/x", "https://strasse.de/x", "https://xn--strae-oqa.de/x"),
    ("url", "https://xn--strae-oqa.de/x", None, "https://xn--strae-oqa.de/x"),
    ("url", "http://[::ffff:192.0.2.1]/", "http://[::ffff:c000:201]/", "http://[::ffff:c000:201]/"),
    (
        "url",
        "http://[::FFFF:C000:0201]:80/",
        "http://[::ffff:c000:201]/",
        "http://[::ffff:c000:201]/",
    ),
    (
        "url",
        "http://[2001:DB8:0:0:1:0:0:1]/",
        "http://[2001:db8::1:0:0:1]/",
        "http://[2001:db8::1:0:0:1]/",
    ),
    (
        "url",
        "http://[2001:db8:0:1:1:1:1:1]/",
        "http://[2001:db8:0:1:1:1:1:1]/",
        "http://[2001:db8:0:1:1:1:1:1]/",
    ),
    ("url", "http://[::]/", "http://[::]/", "http://[::]/"),
    ("url", "http://[::1]:8080", "http://[::1]:8080/", "http://[::1]:8080/"),
    ("url", "http://[fe80::1%25eth0]/", None, None),
    ("url", "http://127.0.0.1/", "http://127.0.0.1/", "http://127.0.0.1/"),
    ("url", "http://127.1/", None, None),
    ("url", "http://127.000.0.1/", None, None),
    ("url", "http://0x7f.0.0.1/", None, None),
    (
        "url",
        "HTTPS://Example.COM:443/a/./b/../c?q=1#f",
        "https://example.com/a/c?q=1",
        "https://example.com/a/c?q=1",
    ),
    # "%2F.." is one segment, not a dot segment: only an unescaped "/" separates segments.
    (
        "url",
        "https://example.com/%7euser/%2f%2e%2E/",
        "https://example.com/~user/%2F../",
        "https://example.com/~user/%2F../",
    ),
    ("url", "https://example.com/a/%2e%2E/b", "https://example.com/b", "https://example.com/b"),
    (
        "url",
        "https://example.com/a b?c d#e f",
        "https://example.com/a%20b?c%20d",
        "https://example.com/a%20b?c%20d",
    ),
    (
        "url",
        "https://example.com/café",
        "https://example.com/caf%C3%A9",
        "https://example.com/caf%C3%A9",
    ),
    ("url", "https://example.com/?", "https://example.com/", "https://example.com/"),
    ("url", "https://example.com?x=1", "https://example.com/?x=1", "https://example.com/?x=1"),
    ("url", "https://example.com#a?b", "https://example.com/", "https://example.com/"),
    (
        "url",
        "https://example.com\\a\\b?x=\\",
        "https://example.com/a/b?x=%5C",
        "https://example.com/a/b?x=%5C",
    ),
    ("url", "https://example.com/100%", None, None),
    ("url", "https://user:pw@example.com/", None, None),
    ("url", "example.com/a", None, None),
    ("url", "ftp://example.com/", None, None),
    ("url", "https://example.com:0/", None, None),
    ("url", "https://example.com:/", "https://example.com/", "https://example.com/"),
    (
        "url",
        "https://under_score.example/",
        "https://under_score.example/",
        "https://under_score.example/",
    ),
    ("url", "https://localhost:8443/x", "https://localhost:8443/x", "https://localhost:8443/x"),
    ("url", "http://a[b]/", None, None),
    # Hashes: one rule in every version.
    (
        "md5",
        " D41D8CD98F00B204E9800998ECF8427E\n",
        "d41d8cd98f00b204e9800998ecf8427e",
        "d41d8cd98f00b204e9800998ecf8427e",
    ),
    ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd8070", None, None),
    ("pdq", "F" * 64, "f" * 64, "f" * 64),
]


@pytest.mark.parametrize(("kind", "value", "v1", "v2"), CORPUS, ids=[c[1][:40] for c in CORPUS])
def test_corpus(kind: str, value: str, v1: str | None, v2: str | None) -> None:
    for version, expected in ((V1, v1), (V2, v2)):
        if expected is None:
            with pytest.raises(InvalidInputError):
                normalize(kind, value, version)
        else:
            assert normalize(kind, value, version) == expected
            assert normalize(kind, expected, version) == expected  # idempotent


def test_current_is_v2_and_header_zero_is_v1() -> None:
    assert CURRENT == V2
    assert normalize("domain", "straße.de") == "xn--strae-oqa.de"
    assert parse_version(0) == V1
    with pytest.raises(InvalidInputError, match="unknown normalisation version 7"):
        parse_version(7)


@pytest.mark.parametrize(
    "name", ["straße.de", "bücher.example", "καφές.gr", "例え.テスト", "ΚΑΦΕΣ.gr", "faß.de"]
)
def test_v2_domains_agree_with_the_idna_package(name: str) -> None:
    expected = idna.encode(name, uts46=True, transitional=False).decode("ascii")
    assert normalize("domain", name) == expected
    assert normalize("domain", idna.decode(expected)) == expected


class _NewerUnicodedata:
    """``unicodedata`` as Python 3.12 (Unicode 15.0) answers for the Nag Mundari letters
    U+1E4D0..U+1E4EB, which Python 3.11 (Unicode 14.0) does not know."""

    def __getattr__(self, name: str) -> Any:
        return getattr(unicodedata, name)

    @staticmethod
    def _new(char: str) -> bool:
        return 0x1E4D0 <= ord(char) <= 0x1E4EB

    def bidirectional(self, char: str) -> str:
        return "L" if self._new(char) else unicodedata.bidirectional(char)

    def category(self, char: str) -> str:
        return "Lo" if self._new(char) else unicodedata.category(char)

    def name(self, char: str, default: Any = None) -> Any:
        return "NAG MUNDARI LETTER" if self._new(char) else unicodedata.name(char, default)


def test_v2_does_not_follow_the_running_pythons_unicode_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The idna package checks bidi classes, combining marks and NFC with the running Python's
    ``unicodedata``: on Python 3.12 a label of Unicode 15.0 letters passed where 3.11 refused
    it.  The forum pins Unicode 14.0, so a newer database changes nothing."""
    import idna.core

    from forum_client.signals import domain

    monkeypatch.setattr(idna.core, "unicodedata", _NewerUnicodedata())
    domain._idna2008_to_ascii.cache_clear()
    domain._check_a_label.cache_clear()
    for kind, value in [
        ("domain", "\U0001e4d0\U0001e4d1.example"),
        ("domain", "xn--oh5hc.example"),
        ("url", "https://\U0001e4d0\U0001e4d1.example/"),
    ]:
        with pytest.raises(InvalidInputError, match=r"U\+1E4D0 is not assigned in Unicode 14\.0"):
            normalize(kind, value)
    assert normalize("domain", "straße.de") == "xn--strae-oqa.de"  # older letters unchanged


@pytest.mark.skipif(unicodedata.unidata_version != "14.0.0", reason="needs Python 3.11's tables")
def test_the_pinned_unicode_table_is_unicode_14() -> None:
    from forum_client.signals._unicode14 import ASSIGNED_RANGES
    from scripts.gen_unicode14 import ranges

    parsed = [
        tuple(int(x, 16) for x in item.split("-")) for item in "".join(ASSIGNED_RANGES).split()
    ]
    assert parsed == ranges()
