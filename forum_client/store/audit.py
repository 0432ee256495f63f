"""The offline audit: ``forum-client verify`` re-verifies a whole local copy.

Every stored entry is replayed again through the one :class:`~forum_client.replay.Replay`
the sync uses (every signature, key, sequence and content rule), into a scratch copy next to
the database; its root is checked against the stored signed checkpoint with the same
:func:`~forum_client.merkle.verify_prefix`, the checkpoint's witness cosignatures against the
quorum of the witness policy the copy's log states (issue #9), and the rebuilt view and key
tables are compared row by row with the stored ones.  Tampered rows are reported, never fixed.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..cosignature import WitnessPolicy, verify_quorum
from ..envelope import Envelope
from ..errors import ForumError, StoreError, VerificationError
from ..merkle import EMPTY_ROOT, CompactRange, verify_prefix
from ..receipts import verify_checkpoint_note
from ..replay import LeakedEntry, Replay
from ..verifier import TrustRoot
from .local import LocalStore
from .schema import VIEW_TABLES
from .state import _chunks, state_to_json


@dataclass(frozen=True)
class VerifyReport:
    """What ``forum-client verify`` found: ``problems`` is empty when the copy is intact."""

    size: int
    root: bytes
    checkpoint_size: int
    problems: tuple[str, ...]
    redacted: int = 0  # entries held as leaf hash + verified scope claim

    @property
    def ok(self) -> bool:
        return not self.problems


MAX_ROWS_REPORTED = 10
AUDIT_CLOCK_SKEW_SECONDS = 24 * 3600
"""A stored cosignature may carry a time up to this far ahead of the auditing machine's
clock (the audit checks signatures and the quorum; freshness was the sync's to check)."""


def verify_store(
    store: LocalStore,
    trust_root: TrustRoot | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    now: float | None = None,
) -> VerifyReport:
    """Re-verify the whole local copy offline.

    Replays every stored entry through :class:`LogState` and the content rules (every
    signature again), recomputes the root and checks it against the stored signed checkpoint
    (directly, or through the stored consistency proof), checks that checkpoint carries a
    quorum of valid cosignatures by the witnesses of the policy in force (the newer of the
    pinned one and the one the replayed log states; their age is not judged: ``now``, default
    this machine's clock, only bounds timestamps from the future), rebuilds the view and key
    tables in a scratch database and compares them row by row with the stored ones.
    Tampered rows are reported, not fixed.  Raises StoreError when the copy cannot be read
    at all.
    """
    problems: list[str] = []
    root = store.trust_root()
    if trust_root is not None and root is not None and root != trust_root:
        problems.append("the copy is pinned to another forum than the profile's")
    root = trust_root or root
    con = store.con
    row = con.execute(
        "SELECT size, compact_range, checkpoint_note, proof, log_state FROM sync_state"
    ).fetchone()
    if root is None or row is None:  # nothing committed yet: an empty copy is intact
        stray = con.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        found = (f"entries: {stray} rows but no verified sync state",) if stray else ()
        return VerifyReport(0, EMPTY_ROOT, 0, tuple(problems) + found)
    size, stored_range, note, proof_bytes, stored_state = row
    with tempfile.TemporaryDirectory(prefix=".forum-verify-", dir=store.path.parent) as tmp:
        scratch = LocalStore(f"{tmp}/replay.db", cache_mib=64)
        try:
            replay = _replay(store, scratch, int(size), root, problems, progress)
            rng, state = replay.range, replay.state
            if state is not None and state_to_json(state) != stored_state:
                problems.append(
                    "sync_state.log_state: the stored key state is not the replayed one"
                )
            if rng.to_bytes() != bytes(stored_range):
                problems.append("sync_state.compact_range: not the range of the stored entries")
            cp_size = _check_checkpoint(bytes(note), bytes(proof_bytes), rng, root, problems)
            learnt = state.witness_policy if state is not None else root.witness_policy
            pinned = root.witness_policy
            policy = learnt if learnt.version >= pinned.version else pinned  # as the sync
            _check_cosignatures(bytes(note), policy, now, problems)
            _compare_tables(scratch, store, problems)
        finally:
            scratch.close()
    redacted = int(con.execute("SELECT COUNT(*) FROM redacted").fetchone()[0])
    return VerifyReport(rng.size, rng.root(), cp_size, tuple(problems), redacted)


def _replay(
    store: LocalStore,
    scratch: LocalStore,
    size: int,
    root: TrustRoot,
    problems: list[str],
    progress: Callable[[int, int], None] | None,
) -> Replay:
    replay = Replay(root, None, CompactRange.empty(), store.reader() or "")
    # The journals start where the copy's do (they are local state, not the log's), so the
    # replay journals exactly the entries the sync journaled.
    scratch.con.executemany(
        "INSERT INTO journal_from VALUES (?, ?)",
        store.con.execute("SELECT type, size FROM journal_from").fetchall(),
    )
    txn = scratch.begin_sync()
    # Full entries and redacted ones, merged by index (each index is in one table only).
    rows = store.con.execute(
        "SELECT idx, CAST(leaf AS BLOB), NULL, NULL, NULL, NULL FROM entries UNION ALL "
        "SELECT idx, NULL, leaf_hash, group_id, key_id, signature FROM redacted ORDER BY idx"
    )
    for expected, (index, stored, redacted_hash, group_id, kid, signature) in enumerate(rows):
        if index != expected:
            problems.append(f"entries: index {index} where {expected} was expected")
            break
        try:
            if stored is None:
                replay.apply_redacted(
                    index,
                    bytes(redacted_hash),
                    str(group_id),
                    bytes(kid),
                    None if signature is None else bytes(signature),
                    txn,
                )
            else:
                leaf = bytes(stored)
                replay.apply(index, Envelope.from_leaf_bytes(leaf), leaf, txn)
        except LeakedEntry as exc:
            problems.append(f"entries: entry {index} holds a body it may not: {exc}")
            break
        except (ForumError, ValueError) as exc:
            problems.append(f"entries: entry {index} does not verify: {exc}")
            break
        if txn.rows_staged >= 100_000:
            txn.flush()
            txn.rows_staged = 0
        if progress is not None and index % 256 == 0:
            progress(index, size)
    txn.commit_replay(replay.state)
    if replay.size != size:
        problems.append(f"sync_state.size: {size}, but {replay.size} entries verify")
    return replay


def _check_checkpoint(
    note: bytes, proof: bytes, rng: CompactRange, root: TrustRoot, problems: list[str]
) -> int:
    try:
        cp = verify_checkpoint_note(note, root)
    except VerificationError as exc:
        problems.append(f"sync_state.checkpoint_note: {exc}")
        return 0
    try:
        verify_prefix(rng.size, rng.root(), cp.size, cp.root, _chunks(proof))
    except VerificationError as exc:
        problems.append(f"root: the stored entries do not match signed checkpoint {cp.size}: {exc}")
    return cp.size


def _check_cosignatures(
    note: bytes, policy: WitnessPolicy, now: float | None, problems: list[str]
) -> None:
    """The stored checkpoint still carries the quorum the sync required of it."""
    if not policy.enforced:
        return
    try:
        verdict = verify_quorum(
            note,
            policy,
            now=int(time.time() if now is None else now),
            max_age=None,
            skew=AUDIT_CLOCK_SKEW_SECONDS,
        )
    except VerificationError as exc:
        problems.append(f"sync_state.checkpoint_note: {exc}")
        return
    if not verdict.ok:
        problems.append(
            f"sync_state.checkpoint_note: not witnessed by the policy's quorum "
            f"(policy version {policy.version}): {verdict.explain()}"
        )


def _compare_tables(scratch: LocalStore, store: LocalStore, problems: list[str]) -> None:
    con = scratch.con
    try:
        con.execute("ATTACH DATABASE ? AS stored", (f"file:{store.path}?mode=ro",))
    except sqlite3.Error:
        con.execute("ATTACH DATABASE ? AS stored", (str(store.path),))
    try:
        for table in VIEW_TABLES:
            for left, right, how in (
                ("stored", "main", "not what the log says"),
                ("main", "stored", "missing"),
            ):
                rows = con.execute(
                    f"SELECT * FROM {left}.{table} EXCEPT SELECT * FROM {right}.{table} "
                    f"LIMIT {MAX_ROWS_REPORTED + 1}"
                ).fetchall()
                for r in rows[:MAX_ROWS_REPORTED]:
                    problems.append(f"{table}: row {_show(r)} {how}")
                if len(rows) > MAX_ROWS_REPORTED:
                    problems.append(f"{table}: more rows {how}")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot compare {store.path} with its replay: {exc}") from exc
    finally:
        con.execute("DETACH DATABASE stored")


def _show(row: tuple[object, ...]) -> str:
    return "(" + ", ".join(x.hex()[:16] if isinstance(x, bytes) else repr(x) for x in row) + ")"
