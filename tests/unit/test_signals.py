"""Signal types: table-driven good and bad values, idempotence and fuzzing, the registry."""

from __future__ import annotations

import dataclasses
import doctest

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import forum_client.signals as signals
from forum_client.errors import InvalidInputError
from forum_client.signals import (
    SIGNAL_TYPES,
    ContentType,
    Signal,
    SignalType,
    get_signal_type,
    normalize,
    register,
)
from forum_client.signals.pdq import parse_pdq_quality, pdq_to_bytes

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
LONGEST_DOMAIN = ".".join(["a" * 63] * 3 + ["a" * 61])  # 253 characters
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
VPDQ = f'["{PDQ},100,0.0", "{PDQ},87,1.0"]'

GOOD: list[tuple[str, str, str]] = [
    # hex digests
    ("md5", MD5, MD5),
    ("md5", MD5.upper(), MD5),
    ("md5", f"  {MD5}\n", MD5),
    ("md5", "\t" + MD5.upper() + "\r\n", MD5),
    ("sha1", SHA1.upper(), SHA1),
    ("sha1", f" {SHA1} ", SHA1),
    ("sha256", SHA256.upper(), SHA256),
    ("sha256", "0" * 64, "0" * 64),
    ("pdq", PDQ.upper(), PDQ),
    ("pdq", " " + PDQ + " ", PDQ),
    ("pdq", "0" * 64, "0" * 64),  # all-zero is accepted (blank image); see pdq docstring
    # vpdq: python-threatexchange's JSON array, or the reference tool's lines
    ("vpdq", VPDQ, VPDQ),
    ("vpdq", f'[ "{PDQ.upper()}, 100, 0", "{PDQ},87,1.00"]', VPDQ),
    ("vpdq", f"0,{PDQ},100,0\n\n25,{PDQ},87,1\n", VPDQ),
    (
        "vpdq",  # python-threatexchange's earlier form, keyed by frame number
        f'{{"25": {{"quality": 87, "hash": "{PDQ}", "timestamp": 1.0}}, '
        f'"0": {{"quality": 100, "hash": "{PDQ}", "timestamp": 0}}}}',
        VPDQ,
    ),
    ("vpdq", f"{PDQ},100,0.0\r\n{PDQ},87,1.0", VPDQ),
    ("vpdq", f'["{PDQ},50,1234.5"]', f'["{PDQ},50,1.23e+03"]'),  # pytx keeps 3 digits
    # domains
    ("domain", "example.com", "example.com"),
    ("domain", " WWW.Example.COM. ", "www.example.com"),
    ("domain", "Bücher.example", "xn--bcher-kva.example"),
    ("domain", "xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("domain", "XN--BCHER-KVA.example", "xn--bcher-kva.example"),
    ("domain", "ｅｘａｍｐｌｅ。ｃｏｍ", "example.com"),  # fullwidth letters and IDNA dot
    ("domain", "例え.テスト", "xn--r8jz45g.xn--zckzah"),
    ("domain", "faß.de", "xn--fa-hia.de"),  # IDNA 2008 keeps ß (version 1 mapped it to ss)
    ("domain", "a-b.c-d.example", "a-b.c-d.example"),
    ("domain", "r3---sn-abc.googlevideo.com", "r3---sn-abc.googlevideo.com"),
    ("domain", "123.example", "123.example"),
    ("domain", "example.xn--p1ai", "example.xn--p1ai"),
    ("domain", "a" * 63 + ".com", "a" * 63 + ".com"),
    ("domain", LONGEST_DOMAIN, LONGEST_DOMAIN),
    # urls
    ("url", "HTTP://Example.COM:80/a/./b/../c?x=1#frag", "http://example.com/a/c?x=1"),
    ("url", "http://example.com", "http://example.com/"),
    ("url", "https://example.com:443", "https://example.com/"),
    ("url", "https://example.com:80/", "https://example.com:80/"),
    ("url", "http://example.com:443/", "http://example.com:443/"),
    ("url", "http://example.com:08080/", "http://example.com:8080/"),
    ("url", "http://example.com:/", "http://example.com/"),
    ("url", " https://example.com/x \n", "https://example.com/x"),
    ("url", "https://example.com/%7euser", "https://example.com/~user"),
    ("url", "https://example.com/%7e", "https://example.com/~"),
    ("url", "https://example.com/a%2fb", "https://example.com/a%2Fb"),
    ("url", "https://example.com/%41%62%2d%5F", "https://example.com/Ab-_"),
    ("url", "https://example.com/%e2%82%ac", "https://example.com/%E2%82%AC"),
    ("url", "https://example.com/%25", "https://example.com/%25"),
    ("url", "https://example.com/café", "https://example.com/caf%C3%A9"),
    ("url", "https://example.com/a b", "https://example.com/a%20b"),
    ("url", "https://example.com/?q=ü&x=[1]", "https://example.com/?q=%C3%BC&x=%5B1%5D"),
    ("url", "https://example.com/?b=2&a=1&a=0", "https://example.com/?b=2&a=1&a=0"),
    ("url", "https://example.com/?q=a+b", "https://example.com/?q=a+b"),
    ("url", "https://example.com/?q=%7e%2b", "https://example.com/?q=~%2B"),
    ("url", "https://example.com/?a?b/c", "https://example.com/?a?b/c"),
    ("url", "https://example.com/?", "https://example.com/"),
    ("url", "https://example.com/#", "https://example.com/"),
    ("url", "https://example.com/x#a?b", "https://example.com/x"),
    ("url", "https://example.com/a/b/..", "https://example.com/a/"),
    ("url", "https://example.com/a/.", "https://example.com/a/"),
    ("url", "https://example.com/../../x", "https://example.com/x"),
    ("url", "https://example.com/a/%2E%2E/b", "https://example.com/b"),
    ("url", "https://example.com/a/%2e/b", "https://example.com/a/b"),
    ("url", "https://example.com/a/..%2Fb", "https://example.com/a/..%2Fb"),
    ("url", "https://example.com//a//b", "https://example.com//a//b"),
    ("url", "https://example.com/a/b/c/./../../g", "https://example.com/a/g"),
    ("url", "https://example.com/a/.../b", "https://example.com/a/.../b"),
    ("url", "http://Bücher.example/", "http://xn--bcher-kva.example/"),
    ("url", "https://例え.テスト/パス", "https://xn--r8jz45g.xn--zckzah/%E3%83%91%E3%82%B9"),
    ("url", "http://example.com./", "http://example.com/"),
    ("url", "http://localhost:8000/", "http://localhost:8000/"),
    ("url", "http://my_site.example/", "http://my_site.example/"),
    ("url", "http://127.0.0.1/", "http://127.0.0.1/"),
    ("url", "http://[::1]:8080/x", "http://[::1]:8080/x"),
    ("url", "http://[2001:DB8:0:0::1]/", "http://[2001:db8::1]/"),
    ("url", "http://[::FFFF:1.2.3.4]/", "http://[::ffff:102:304]/"),
    ("url", "http:\\\\example.com\\a\\b?c\\d", "http://example.com/a/b?c%5Cd"),
    ("url", "http://example.com\\@evil.example/", "http://example.com/@evil.example/"),
    ("url", "https://example.com/a;b=c,d:e@f!$&'()*+", "https://example.com/a;b=c,d:e@f!$&'()*+"),
    ("url", 'https://example.com/"<>^`{|}', "https://example.com/%22%3C%3E%5E%60%7B%7C%7D"),
]

BAD: list[tuple[str, object, str]] = [
    # vpdq: every error names the frame
    ("vpdq", "", "at least one frame"),
    ("vpdq", "[]", "at least one frame"),
    ("vpdq", "[1, 2]", "vpdq frame 1: must be a string"),
    ("vpdq", '{"0": 1}', "vpdq frame 1: must be an object with hash, quality and timestamp"),
    ("vpdq", '{"x": {"quality": 1, "hash": "", "timestamp": 0}}', "key must be a frame number"),
    ("vpdq", "[not json", "does not parse"),
    ("vpdq", f'["{PDQ},100,0", "{PDQ[:-1]},100,1"]', "vpdq frame 2: PDQ hash must be 64 hex"),
    ("vpdq", f'["{PDQ},101,0"]', "vpdq frame 1: quality must be an integer from 0 to 100"),
    ("vpdq", f'["{PDQ},-1,0"]', "quality must be an integer"),
    ("vpdq", f'["{PDQ},100,-1"]', "timestamp must be a non-negative number"),
    ("vpdq", f'["{PDQ},100,nan"]', "timestamp must be a non-negative number"),
    ("vpdq", f'["{PDQ},100,1e999"]', "timestamp must be finite"),
    ("vpdq", f'["{PDQ},100"]', "expected 'hex,quality,timestamp'"),
    ("vpdq", f"x,{PDQ},100,0", "frame number must be a non-negative integer"),
    ("vpdq", f"{PDQ},100,0\n{PDQ},100,0,1,2", "vpdq frame 2: expected"),
    ("vpdq", "[" + ", ".join([f'"{PDQ},100,0"'] * 10_001) + "]", "exceeds the limit of 10000"),
    ("vpdq", "x" * 1_280_001, "exceeds 1280000"),
    ("vpdq", 5, "must be a string, got int"),
    ("vpdq", "[" * 50_000 + "]" * 50_000, "vpdq JSON is nested too deeply"),  # no RecursionError
    # hex digests: (type, value, expected words in the reason)
    ("md5", "", "empty md5"),
    ("md5", "   ", "empty md5"),
    ("md5", MD5[:-1], "exactly 32 hex digits, got 31"),
    ("md5", MD5 + "0", "exactly 32 hex digits, got 33"),
    ("md5", SHA1, "exactly 32 hex digits, got 40"),
    ("md5", "g" + MD5[1:], "non-hex character 'g' at position 0"),
    ("md5", MD5[:16] + " " + MD5[16:], "whitespace at position 16"),
    ("md5", MD5[:16] + "\n" + MD5[17:], "whitespace at position 16"),
    ("md5", "0x" + MD5[2:], "non-hex character 'x' at position 1"),
    ("md5", "٣" * 32, "non-hex character"),  # Arabic-Indic digits are not hex
    ("md5", "ａ" * 32, "non-hex character"),  # fullwidth a
    ("md5", 12345, "must be a string"),
    ("md5", b"d41d8cd98f00b204e9800998ecf8427e", "must be a string"),
    ("sha1", MD5, "exactly 40 hex digits, got 32"),
    ("sha1", SHA1[:-1] + "z", "non-hex character 'z' at position 39"),
    ("sha256", SHA256[:-2], "exactly 64 hex digits, got 62"),
    ("sha256", "", "empty sha256"),
    ("pdq", PDQ[:-1], "exactly 64 hex digits, got 63"),
    ("pdq", PDQ + "00", "exactly 64 hex digits, got 66"),
    ("pdq", "-" + PDQ[1:], "non-hex character '-'"),
    ("pdq", None, "must be a string"),
    # domains
    ("domain", "", "empty domain"),
    ("domain", "localhost", "single-label name 'localhost'"),
    ("domain", "com.", "single-label"),
    ("domain", "1.2.3.4", "IP address"),
    ("domain", "::1", "IP address"),
    ("domain", "[2001:db8::1]", "IP address"),
    ("domain", "example.123", "numeric"),
    ("domain", "0x7f.0x1", "numeric"),
    ("domain", "*.example.com", "wildcard"),
    ("domain", "a..example", "empty label"),
    ("domain", ".example.com", "empty label"),
    ("domain", "example.com..", "empty label"),
    ("domain", "-a.example", "must not start or end with '-'"),
    ("domain", "a-.example", "must not start or end with '-'"),
    ("domain", "a_b.example", "invalid character '_'"),
    ("domain", "a b.example", "invalid character ' '"),
    ("domain", "a!.example", "invalid character '!'"),
    ("domain", "⒈.example", "Codepoint U+2488 not allowed"),  # UTS #46 disallows it
    ("domain", "a" * 64 + ".com", "64 characters"),
    ("domain", LONGEST_DOMAIN + "b", "254 characters"),
    ("domain", "x" * 2000, "at most 1024"),
    ("domain", "xn--zz.example", "not valid punycode"),
    ("domain", "xn--abc.example", "not valid punycode"),
    ("domain", "a\u0627.example", "not a valid IDNA 2008 label"),  # mixed-direction label
    ("domain", "a\U000e0001.example", "not a valid IDNA 2008 label"),  # prohibited tag character
    ("domain", "xn--abc-.example", "must not start or end with '-'"),
    ("domain", "https://example.com", "use the 'url' type"),
    ("domain", "example.com:443", "use the 'url' type"),
    ("domain", "exa\u200bmple\u3000.com", "Codepoint U+3000 not allowed"),
    ("domain", 7, "must be a string"),
    # urls
    ("url", "", "empty url"),
    ("url", "example.com/a", "missing scheme"),
    ("url", "example.com:8080/a", "missing scheme"),
    ("url", "//example.com/a", "missing scheme"),
    ("url", "www.example.com", "did you mean 'https://www.example.com'"),
    ("url", "ftp://example.com/", "unsupported scheme 'ftp'"),
    ("url", "javascript:alert(1)", "unsupported scheme 'javascript'"),
    ("url", "file:///etc/passwd", "unsupported scheme 'file'"),
    ("url", "http:example.com", "expected '//' after 'http:'"),
    ("url", "https:/example.com", "expected '//' after 'https:'"),
    ("url", "http://", "missing host"),
    ("url", "http:///path", "missing host"),
    ("url", "http://:80/", "missing host"),
    ("url", "http://user:pw@example.com/", "userinfo"),
    ("url", "http://user@example.com/", "userinfo"),
    ("url", "http://example.com:0/", "invalid port 0"),
    ("url", "http://example.com:65536/", "invalid port 65536"),
    ("url", "http://example.com:123456/", "invalid port"),
    ("url", "http://example.com:8o/", "invalid port"),
    ("url", "http://example.com:-1/", "invalid port"),
    ("url", "http://example.com:٨٠/", "invalid port"),
    ("url", "http://example.com:" + "9" * 5000 + "/", "invalid port"),
    ("url", "http://exa mple.com/", "invalid character ' '"),
    ("url", "http://exa%6Dple.com/", "percent-escapes are not allowed in the host"),
    ("url", "http://a..example/", "empty label"),
    ("url", "http://*.example.com/", "invalid character '*'"),
    ("url", "http://127.1/", "not a dotted-quad"),
    ("url", "http://0x7f.0.0.1/", "not a dotted-quad"),
    ("url", "http://127.000.0.1/", "not a dotted-quad"),
    ("url", "http://256.1.1.1/", "not a dotted-quad"),
    ("url", "http://::1/", "IPv6 addresses must be enclosed in brackets"),
    ("url", "http://[::1/", "unterminated '[' in host"),
    ("url", "http://[::1]x/", "unexpected 'x' after ']'"),
    ("url", "http://[fe80::1%25eth0]/", "zone identifiers"),
    ("url", "http://[v1.abc]/", "IPvFuture"),
    ("url", "http://[1.2.3.4]/", "invalid IPv6 address in brackets"),
    ("url", "http://example.com/%zz", "'%' not followed by two hex digits in the path"),
    ("url", "http://example.com/100%", "'%' not followed by two hex digits"),
    ("url", "http://example.com/?q=%4", "'%' not followed by two hex digits in the query"),
    ("url", "http://example.com/a\tb", "control character U+0009"),
    ("url", "http://example.com/a\nb", "control character U+000A"),
    ("url", "http://example.com/a\x00b", "control character U+0000"),
    ("url", "http://example.com/\x7f", "control character U+007F"),
    ("url", "http://example.com/\ud800", "lone surrogate"),
    ("url", "http://xn--zz.example/", "not valid punycode"),
    ("url", "http://example.com/" + "a" * 8200, "at most 8192"),
    ("url", "http://example.com/" + "é" * 2000, "once normalised"),
    (
        "url",
        "http://exa\uff03mple.com/",
        "Codepoint U+FF03 not allowed",
    ),  # fullwidth '#' in the host (UTS #46 disallows it)
    ("url", 3.5, "must be a string"),
]


@pytest.mark.parametrize(("type_name", "raw", "expected"), GOOD)
def test_good_values_normalise(type_name: str, raw: str, expected: str) -> None:
    assert normalize(type_name, raw) == expected
    assert normalize(type_name, expected) == expected  # the normal form is a fixed point
    assert Signal.parse(type_name, raw) == Signal(type_name, expected)


@pytest.mark.parametrize(("type_name", "raw", "reason"), BAD)
def test_bad_values_rejected_with_reason(type_name: str, raw: object, reason: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        normalize(type_name, raw)  # type: ignore[arg-type]
    [violation] = caught.value.violations
    assert violation.field == "value"
    assert reason in violation.reason


def test_every_type_has_good_and_bad_cases() -> None:
    assert {row[0] for row in GOOD} == set(SIGNAL_TYPES)
    assert {row[0] for row in BAD} == set(SIGNAL_TYPES)


# -- pdq helpers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        (0, 0),
        (100, 100),
        (50, 50),
        ("87", 87),
        (" 0 ", 0),
        ("+7", 7),
        ("0100", 100),
        ("", None),  # an empty CSV column means "not given"
        ("   ", None),
    ],
)
def test_pdq_quality_good(raw: int | str | None, expected: int | None) -> None:
    assert parse_pdq_quality(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (-1, "from 0 to 100 inclusive, got -1"),
        (101, "from 0 to 100 inclusive, got 101"),
        ("101", "got 101"),
        ("-5", "got -5"),
        ("5.0", "must be an integer"),
        ("fifty", "must be an integer"),
        ("٥٠", "must be an integer"),  # Arabic-Indic digits: int() would accept them
        ("1" * 5000, "must be an integer"),
        (True, "got bool"),
        (50.0, "got float"),
    ],
)
def test_pdq_quality_bad(raw: object, reason: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_pdq_quality(raw)  # type: ignore[arg-type]
    [violation] = caught.value.violations
    assert violation.field == "quality"
    assert reason in violation.reason


def test_pdq_to_bytes() -> None:
    assert pdq_to_bytes(PDQ.upper()) == bytes.fromhex(PDQ)
    assert len(pdq_to_bytes(" " + PDQ)) == 32
    with pytest.raises(InvalidInputError):
        pdq_to_bytes(PDQ[:-1])


# -- registry and Signal -------------------------------------------------------


def test_registry_holds_the_builtin_types() -> None:
    assert set(SIGNAL_TYPES) == {"md5", "sha1", "sha256", "pdq", "vpdq", "url", "domain"}
    for name, signal_type in SIGNAL_TYPES.items():
        assert isinstance(signal_type, SignalType)
        assert signal_type.name == name
        assert get_signal_type(name) is signal_type
    assert get_signal_type(" PDQ ").name == "pdq"


def test_default_content_types() -> None:
    expected = {
        "md5": ContentType.OTHER,
        "sha1": ContentType.OTHER,
        "sha256": ContentType.OTHER,
        "pdq": ContentType.IMAGE,
        "vpdq": ContentType.VIDEO,
        "url": ContentType.URL,
        "domain": ContentType.URL,
    }
    assert {name: t.default_content_type for name, t in SIGNAL_TYPES.items()} == expected
    assert Signal.parse("pdq", PDQ).content_type is ContentType.IMAGE
    assert [c.value for c in ContentType] == [
        "image",
        "video",
        "audio",
        "pdf",
        "text",
        "url",
        "other",
    ]


@pytest.mark.parametrize("name", ["sha512", "", "md-5", "MD5x"])
def test_unknown_type_lists_known_types(name: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        get_signal_type(name)
    [violation] = caught.value.violations
    assert violation.field == "type"
    assert "unknown signal type" in violation.reason
    assert "domain, md5, pdq, sha1, sha256, url" in violation.reason
    with pytest.raises(InvalidInputError):
        normalize(name, MD5)
    with pytest.raises(InvalidInputError):
        Signal.parse(name, MD5)


def test_type_name_must_be_a_string() -> None:
    with pytest.raises(InvalidInputError) as caught:
        get_signal_type(None)  # type: ignore[arg-type]
    assert caught.value.violations[0].field == "type"


def test_signal_is_frozen_and_parse_canonicalises() -> None:
    signal = Signal.parse("MD5", MD5.upper())
    assert signal == Signal("md5", MD5)
    assert (signal.type, signal.value) == ("md5", MD5)
    assert hash(signal) == hash(Signal("md5", MD5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        signal.value = "x"  # type: ignore[misc]


def test_signal_constructor_refuses_non_canonical_values() -> None:
    with pytest.raises(InvalidInputError) as caught:
        Signal("md5", MD5.upper())
    assert "Signal.parse" in caught.value.violations[0].reason
    with pytest.raises(InvalidInputError) as caught:
        Signal("MD5", MD5)
    assert caught.value.violations[0].field == "type"
    with pytest.raises(InvalidInputError):
        Signal("md5", "nope")


def test_register_rejects_duplicates_and_bad_names() -> None:
    class Again(SignalType):
        name = "md5"
        default_content_type = ContentType.OTHER

        def normalize(self, value: str) -> str:
            return value

    with pytest.raises(ValueError, match="already registered"):
        register(Again)
    Again.name = "Bad-Name"
    with pytest.raises(ValueError, match="malformed"):
        register(Again)
    assert SIGNAL_TYPES["md5"].normalize(MD5.upper()) == MD5


def test_public_surface() -> None:
    for name in signals.__all__:
        assert hasattr(signals, name)


@pytest.mark.parametrize("module", ["", ".hashes", ".pdq", ".url", ".domain"])
def test_module_docstring_examples_run(module: str) -> None:
    import importlib

    mod = importlib.import_module("forum_client.signals" + module)
    result = doctest.testmod(mod)
    assert result.attempted > 0
    assert result.failed == 0


# -- properties: idempotence and fuzzing ---------------------------------------

HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "pdq": 64}
HEX = "0123456789abcdefABCDEF"
WHITESPACE = " \t\n\r\x0b\x0c\u00a0\u3000"


def hex_candidates(type_name: str) -> st.SearchStrategy[str]:
    length = HEX_LENGTHS[type_name]
    digest = st.text(alphabet=HEX, min_size=length, max_size=length)
    padding = st.text(alphabet=WHITESPACE, max_size=3)
    near = st.text(alphabet=HEX + " g-x\n", min_size=length - 2, max_size=length + 2)
    return st.one_of(st.tuples(padding, digest, padding).map("".join), near)


LABEL_CHARS = st.sampled_from(
    list("abcxyzABCXYZ0189-_")
    + list("äöüßçéÉıİσςΣ")
    + list("пример例えテスト日本")
    + ["ｅ", "Ａ", "\u00ad", "\u200d", "ﬁ", "⒈", "·"]
)
LABEL = st.one_of(
    st.text(LABEL_CHARS, min_size=1, max_size=12),
    st.sampled_from(["xn--bcher-kva", "XN--P1AI", "xn--zz", "xn--", "localhost", "0x1f", "12"]),
)
DOT = st.sampled_from([".", ".", ".", "\u3002", "\uff0e", "\uff61"])


@st.composite
def host_names(draw: st.DrawFn) -> str:
    labels = draw(st.lists(LABEL, min_size=1, max_size=4))
    dots = [draw(DOT) for _ in labels]
    host = "".join(label + dot for label, dot in zip(labels, dots, strict=True))
    return host if draw(st.booleans()) else host[:-1]


GOOD_PATH_CHARS = st.sampled_from(
    [
        *"abcXYZ019-._~!$&'()*+,;=:@/?#[]\\ \"<>^`{|}",
        *["%7e", "%7E", "%2f", "%2F", "%2e", "%2E", "%25", "%41", "%e2%82%ac", "%3F", "%23"],
        *["/./", "/../", "..", ".", "é", "€", "😀", "\u3000", "\u00a0"],
    ]
)
BAD_PATH_CHARS = st.sampled_from(["%", "%zz", "%4", "\x00", "\t", "\ud800"])
# Mostly acceptable pieces, so that the idempotence property sees many accepted URLs.
PATH_CHARS = st.integers(0, 49).flatmap(lambda n: BAD_PATH_CHARS if n == 0 else GOOD_PATH_CHARS)


CLEAN_LABEL = st.text(
    st.sampled_from(list("abcxyzABCXYZ0189") + list("äöüçéпример例え")), min_size=1
)


@st.composite
def plausible_urls(draw: st.DrawFn) -> str:
    """URLs that are mostly acceptable, so the idempotence property sees many accepted ones."""
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "HtTpS"]))
    labels = draw(st.lists(CLEAN_LABEL.map(lambda label: label[:20]), min_size=1, max_size=3))
    dot = draw(DOT)
    host = draw(st.sampled_from([dot.join(labels), "127.0.0.1", "[::1]", "[2001:DB8:0::1]"]))
    port = draw(st.sampled_from(["", ":", ":80", ":443", ":08080"]))
    start = draw(st.sampled_from(["/", "/", "/", "?", "#"]))
    path = "".join(draw(st.lists(GOOD_PATH_CHARS, max_size=20)))
    return f"{scheme}://{host}{port}{start}{path}"


@st.composite
def messy_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "HtTpS"] * 3 + ["ftp", ""]))
    sep = draw(st.sampled_from(["://"] * 8 + [":/", ":", ":\\\\"]))
    host = draw(
        st.one_of(
            host_names(),
            st.sampled_from(
                ["127.0.0.1", "127.1", "[::1]", "[2001:DB8::1]", "[fe80::1%eth0]", "", "u:p@a.b"]
            ),
        )
    )
    port = draw(st.sampled_from(["", "", "", ":", ":80", ":443", ":8080", ":0", ":99999", ":x"]))
    path = "".join(draw(st.lists(PATH_CHARS, max_size=15)))
    return f"{scheme}{sep}{host}{port}{path}"


def urls() -> st.SearchStrategy[str]:
    return st.one_of(plausible_urls(), messy_urls())


def domains() -> st.SearchStrategy[str]:
    padding = st.text(alphabet=WHITESPACE, max_size=2)
    return st.tuples(padding, host_names(), padding).map("".join)


CANDIDATES: dict[str, st.SearchStrategy[str]] = {
    **{name: hex_candidates(name) for name in HEX_LENGTHS},
    "domain": domains(),
    "url": urls(),
}


def _normalize_or_none(type_name: str, value: str) -> str | None:
    try:
        return normalize(type_name, value)
    except InvalidInputError as exc:
        [violation] = exc.violations
        assert violation.field == "value"
        assert violation.reason
        return None


@pytest.mark.parametrize("type_name", sorted(CANDIDATES))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_normalisation_is_idempotent(type_name: str, data: st.DataObject) -> None:
    value = data.draw(CANDIDATES[type_name])
    once = _normalize_or_none(type_name, value)
    if once is not None:
        assert normalize(type_name, once) == once
        assert once.isascii()
        assert once == once.strip()
        assert Signal(type_name, once).value == once


@pytest.mark.parametrize("type_name", sorted(CANDIDATES))
@settings(max_examples=300)
@given(value=st.text(max_size=300))
@example(value="http://[")
@example(value="http://]")
@example(value="http://a.com:" + "1" * 4400)
@example(value="xn--" + "\U0010ffff")
def test_arbitrary_text_only_raises_invalid_input(type_name: str, value: str) -> None:
    once = _normalize_or_none(type_name, value)
    if once is not None:
        assert normalize(type_name, once) == once


def test_candidate_strategies_accept_something() -> None:
    """Guard against the idempotence property passing vacuously."""
    assert normalize("url", "HtTpS:\\\\пример.Example\uff61:443/./a/%7e?q=é") == (
        "https://xn--e1afmkfd.example/a/~?q=%C3%A9"
    )
    assert normalize("domain", "\u3000ÄÖü.example\u3002") == "xn--4ca0bs.example"
