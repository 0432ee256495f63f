"""``forum-admin backup`` / ``restore``: the whole forum in one portable file, either engine.

    backup_forum(Path("forum/server"), Path("forum.backup"))          # a running forum is fine
    restore_forum(Path("forum.backup"), Path("forum/server"), latest=note_bytes)

A backup is gzip-compressed JSON lines: a header (format, origin, size, the last checkpoint),
then every leaf, every checkpoint up to that size, every credential and the audit trail.  It is
taken at one checkpoint: leaves committed after the checkpoint read first are left out, so a
backup of a forum under load is consistent.  The view is not in it: a restore recomputes it
from the log.

A restore writes into an empty store (stop every server first), and only what verifies: every
entry is replayed through the log's rules, every checkpoint must be signed by this server's
log key over the root of that prefix of the log.  Rollback: a backup is older than the forum
it replaces, so members that synced past it hold a newer checkpoint and will refuse the
restored log (their pinned checkpoint never goes down).  Give ``latest`` (a checkpoint note the
forum signed, e.g. from ``forum-client show-checkpoint``): a restore older than it is refused
unless ``accept_rollback``; one that contradicts it (a fork) is always refused.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from forum_client.checkpoint import verify_checkpoint
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import ConfigError, ForumError, StoreError
from forum_client.merkle import CompactRange, leaf_hash
from forum_client.verifier import LogState

from ..app import ServerPaths
from ..storage import Credential, ServerStore, StoredLeaf, open_store
from ..view import ServerView

FORMAT = "forum-backup/1"
Progress = Callable[[int, int], None]  # (entries done, entries in all)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def backup_forum(
    data_dir: Path, out: Path, *, database: str | None = None, progress: Progress | None = None
) -> tuple[int, bytes]:
    """Write the forum's backup to ``out`` (refuses to overwrite); return its checkpoint."""
    paths = ServerPaths(data_dir)
    paths.check(database)
    store = open_store(paths.database_location(database))
    try:
        latest = store.latest_checkpoint()
        if latest is None:
            raise StoreError(f"{store!r} holds no log to back up")
        size, note = latest
        tmp = out.with_name(f".{out.name}.partial")
        try:
            with open(tmp, "xb") as raw, gzip.open(raw, "wt", encoding="utf-8") as f:
                _write_backup(f, store, size, note, progress)
                f.flush()
            os.fsync(os.open(tmp, os.O_RDONLY))
            if out.exists():
                raise ConfigError(f"{out} already exists: refusing to overwrite it")
            os.rename(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        return size, note
    finally:
        store.close()


def _write_backup(
    f: IO[str], store: ServerStore, size: int, note: bytes, progress: Progress | None
) -> None:
    first = next(iter(store.leaves(0, 1)))
    genesis = LogState.from_genesis(Envelope.from_leaf_bytes(first.leaf_bytes))
    header = {
        "format": FORMAT,
        "origin": genesis.origin,
        "log_key_name": genesis.log_key_name,
        "size": size,
        "checkpoint": _b64(note),
    }
    f.write(json.dumps(header) + "\n")
    for leaf in store.leaves(0, size):
        f.write(json.dumps({"leaf": leaf.index, "bytes": _b64(leaf.leaf_bytes)}) + "\n")
        if progress is not None and (leaf.index + 1) % 10_000 == 0:
            progress(leaf.index + 1, size)
    for cp_size, cp_note in store.checkpoints(size):
        f.write(json.dumps({"checkpoint": cp_size, "note": _b64(cp_note)}) + "\n")
    for c in store.credentials():
        doc = {
            "credential": c.certificate_sha256.hex(),
            "member": c.member_id,
            "created_ms": c.created_unix_ms,
            "revoked_ms": c.revoked_unix_ms,
        }
        f.write(json.dumps(doc) + "\n")
    for a in store.audit():
        doc = {
            "audit": a.time_unix_ms,
            "actor": a.actor,
            "action": a.action,
            "target": a.target,
            "outcome": a.outcome,
            "detail": a.detail,
        }
        f.write(json.dumps(doc) + "\n")
    if progress is not None:
        progress(size, size)


def _records(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                try:
                    doc = json.loads(line)
                except ValueError as exc:
                    raise ConfigError(f"{path}:{number}: not a backup record: {exc}") from exc
                if not isinstance(doc, dict):
                    raise ConfigError(f"{path}:{number}: not a backup record")
                yield doc
    except (OSError, EOFError) as exc:
        raise ConfigError(f"{path}: not a readable forum backup ({exc})") from exc


def restore_forum(
    backup: Path,
    data_dir: Path,
    *,
    database: str | None = None,
    latest: bytes | None = None,
    accept_rollback: bool = False,
    progress: Progress | None = None,
) -> tuple[int, bytes]:
    """Restore ``backup`` into the (empty) store of ``data_dir``; return its checkpoint.

    Raises ConfigError for a file that is not a backup, or a rollback not accepted;
    StoreError for a store that is not empty; VerificationError (or ConfigError) for a backup
    that does not verify, before anything is written.
    """
    paths = ServerPaths(data_dir)
    log_key = SigningKey.load(paths.log_key)
    records = _records(backup)
    header = next(records, None)
    if header is None or header.get("format") != FORMAT:
        raise ConfigError(f"{backup} is not a {FORMAT} file")
    size, note = int(header["size"]), _unb64(header["checkpoint"])
    origin, name = str(header["origin"]), str(header["log_key_name"])
    theirs = None
    if latest is not None:
        try:
            theirs = verify_checkpoint(
                latest, origin=origin, name=name, public_key=log_key.public_bytes
            )
        except ForumError as exc:
            raise ConfigError(f"the latest checkpoint given does not verify: {exc}") from exc
        if theirs.size > size and not accept_rollback:
            raise ConfigError(
                f"the backup ends at {size} entries but the forum signed a checkpoint at "
                f"{theirs.size}: members that synced past {size} will see a rollback and "
                "refuse the restored log. Restore a newer backup, or accept the rollback"
            )
        # one no newer than the backup must be a checkpoint of this very log
        checkpoints_given = {theirs.size: latest} if theirs.size <= size else {}
    else:
        checkpoints_given = {}
    location = paths.database_location(database)
    if not str(location).startswith(("postgresql://", "postgres://")):
        Path(location).parent.mkdir(parents=True, exist_ok=True)
    store = open_store(location)
    try:
        if store.size():
            raise StoreError(
                f"{store!r} already holds {store.size()} entries: restore into an empty store"
            )
        leaves: list[StoredLeaf] = []
        checkpoints: dict[int, bytes] = {}
        credentials: list[Credential] = []
        audit: list[dict[str, Any]] = []
        for doc in records:
            if "leaf" in doc:
                data = _unb64(doc["bytes"])
                leaves.append(StoredLeaf(int(doc["leaf"]), data, leaf_hash(data)))
            elif "checkpoint" in doc:
                checkpoints[int(doc["checkpoint"])] = _unb64(doc["note"])
            elif "credential" in doc:
                credentials.append(
                    Credential(
                        bytes.fromhex(doc["credential"]),
                        str(doc["member"]),
                        int(doc["created_ms"]),
                        None if doc["revoked_ms"] is None else int(doc["revoked_ms"]),
                    )
                )
            elif "audit" in doc:
                audit.append(doc)
        if [x.index for x in leaves] != list(range(size)):
            raise ConfigError(f"{backup}: the entries are not 0..{size - 1}")
        checkpoints[size] = note
        # Verify everything first, then write: a backup that does not verify leaves the
        # store as it was (empty).
        _replay(None, leaves, checkpoints, checkpoints_given, log_key, None)
        _replay(store, leaves, checkpoints, {}, log_key, progress)
        for c in credentials:
            store.restore_credential(c)
        for a in audit:
            store.record_audit(
                int(a["audit"]), a["actor"], a["action"], a["target"], a["outcome"], a["detail"]
            )
        store.record_audit(
            int(time.time() * 1000), "operator", "restore", origin, "ok", f"{size} entries"
        )
    finally:
        store.close()
    return size, note


def _replay(
    store: ServerStore | None,
    leaves: list[StoredLeaf],
    checkpoints: dict[int, bytes],
    given: dict[int, bytes],
    log_key: SigningKey,
    progress: Progress | None,
) -> None:
    """Append ``leaves`` in the chunks their checkpoints cut, with the view they make, each
    chunk only once its checkpoint verifies over the replayed prefix (``store`` None: only
    verify)."""
    view = None if store is None else ServerView(store)
    state: LogState | None = None
    tree = CompactRange.empty()
    group = None if view is None else view.group()
    chunk: list[StoredLeaf] = []
    for leaf in leaves:
        envelope = Envelope.from_leaf_bytes(leaf.leaf_bytes)
        if state is None:
            state = LogState.from_genesis(envelope)
            if state.log_public_key != log_key.public_bytes:
                raise ConfigError(
                    f"the backup is of forum {state.origin}, whose log key is not this "
                    "server's: restore it into that forum's server directory"
                )
        else:
            body = state.apply(leaf.index, envelope)
            if group is not None:
                group.apply(state, body, leaf.index)
        tree.append(leaf.leaf_hash)
        chunk.append(leaf)
        if tree.size in given:
            cp = verify_checkpoint(
                given[tree.size],
                origin=state.origin,
                name=state.log_key_name,
                public_key=log_key.public_bytes,
            )
            if cp.root != tree.root():
                raise ConfigError(
                    f"the backup contradicts the forum's signed checkpoint at {tree.size}: "
                    "they are two different logs (a fork); refusing to restore it"
                )
        note = checkpoints.get(tree.size)
        if note is None:
            continue
        cp = verify_checkpoint(
            note, origin=state.origin, name=state.log_key_name, public_key=log_key.public_bytes
        )
        if cp.size != tree.size or cp.root != tree.root():
            raise ConfigError(f"the backup's checkpoint at {tree.size} is not over its entries")
        if store is not None and view is not None and group is not None:
            store.append(chunk, tree.size, note, group.delta)
            group = view.group()
        chunk = []
        if progress is not None:
            progress(tree.size, len(leaves))
