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
import itertools
import json
import os
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from forum_client.checkpoint import verify_checkpoint
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import ConfigError, ForumError, InvalidInputError, StoreError
from forum_client.merkle import CompactRange, leaf_hash
from forum_client.sigcheck import replay_checked
from forum_client.verifier import LogState

from ..app import ServerPaths
from ..storage import Credential, ServerStore, StoredLeaf, open_store
from ..view import ServerView

FORMAT = "forum-backup/1"
MAX_RECORD_CHARS = 128 * 1024 * 1024  # a leaf (at most a 64 MiB message) in base64, with room
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


def _bad_backup(path: Path, reason: str, number: int | None = None) -> InvalidInputError:
    where = f"{path}:{number}" if number is not None else str(path)
    return InvalidInputError.field("backup_file", f"{where}: {reason}")


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The backup's records with their line numbers.  Raises InvalidInputError for a file that
    is not gzip, not UTF-8 or not JSON lines (a truncated or damaged backup included)."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for number in itertools.count(1):
                line = f.readline(MAX_RECORD_CHARS + 1)
                if not line:
                    return
                if len(line) > MAX_RECORD_CHARS:
                    raise _bad_backup(path, "a record larger than any backup holds", number)
                try:
                    doc = json.loads(line)
                except ValueError as exc:
                    raise _bad_backup(path, f"not a backup record: {exc}", number) from None
                if not isinstance(doc, dict):
                    raise _bad_backup(path, "not a backup record", number)
                yield number, doc
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise _bad_backup(path, f"not a readable forum backup ({exc})") from None


@dataclass(frozen=True)
class BackupHeader:
    """What a backup's first record says: its forum, and the checkpoint it was taken at."""

    origin: str
    log_key_name: str
    size: int
    checkpoint: bytes


def read_header(path: Path) -> BackupHeader:
    """The header of the backup at ``path`` (only its first record is read).

    Raises InvalidInputError for a file that is not a forum backup."""
    return _header(path, _records(path))


def _header(path: Path, records: Iterator[tuple[int, dict[str, Any]]]) -> BackupHeader:
    first = next(records, None)
    if first is None or first[1].get("format") != FORMAT:
        raise _bad_backup(path, f"not a {FORMAT} file")
    try:
        doc = first[1]
        header = BackupHeader(
            str(doc["origin"]),
            str(doc["log_key_name"]),
            int(doc["size"]),
            _unb64(doc["checkpoint"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad_backup(path, f"a damaged header ({exc!r})", first[0]) from None
    if header.size < 1:
        raise _bad_backup(path, "a damaged header (size < 1)", first[0])
    return header


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

    Raises InvalidInputError for a file that is not a backup (or is damaged) and for a
    ``latest`` checkpoint this forum's log key did not sign; ConfigError for a directory
    that is not a server's and for a rollback not accepted; StoreError for a store that is
    not empty; VerificationError (or ConfigError) for a backup that does not verify, before
    anything is written.
    """
    paths = ServerPaths(data_dir)
    if not paths.log_key.is_file():
        raise ConfigError(
            f"{data_dir} is not a forum server directory (no log.key): restore into the "
            "server directory of the forum the backup is of (DIR/server)"
        )
    log_key = SigningKey.load(paths.log_key)
    records = _records(backup)
    header = _header(backup, records)
    size, note = header.size, header.checkpoint
    origin, name = header.origin, header.log_key_name
    theirs = None
    if latest is not None:
        try:
            theirs = verify_checkpoint(
                latest, origin=origin, name=name, public_key=log_key.public_bytes
            )
        except ForumError as exc:
            raise InvalidInputError.field(
                "latest_checkpoint",
                f"the latest checkpoint given is not one this forum's log key signed: {exc}",
            ) from exc
        if theirs.size > size and not accept_rollback:
            raise ConfigError(
                f"the backup ends at {size} entries but the forum signed a checkpoint at "
                f"{theirs.size}: members that synced past {size} will see a rollback and "
                "refuse the restored log. Restore a newer backup, or accept the rollback "
                "(--accept-rollback)"
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
        audit: list[tuple[int, str, str, str, str, str]] = []
        for number, doc in records:
            try:
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
                    audit.append(
                        (
                            int(doc["audit"]),
                            str(doc["actor"]),
                            str(doc["action"]),
                            str(doc["target"]),
                            str(doc["outcome"]),
                            str(doc["detail"]),
                        )
                    )
            except (KeyError, TypeError, ValueError) as exc:
                raise _bad_backup(backup, f"a damaged record ({exc!r})", number) from None
        if [x.index for x in leaves] != list(range(size)):
            raise _bad_backup(backup, f"the entries are not 0..{size - 1} (a damaged backup)")
        checkpoints[size] = note
        # Verify everything first, then write: a backup that does not verify leaves the
        # store as it was (empty).
        _replay(None, leaves, checkpoints, checkpoints_given, log_key, None)
        _replay(store, leaves, checkpoints, {}, log_key, progress)
        for c in credentials:
            store.restore_credential(c)
        for time_ms, actor, action, target, outcome, detail in audit:
            store.record_audit(time_ms, actor, action, target, outcome, detail)
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
    read = ((x.index, Envelope.from_leaf_bytes(x.leaf_bytes), x) for x in leaves)
    # Signatures checked on worker threads while the entries before them are applied.
    for state, body, leaf in replay_checked(read):
        if body is None and state.log_public_key != log_key.public_bytes:
            raise ConfigError(
                f"the backup is of forum {state.origin}, whose log key is not this "
                "server's: restore it into that forum's server directory"
            )
        if body is not None and group is not None:
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
