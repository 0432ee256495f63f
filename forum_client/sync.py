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
   (:func:`~forum_client.rules.check_content`, asked against the local view). The
   signatures of each stream message are checked on worker threads while the message before
   it is applied (:mod:`~forum_client.sigcheck`, ``SyncConfig.signature_threads``); that
   only saves the Ed25519 call of an entry whose envelope verified under exactly the key
   the state resolves, in order, so what is accepted and where a failure stops are the same.
   Runs of small forum-wide submissions (the crisis case, one hash an entry) are checked and
   applied a run at a time (:mod:`~forum_client.replay_bulk`): the same checks, in log
   order, and the entry a run stops at goes through the entry-by-entry path, which accepts
   it or fails exactly as it always did;
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

import dataclasses
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from .checkpoint import Checkpoint
from .cosignature import QuorumVerdict, WitnessPolicy, verify_quorum
from .envelope import Envelope
from .errors import (
    ConfigError,
    ForumError,
    QuorumUnavailableError,
    SecurityError,
    StoreError,
    TransportError,
    VerificationError,
)
from .merkle import CompactRange, leaf_hash, verify_prefix
from .receipts import verify_checkpoint_note
from .replay import LeakedEntry, Replay
from .replay_bulk import Run
from .sigcheck import PendingChecks, SignatureChecker, default_threads
from .source import Batch, ForumSource, PendingCheckpoint, Redacted, Unreadable
from .store import LocalStore, SyncTransaction
from .store.local import SPILL_ROWS
from .verifier import TrustRoot
from .witness_gossip import WitnessView, ask_witnesses

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
CHECKPOINT_POLICY = "checkpoint-policy"
UNPROVABLE = "unprovable-checkpoint"
UNWITNESSED = "unwitnessed-checkpoint"
WITNESS_DISAGREES = "witness-disagrees"

# A forum that answers these to a proof request about a checkpoint it signed cannot prove it
_REFUSALS = frozenset({"INVALID_ARGUMENT", "OUT_OF_RANGE", "FAILED_PRECONDITION", "NOT_FOUND"})


MAX_FLAGGED = 100
MAX_INDEX = 2**63  # no log grows this large


@dataclass(frozen=True)
class SyncConfig:
    """Sync limits and settings, each with its unit."""

    max_batch: int = 0  # entries per GetEntries message; 0 = the server's default
    commit_every_rows: int = 100_000  # staged rows before a verified intermediate commit
    # Once the copy outgrows its page cache, a step stages at least this many rows per page
    # of the copy before it commits: its rows go into the view in one sorted pass, so each
    # leaf page is written about once per step, and the pages written per row stay flat as
    # the copy grows (docs/benchmarks.md, "Growth"; 4 rather than 2 since session 13: a 10M
    # sync 1.2x faster).  0: every commit_every_rows.
    rows_per_copy_page: float = 4.0
    timeout_seconds: float = 60.0  # per unary call (checkpoint, proofs)
    backoff_initial_seconds: float = 0.2  # follow mode: first reconnect delay
    backoff_max_seconds: float = 5.0  # follow mode: reconnect delay doubles up to this
    max_entries_ahead: int = 10_000  # follow mode: entries a checkpoint must cover, at most
    max_clock_skew_seconds: float = 24 * 3600.0  # entries made later than now + this are flagged
    # Witnesses (issue #9): a checkpoint needs the policy's quorum of cosignatures, each
    # no older than this and not ahead of this machine's clock by more than the skew.
    witness_max_age_seconds: int = 3600
    witness_clock_skew_seconds: int = 60
    ask_witnesses: bool = True  # after a sync, ask each witness what it holds (gossip)
    witness_timeout_seconds: float = 10.0  # one request to a witness, at most
    signature_threads: int | None = None  # threads checking signatures ahead; None = 1 per CPU,
    # 0 = none (every signature checked inline, in the apply)


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
    flagged_times: tuple[int, ...] = ()
    """Indexes (at most :data:`MAX_FLAGGED`) of entries this sync applied whose creation time
    is impossible: before 1970, or later than this machine's clock plus the allowed skew.
    They verify (the log's rules do not judge clocks) but the forum should not have taken
    them: its server refuses member entries far from its own clock."""
    witnesses: tuple[WitnessView, ...] = ()  # what each witness said (after a sync)


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


class CheckpointPolicy(Protocol):
    """What a checkpoint needs beyond the pinned log key's signature (e.g. a quorum of witness
    cosignatures).  ``check`` raises VerificationError to refuse ``checkpoint`` (its signed
    ``note`` as served); the sync then fails closed with ``checkpoint-policy`` evidence."""

    def check(self, checkpoint: Checkpoint, note: bytes) -> None: ...


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
        wall_clock: Callable[[], float] = time.time,
        checkpoint_policy: CheckpointPolicy | None = None,
    ) -> None:
        self.source = source
        self.witnessed: QuorumVerdict | None = None
        self.checkpoint_policy = checkpoint_policy
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
        self.wall_clock = wall_clock
        self._flagged: list[int] = []
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
        # Groups this member holds redacted entries of: the content rules of their later
        # entries cannot be checked against signals it never saw (rules.BlindLookup).
        self.replay = Replay(
            self.root,
            stored.log_state,
            stored.compact_range,
            self.reader,
            self.store.redacted_groups(),
        )
        self.cp_note: bytes | None = stored.checkpoint_note
        self.cp: Checkpoint | None = (
            None
            if stored.checkpoint_note is None
            else verify_checkpoint_note(stored.checkpoint_note, self.root)
        )
        self.txn: SyncTransaction | None = None

    @property
    def range(self) -> CompactRange:
        """The compact range of every entry verified so far (staged ones included)."""
        return self.replay.range

    # ---- public ----

    def sync(self) -> SyncResult:
        """Bring the copy up to the forum's latest checkpoint (see the module docstring)."""
        self._refuse_if_evidence()
        self.store.pin(self.root, self.reader)
        self._load()
        self._started, self._entries, self._signals = self.clock(), 0, 0
        self._flagged = []
        try:
            cp = self._accept_checkpoint(self.source.checkpoint_note())
            started_at = self.range.size
            if self.range.size < cp.size:
                self._stream_to(cp, self.cp_note or b"")
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
        pending = self.source.pending_checkpoint()
        if pending is not None:
            self._refuse_unwitnessed_growth(cp, pending)
        return self._result()

    def _stream_to(self, cp: Checkpoint, note: bytes) -> None:
        """Apply the entries from the verified size up to checkpoint ``cp``."""
        start = self.range.size
        checker = self._signature_checker()
        try:
            batches = self.source.entries(start, cp.size, False, self.config.max_batch)
            for batch, checks in self._checked_ahead(batches, checker):
                if checks is None and checker is not None:
                    checks = self._checks_now(batch, checker)
                self._apply_batch(batch, follow=False, checks=checks)
        except TransportError as exc:
            if exc.code not in _REFUSALS:
                raise
            raise self._fail(
                UNPROVABLE,
                f"the forum signed checkpoint {cp.size} but refuses to serve its entries "
                f"from {start} ({exc.code}: {exc})",
                served=note,
            ) from None
        finally:
            if checker is not None:
                checker.close()
            self.source.cancel()

    def follow(self, on_commit: Callable[[SyncResult], None] | None = None) -> None:
        """Sync, then apply new entries as the forum commits them, until :meth:`stop`.

        Reconnects with exponential backoff when the forum is unreachable or restarts;
        security failures end it (raised), and so does the forum saying its log grew beyond
        what a quorum of witnesses cosigned (QuorumUnavailableError, as in :meth:`sync`).
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
                    pending = self.source.pending_checkpoint()
                    if pending is not None and self.txn is None and self.cp is not None:
                        self.source.cancel()
                        self._refuse_unwitnessed_growth(self.cp, pending)
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
        """Verify a served checkpoint, the checkpoint policy, and its consistency with the
        last verified one: the one place a checkpoint is accepted."""
        try:
            cp = verify_checkpoint_note(note, self.root)
        except VerificationError as exc:
            raise self._fail(BAD_CHECKPOINT, str(exc), served=note) from None
        if self.checkpoint_policy is not None:
            try:
                self.checkpoint_policy.check(cp, note)
            except VerificationError as exc:
                raise self._fail(CHECKPOINT_POLICY, str(exc), served=note) from None
        old = self.cp
        if old is not None:
            if cp.size < old.size:
                raise self._fail(
                    ROLLBACK,
                    f"the forum's checkpoint has size {cp.size}, below the verified "
                    f"size {old.size}",
                    served=note,
                )
            self._check_extends(old, cp, note)
        self._check_witnesses(cp, note)
        self.cp, self.cp_note = cp, note
        return cp

    def _check_extends(self, old: Checkpoint, cp: Checkpoint, note: bytes, whose: str = "") -> None:
        """``cp`` (served as ``note``, not smaller than ``old``) is ``old`` or a proven
        extension of it; else ``fork`` evidence.  ``whose`` says which checkpoints these are."""
        if cp.size == old.size:
            if cp.root != old.root:
                raise self._fail(
                    FORK,
                    f"two checkpoints of size {cp.size} with different roots{whose}",
                    served=note,
                )
            return
        proof = self._consistency_proof(old.size, cp, note)
        try:
            verify_prefix(old.size, old.root, cp.size, cp.root, proof)
        except VerificationError as exc:
            raise self._fail(
                FORK,
                f"checkpoint {cp.size} does not extend the verified checkpoint {old.size}"
                f"{whose}: {exc}",
                served=note,
                proof=proof,
            ) from None

    # ---- witnesses (issue #9) ----

    def gossip(self, result: SyncResult) -> SyncResult:
        """Ask each witness of the policy what it holds (:mod:`forum_client.witness_gossip`)
        and return ``result`` with their answers.  A witness holding another history than
        the verified copy is evidence: kept, and SyncSecurityError raised."""
        policy = self.witness_policy()
        note = self.cp_note
        if not (self.config.ask_witnesses and policy.enforced) or note is None:
            return result
        views = ask_witnesses(
            policy,
            note,
            self.source.consistency_proof,
            timeout=self.config.witness_timeout_seconds,
        )
        for view in views:
            if view.outcome == "disagrees":
                message = (
                    f"witness {view.name} holds another history than checkpoint "
                    f"{result.size} (at its size {view.size}: {view.detail})"
                )
                evidence_id = self.store.record_evidence(
                    WITNESS_DISAGREES, message, stored_checkpoint=note
                )
                log.error("security failure %s: %s", WITNESS_DISAGREES, message)
                raise SyncSecurityError(WITNESS_DISAGREES, message, None, evidence_id)
        return dataclasses.replace(result, witnesses=tuple(views))

    def _refuse_unwitnessed_growth(self, cp: Checkpoint, pending: PendingCheckpoint) -> None:
        """The forum says its log has grown beyond ``cp`` (the newest checkpoint a quorum
        cosigned, verified and committed) but no quorum cosigned the newer checkpoint: fail
        closed at once, naming the witnesses that did not cosign it.  The newer checkpoint
        must be log-signed and extend ``cp`` (else it is evidence of a fork); its entries
        are never fetched."""
        policy = self.witness_policy()
        if not policy.enforced:
            return
        try:
            newer = verify_checkpoint_note(pending.note, self.root)
        except VerificationError as exc:
            raise self._fail(
                BAD_CHECKPOINT, f"the forum's pending checkpoint: {exc}", served=pending.note
            ) from None
        if newer.size < cp.size:
            return  # older than what a quorum cosigned since: nothing to refuse
        self._check_extends(cp, newer, pending.note, " (the forum's pending checkpoint)")
        if newer.size == cp.size:
            return
        verdict = verify_quorum(
            pending.note,
            policy,
            now=int(self.wall_clock()),
            max_age=self.config.witness_max_age_seconds,
            skew=self.config.witness_clock_skew_seconds,
        )
        if verdict.ok:
            return  # a quorum cosigned it after all: the next sync takes it
        says = "; ".join(f"{name}: {why}" for name, why in sorted(pending.witness_status.items()))
        message = (
            f"the forum's log holds {newer.size} entries, but its newest checkpoint cosigned "
            f"by a quorum of witnesses is {cp.size}: the {newer.size - cp.size} newer entries "
            f"are refused (fail closed; this copy stays verified at {cp.size}). Checkpoint "
            f"{newer.size} has {verdict.explain()}"
            + (f". The forum says: {says}" if says else "")
            + ". Sync again once a quorum cosigns; ask the operator about its witnesses."
        )
        log.error("no witness quorum: %s", message)
        raise QuorumUnavailableError(
            message,
            log_size=newer.size,
            cosigned_size=cp.size,
            missing=verdict.missing,
            agreed=verdict.agreed,
            forum_says=pending.witness_status,
        )

    def witness_policy(self) -> WitnessPolicy:
        """The policy in force: the newer of the one pinned in the trust root and the one
        the verified log states."""
        pinned = self.root.witness_policy
        state = self.replay.state
        learnt = state.witness_policy if state is not None else pinned
        return learnt if learnt.version >= pinned.version else pinned

    def _check_witnesses(self, cp: Checkpoint, note: bytes) -> None:
        """The quorum check (pure: :func:`~forum_client.cosignature.verify_quorum`); fails
        closed with ``unwitnessed-checkpoint`` evidence naming what was missing."""
        policy = self.witness_policy()
        if not policy.enforced:
            return
        verdict = verify_quorum(
            note,
            policy,
            now=int(self.wall_clock()),
            max_age=self.config.witness_max_age_seconds,
            skew=self.config.witness_clock_skew_seconds,
        )
        if not verdict.ok:
            raise self._fail(
                UNWITNESSED,
                f"checkpoint {cp.size} is not witnessed: {verdict.explain()}",
                served=note,
            )
        self.witnessed = verdict

    def _consistency_proof(self, size: int, cp: Checkpoint, note: bytes) -> tuple[bytes, ...]:
        """The forum's proof that ``size`` is a prefix of ``cp``.  A forum that refuses to
        prove a checkpoint its log key signed (e.g. one of an impossible size) showed
        misbehaviour: that is evidence (``unprovable-checkpoint``), not a transport error."""
        try:
            return self.source.consistency_proof(size, cp.size)
        except TransportError as exc:
            if exc.code not in _REFUSALS:
                raise
            raise self._fail(
                UNPROVABLE,
                f"the forum signed checkpoint {cp.size} but refuses to prove that the "
                f"verified size {size} is a prefix of it ({exc.code}: {exc})",
                served=note,
            ) from None

    def _begin(self) -> SyncTransaction:
        if self.txn is None:
            # Python holds at most half of the smallest step (see SyncConfig)
            spill = max(1, min(SPILL_ROWS, self.config.commit_every_rows // 2))
            self.txn = self.store.begin_sync(self.replay.size, spill_rows=spill)
        return self.txn

    def _rollback(self) -> None:
        if self.txn is not None:
            self.txn.rollback()
        self._load()  # the in-memory state may hold unverified entries

    def _signature_checker(self) -> SignatureChecker | None:
        threads = self.config.signature_threads
        threads = default_threads() if threads is None else threads
        return SignatureChecker(threads) if threads > 0 else None

    def _checked_ahead(
        self, batches: Iterator[Batch], checker: SignatureChecker | None
    ) -> Iterator[tuple[Batch, PendingChecks | None]]:
        """Each batch with its signature checks, started one batch ahead: the checks of
        batch k + 1 run on the checker's threads while batch k is applied.  A key is taken
        from the state before the batch ahead is applied; an entry whose key is not known
        yet (added in the batch being applied) simply has no pre-check."""
        waiting: Batch | None = None
        waiting_checks: PendingChecks | None = None
        for batch in batches:
            checks = None if checker is None else self._checks_now(batch, checker)
            if waiting is not None:
                yield waiting, waiting_checks
            waiting, waiting_checks = batch, checks
        if waiting is not None:
            yield waiting, waiting_checks

    def _checks_now(self, batch: Batch, checker: SignatureChecker) -> PendingChecks | None:
        """Start checking ``batch``'s signatures under the keys the state knows now (None
        before genesis).  Also for a batch that came before the state could name its keys
        (the first messages of a new copy): its checks start when it is applied, and the
        checker's threads verify them while this thread waits, instead of this thread
        verifying each inline."""
        state = self.replay.state
        if state is None:
            return None
        keys = state.keys
        return checker.submit(
            [
                (index, env, keys[env.key_id].public_key)
                for index, env in batch[0]
                if isinstance(env, Envelope) and env.key_id in keys
            ]
        )

    def _apply_batch(self, batch: Batch, follow: bool, checks: PendingChecks | None = None) -> None:
        items, note = batch
        txn = self._begin()
        replay = self.replay
        signals_before = txn.signals_applied
        latest_ms = int((self.wall_clock() + self.config.max_clock_skew_seconds) * 1000)
        answers = {} if checks is None else checks.verified_keys()
        cp = self.cp  # as _check_position: not past the checkpoint (in follow mode, plus ahead)
        ahead = self.config.max_entries_ahead if follow else 0
        end_index = MAX_INDEX if cp is None else cp.size + ahead
        position, count = 0, len(items)
        while position < count:
            if answers:  # a run of small submissions at once (forum_client.replay_bulk)
                run = replay.apply_run(Run(items, position, answers, end_index), txn)
                if run:
                    for index, created_ms in run:
                        if created_ms > latest_ms:
                            self._flag(index, created_ms)
                    position += len(run)
                    self._entries += len(run)
                    continue
            index, item = items[position]
            position += 1
            self._check_position(index, follow)
            if isinstance(item, Redacted):
                self._apply_redacted(index, item, txn)
                self._entries += 1
                continue
            if isinstance(item, Unreadable):
                raise self._fail(
                    REJECTED_ENTRY,
                    f"the forum served an unreadable entry: {item.reason}",
                    index,
                    entry=item.data,
                )
            leaf = item.leaf_bytes()
            try:
                answer = answers.get(index)
                verified = answer[1] if answer is not None and answer[0] is item else None
                body = replay.apply(index, item, leaf, txn, verified)
            except LeakedEntry as leaked:
                self._report_leak(leaked, leaf, item.key_id, txn)
            except ForumError as exc:
                raise self._fail(REJECTED_ENTRY, str(exc), index, entry=leaf) from None
            else:
                if body is not None and not 0 <= body.header.created_unix_ms <= latest_ms:
                    self._flag(index, body.header.created_unix_ms)
            self._entries += 1
        self._signals += txn.signals_applied - signals_before
        if note is not None:
            self._accept_checkpoint(note)
        rng = replay.range
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
        elif txn.rows_staged >= self._step_rows(txn) and rng.size <= cp.size:
            self._commit()

    def _step_rows(self, txn: SyncTransaction) -> int:
        """Staged rows before a verified intermediate commit (see :class:`SyncConfig`)."""
        every = self.config.commit_every_rows
        if not txn.grown:
            return every
        return max(every, int(self.config.rows_per_copy_page * txn.copy_pages))

    def _apply_redacted(self, index: int, item: Redacted, txn: SyncTransaction) -> None:
        """An entry served as its leaf hash: its author's scope claim must name a group this
        member was not in at ``index``; else the forum withheld it."""
        if item.claim is None:
            raise self._fail(
                WITHHELD,
                "served as a leaf hash only, without a scope claim: only entries scoped to a "
                "group you are not in may be redacted",
                index,
            )
        claim = item.claim
        try:
            self.replay.apply_redacted(
                index, item.leaf_hash, claim.group_id, claim.key_id, claim.signature, txn
            )
        except ForumError as exc:
            raise self._fail(
                WITHHELD, f"served as a leaf hash only, but it may not be: {exc}", index
            ) from None

    def _report_leak(
        self, leaked: LeakedEntry, leaf: bytes, key_id: bytes, txn: SyncTransaction
    ) -> None:
        """A body this member may not read came in full: keep its leaf hash only and report
        it in the same transaction, saying no more of the body than a redaction would (its
        author and group), so not its TLP level."""
        self.replay.skip_leaked(leaked, leaf, key_id, txn)
        body = leaked.body
        message = (
            f"the forum served in full an entry by {body.header.member_id} shared with group "
            f"{body.scope}, which {self.reader} is not in at this index; "
            f"its body was not kept (leaf hash {leaf_hash(leaf).hex()})"
        )
        log.error("leak at %d: %s", leaked.index, message)
        txn.record_evidence(LEAK, message, entry_index=leaked.index, served_checkpoint=self.cp_note)

    def _flag(self, index: int, created_ms: int) -> None:
        if len(self._flagged) < MAX_FLAGGED:
            self._flagged.append(index)
        log.warning(
            "entry %d claims an impossible creation time (created_unix_ms %d)", index, created_ms
        )

    def _check_position(self, index: int, follow: bool) -> None:
        """Entries come in order, each at the next index, and not past what a checkpoint
        covers (plus ``max_entries_ahead`` in follow mode)."""
        expected = self.replay.size
        if index != expected:
            raise self._fail(
                OUT_OF_ORDER, f"expected entry {expected}, the forum sent {index}", index
            )
        if self.cp is not None and index >= self.cp.size + (
            self.config.max_entries_ahead if follow else 0
        ):
            raise self._fail(
                OUT_OF_ORDER, f"entry {index} is beyond checkpoint {self.cp.size}", index
            )

    def _commit(self) -> None:
        """Prove the staged prefix is in the signed log, then commit it (or fail closed)."""
        cp, note, replay = self.cp, self.cp_note, self.replay
        state, rng = replay.state, replay.range
        if cp is None or note is None or state is None:
            raise VerificationError("nothing verified to commit")
        txn = self._begin()
        if rng.size > cp.size:
            return  # entries beyond the checkpoint stay staged until one covers them
        proof = () if rng.size == cp.size else self._consistency_proof(rng.size, cp, note)
        try:
            verify_prefix(rng.size, rng.root(), cp.size, cp.root, proof)
        except VerificationError as exc:
            served = (
                f"the entries served do not hash to checkpoint {cp.size}'s root"
                if rng.size == cp.size
                else f"the entries up to {rng.size} are not a prefix of checkpoint {cp.size}"
            )
            raise self._fail(ROOT_MISMATCH, f"{served}: {exc}", served=note, proof=proof) from None
        # The checkpoint must also carry a quorum of the policy the entries it covers state
        # (a member whose bundle predates the witness policy learns it here, before commit).
        self._check_witnesses(cp, note)
        txn.commit(state, rng, note, cp.size, cp.root, proof)
        self.txn = None

    def _result(self) -> SyncResult:
        return SyncResult(
            self.range.size,
            self.range.root(),
            self._entries,
            self._signals,
            self.clock() - self._started,
            tuple(self._flagged),
        )
