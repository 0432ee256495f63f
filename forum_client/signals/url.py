"""Web addresses: ``url``.

Normalisation follows RFC 3986 section 6.2.2 (syntax-based) plus the scheme-based rules of 6.2.3,
with a few browser (WHATWG) behaviours so that what members paste from a browser matches.  In
order:

1. Strip surrounding whitespace.  Reject an empty value, one longer than 8192 characters (before
   or after normalisation) and any control character (U+0000-U+001F, U+007F) inside.
2. Before the first ``?`` or ``#``, replace ``\\`` by ``/`` (browsers do this for http(s)).
3. The scheme must be ``http`` or ``https`` (any case; lowercased), followed by ``//``.  A value
   without a scheme, such as ``example.com/a``, is rejected with a hint to add ``https://``.
4. Authority:

   * userinfo (``user:password@``) is rejected: credentials must never be shared;
   * the host is required; percent-escapes in the host are rejected;
   * a bracketed IPv6 literal is kept in brackets in its RFC 5952 form (lowercase, compressed:
     ``[2001:DB8:0::1]`` -> ``[2001:db8::1]``), always in hexadecimal groups as browsers write
     it, IPv4-mapped ones too (``[::ffff:192.0.2.1]`` -> ``[::ffff:c000:201]``); zone
     identifiers and IPvFuture are rejected;
   * any other host is converted per label like the ``domain`` type (one trailing dot dropped,
     IDNA dots, lowercase, UTS #46 + IDNA 2008 under version 2, IDNA 2003 under version 1:
     ``Bücher.example`` -> ``xn--bcher-kva.example``),
     except that ``_`` is allowed in labels and a single label (``localhost``) is accepted;
   * a host whose last label is numeric must be a dotted-quad IPv4 address (``127.0.0.1``);
     other numeric forms (``127.1``, ``0x7f.0.0.1``, leading zeros) are rejected as ambiguous;
   * the port must be 1-65535 in ASCII digits (leading zeros dropped); an empty port and the
     default port (80 for http, 443 for https) are dropped.

5. Path and query:

   * a ``%`` not followed by two hex digits is rejected (encode a literal ``%`` as ``%25``);
   * every character that RFC 3986 does not allow there is percent-encoded as UTF-8, upper-case
     hex: non-ASCII characters, space, ``"<>[]\\^`{|}`` (``\\`` only in the query);
   * hex digits in escapes are uppercased (``%2f`` -> ``%2F``) and escapes of unreserved
     characters (``A-Z a-z 0-9 - . _ ~``) are decoded (``%7e`` -> ``~``, ``%41`` -> ``A``);
     other escapes, including ``%2F`` and ``%25``, are kept;
   * then dot segments are removed from the path (RFC 3986 5.2.4: ``/a/./b/../c`` -> ``/a/c``);
     ``%2E`` counts as a dot because it was decoded first;
   * an empty path becomes ``/``; the query is kept as is otherwise (order preserved, ``+`` is
     not a space); an empty query (a bare ``?``) is dropped.

6. The fragment (``#...``) is dropped.

The result is ``scheme://host[:port]path[?query]``, pure ASCII.

Every step is this module's own code (splitting, percent-encoding, IP address formatting), not
``urllib.parse`` or ``ipaddress`` output, whose behaviour differs between Python versions; see
:mod:`forum_client.signals.versions`.

>>> from forum_client.signals.base import normalize
>>> normalize("url", "HTTP://Example.COM:80/a/./b/../c?x=1#frag")
'http://example.com/a/c?x=1'
>>> normalize("url", "https://bücher.example/%7euser/caf%c3%a9 2")
'https://xn--bcher-kva.example/~user/caf%C3%A9%202'
>>> normalize("url", "http://[::FFFF:192.0.2.1]:8080/")
'http://[::ffff:c000:201]:8080/'
"""

from __future__ import annotations

import ipaddress
import re

from forum_client.errors import InvalidInputError
from forum_client.signals.base import ContentType, SignalType, register
from forum_client.signals.domain import _ends_in_number, _host_to_ascii
from forum_client.signals.versions import CURRENT

MAX_URL_LENGTH = 8192
DEFAULT_PORTS = {"http": 80, "https": 443}

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters allowed literally besides unreserved (which quote() never encodes) and "%".
_PATH_SAFE = "!$&'()*+,;=:@/%"
_QUERY_SAFE = _PATH_SAFE + "?"
_CLEAN_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")
_CLEAN_QUERY = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_PORT = re.compile(r"[0-9]{1,5}")


def _invalid(reason: str) -> InvalidInputError:
    return InvalidInputError.field("value", reason)


def _percent_encode(text: str, safe: str) -> str:
    """Percent-encode (UTF-8, upper-case hex) every character neither unreserved nor in ``safe``.

    Pinned here rather than ``urllib.parse.quote`` (same output today, but its safe set has
    changed before).  Raises UnicodeEncodeError for a lone surrogate.
    """
    keep = _UNRESERVED.union(safe)
    out: list[str] = []
    for char in text:
        if char in keep:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


def _split(text: str, scheme_end: int) -> tuple[str, str, str]:
    """``(netloc, path, query)`` of ``scheme://netloc path ?query #fragment``.

    ``text[scheme_end:]`` starts with ``//``.  The netloc runs to the first ``/``, ``?`` or
    ``#``; the fragment is dropped (RFC 3986 appendix B, what ``urlsplit`` does for http).
    """
    rest = text[scheme_end + 2 :]
    rest = rest.partition("#")[0]
    cut = len(rest)
    for stop in "/?":
        index = rest.find(stop)
        if 0 <= index < cut:
            cut = index
    netloc, rest = rest[:cut], rest[cut:]
    path, _, query = rest.partition("?")
    return netloc, path, query


def _ipv6_text(packed: bytes) -> str:
    """RFC 5952 text of a 16-byte address in hexadecimal groups (WHATWG URL serialisation):
    the first longest run of two or more zero groups becomes ``::``."""
    groups = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]
    best_start, best_len, start = -1, 0, -1
    for i, group in enumerate([*groups, 1]):
        if group == 0 and start < 0:
            start = i
        elif group != 0 and start >= 0:
            if i - start > best_len:
                best_start, best_len = start, i - start
            start = -1
    texts = [f"{g:x}" for g in groups]
    if best_len < 2:
        return ":".join(texts)
    return ":".join(texts[:best_start]) + "::" + ":".join(texts[best_start + best_len :])


def _ipv4_text(dotted: str) -> str | None:
    """``a.b.c.d`` if ``dotted`` is a dotted quad (each 0-255, no leading zeros), else None."""
    parts = dotted.split(".")
    if len(parts) != 4:
        return None
    for part in parts:
        if not (part.isascii() and part.isdigit()) or len(part) > 3:
            return None
        if (len(part) > 1 and part[0] == "0") or int(part) > 255:
            return None
    return dotted


def _fix_escape(match: re.Match[str]) -> str:
    escape = match.group()
    char = chr(int(escape[1:], 16))
    return char if char in _UNRESERVED else escape.upper()


def _normalize_component(text: str, safe: str, clean: re.Pattern[str], where: str) -> str:
    """Percent-encoding normalisation of a path or query (RFC 3986 6.2.2.1 and 6.2.2.2)."""
    if clean.fullmatch(text) is not None:
        return text
    bad = _BAD_ESCAPE.search(text)
    if bad is not None:
        raise _invalid(
            f"'%' not followed by two hex digits in the {where} at position {bad.start()} "
            "(encode a literal '%' as %25)"
        )
    try:
        text = _percent_encode(text, safe)
    except UnicodeError:
        raise _invalid(f"the {where} is not valid Unicode (lone surrogate)") from None
    if "%" in text:
        text = _ESCAPE.sub(_fix_escape, text)
    return text


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 for an absolute path (one that starts with ``/``)."""
    if "." not in path:
        return path
    segments = path.split("/")[1:]
    last = len(segments) - 1
    output: list[str] = []
    for index, segment in enumerate(segments):
        if segment == ".":
            pass
        elif segment == "..":
            if output:
                output.pop()
        else:
            output.append(segment)
            continue
        if index == last:  # "/a/." and "/a/b/.." end in a directory: keep the slash
            output.append("")
    return "/" + "/".join(output)


def _normalize_host(host: str, version: int) -> str:
    if not host:
        raise _invalid("missing host")
    if host.startswith("["):
        if not host.endswith("]"):
            raise _invalid("unterminated '[' in host")
        literal = host[1:-1]
        if "%" in literal:
            raise _invalid("IPv6 zone identifiers are not allowed")
        if literal[:1] in ("v", "V"):
            raise _invalid("IPvFuture host literals are not supported")
        try:
            return f"[{_ipv6_text(ipaddress.IPv6Address(literal).packed)}]"
        except ValueError as exc:
            raise _invalid(f"invalid IPv6 address in brackets: {exc}") from None
    if "%" in host:
        raise _invalid("percent-escapes are not allowed in the host")
    labels = _host_to_ascii(host, allow_underscore=True, version=version)
    if _ends_in_number(labels):
        dotted = ".".join(labels)
        address = _ipv4_text(dotted)
        if address is not None:
            return address
        raise _invalid(
            f"numeric host {dotted!r} is not a dotted-quad IPv4 address (a.b.c.d, "
            "each 0-255 without leading zeros)"
        )
    return ".".join(labels)


def _split_host_port(netloc: str) -> tuple[str, str | None]:
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise _invalid("unterminated '[' in host")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise _invalid(f"unexpected {rest[:20]!r} after ']' in host")
        return host, (rest[1:] if rest else None)
    host, colon, port = netloc.partition(":")
    if ":" in port:
        raise _invalid("IPv6 addresses must be enclosed in brackets")
    return host, (port if colon else None)


def _normalize_port(port: str | None, scheme: str) -> str:
    if not port:  # absent or empty ("http://host:/") both mean the default port
        return ""
    if _PORT.fullmatch(port) is None:
        raise _invalid(f"invalid port {port[:20]!r}: must be 1-65535 in ASCII digits")
    number = int(port)
    if not 1 <= number <= 65535:
        raise _invalid(f"invalid port {number}: must be 1-65535")
    return "" if number == DEFAULT_PORTS[scheme] else f":{number}"


def _check_scheme(text: str) -> str:
    """The lowercase scheme, after checking that ``text`` starts with ``http(s)://``."""
    match = _SCHEME.match(text)
    scheme = match.group(1).lower() if match else ""
    if scheme in DEFAULT_PORTS:
        if not text.startswith("//", match.end() if match else 0):
            raise _invalid(f"expected '//' after '{scheme}:'")
        return scheme
    hint = f"; did you mean 'https://{text[:60]}'?"
    if match is None or "." in scheme or text[match.end() : match.end() + 1].isdigit():
        raise _invalid(
            "missing scheme: only absolute http:// and https:// URLs are accepted" + hint
        )
    raise _invalid(f"unsupported scheme {scheme[:20]!r}: only http and https URLs are accepted")


@register
class Url(SignalType):
    """An absolute http or https URL."""

    name = "url"
    default_content_type = ContentType.URL

    def normalize(self, value: str, version: int = CURRENT) -> str:
        if not isinstance(value, str):
            raise _invalid(f"url must be a string, got {type(value).__name__}")
        text = value.strip()
        if not text:
            raise _invalid("empty url")
        if len(text) > MAX_URL_LENGTH:
            raise _invalid(f"url is {len(text)} characters (at most {MAX_URL_LENGTH})")
        control = _CONTROL.search(text)
        if control is not None:
            raise _invalid(
                f"control character U+{ord(control.group()):04X} at position {control.start()}"
            )
        if "\\" in text:
            cut = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=len(text))
            text = text[:cut].replace("\\", "/") + text[cut:]
        scheme = _check_scheme(text)
        netloc, raw_path, raw_query = _split(text, len(scheme) + 1)
        if "@" in netloc:
            raise _invalid("userinfo ('user:password@') is not allowed: never share credentials")
        host, port = _split_host_port(netloc)
        authority = _normalize_host(host, version) + _normalize_port(port, scheme)
        path = _normalize_component(raw_path, _PATH_SAFE, _CLEAN_PATH, "path")
        path = _remove_dot_segments(path) if path else "/"
        query = _normalize_component(raw_query, _QUERY_SAFE, _CLEAN_QUERY, "query")
        result = (
            f"{scheme}://{authority}{path}?{query}" if query else f"{scheme}://{authority}{path}"
        )
        if len(result) > MAX_URL_LENGTH:
            raise _invalid(
                f"url is {len(result)} characters once normalised (at most {MAX_URL_LENGTH})"
            )
        return result


__all__ = ["DEFAULT_PORTS", "MAX_URL_LENGTH", "Url"]
