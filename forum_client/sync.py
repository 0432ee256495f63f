"""Verified sync: stream -> verify -> apply, resumable, fail closed, with a follow mode.

Connect with your bundle, sync into a local SQLite copy, look a hash up::

    >>> from forum_client import ForumClient
    >>> from forum_client.store import LocalStore
    >>> with ForumClient.connect(profile) as forum, LocalStore(db_path) as store:
    ...     result = forum.sync(store)
    ...     signal = store.lookup("md5", "D41D8CD98F00B204E9800998ECF8427E")
    >>> result.size == store_size(db_path), signal.status, signal.rollup.verdict
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

Any failure raises :class:`SyncSecurityError` naming what failed and at which index, after
rolling back the unverified rows and keeping the evidence (both checkpoints, the proof, the
offending entry) in the store's ``security_evidence``; further syncs refuse until the member
acknowledges it (``forum-client security-report --acknowledge``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import grpc

from ._proto.forum.v1 import forum_pb2 as pb
from ._proto.forum.v1 import forum_pb2_grpc as pb_grpc
from .checkpoint import Checkpoint
from .envelope import Envelope
from .errors import ForumError, SecurityError, TransportError, VerificationError
from .merkle import CompactRange, leaf_hash, verify_consistency
from .receipts import verify_checkpoint_note
from .rules import check_content
from .store import LocalStore, ViewWriter
from .transport import call, error_from_rpc
from .verifier import LogState, TrustRoot
from .wire import envelope_from_pb

log = logging.getLogger(__name__)

# What a failure was, as kept in security_evidence.what
BAD_CHECKPOINT = "checkpoint-signature"
ROLLBACK = "rollback"
FORK = "fork"
OUT_OF_ORDER = "out-of-order"
REJECTED_ENTRY = "entry-rejected"
ROOT_MISMATCH = "root-mismatch"
UNVERIFIABLE = "unverifiable-entry"


@dataclass(frozen=True)
class SyncConfig:
    """Sync limits and settings, each with its unit."""

    max_batch: int = 0  # entries per GetEntries message; 0 = the server's default
    commit_every_rows: int = 100_000  # staged rows before a verified intermediate commit
    timeout_seconds: float = 60.0  # per unary call (checkpoint, proofs)
    backoff_initial_seconds: float = 0.2  # follow mode: first reconnect delay
    backoff_max_seconds: float = 5.0  # follow mode: reconnect delay doubles up to this


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


Batch = tuple[list[tuple[int, Envelope | None]], bytes | None]
"""``([(index, entry or None if served as a leaf hash only)], checkpoint note or None)``."""


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
        self._call: grpc.Future | None = None

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
        request = pb.GetEntriesRequest(start=start, end=end, follow=follow, max_batch=max_batch)
        stream = self.stub.GetEntries(request)
        self._call = stream
        try:
            for message in stream:
                items: list[tuple[int, Envelope | None]] = [
                    (x.index, envelope_from_pb(x.entry) if x.HasField("entry") else None)
                    for x in message.entries
                ]
                note = message.checkpoint.note if message.HasField("checkpoint") else None
                yield items, note or None
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from None
        finally:
            self._call = None

    def cancel(self) -> None:
        running = self._call
        if running is not None:
            running.cancel()


class Syncer:
    """Keeps one LocalStore in step with one forum.  Single-threaded; :meth:`stop` may be
    called from another thread to end :meth:`follow`.

    Raises SyncSecurityError (a VerificationError) when the forum misbehaves,
    SecurityError when unacknowledged evidence blocks syncing, TransportError when the
    forum cannot be reached, StoreError when the local copy cannot be written, ConfigError
    when the copy belongs to another forum.
    """

    def __init__(
        self,
        source: ForumSource,
        store: LocalStore,
        trust_root: TrustRoot,
        config: SyncConfig | None = None,
        progress: Callable[[SyncProgress], None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.store = store
        self.root = trust_root
        self.config = config or SyncConfig()
        self.progress = progress
        self.clock = clock
        self._stopped = threading.Event()
        self._entries = 0
        self._signals = 0
        self._started = clock()
        self._load()

    # ---- state ----

    def _load(self) -> None:
        """(Re)start from the last committed, verified state."""
        stored = self.store.sync_state()
        self.state: LogState | None = stored.log_state
        self.range: CompactRange = stored.compact_range
        self.cp_note: bytes | None = stored.checkpoint_note
        self.cp: Checkpoint | None = (
            None if stored.checkpoint_note is None
            else verify_checkpoint_note(stored.checkpoint_note, self.root)
        )
        self.view: ViewWriter | None = None

    # ---- public ----

    def sync(self) -> SyncResult:
        """Bring the copy up to the forum's latest checkpoint (see the module docstring)."""
        self._refuse_if_evidence()
        self.store.pin(self.root)
        self._load()
        self._started, self._entries, self._signals = self.clock(), 0, 0
        cp = self._accept_checkpoint(self.source.checkpoint_note())
        if self.range.size < cp.size:
            for batch in self.source.entries(
                self.range.size, cp.size, False, self.config.max_batch
            ):
                self._apply_batch(batch, follow=False)
        if self.range.size != cp.size:
            self._rollback()
            raise TransportError(
                f"the entry stream ended at {self.range.size}, before the checkpoint's "
                f"{cp.size}; nothing unverified was kept, sync again", "UNAVAILABLE",
            )
        self._commit()
        return self._result()

    def follow(self, on_commit: Callable[[SyncResult], None] | None = None) -> None:
        """Sync, then apply new entries as the forum commits them, until :meth:`stop`.

        Reconnects with exponential backoff when the forum is unreachable or restarts;
        security failures end it (raised).
        """
        self._stopped.clear()
        self._on_commit = on_commit
        delay = self.config.backoff_initial_seconds
        while not self._stopped.is_set():
            try:
                result = self.sync()
                if on_commit is not None:
                    on_commit(result)
                delay = self.config.backoff_initial_seconds
                for batch in self.source.entries(
                    self.range.size, 0, True, self.config.max_batch
                ):
                    self._apply_batch(batch, follow=True)
                    delay = self.config.backoff_initial_seconds
            except TransportError as exc:
                self._rollback()
                if self._stopped.is_set():
                    break
                log.warning("follow: %s; reconnecting in %.1fs", exc, delay)
                self._stopped.wait(delay)
                delay = min(delay * 2, self.config.backoff_max_seconds)
            else:
                self._rollback()

    def stop(self) -> None:
        """End :meth:`follow` (thread-safe); uncommitted, unverified rows are dropped."""
        self._stopped.set()
        self.source.cancel()

    # ---- the pipeline ----

    def _refuse_if_evidence(self) -> None:
        open_evidence = self.store.evidence()
        if open_evidence:
            first = open_evidence[0]
            raise SecurityError(
                f"{len(open_evidence)} unacknowledged security failure(s) in "
                f"{self.store.path} (first: {first.what}: {first.message}); review them with "
                "`forum-client security-report --db FILE` and acknowledge to sync again"
            )

    def _fail(
        self, what: str, message: str, index: int | None = None, *,
        served: bytes | None = None, proof: tuple[bytes, ...] = (), entry: bytes | None = None,
    ) -> SyncSecurityError:
        """Roll back, keep the evidence, and return the error to raise."""
        self._rollback()
        evidence_id = self.store.record_evidence(
            what, message, entry_index=index, stored_checkpoint=self.cp_note,
            served_checkpoint=served, proof=proof, entry=entry,
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
                    ROLLBACK, f"the forum's checkpoint has size {cp.size}, below the verified "
                    f"size {old.size}", served=note,
                )
            if cp.size == old.size and cp.root != old.root:
                raise self._fail(
                    FORK, f"two checkpoints of size {cp.size} with different roots", served=note,
                )
            if cp.size > old.size:
                proof = self.source.consistency_proof(old.size, cp.size)
                try:
                    verify_consistency(old.size, cp.size, proof, old.root, cp.root)
                except VerificationError as exc:
                    raise self._fail(
                        FORK, f"checkpoint {cp.size} does not extend the verified checkpoint "
                        f"{old.size}: {exc}", served=note, proof=proof,
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
        if self.view is not None:
            self.view = None
            self._load()  # the in-memory state may hold unverified entries

    def _apply_batch(self, batch: Batch, follow: bool) -> None:
        items, note = batch
        view = self._begin()
        rng, root = self.range, self.root
        for index, envelope in items:
            if index != rng.size:
                raise self._fail(
                    OUT_OF_ORDER, f"expected entry {rng.size}, the forum sent {index}", index
                )
            if envelope is None:
                raise self._fail(
                    UNVERIFIABLE, "served as a leaf hash only; this SDK cannot verify hidden "
                    "entries", index,
                )
            leaf = envelope.leaf_bytes()
            state = self.state
            try:
                if state is None:
                    if index != 0:
                        raise VerificationError("no genesis")
                    self.state = LogState.from_genesis(envelope, root)
                else:
                    body = state.apply(index, envelope)
                    check_content(state, body, view, index)
                    view.apply(index, body, state)
            except ForumError as exc:
                raise self._fail(REJECTED_ENTRY, str(exc), index, entry=leaf) from None
            view.add_entry(index, leaf)
            rng.append(leaf_hash(leaf))
            self._entries += 1
        self._signals = view.signals_applied
        if note is not None:
            self._accept_checkpoint(note)
        if self.progress is not None:
            cp_size = self.cp.size if self.cp is not None else 0
            self.progress(SyncProgress(rng.size, max(cp_size, rng.size), self._entries,
                                       self._signals, self.clock() - self._started))
        cp = self.cp
        if cp is None:
            return
        if follow and rng.size == cp.size:
            self._commit()
            on_commit = getattr(self, "_on_commit", None)
            if on_commit is not None:
                on_commit(self._result())
        elif view.pending_rows + view.signals_applied - self._committed_signals() >= (
            self.config.commit_every_rows
        ) and rng.size <= cp.size:
            self._commit()

    def _committed_signals(self) -> int:
        return getattr(self, "_signals_at_commit", 0)

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
                    ROOT_MISMATCH, f"the entries served do not hash to checkpoint {cp.size}'s "
                    "root", served=note,
                )
        elif rng.size < cp.size:
            proof = self.source.consistency_proof(rng.size, cp.size)
            try:
                verify_consistency(rng.size, cp.size, proof, rng.root(), cp.root)
            except VerificationError as exc:
                raise self._fail(
                    ROOT_MISMATCH, f"the entries up to {rng.size} are not a prefix of "
                    f"checkpoint {cp.size}: {exc}", served=note, proof=proof,
                ) from None
        else:
            return  # entries beyond the checkpoint stay staged until one covers them
        self.store.save_sync_state(self.store.con, state, rng, note, cp.size, cp.root, proof)
        self.store.con.execute("COMMIT")
        self.view = None
        self._signals_at_commit = self._signals

    def _result(self) -> SyncResult:
        return SyncResult(
            self.range.size, self.range.root(), self._entries, self._signals,
            self.clock() - self._started,
        )


def store_size(path: str) -> int:
    """The verified size of the copy at ``path`` (opens and closes it)."""
    with LocalStore(path) as store:
        return store.size
