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
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .cosignature import WitnessPolicy, witness_from_vkey
from .errors import ConfigError, InvalidInputError
from .files import PRIVATE, write_new_file
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
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no credentials bundle at {path}") from None
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
