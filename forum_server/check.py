"""``forum-server check``: is this server ready to serve?  Each check says what it found.

    for result in run_checks(Path("forum/server"), database=None, now=now):
        print(result.ok, result.name, result.detail)

Checks, in order (a failed one stops the checks that depend on it):
- the data dir holds the files ``forum-admin init`` writes;
- the log key loads, and only its owner can read it;
- the TLS certificate and key match, the forum CA signed the certificate, and it is valid
  now (and for how many more days);
- the database answers (its schema version; for PostgreSQL, who leads);
- the database holds this forum: the whole log is replayed and checked against the last
  signed checkpoint and this server's log key, exactly as ``serve`` does before it serves.
"""

from __future__ import annotations

import datetime as dt
import stat
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from forum_client.envelope import SigningKey
from forum_client.errors import ForumError

from .app import ServerPaths
from .sequencer import Sequencer
from .storage import ServerStore, open_store


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def run_checks(data_dir: Path, *, database: str | None, now: dt.datetime) -> Iterator[CheckResult]:
    paths = ServerPaths(data_dir)
    try:
        paths.check(database)
    except ForumError as exc:
        yield CheckResult("files", False, str(exc))
        return
    yield CheckResult("files", True, f"{data_dir} holds a forum server's files")
    key = yield from _log_key(paths)
    yield from _tls(paths, now)
    location = paths.database_location(database)
    try:
        store = open_store(location)
    except ForumError as exc:
        yield CheckResult("database", False, str(exc))
        return
    try:
        yield CheckResult("database", True, _describe(store))
        if key is not None:
            yield _forum(store, key)
    finally:
        store.close()


def _log_key(paths: ServerPaths) -> Generator[CheckResult, None, SigningKey | None]:
    try:
        key = SigningKey.load(paths.log_key)
    except (ForumError, ValueError, OSError) as exc:
        yield CheckResult("log key", False, f"{paths.log_key}: {exc}")
        return None
    mode = stat.S_IMODE(paths.log_key.stat().st_mode)
    if mode & 0o077:
        yield CheckResult("log key", False, f"{paths.log_key} is mode {mode:o}; make it 600")
        return None
    yield CheckResult("log key", True, f"Ed25519 key {key.key_id.hex()[:16]}…, mode 600")
    return key


def _tls(paths: ServerPaths, now: dt.datetime) -> Iterator[CheckResult]:
    try:
        cert = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
        ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(paths.server_key.read_bytes(), password=None)
    except (ValueError, OSError, TypeError) as exc:
        yield CheckResult("tls", False, f"cannot read the certificate files: {exc}")
        return
    problems = []
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        problems.append("server.key does not belong to server.crt")
    try:
        ca_key = ca.public_key()
        assert isinstance(ca_key, ec.EllipticCurvePublicKey)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, AssertionError, InvalidSignature) as exc:
        problems.append(f"server.crt is not signed by ca.crt ({exc or 'bad signature'})")
    for name, c in (("server.crt", cert), ("ca.crt", ca)):
        if now < c.not_valid_before_utc:
            problems.append(f"{name} is not valid before {c.not_valid_before_utc:%Y-%m-%d}")
        if now > c.not_valid_after_utc:
            problems.append(f"{name} expired on {c.not_valid_after_utc:%Y-%m-%d}")
    if problems:
        yield CheckResult("tls", False, "; ".join(problems))
        return
    days = (cert.not_valid_after_utc - now).days
    yield CheckResult("tls", True, f"server.crt signed by the forum CA, valid {days} more days")


def _describe(store: ServerStore) -> str:
    text = f"{store!r} answers"
    version = getattr(store, "schema_version", None)
    if version is not None:
        text += f", schema {version()}"
    leader = getattr(store, "leader", None)
    if leader is not None:
        found = leader()
        text += ", no leader yet" if found is None else f", epoch {found[0]} led by {found[1]}"
    return text


def _forum(store: ServerStore, key: SigningKey) -> CheckResult:
    try:
        sequencer = Sequencer(store, key)
    except ForumError as exc:
        return CheckResult("forum", False, str(exc))
    state = sequencer.state
    return CheckResult(
        "forum",
        True,
        f"{state.forum_name!r} ({state.origin}): {sequencer.size} entries verified against "
        "the last signed checkpoint",
    )
