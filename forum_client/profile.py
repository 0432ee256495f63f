"""A member's credentials bundle: how the SDK finds and trusts its forum.

One JSON file (mode 0600, it holds the TLS client key) with the member id, the server
address, the forum CA certificate, the member's client certificate and key, and the trust
root (forum origin, operator and log public keys) that every verification is pinned to.
``--profile`` accepts the file or a directory holding ``bundle.json`` (the operator's
profile directory is one).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .cosignature import WitnessPolicy, witness_from_vkey
from .errors import ConfigError, InvalidInputError
from .files import MAX_BUNDLE_BYTES, PRIVATE, FileTooLargeError, read_bounded, write_new_file
from .verifier import TrustRoot

BUNDLE_FORMAT = "forum-bundle-v1"
BUNDLE_NAME = "bundle.json"


@dataclass(frozen=True)
class Bundle:
    member_id: str
    server: str  # host:port, or several host:port separated by commas
    ca_certificate: bytes  # PEM
    client_certificate: bytes  # PEM
    client_key: bytes  # PEM
    trust_root: TrustRoot

    def with_server(self, server: str) -> Bundle:
        return replace(self, server=server)

    def check_certificate(self, now: dt.datetime, where: str = "the bundle") -> None:
        """Raise ConfigError, saying what to do, if the client certificate is not valid at
        ``now`` (expired, or not yet valid) or was not issued by the bundle's forum CA."""
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature

        forum = f"member {self.member_id} of forum {self.trust_root.origin}"
        fix = (
            f"ask the operator for a new bundle: forum-admin credentials reissue "
            f"{self.member_id} --out NEW.bundle.json"
        )
        try:
            cert = x509.load_pem_x509_certificate(self.client_certificate)
            ca = x509.load_pem_x509_certificate(self.ca_certificate)
        except ValueError as exc:
            raise ConfigError(f"{where}: unreadable certificate ({exc})") from None
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            raise ConfigError(
                f"{where} ({forum}): its client certificate was not issued by its forum's CA "
                f"(a bundle pieced together from two forums?); {fix}"
            ) from None
        if now > cert.not_valid_after_utc:
            raise ConfigError(
                f"{where} ({forum}): the client certificate expired on "
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; {fix}"
            )
        if now < cert.not_valid_before_utc:
            raise ConfigError(
                f"{where} ({forum}): the client certificate is valid only from "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (check this machine's clock)"
            )

    def to_json(self) -> bytes:
        doc = {
            "format": BUNDLE_FORMAT,
            "member_id": self.member_id,
            "server": self.server,
            "ca_certificate": self.ca_certificate.decode(),
            "client_certificate": self.client_certificate.decode(),
            "client_key": self.client_key.decode(),
            "trust_root": trust_root_to_dict(self.trust_root),
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    def save(self, path: Path | str) -> None:
        """Write the bundle (0600).  Raises FileExistsError rather than overwrite."""
        write_new_file(Path(path), self.to_json(), PRIVATE)

    @classmethod
    def load(cls, path: Path | str) -> Bundle:
        """Read a bundle file, or ``DIR/bundle.json``.  Raises ConfigError naming the problem."""
        path = Path(path)
        if path.is_dir():
            path = path / BUNDLE_NAME
        try:
            doc = json.loads(read_bounded(path, MAX_BUNDLE_BYTES, "a credentials bundle"))
        except FileNotFoundError:
            raise ConfigError(f"no credentials bundle at {path}") from None
        except FileTooLargeError as exc:
            raise ConfigError(str(exc)) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not a readable credentials bundle ({exc})") from None
        try:
            return cls._from_doc(doc)
        except (
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            binascii.Error,
            InvalidInputError,
        ) as exc:
            raise ConfigError(f"{path}: malformed credentials bundle ({exc!r})") from None

    @classmethod
    def _from_doc(cls, doc: dict[str, Any]) -> Bundle:
        if doc.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, expected {BUNDLE_FORMAT!r}")
        return cls(
            member_id=str(doc["member_id"]),
            server=str(doc["server"]),
            ca_certificate=doc["ca_certificate"].encode(),
            client_certificate=doc["client_certificate"].encode(),
            client_key=doc["client_key"].encode(),
            trust_root=trust_root_from_dict(doc["trust_root"]),
        )


def trust_root_to_dict(root: TrustRoot) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "origin": root.origin,
        "operator_public_key": base64.b64encode(root.operator_public_key).decode(),
        "log_public_key": base64.b64encode(root.log_public_key).decode(),
        "log_key_name": root.log_key_name,
    }
    policy = root.witness_policy
    if policy.version:
        doc["witness_policy"] = {
            "version": policy.version,
            "quorum": policy.quorum,
            "witnesses": [{"vkey": w.vkey, "url": w.url} for w in policy.witnesses],
        }
    return doc


def trust_root_from_dict(doc: dict[str, Any]) -> TrustRoot:
    policy = WitnessPolicy()
    if "witness_policy" in doc:
        wp = doc["witness_policy"]
        policy = WitnessPolicy(
            tuple(witness_from_vkey(w["vkey"], str(w.get("url", ""))) for w in wp["witnesses"]),
            int(wp["quorum"]),
            int(wp["version"]),
        )
    return TrustRoot(
        origin=str(doc["origin"]),
        operator_public_key=base64.b64decode(doc["operator_public_key"], validate=True),
        log_public_key=base64.b64decode(doc["log_public_key"], validate=True),
        log_key_name=str(doc["log_key_name"]),
        witness_policy=policy,
    )
