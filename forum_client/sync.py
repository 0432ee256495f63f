"""Verified sync: stream -> verify -> apply, resumable, fail closed, with a follow mode.

Connect with your bundle, sync into a local SQLite copy, look a hash up::

    >>> from forum_client.client import ForumClient
    >>> from forum_client.store import LocalStore
    >>> with ForumClient.connect(profile) as forum, LocalStore(db_path) as store:
    ...     result = forum.sync(store)
    ...     signal = store.lookup("md5", "D41D8CD98F00B204E9800998ECF8427E")
    ...     local_size = store.size
    >>> result.size == local_size, signal.status, signal.rollup.verdict
    (True, 'active', 'none')
    >>> [(d.member_id, d.labels) for d in signal.descriptors]
    [('alice', ('behaviour:terrorist-publication',))]

What one sync does (``../shared/DESIGN.md``, "Sync (client)"):

1. fetch the latest checkpoint and verify it with the log key pinned in the bundle; its size
   never goes below the stored one (a rollback), and a consistency proof links it to the
   stored checkpoint (else the forum forked its history);
2. stream the entries after the local size; each one must come at the next index, verify
   under the key active at that index (:meth:`LogState.apply`) and pass the content rules
   (:func:`~forum_client.rules.check_content`, asked against the local view);
3. extend the compact range with each leaf hash, and commit the staged rows only when they
   are proven part of the signed log: the recomputed root equals the checkpoint's, or (every
   ``commit_every_rows``, so a long first sync keeps its progress) a consistency proof from
   the recomputed root to the checkpoint's verifies.  Entries, view rows, key state,
   checkpoint and compact range go in one SQLite transaction, so a killed sync leaves the
   last verified state and resumes from it with no gap and no duplicate.

Entries scoped to a group the member was not in at their index come redacted: their leaf
hash and the author's scope claim (:mod:`forum_client.scopes`).  Redaction is a verified
state, never a hole: the claim must verify (:meth:`LogState.check_redacted`) and name a group
the member was *not* in at that index, else the forum withheld an entry the member is
entitled to (``withheld``).  A scoped entry the member is not entitled to that comes in full
is a ``leak``: it is verified, reported in ``security_evidence`` (without its body) and kept
as its leaf hash only; a leak does not stop further syncs.

Any failure raises :class:`SyncSecurityError` naming what failed and at which index, after
rolling back the unverified rows and keeping the evidence (both checkpoints, the proof, the
offending entry) in the store's ``security_evidence``; further syncs refuse until the member
acknowledges it (``forum-client security-report --acknowledge``).
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from . import entries as e
from ._proto.forum.v1 import forum_pb2 as pb
from ._proto.forum.v1 import forum_pb2_grpc as pb_grpc
from .checkpoint import Checkpoint
from .entries import MEMBER_BODY_TYPES
from .envelope import Envelope
from .errors import (
    ConfigError,
    ForumError,
    SecurityError,
    StoreError,
    TransportError,
    VerificationError,
)
from .merkle import EMPTY_ROOT, CompactRange, leaf_hash, verify_consistency
from .receipts import verify_checkpoint_note
from .rules import BlindLookup, check_content
from .scopes import ScopeClaim
from .store import VIEW_TABLES, LocalStore
from .store_state import state_to_json, write_log_tables
from .store_view import ViewWriter
from .transport import call, error_from_rpc
from .verifier import LogState, TrustRoot
from .wire import envelope_from_pb, scope_claim_from_pb

log = logging.getLogger(__name__)

# What a failure was, as kept in security_evidence.what
BAD_CHECKPOINT = "checkpoint-signature"
ROLLBACK = "rollback"
FORK = "fork"
OUT_OF_ORDER = "out-of-order"
REJECTED_ENTRY = "entry-rejected"
ROOT_MISMATCH = "root-mismatch"
WITHHELD = "withheld"
LEAK = "leak"  # reported, not blocking: see the module docstring


@dataclass(frozen=True)
class SyncConfig:
    """Sync limits and settings, each with its unit."""

    max_batch: int = 0  # entries per GetEntries message; 0 = the server's default
    commit_every_rows: int = 100_000  # staged rows before a verified intermediate commit
    timeout_seconds: float = 60.0  # per unary call (checkpoint, proofs)
    backoff_initial_seconds: float = 0.2  # follow mode: first reconnect delay
    backoff_max_seconds: float = 5.0  # follow mode: reconnect delay doubles up to this
    max_entries_ahead: int = 10_000  # follow mode: entries a checkpoint must cover, at most


@dataclass(frozen=True)
class SyncProgress:
    size: int  # entries in the local copy, staged included
    target: int  # size of the checkpoint being synced to
    entries: int  # entries applied by this sync
    signals: int  # signals applied by this sync
    elapsed: float  # seconds


@dataclass(frozen=True)
class SyncResult:
    size: int
    root: bytes
    entries: int
    signals: int
    seconds: float


class SyncSecurityError(VerificationError):
    """The forum served something that does not verify.  ``what`` is one of the constants
    above, ``index`` the log index (when one entry is to blame), ``evidence_id`` the row in
    the store's ``security_evidence``."""

    def __init__(self, what: str, message: str, index: int | None, evidence_id: int) -> None:
        where = f" at index {index}" if index is not None else ""
        super().__init__(
            f"{what}{where}: {message} (evidence #{evidence_id} kept; see "
            "`forum-client security-report`)"
        )
        self.what = what
        self.index = index
        self.evidence_id = evidence_id


@dataclass(frozen=True, slots=True)
class Redacted:
    """An entry served as its leaf hash only, with its author's scope claim (if any)."""

    leaf_hash: bytes
    claim: ScopeClaim | None


Batch = tuple[list[tuple[int, Envelope | Redacted]], bytes | None]
"""``([(index, entry, or Redacted)], checkpoint note or None)``."""


class ForumSource(Protocol):
    """Where a sync reads the log: the gRPC forum, or a fake or malicious one in tests."""

    def checkpoint_note(self) -> bytes: ...

    def consistency_proof(self, size1: int, size2: int) -> tuple[bytes, ...]: ...

    def entries(self, start: int, end: int, follow: bool, max_batch: int) -> Iterator[Batch]:
        """Entries [start, end) (end 0 with ``follow``: keep streaming).  TransportError."""

    def cancel(self) -> None:
        """End a running :meth:`entries` stream from another thread."""


class GrpcSource:
    """:class:`ForumSource` over the Forum service (the one conversion layer for sync)."""

    def __init__(self, stub: pb_grpc.ForumStub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout
        self._call: Any = None  # the running stream (a grpc.Call)

    def checkpoint_note(self) -> bytes:
        note: bytes = call(self.stub.GetCheckpoint, pb.GetCheckpointRequest(), self.timeout).note
        return note

    def consistency_proof(self, size1: int, size2: int) -> tuple[bytes, ...]:
        r = call(
            self.stub.GetConsistencyProof,
            pb.GetConsistencyProofRequest(size1=size1, size2=size2),
            self.timeout,
        )
        if r.size1 != size1 or r.size2 != size2:
            raise VerificationError(
                f"asked for a consistency proof {size1} -> {size2}, got {r.size1} -> {r.size2}"
            )
        return tuple(r.hashes)

    def entries(self, start: int, end: int, follow: bool, max_batch: int) -> Iterator[Batch]:
        """Without ``follow``, a stream that brings nothing new for ``timeout`` seconds is
        abandoned (TransportError): a stalling forum cannot hold a sync open."""
        request = pb.GetEntriesRequest(start=start, end=end, follow=follow, max_batch=max_batch)
        stream = self.stub.GetEntries(request)
        self._call = stream
        watchdog = None if follow else _Watchdog(self.timeout, stream.cancel)
        try:
            for message in stream:
                items: list[tuple[int, Envelope | Redacted]] = [
                    (
                        x.index,
                        envelope_from_pb(x.entry)
                        if x.HasField("entry")
                        else Redacted(
                            x.leaf_hash,
                            scope_claim_from_pb(x.scope_claim)
                            if x.HasField("scope_claim")
                            else None,
                        ),
                    )
                    for x in message.entries
                ]
                note = message.checkpoint.note if message.HasField("checkpoint") else None
                if watchdog is not None and (items or note):
                    watchdog.reset()
                yield items, note or None
        except grpc.RpcError as exc:
            if watchdog is not None and watchdog.fired:
                raise TransportError(
                    f"the entry stream made no progress for {self.timeout:g}s; abandoned",
                    "DEADLINE_EXCEEDED",
                ) from None
            raise error_from_rpc(exc) from None
        finally:
            if watchdog is not None:
                watchdog.close()
            self._call = None

    def cancel(self) -> None:
        running = self._call
        if running is not None:
            running.cancel()


class _Watchdog:
    """Calls ``expire`` when :meth:`reset` has not been called for ``seconds``."""

    def __init__(self, seconds: float, expire: Callable[[], object]) -> None:
        self.seconds = seconds
        self.fired = False
        self._expire = expire
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sync-watchdog", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self._deadline = time.monotonic() + self.seconds

    def close(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                left = self._deadline - time.monotonic()
            if left <= 0:
                self.fired = True
                self._expire()
                return
            if self._done.wait(left):
                return


class Syncer:
    """Keeps one LocalStore in step with one forum.  Single-threaded; :meth:`stop` may be
    called from another thread to end :meth:`follow`.

    ``reader`` is the member syncing (its groups decide what it may read); it defaults to
    the member the copy was first synced as.

    Raises SyncSecurityError (a VerificationError) when the forum misbehaves,
    SecurityError when unacknowledged evidence blocks syncing, TransportError when the
    forum cannot be reached, StoreError when the local copy cannot be written, ConfigError
    when the copy belongs to another forum or member, or does not say which member it is.
    """

    def __init__(
        self,
        source: ForumSource,
        store: LocalStore,
        trust_root: TrustRoot,
        config: SyncConfig | None = None,
        progress: Callable[[SyncProgress], None] | None = None,
        *,
        reader: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.store = store
        who = reader or store.reader()
        if who is None:
            raise ConfigError(
                f"{store.path}: say which member syncs this copy (its groups decide what it "
                "may read)"
            )
        self.reader: str = who
        self.root = trust_root
        self.config = config or SyncConfig()
        self.progress = progress
        self.clock = clock
        self._stopped = threading.Event()
        self._entries = 0
        self._signals = 0
        self._started = clock()
        self._on_commit: Callable[[SyncResult], None] | None = None
        self._load()

    # ---- state ----

    def _load(self) -> None:
        """(Re)start from the last committed, verified state."""
        stored = self.store.sync_state()
        self.state: LogState | None = stored.log_state
        self.range: CompactRange = stored.compact_range
        self.cp_note: bytes | None = stored.checkpoint_note
        self.cp: Checkpoint | None = (
            None
            if stored.checkpoint_note is None
            else verify_checkpoint_note(stored.checkpoint_note, self.root)
        )
        self.view: ViewWriter | None = None
        # Groups this member holds redacted entries of: the content rules of their later
        # entries cannot be checked against signals it never saw (rules.BlindLookup).
        self.blind: set[str] = {
            str(g) for (g,) in self.store.con.execute("SELECT DISTINCT group_id FROM redacted")
        }

    # ---- public ----

    def sync(self) -> SyncResult:
        """Bring the copy up to the forum's latest checkpoint (see the module docstring)."""
        self._refuse_if_evidence()
        self.store.pin(self.root, self.reader)
        self._load()
        self._started, self._entries, self._signals = self.clock(), 0, 0
        try:
            cp = self._accept_checkpoint(self.source.checkpoint_note())
            started_at = self.range.size
            if self.range.size < cp.size:
                try:
                    for batch in self.source.entries(
                        self.range.size, cp.size, False, self.config.max_batch
                    ):
                        self._apply_batch(batch, follow=False)
                finally:
                    self.source.cancel()
            stopped_at = self.range.size
            # A short stream is a cut connection only if what came is a proven prefix of the
            # checkpoint (then it is kept); otherwise the forum dropped or rewrote entries.
            if stopped_at == cp.size or stopped_at > started_at:
                self._commit()
            if stopped_at != cp.size:
                raise TransportError(
                    f"the entry stream ended at {stopped_at}, before the checkpoint's "
                    f"{cp.size}; the verified prefix was kept, sync again to resume",
                    "UNAVAILABLE",
                )
        except sqlite3.Error as exc:  # e.g. disk full: the copy keeps its last verified state
            self._rollback()
            raise StoreError(f"writing {self.store.path} failed: {exc}") from exc
        except BaseException:
            self._rollback()
            raise
        return self._result()

    def follow(self, on_commit: Callable[[SyncResult], None] | None = None) -> None:
        """Sync, then apply new entries as the forum commits them, until :meth:`stop`.

        Reconnects with exponential backoff when the forum is unreachable or restarts;
        security failures end it (raised).
        """
        self._stopped.clear()
        self._on_commit = on_commit
        delay = self.config.backoff_initial_seconds
        try:
            self._follow_loop(delay)
        finally:
            self._rollback()

    def _follow_loop(self, delay: float) -> None:
        on_commit = self._on_commit
        while not self._stopped.is_set():
            try:
                result = self.sync()
                if on_commit is not None:
                    on_commit(result)
                delay = self.config.backoff_initial_seconds
                for batch in self.source.entries(self.range.size, 0, True, self.config.max_batch):
                    self._apply_batch(batch, follow=True)
                    delay = self.config.backoff_initial_seconds
            except TransportError as exc:
                self._rollback()
                if self._stopped.is_set():
                    break
                log.warning("follow: %s; reconnecting in %.1fs", exc, delay)
                self._stopped.wait(delay)
                delay = min(delay * 2, self.config.backoff_max_seconds)
            else:  # the forum ended the stream (restart): resume after a pause
                self._rollback()
                self._stopped.wait(delay)

    def stop(self) -> None:
        """End :meth:`follow` (thread-safe); uncommitted, unverified rows are dropped."""
        self._stopped.set()
        self.source.cancel()

    # ---- the pipeline ----

    def _refuse_if_evidence(self) -> None:
        open_evidence = self.store.evidence(blocking=True)
        if open_evidence:
            first = open_evidence[0]
            raise SecurityError(
                f"{len(open_evidence)} unacknowledged security failure(s) in "
                f"{self.store.path} (first: {first.what}: {first.message}); review them with "
                "`forum-client security-report --db FILE` and acknowledge to sync again"
            )

    def _fail(
        self,
        what: str,
        message: str,
        index: int | None = None,
        *,
        served: bytes | None = None,
        proof: tuple[bytes, ...] = (),
        entry: bytes | None = None,
    ) -> SyncSecurityError:
        """Roll back, keep the evidence, and return the error to raise."""
        syncing_to = self.cp_note
        self._rollback()  # reloads the stored (last verified) checkpoint
        if served is None and syncing_to != self.cp_note:
            served = syncing_to
        evidence_id = self.store.record_evidence(
            what,
            message,
            entry_index=index,
            stored_checkpoint=self.cp_note,
            served_checkpoint=served,
            proof=proof,
            entry=entry,
        )
        log.error("security failure %s at %s: %s", what, index, message)
        return SyncSecurityError(what, message, index, evidence_id)

    def _accept_checkpoint(self, note: bytes) -> Checkpoint:
        """Verify a served checkpoint and its consistency with the last verified one."""
        try:
            cp = verify_checkpoint_note(note, self.root)
        except VerificationError as exc:
            raise self._fail(BAD_CHECKPOINT, str(exc), served=note) from None
        old = self.cp
        if old is not None:
            if cp.size < old.size:
                raise self._fail(
                    ROLLBACK,
                    f"the forum's checkpoint has size {cp.size}, below the verified "
                    f"size {old.size}",
                    served=note,
                )
            if cp.size == old.size and cp.root != old.root:
                raise self._fail(
                    FORK,
                    f"two checkpoints of size {cp.size} with different roots",
                    served=note,
                )
            if cp.size > old.size:
                proof = self.source.consistency_proof(old.size, cp.size)
                try:
                    verify_consistency(old.size, cp.size, proof, old.root, cp.root)
                except VerificationError as exc:
                    raise self._fail(
                        FORK,
                        f"checkpoint {cp.size} does not extend the verified checkpoint "
                        f"{old.size}: {exc}",
                        served=note,
                        proof=proof,
                    ) from None
        self.cp, self.cp_note = cp, note
        return cp

    def _begin(self) -> ViewWriter:
        if self.view is None:
            self.store.con.execute("BEGIN IMMEDIATE")
            self.view = ViewWriter(self.store.con)
        return self.view

    def _rollback(self) -> None:
        if self.store.con.in_transaction:
            self.store.con.execute("ROLLBACK")
        self._load()  # the in-memory state may hold unverified entries

    def _apply_batch(self, batch: Batch, follow: bool) -> None:
        items, note = batch
        view = self._begin()
        rng, root = self.range, self.root
        signals_before = view.signals_applied
        for index, envelope in items:
            if index != rng.size:
                raise self._fail(
                    OUT_OF_ORDER, f"expected entry {rng.size}, the forum sent {index}", index
                )
            if self.cp is not None and index >= self.cp.size + (
                self.config.max_entries_ahead if follow else 0
            ):
                raise self._fail(
                    OUT_OF_ORDER, f"entry {index} is beyond checkpoint {self.cp.size}", index
                )
            if isinstance(envelope, Redacted):
                self._apply_redacted(index, envelope, view)
                rng.append(envelope.leaf_hash)
                self._entries += 1
                continue
            leaf = envelope.leaf_bytes()
            h = leaf_hash(leaf)
            state = self.state
            try:
                if state is None:
                    if index != 0:
                        raise VerificationError("no genesis")
                    self.state = LogState.from_genesis(envelope, root)
                else:
                    body = state.check(index, envelope)
                    scope = body.scope if isinstance(body, MEMBER_BODY_TYPES) else ""
                    if (
                        isinstance(body, MEMBER_BODY_TYPES)
                        and scope
                        and not state.entitled(self.reader, scope, index)
                    ):
                        self._report_leak(state, index, h, body, envelope.key_id, view)
                        rng.append(h)
                        self._entries += 1
                        continue
                    lookup = BlindLookup() if scope in self.blind else view
                    check_content(state, body, lookup, index)
                    state.advance(index, envelope, body)
                    view.apply(index, body, state)
            except ForumError as exc:
                raise self._fail(REJECTED_ENTRY, str(exc), index, entry=leaf) from None
            view.add_entry(index, leaf)
            rng.append(h)
            self._entries += 1
        self._signals += view.signals_applied - signals_before
        if note is not None:
            self._accept_checkpoint(note)
        if self.progress is not None:
            cp_size = self.cp.size if self.cp is not None else 0
            self.progress(
                SyncProgress(
                    rng.size,
                    max(cp_size, rng.size),
                    self._entries,
                    self._signals,
                    self.clock() - self._started,
                )
            )
        cp = self.cp
        if cp is None:
            return
        if follow and rng.size == cp.size:
            self._commit()
            on_commit = self._on_commit
            if on_commit is not None:
                on_commit(self._result())
        elif view.rows_staged >= self.config.commit_every_rows and rng.size <= cp.size:
            self._commit()

    def _apply_redacted(self, index: int, item: Redacted, view: ViewWriter) -> None:
        """Verify an entry served as its leaf hash: a scope claim by its author naming a
        group this member was not in at ``index``; else the forum withheld it."""
        state = self.state
        if state is None or item.claim is None or len(item.leaf_hash) != 32:
            raise self._fail(
                WITHHELD,
                "served as a leaf hash only, without a scope claim: only entries scoped to a "
                "group you are not in may be redacted",
                index,
            )
        try:
            group = state.check_redacted(index, item.leaf_hash, item.claim)
        except ForumError as exc:
            raise self._fail(
                WITHHELD,
                f"served as a leaf hash only, with a scope claim that does not hold: {exc}",
                index,
            ) from None
        if state.entitled(self.reader, group.group_id, index):
            raise self._fail(
                WITHHELD,
                f"an entry shared with group {group.group_id}, which {self.reader} is in at "
                "this index, was served as its leaf hash only: the forum withheld it",
                index,
            )
        state.skip(index)
        self.blind.add(group.group_id)
        view.add_redacted(
            index, item.leaf_hash, group.group_id, item.claim.key_id, item.claim.signature
        )

    def _report_leak(
        self,
        state: LogState,
        index: int,
        h: bytes,
        body: e.MemberBody,
        key_id: bytes,
        view: ViewWriter,
    ) -> None:
        """A body this member may not read came in full: keep its leaf hash only and report
        it (without the body) in the same transaction."""
        state.skip(index)
        self.blind.add(body.scope)
        view.add_redacted(index, h, body.scope, key_id, None)
        message = (
            f"the forum served in full an entry by {body.header.member_id} shared with group "
            f"{body.scope} ({body.tlp.label}), which {self.reader} is not in at this index; "
            f"its body was not kept (leaf hash {h.hex()})"
        )
        log.error("leak at %d: %s", index, message)
        self.store.insert_evidence(
            self.store.con, LEAK, message, entry_index=index, served_checkpoint=self.cp_note
        )

    def _commit(self) -> None:
        """Prove the staged prefix is in the signed log, then commit it (or fail closed)."""
        cp, note, rng, state = self.cp, self.cp_note, self.range, self.state
        if cp is None or note is None or state is None:
            raise VerificationError("nothing verified to commit")
        view = self._begin()
        view.flush()
        proof: tuple[bytes, ...] = ()
        if rng.size == cp.size:
            if rng.root() != cp.root:
                raise self._fail(
                    ROOT_MISMATCH,
                    f"the entries served do not hash to checkpoint {cp.size}'s root",
                    served=note,
                )
        elif rng.size < cp.size:
            proof = self.source.consistency_proof(rng.size, cp.size)
            try:
                verify_consistency(rng.size, cp.size, proof, rng.root(), cp.root)
            except VerificationError as exc:
                raise self._fail(
                    ROOT_MISMATCH,
                    f"the entries up to {rng.size} are not a prefix of checkpoint {cp.size}: {exc}",
                    served=note,
                    proof=proof,
                ) from None
        else:
            return  # entries beyond the checkpoint stay staged until one covers them
        self.store.save_sync_state(self.store.con, state, rng, note, cp.size, cp.root, proof)
        self.store.con.execute("COMMIT")
        self.view = None

    def _result(self) -> SyncResult:
        return SyncResult(
            self.range.size,
            self.range.root(),
            self._entries,
            self._signals,
            self.clock() - self._started,
        )


# ---- offline re-verification ----


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


def verify_store(
    store: LocalStore,
    trust_root: TrustRoot | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Re-verify the whole local copy offline.

    Replays every stored entry through :class:`LogState` and the content rules (every
    signature again), recomputes the root and checks it against the stored signed checkpoint
    (directly, or through the stored consistency proof), rebuilds the view and key tables in
    a scratch database and compares them row by row with the stored ones.  Tampered rows are
    reported, not fixed.  Raises StoreError when the copy cannot be read at all.
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
            rng, state = _replay(store, scratch, int(size), root, problems, progress)
            scratch.con.execute("BEGIN")
            if state is not None:
                write_log_tables(scratch.con, state)
                if state_to_json(state) != stored_state:
                    problems.append(
                        "sync_state.log_state: the stored key state is not the replayed one"
                    )
            scratch.con.execute("COMMIT")
            if rng.to_bytes() != bytes(stored_range):
                problems.append("sync_state.compact_range: not the range of the stored entries")
            cp_size = _check_checkpoint(bytes(note), bytes(proof_bytes), rng, root, problems)
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
) -> tuple[CompactRange, LogState | None]:
    rng = CompactRange.empty()
    state: LogState | None = None
    reader = store.reader() or ""
    blind: set[str] = set()
    scratch.con.execute("BEGIN")
    view = ViewWriter(scratch.con)
    # Full entries and redacted ones, merged by index (each index is in one table only).
    rows = store.con.execute(
        "SELECT idx, CAST(leaf AS BLOB), NULL, NULL, NULL, NULL FROM entries UNION ALL "
        "SELECT idx, NULL, leaf_hash, group_id, key_id, signature FROM redacted ORDER BY idx"
    )
    for expected, (index, leaf, redacted_hash, group_id, kid, signature) in enumerate(rows):
        if index != expected:
            problems.append(f"entries: index {index} where {expected} was expected")
            break
        try:
            if leaf is None:
                if state is None:
                    raise VerificationError("genesis is never redacted")
                h = bytes(redacted_hash)
                _replay_redacted(state, reader, index, h, group_id, bytes(kid), signature)
                blind.add(group_id)
                view.add_redacted(
                    index, h, group_id, bytes(kid), None if signature is None else bytes(signature)
                )
                rng.append(h)
                continue
            envelope = Envelope.from_leaf_bytes(bytes(leaf))
            if state is None:
                state = LogState.from_genesis(envelope, root)
            else:
                body = state.check(index, envelope)
                scope = body.scope if isinstance(body, MEMBER_BODY_TYPES) else ""
                if not state.entitled(reader, scope, index):
                    raise VerificationError(
                        f"holds the body of an entry shared with group {scope}, which "
                        f"{reader} is not in"
                    )
                check_content(state, body, BlindLookup() if scope in blind else view, index)
                state.advance(index, envelope, body)
                view.apply(index, body, state)
        except (ForumError, ValueError) as exc:
            problems.append(f"entries: entry {index} does not verify: {exc}")
            break
        view.add_entry(index, bytes(leaf))
        rng.append(leaf_hash(bytes(leaf)))
        if view.rows_staged >= 100_000:
            view.flush()
            view.rows_staged = 0
        if progress is not None and index % 256 == 0:
            progress(index, size)
    view.flush()
    scratch.con.execute("COMMIT")
    if rng.size != size:
        problems.append(f"sync_state.size: {size}, but {rng.size} entries verify")
    return rng, state


def _replay_redacted(
    state: LogState,
    reader: str,
    index: int,
    h: bytes,
    group_id: str,
    kid: bytes,
    signature: bytes | None,
) -> None:
    """Re-verify a redacted row: its scope claim (a leaked entry has none: it verified in
    full when it came), and that ``reader`` was not entitled to it."""
    if signature is not None:
        state.check_redacted(index, h, ScopeClaim(group_id, kid, bytes(signature)))
    elif group_id not in state.groups:
        raise VerificationError(f"redacted for a group {group_id!r} the log does not know")
    if state.entitled(reader, group_id, index):
        raise VerificationError(f"redacted, but {reader} is in group {group_id} here")
    state.skip(index)


def _check_checkpoint(
    note: bytes, proof: bytes, rng: CompactRange, root: TrustRoot, problems: list[str]
) -> int:
    try:
        cp = verify_checkpoint_note(note, root)
    except VerificationError as exc:
        problems.append(f"sync_state.checkpoint_note: {exc}")
        return 0
    try:
        hashes = tuple(proof[i : i + 32] for i in range(0, len(proof), 32))
        if rng.size == cp.size:
            if rng.root() != cp.root:
                raise VerificationError("the entries' root is not the checkpoint's")
        else:
            verify_consistency(rng.size, cp.size, hashes, rng.root(), cp.root)
    except (VerificationError, ValueError) as exc:
        problems.append(f"root: the stored entries do not match signed checkpoint {cp.size}: {exc}")
    return cp.size


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
