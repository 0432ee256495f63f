"""Option types shared by the three CLIs: every value is checked while the command line is
parsed, so a bad one is exit 2 with a message naming the option, before any key is read or
any connection made.

Only light modules are imported here (no grpc, no SQLite): ``--help`` stays fast.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import click

from .errors import InvalidInputError
from .signals import SIGNAL_TYPES, ContentType

_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_ORIGIN_RE = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces (a note's origin line)


def check_host(text: str) -> str:
    """A DNS name or an IP address (IPv6 without brackets).  Raises ValueError."""
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if not _HOSTNAME_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a host name or IP address")
    return text


def check_address(text: str) -> str:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) with a port 0-65535, or several separated by
    commas.  Raises ValueError."""
    for one in text.split(","):
        host, sep, port = one.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"{one!r} is not HOST:PORT (a port 0-65535)")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        check_host(host)
    return text


def check_database(text: str) -> str:
    """A ``postgresql://`` URL or an existing SQLite file.  Raises ValueError."""
    if text.startswith(("postgresql://", "postgres://")) or Path(text).is_file():
        return text
    raise ValueError(
        f"{without_password(text)!r} is neither a postgresql:// URL nor an existing SQLite file"
    )


_URL_PASSWORD_RE = re.compile(r"(://[^:/@\s]*):[^@]*@")  # a malformed one may hold spaces
_KEYWORD_PASSWORD_RE = re.compile(r"(password\s*=\s*)\S+", re.IGNORECASE)


def without_password(text: str) -> str:
    """``text`` with any password in it (``scheme://user:PASSWORD@host``, ``password=...``)
    replaced by ``***``: for messages about a database URL that may be wrong."""
    text = _URL_PASSWORD_RE.sub(r"\1:***@", text)
    return _KEYWORD_PASSWORD_RE.sub(r"\1***", text)


_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
DAY_MS = _UNIT_MS["d"]


def parse_duration_ms(text: str) -> int:
    """``30m``, ``12h``, ``7d``... in milliseconds.  Raises InvalidInputError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise InvalidInputError.field("duration", f"{text!r}: use a positive 30m, 12h or 7d")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def check_http_url(text: str) -> str:
    """An ``http(s)://HOST[:PORT][/PATH]`` URL (no query, no credentials).  Raises
    ValueError."""
    try:
        parts = urlsplit(text)
        _port = parts.port  # ValueError when out of range or not a number
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an http(s) URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http(s)://HOST:PORT URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{text!r}: no credentials, query or fragment in a witness URL")
    check_host(parts.hostname)
    return text


def check_witness_name(text: str) -> str:
    """A signed-note key name (a witness's): no spaces, control characters or '+'.  Raises
    ValueError."""
    from .checkpoint import _name_problem

    problem = _name_problem(text)
    if problem is not None:
        raise ValueError(f"{text!r} is not a witness name: {problem}")
    return text


def check_witness_vkey(text: str) -> str:
    """A witness's ``cosignature/v1`` verifier key (``name+keyid+base64``, from
    ``forum-witness init``).  Raises ValueError (an InvalidInputError naming the part)."""
    from .cosignature import witness_from_vkey

    witness_from_vkey(text)
    return text


class Duration(click.ParamType[Any, Any]):
    """``30m``, ``12h``, ``7d`` converted to milliseconds, at most ``most_ms``."""

    name = "DURATION"

    def __init__(self, most_ms: int) -> None:
        self.most_ms = most_ms

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        try:
            ms = parse_duration_ms(str(value))
        except InvalidInputError as exc:
            self.fail(exc.violations[0].reason, param, ctx)
        if ms > self.most_ms:
            self.fail(f"{value!r} is longer than {self.most_ms // DAY_MS} days", param, ctx)
        return ms


class NewFile(click.Path):
    """A file to create: refuses an existing file (never overwritten) and a missing parent
    directory, while the command line is parsed rather than after the work is done."""

    def __init__(self) -> None:
        super().__init__(path_type=Path, dir_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = cast(Path, super().convert(value, param, ctx))  # path_type=Path
        if path.exists():
            self.fail(f"{str(path)!r} exists: refusing to overwrite", param, ctx)
        parent = path.parent
        if not parent.is_dir():
            what = "is a file, not a directory" if parent.exists() else "does not exist"
            self.fail(f"the directory {str(parent)!r} {what}", param, ctx)
        return path


class PublicKeyFile(click.Path):
    """An existing ``.pub`` file (``forum-client keygen``), its format and key checked."""

    def __init__(self) -> None:
        super().__init__(path_type=Path, dir_okay=False, exists=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from .envelope import load_public_key_file

        path = cast(Path, super().convert(value, param, ctx))  # path_type=Path
        try:
            load_public_key_file(path)
        except InvalidInputError as exc:
            reason = exc.violations[0].reason if exc.violations else str(exc)
            self.fail(f"{str(path)!r}: {reason}", param, ctx)
        except OSError as exc:
            self.fail(f"{str(path)!r}: {exc.strerror or exc}", param, ctx)
        return path


class _Checked(click.ParamType[Any, Any]):
    """A string parameter checked by a function that raises ValueError."""

    def __init__(self, name: str, check: Any) -> None:
        self.name = name
        self._check = check

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._check(value)
        except ValueError as exc:  # InvalidInputError is one
            reason = exc.violations[0].reason if isinstance(exc, InvalidInputError) else str(exc)
            self.fail(reason or str(exc), param, ctx)


class FiniteRange(click.FloatRange):
    """A float range that also refuses nan and inf (click's FloatRange lets nan through:
    every comparison with it is false)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def _regex(pattern: str, what: str) -> Any:
    """Check against the regular expression ``module.NAME`` (imported when first used)."""

    def check(text: str) -> str:
        module, _, name = pattern.rpartition(".")
        compiled = getattr(importlib.import_module(module), name)
        if not compiled.fullmatch(text):
            raise ValueError(f"{text!r} is not {what}")
        return text

    return check


def _text(required: bool, limit: int | None = None) -> Any:
    def check(text: str) -> str:
        from .rules import MAX_TEXT

        most = MAX_TEXT if limit is None else limit
        if required and not text.strip():
            raise ValueError("must not be empty")
        if len(text) > most:
            raise ValueError(f"longer than {most} characters")
        if any(ord(c) < 32 and c not in "\t" for c in text):
            raise ValueError("holds control characters")
        return text

    return check


ADDRESS = _Checked("HOST:PORT", check_address)
HOST = _Checked("HOST", check_host)
DATABASE = _Checked("URL", lambda text: _check_database_file(text))
MEMBER_ID = _Checked(
    "MEMBER_ID",
    _regex(
        "forum_client.verifier.MEMBER_ID_RE",
        "a member id (2-63 of a-z 0-9 . _ -, starting a-z or 0-9)",
    ),
)
INCIDENT_ID = _Checked(
    "INCIDENT_ID",
    _regex(
        "forum_client.verifier.INCIDENT_ID_RE",
        "an incident id (1-63 of a-z 0-9 -, starting a-z 0-9)",
    ),
)
_GROUP = _regex("forum_client.verifier.GROUP_ID_RE", "a group id (1-63 of a-z 0-9 . _ -)")
GROUP_ID = _Checked("GROUP", lambda text: text if text == "" else _GROUP(text))
REQUIRED_GROUP_ID = _Checked("GROUP_ID", _GROUP)
ORIGIN = _Checked(
    "ORIGIN",
    _regex(
        "forum_client.cli_types._ORIGIN_RE", "an origin (1-255 printable characters, no spaces)"
    ),
)
LABEL = _Checked(
    "LABEL",
    _regex(
        "forum_client.taxonomy.LABEL_ID_RE",
        "a label id (behaviour:..., entity:... or incident:...)",
    ),
)
DISPUTE_ID = _Checked(
    "DISPUTE_ID",
    _regex(
        "forum_client.verifier.INCIDENT_ID_RE",
        "a dispute id (1-63 of a-z 0-9 -, starting a-z 0-9)",
    ),
)
HTTP_URL = _Checked("URL", check_http_url)
WITNESS_NAME = _Checked("NAME", check_witness_name)
WITNESS_VKEY = _Checked("VKEY", check_witness_vkey)
NEW_FILE = NewFile()
PUBLIC_KEY_FILE = PublicKeyFile()
TEXT = _Checked("TEXT", _text(required=False))
REQUIRED_TEXT = _Checked("TEXT", _text(required=True))
NAME = _Checked("NAME", _text(required=True, limit=256))
SIGNAL_TYPE = click.Choice(sorted(SIGNAL_TYPES))
CONTENT_TYPE = click.Choice([c.value for c in ContentType])

# Which option a field of a signal came from, for errors found after parsing (a value that
# does not suit its --type).
_FIELD_OPTIONS = {
    "type": "--type",
    "value": "--value",
    "labels": "--label",
    "content_type": "--content-type",
    "quality": "--quality",
}


def bad_signal_option(exc: InvalidInputError) -> click.BadParameter:
    """Turn the error of normalising a signal given by options into one naming the option."""
    v = exc.violations[0] if exc.violations else None
    field = v.field.rsplit(".", 1)[-1] if v else "value"
    return click.BadParameter(v.reason if v else str(exc), param_hint=_FIELD_OPTIONS.get(field))


def signal_option(type_: str, value: str) -> Any:
    """The signal named by --type and --value, normalised (a bad value names --value)."""
    from .client import normalize_ref

    try:
        return normalize_ref({"type": type_, "value": value})
    except InvalidInputError as exc:
        raise bad_signal_option(exc) from None


def _check_period(text: str) -> str:
    from .report import parse_period

    parse_period(text)  # InvalidInputError (a ValueError) names what is wrong
    return text


def _check_listen(text: str) -> str:
    """One ``HOST:PORT`` to listen on, or empty (none).  Raises ValueError."""
    if text and ("," in text or not check_address(text)):
        raise ValueError(f"{text!r} is not one HOST:PORT")
    return text


def _check_database_file(text: str) -> str:
    """:func:`check_database`, and a SQLite file must really be one (not a text file)."""
    from pathlib import Path

    from .cli_files import sqlite_problem

    check_database(text)
    if not text.startswith(("postgresql://", "postgres://")):
        problem = sqlite_problem(Path(text))
        if problem is not None:
            raise ValueError(f"{text!r} {problem}")
    return text


PERIOD = _Checked("PERIOD", _check_period)
OPTIONAL_LISTEN = _Checked("HOST:PORT", _check_listen)
