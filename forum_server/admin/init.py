"""``forum-admin init``: create a forum directory.

    DIR/server/     forum.db (the log: genesis, then the default taxonomy), log.key,
                    tls/{ca.crt, server.crt, server.key}
    DIR/operator/   bundle.json (the operator's credentials), admin.key(.pub), ca.key, ca.crt,
                    trust-root.json (what members pin; it is also in every bundle)

Everything is built in a temporary directory next to ``DIR`` and moved into place at the
end, so a failed or refused init changes nothing.  Private keys are written 0600.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from forum_client import entries as e
from forum_client.checkpoint import Checkpoint, sign_checkpoint
from forum_client.entries import Limits
from forum_client.envelope import SigningKey
from forum_client.errors import ConfigError, InvalidInputError, StoreError
from forum_client.files import PRIVATE, PUBLIC, write_new_file
from forum_client.merkle import leaf_hash, root_from_leaf_hashes
from forum_client.profile import Bundle, trust_root_to_dict
from forum_client.taxonomy import DEFAULT_LABELS, DEFAULT_VERSION
from forum_client.tools import without_password
from forum_client.verifier import OPERATOR_ID, TrustRoot, make_genesis

from ..app import ServerPaths
from ..storage import StoredLeaf, is_database_url, open_store
from .ca import create_ca, issue_member_cert, issue_server_cert

DEFAULT_ADDRESS = "127.0.0.1:7443"


@dataclass(frozen=True)
class OperatorPaths:
    root: Path

    @property
    def bundle(self) -> Path:
        return self.root / "bundle.json"

    @property
    def admin_key(self) -> Path:
        return self.root / "admin.key"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def trust_root(self) -> Path:
        return self.root / "trust-root.json"


def default_origin(name: str) -> str:
    """``<name-slug>-<random tag>.forum.local``: entries bind the origin, so two forums must
    never share one (a member's entries would replay from one into the other)."""
    slug = "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())
    if not slug:
        raise InvalidInputError.field("name", "needs at least one letter or digit")
    return f"{slug}-{secrets.token_hex(4)}.forum.local"


def init_forum(
    directory: Path,
    *,
    name: str,
    origin: str | None = None,
    hosts: list[str] | None = None,
    address: str = DEFAULT_ADDRESS,
    now: dt.datetime,
    limits: Limits | None = None,
    database: str | None = None,
    board_keys: tuple[bytes, ...] = (),
    threshold: int = 1,
) -> TrustRoot:
    """Create a forum in ``directory``; return its trust root.

    ``board_keys`` (raw public keys of the other board members) and ``threshold`` make
    genesis name an m-of-n operator board of the new admin key and those keys.  With a
    threshold above 1 the log starts with genesis alone: the board publishes the vocabulary
    by proposal (``forum-admin propose taxonomy --default``), like every operator entry.

    ``database`` is a ``postgresql://`` URL to keep the log in (recorded in
    ``DIR/server/database.url``); by default it is ``DIR/server/forum.db`` (SQLite).
    Raises ConfigError if a forum (or anything in the way) is already there, StoreError if
    the database cannot be reached or already holds a log.
    """
    if database is not None and not is_database_url(database):
        raise InvalidInputError.field(
            "database",
            f"{without_password(database)!r} is not a postgresql:// URL (leave it out for SQLite)",
        )
    directory = Path(directory)
    for part in ("server", "operator"):
        if (directory / part).exists():
            raise ConfigError(f"{directory / part} already exists: refusing to touch a forum")
    origin = origin or default_origin(name)
    if not origin or any(c.isspace() for c in origin):
        raise InvalidInputError.field("origin", f"{origin!r} must be non-empty, no spaces")
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".forum-init-", dir=directory))
    try:
        root = _build(
            staging,
            name,
            origin,
            hosts or [],
            address,
            now,
            limits,
            database,
            board_keys,
            threshold,
        )
        for part in ("server", "operator"):
            os.rename(staging / part, directory / part)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _build(
    staging: Path,
    name: str,
    origin: str,
    hosts: list[str],
    address: str,
    now: dt.datetime,
    limits: Limits | None,
    database: str | None,
    board_keys: tuple[bytes, ...] = (),
    threshold: int = 1,
) -> TrustRoot:
    server = ServerPaths(staging / "server")
    operator = OperatorPaths(staging / "operator")
    (server.root / "tls").mkdir(parents=True)
    operator.root.mkdir(mode=0o700)

    admin_key, log_key = SigningKey.generate(), SigningKey.generate()
    root = TrustRoot(origin, admin_key.public_bytes, log_key.public_bytes, origin)
    ca = create_ca(name, now)
    tls = issue_server_cert(ca, hosts, now)
    op_cert = issue_member_cert(ca, OPERATOR_ID, now)

    write_new_file(server.log_key, log_key.to_pem(), PRIVATE)
    write_new_file(server.ca_cert, ca.cert_pem, PUBLIC)
    write_new_file(server.server_cert, tls.cert_pem, PUBLIC)
    write_new_file(server.server_key, tls.key_pem, PRIVATE)

    created_ms = int(now.timestamp() * 1000)
    genesis = make_genesis(
        root,
        admin_key,
        forum_name=name,
        created_unix_ms=created_ms,
        limits=limits,
        board=(admin_key.public_bytes, *board_keys) if board_keys else (),
        threshold=threshold if board_keys else 0,
    )
    # Entry 1: the default vocabulary, so a fresh forum accepts labelled submissions (a
    # board that needs several signatures publishes it by proposal instead).
    taxonomy = e.Taxonomy(
        e.Header(origin, OPERATOR_ID, admin_key.key_id, 2, created_ms),
        DEFAULT_VERSION,
        DEFAULT_LABELS,
    )
    first = [genesis]
    if threshold <= 1 or not board_keys:
        first.append(admin_key.sign(e.payload_type_of(taxonomy), e.encode(taxonomy)))
    leaves = [
        StoredLeaf(i, env.leaf_bytes(), leaf_hash(env.leaf_bytes())) for i, env in enumerate(first)
    ]
    root_hash = root_from_leaf_hashes([x.leaf_hash for x in leaves])
    note = sign_checkpoint(Checkpoint(origin, len(leaves), root_hash), root.log_key_name, log_key)
    if database is not None:
        write_new_file(server.database_url, (database + "\n").encode(), PRIVATE)
    store = open_store(database or server.database)
    try:
        if store.size():
            raise StoreError(
                f"{store!r} already holds a log of {store.size()} entries: "
                "use an empty database for a new forum"
            )
        store.append(leaves, len(leaves), note)
        now_ms = int(now.timestamp() * 1000)
        store.register_credential(op_cert.fingerprint, OPERATOR_ID, now_ms, False)
        store.record_audit(now_ms, OPERATOR_ID, "init", origin, "ok", f"forum {name!r}")
    finally:
        store.close()

    admin_key.save(operator.admin_key)
    write_new_file(operator.ca_key, ca.key_pem, PRIVATE)
    write_new_file(operator.ca_cert, ca.cert_pem, PUBLIC)
    Bundle(OPERATOR_ID, address, ca.cert_pem, op_cert.cert_pem, op_cert.key_pem, root).save(
        operator.bundle
    )
    doc = json.dumps(trust_root_to_dict(root), indent=2) + "\n"
    write_new_file(operator.trust_root, doc.encode(), PUBLIC)
    return root
