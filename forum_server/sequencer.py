"""The single writer: validate, append leaves, sign checkpoints, group commit.

Entries queue up; a group takes all of them (up to ``max_group``), checks each against the
log's rules in order, writes the accepted ones and one checkpoint in a single durable
transaction, and only then answers every caller.  The commit is pipelined: while one
group's transaction is being written (SQLite, off the event loop), the next group is checked
against the state the first leaves, and written once the first has committed; if that write
fails, the group checked on top of it is refused too and nothing of either is acknowledged.
On start the tree and the key state are rebuilt from the stored leaves and checked against
the last stored checkpoint, so the log never signs a checkpoint inconsistent with its last.

Over a shared store (PostgreSQL, several servers) only the leader sequences (see
:mod:`forum_server.leadership`); every other server follows: :meth:`Sequencer.catch_up`
reads what the leader committed, replays it into the key state and the tree and checks the
result against the leader's signed checkpoint before serving it, and :meth:`Sequencer.append`
forwards a submission to the leader (:mod:`forum_server.forwarding`).  A server that becomes
leader catches up the same way before it signs anything; a write that fails (the database
restarted, or the leadership moved) is followed by a catch-up, because the commit may have
happened even though its answer was lost.

Member entries are also checked against the content rules (:func:`forum_client.rules.check_content`)
over the server's view (:mod:`forum_server.view`), whose rows are written in the same
transaction as the leaves; a per-member rate limit (:mod:`forum_server.ratelimit`) is charged
only for entries that pass every other check.

Deferred view rows (issue #13; own store only, ``deferred_view_rows`` > 0): a group of
submissions is committed with its leaves and checkpoint but without its view rows, which
wait in memory and are written together, in key order.  Once enough are pending (an eighth
of the view's rows, at least ``deferred_view_rows`` and at most ``deferred_view_max_rows``)
they become a pass: merged, sorted and cut into key ranges (:func:`forum_server.view.key_ranges`)
written one after another, after the following commits (as many as those commits
brought rows, twice over) and while the log is quiet; the last range records the view's new
size.  A pass touches each leaf page of the view's tables about once, so the larger the view,
the larger a pass must be for a row to cost the same: a fixed pass of 400,000 rows made
submissions into a 5M-signal forum 1.8x slower than into a 1M one.  Cut into ranges, a pass
never stops the log for longer than one range takes.  Before a group holding an entry whose
content rules read the view (retraction, opinion, dispute) is checked, the held rows of the
signals those entries name are written ahead of the rest (:meth:`Sequencer._store_signals`),
and the other held rows stay held (writing them all first made a retraction right after a
burst into a 5M forum wait 13 s).  Such a group writes the rows of those signals with its
leaves, in log order, its submissions' too; its other submissions' rows are held back as any
(:meth:`Sequencer._split_view`).  So every check reads a view current for the signals it
names, and no held row is ever written after a later row of its signal.  Everything held is
written at once on stop.  A submission's rules never read the view;
a part of a pass written before the rest changes nothing any check reads.  The random keys
of 10,000 signals dirty a page of each view table per row, so writing them with every
commit cost more than everything else a submission does (docs/benchmarks.md, #13).
Receipts still wait for the durable leaves.  The stored ``view_size`` moves only when
nothing is held, so rows of later entries (a retraction's, and those stored before it) may
be stored past it.  After a crash the start-up replay (:meth:`Sequencer._rebuild`) applies
every entry from ``view_size`` on, in log order: each view change sets its rows to what the
entry says (an upsert, a retraction, a status from the descriptors), so replaying an entry
whose rows are stored already, then the later ones, ends in the same view.  After a write
that failed but may have committed, the same replay runs for the entries the view lags
(:meth:`Sequencer._take_in_store`).  A shared store (PostgreSQL, several servers)
always writes the view with the leaves: another server may take over at any moment.

An entry scoped to a group (issue #10) must come with its author's scope claim
(:mod:`forum_client.scopes`), checked here and stored with the leaf; :attr:`Sequencer.claims`
holds them by index, so the read path can serve the entry redacted to members outside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import Any

from forum_client import entries as e
from forum_client.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from forum_client.entries import Role
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import (
    REJECT_BODY,
    REJECT_PERMISSION,
    EntryRejectedError,
    ForumError,
    StoreError,
    VerificationError,
)
from forum_client.merkle import CompactRange, MerkleTree, leaf_hash
from forum_client.scopes import ScopeClaim, verify_scope_claim
from forum_client.sigcheck import replay_checked
from forum_client.verifier import LogState
from forum_client.wire import Receipt

from . import forwarding
from .ratelimit import RateLimiter
from .storage import (
    OP_DESCRIPTOR,
    OP_SIGNAL,
    ForwardedEntry,
    NotLeaderError,
    ServerStore,
    SharedStore,
    StoredLeaf,
    ViewDelta,
)
from .view import GroupView, ServerView, key_ranges, merge_upserts, row_signals, take_signals

log = logging.getLogger(__name__)
# A leader that finds the store ahead of its tree waits this long for its own commit in
# flight to land in the tree before it concludes another server leads now.
LEADER_CATCH_UP_SECONDS = 1.0
# Deferred view rows (own store only, see the module doc) are written once the log has been
# quiet this long, if no later entry wrote them first.
DEFERRED_VIEW_IDLE_SECONDS = 0.2
# ... and a pass under way goes on with its next key range once the log is quiet this long.
PASS_IDLE_SECONDS = 0.001
# A pass of deferred view rows is at least this share of the rows the view holds (above).
VIEW_PASS_SHARE = 8
# Rows in each key range of a pass: one transaction of its own, ~0.3 s into a 5M forum.
PASS_RANGE_ROWS = 100_000
# Entries whose content rules read the view: it is brought up to date before they are checked.
_READS_VIEW = frozenset(e.PAYLOAD_TYPES[t] for t in (e.Retraction, e.Opinion, e.Dispute))
_UPSERTS = frozenset({OP_SIGNAL, OP_DESCRIPTOR})


@dataclass
class _Pending:
    envelope: Envelope
    leaf_bytes: bytes
    leaf_hash: bytes
    allowed: frozenset[type]
    author: str
    future: asyncio.Future[int]
    scope_signature: bytes = b""
    claim: ScopeClaim | None = None  # set by _prepare for an entry scoped to a group


class Sequencer:
    """Owns the log: the in-memory tree, the key state and the store's write path."""

    def __init__(
        self,
        store: ServerStore,
        log_key: SigningKey,
        *,
        max_group: int = 256,
        limiter: RateLimiter | None = None,
        replay_chunk: int = 100_000,
        max_clock_skew_seconds: float = 24 * 3600.0,
        clock: Callable[[], float] = time.time,
        deferred_view_rows: int = 0,
        deferred_view_max_rows: int = 0,
    ) -> None:
        self.store = store
        self.max_clock_skew_ms = int(max_clock_skew_seconds * 1000)
        self.clock = clock
        self.log_key = log_key
        self.max_group = max_group
        self.limiter = limiter
        self.view = ServerView(store)
        self.replay_chunk = replay_chunk
        self.tree = MerkleTree()
        self._range = CompactRange.empty()
        self._by_leaf_hash: dict[bytes, int] = {}
        self.claims: dict[int, ScopeClaim] = {}  # index -> scope claim of a scoped entry
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._grown = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._forward_task: asyncio.Task[None] | None = None
        self._catching_up = asyncio.Lock()
        # Called after each group commit with (entries, seconds the write took): metrics.
        self.on_commit: Callable[[int, float], None] | None = None
        self.shared: SharedStore | None = (
            store if hasattr(store, "try_lead") else None  # type: ignore[assignment]
        )
        # A store of its own: this server is the writer.  A shared one: leadership decides.
        self.leading = self.shared is None
        # Submissions' view rows held back and written together (own store only): the rows,
        # how many, and the log size they bring the stored view to.
        self.deferred_view_rows = deferred_view_rows if self.shared is None else 0
        self.deferred_view_max_rows = max(deferred_view_max_rows, self.deferred_view_rows)
        self._deferred = ViewDelta()
        self._deferred_rows = 0
        self._deferred_size = 0
        # The pass under way: its key ranges not yet written, and the log size the last
        # brings the stored view to.
        self._pass: list[ViewDelta] = []
        self._pass_size = 0
        self._view_rows = 0  # rows of the stored view, about (a pass grows with it)
        self._view_task: asyncio.Future[None] | None = None  # the view write under way
        self._view_failures = 0  # writes of them that failed in a row
        self.forward_timeout = 30.0  # seconds a forwarded submission waits for the leader
        self.forward_poll = 0.01  # seconds between looks at a forwarded submission's outcome
        latest = store.latest_checkpoint()
        self.state = self._rebuild(latest)
        self.checkpoint_note = self._latest_note(latest)
        if self.deferred_view_rows:
            self._view_rows = 2 * store.signal_count()  # a descriptor or more per signal
        self._resync = False
        # The pipeline: the state, tree range and entries of the group being written.
        self._spec_state = self.state
        self._spec_range = self._range
        self._in_flight: dict[bytes, _Pending] = {}
        self._writing: _Prepared | None = None
        self._write_task: asyncio.Task[bool] | None = None
        self._last_error: BaseException | None = None

    # ---- start-up ----

    def _rebuild(self, latest: tuple[int, bytes] | None) -> LogState:
        """Replay the stored leaves into the key state and tree; bring the view up to date
        (it is normally current already: it is written with the leaves)."""
        state: LogState | None = None
        size = self.store.size()
        view_size = self.store.view_size()
        if self.shared is not None:
            # Another server may be appending: read up to the checkpoint read first.  Its
            # view is written with the leaves in one transaction, so it is never behind.
            size = view_size = latest[0] if latest is not None else 0
        if view_size > size:
            raise StoreError(f"the view is at {view_size} but the log holds {size} entries")
        group = self.view.group()
        self.claims = dict(self.store.scope_claims())
        stored = (
            (x.index, Envelope.from_leaf_bytes(x.leaf_bytes), x) for x in self.store.leaves(0, size)
        )
        # Signatures checked on worker threads while the entries before them are applied.
        for state, body, leaf in replay_checked(stored):
            if body is not None:
                scope = getattr(body, "scope", "")
                claim = self.claims.get(leaf.index)
                if scope != (claim.group_id if claim is not None else ""):
                    raise StoreError(
                        f"entry {leaf.index} is scoped to {scope!r} but its stored scope claim "
                        f"names {claim.group_id if claim else None!r}"
                    )
                if leaf.index >= view_size:
                    group.apply(state, body, leaf.index)
                    if len(group.delta) >= self.replay_chunk:
                        self.store.write_view(group.delta, leaf.index + 1)
                        group = self.view.group()
            self._add_leaf(leaf.index, leaf.leaf_hash)
        if state is None:
            raise StoreError(f"{self.store}: the log is empty (run forum-admin init)")
        if view_size < size:
            log.info("view replayed from entry %d to %d", view_size, size)
            self.store.write_view(group.delta, size)
        if self.log_key.public_bytes != state.log_public_key:
            raise StoreError(
                f"{self.store!r} holds the log of another forum ({state.origin}): its genesis "
                "names a different log key than this server's; refusing to serve it"
            )
        return state

    def _latest_note(self, latest: tuple[int, bytes] | None) -> bytes:
        if latest is None or latest[0] != self.tree.size:
            raise StoreError("stored leaves and the last checkpoint disagree: refusing to start")
        cp = verify_checkpoint(
            latest[1],
            origin=self.state.origin,
            name=self.state.log_key_name,
            public_key=self.log_key.public_bytes,
        )
        if cp.root != self.tree.root():
            raise StoreError("the rebuilt tree does not match the last signed checkpoint")
        return latest[1]

    def _add_leaf(self, index: int, h: bytes) -> None:
        self.tree.append(h)
        self._range.append(h)
        self._by_leaf_hash[h] = index

    # ---- running ----

    @property
    def size(self) -> int:
        return self.tree.size

    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def deferred_rows(self) -> int:
        """Submissions' view rows held back, not yet in the stored view."""
        return self._deferred_rows + sum(map(len, self._pass))

    def start(self) -> None:
        if self._task is None and self.leading:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name="sequencer")
            if self.shared is not None:
                self._forward_task = loop.create_task(self._take_forwarded(), name="forwarded")

    async def stop(self) -> None:
        for task in (self._task, self._forward_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._forward_task = None
        if self._write_task is not None:  # a transaction under way completes and answers
            with contextlib.suppress(asyncio.CancelledError):
                await self._write_task
            self._write_task = None
        if self._view_task is not None:  # a view write under way completes first
            with contextlib.suppress(StoreError):
                await self._view_task
        if self._holding():  # else the next start replays them from the leaves
            with contextlib.suppress(StoreError):
                await self._store_view()
        while not self._queue.empty():  # queued but never checked: the caller may retry
            self._fail([self._queue.get_nowait()], StoreError("this server stopped sequencing"))
        self._reset_pipeline()

    # ---- several servers over a shared store ----

    async def promote(self, epoch: int) -> None:
        """Become the writer of a shared store under leadership ``epoch``: catch up with
        everything committed before, check it against the last signed checkpoint, then
        sequence.  Raises StoreError (and stays a follower) if the stored log does not
        verify."""
        assert self.shared is not None
        self.shared.epoch = epoch
        self._last_error = None
        await self.catch_up()
        self._reset_pipeline()
        self._resync = False
        self.leading = True
        self.start()
        log.info("leading (epoch %d) at log size %d", epoch, self.size)

    async def demote(self) -> None:
        """Stop sequencing (the leadership ended); keep serving reads and forwarding."""
        if not self.leading:
            return
        self.leading = False
        await self.stop()
        if self.shared is not None:
            self.shared.epoch = None
        log.warning("no longer leading at log size %d", self.size)

    @property
    def lost_leadership(self) -> bool:
        """True once a write failed because another server took the leadership over."""
        return isinstance(self._last_error, NotLeaderError)

    async def catch_up(self) -> int:
        """Take in what another server committed since our tree's size; return how many
        entries.  Every entry is replayed through the key state and the new tree is checked
        against the signed checkpoint over it before any of it is served.  Raises
        StoreError if the store and the signed checkpoint disagree."""
        async with self._catching_up:
            return await self._catch_up()

    async def _catch_up(self) -> int:
        start = self.tree.size
        state = self.state.copy()
        new_range = self._range.copy()
        latest = await asyncio.to_thread(self.store.latest_checkpoint)
        if latest is None or latest[0] <= start:
            return 0
        size, note = latest
        leaves = await asyncio.to_thread(lambda: list(self.store.leaves(start, size)))
        claims = await asyncio.to_thread(lambda: dict(self.store.scope_claims(start)))
        if self.tree.size != start:  # another catch-up (GetStatus, the follower loop) won
            return 0
        if [x.index for x in leaves] != list(range(start, size)):
            raise StoreError(f"the store holds a checkpoint at {size} but not entries {start}..")
        for leaf in leaves:
            if leaf_hash(leaf.leaf_bytes) != leaf.leaf_hash:
                raise StoreError(f"stored entry {leaf.index} does not match its leaf hash")
            try:
                state.apply(leaf.index, Envelope.from_leaf_bytes(leaf.leaf_bytes))
            except ForumError as exc:
                raise StoreError(f"stored entry {leaf.index} does not verify: {exc}") from exc
            new_range.append(leaf.leaf_hash)
        cp = verify_checkpoint(
            note, origin=state.origin, name=state.log_key_name, public_key=self.log_key.public_bytes
        )
        if cp.size != size or cp.root != new_range.root():
            raise StoreError(f"the stored log does not match the signed checkpoint at {size}")
        if self.tree.size != start:  # the leader wrote meanwhile: its state is the newer
            return 0
        for leaf in leaves:
            self.tree.append(leaf.leaf_hash)
            self._by_leaf_hash[leaf.leaf_hash] = leaf.index
        self.claims.update((i, c) for i, c in claims.items() if i < size)
        self._range = new_range
        self.state = state
        self.checkpoint_note = note
        if not self.leading:
            self._reset_pipeline()
        async with self._grown:
            self._grown.notify_all()
        return len(leaves)

    async def refresh(self) -> None:
        """On a follower, take in what the leader committed before answering a read, so a
        member that reads after its own write (or reads a second server after a first)
        never sees the log older than a checkpoint already handed out.  A leader is current
        unless its leadership ended without its knowing yet (another server took over while
        its lease connection was gone, e.g. across a PostgreSQL restart; it finds out at its
        next renewal): when the store holds more than its tree, and its own commit in flight
        does not explain it, it answers nothing.  Raises StoreError (the call is answered
        UNAVAILABLE, and the client tries again, maybe on another server) when the store
        cannot be read or this server is behind it: an answer from an older state could show
        a member the log going backwards (a rollback, or a proof refused)."""
        if self.shared is None:
            return
        if not self.leading:
            await self.catch_up()
            return
        latest = await asyncio.to_thread(self.store.latest_checkpoint)
        if latest is None or latest[0] <= self.tree.size:
            return
        if not await self.wait_for_growth(latest[0] - 1, timeout=LEADER_CATCH_UP_SECONDS):
            raise StoreError(
                f"this server's log ({self.tree.size}) is behind the stored one ({latest[0]}): "
                "another server sequences now"
            )

    async def _forward(
        self, envelope: Envelope, allowed: frozenset[type], author: str, scope_signature: bytes
    ) -> int:
        assert self.shared is not None
        shared = self.shared
        ticket = await asyncio.to_thread(
            shared.forward,
            envelope.leaf_bytes(),
            forwarding.bodies_name(allowed),
            author,
            scope_signature,
        )
        deadline = time.monotonic() + self.forward_timeout
        while time.monotonic() < deadline:
            outcome = await asyncio.to_thread(shared.forwarded_outcome, ticket)
            if outcome is not None:
                index, error = outcome
                if error is not None:
                    raise forwarding.error_from_json(error)
                assert index is not None
                while self.tree.size <= index and time.monotonic() < deadline:
                    grown = await self.wait_for_growth(index, timeout=self.forward_poll * 10)
                    if not grown and not self.leading:  # a leader's tree grows by its writes
                        await self.catch_up()
                if self.tree.size > index:
                    return index
                break
            await asyncio.sleep(self.forward_poll)
        raise StoreError(f"no leader sequenced the entry within {self.forward_timeout:.0f} s")

    async def _take_forwarded(self) -> None:
        """The leader's side: sequence what the other servers forwarded, answer each."""
        assert self.shared is not None
        shared = self.shared
        after = 0
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    taken = await asyncio.to_thread(shared.take_forwarded, after)
                except StoreError as exc:
                    log.warning("cannot read forwarded entries: %s", exc)
                    taken = []
                for item in taken:
                    after = max(after, item.ticket)
                    task = asyncio.get_running_loop().create_task(self._answer_forwarded(item))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                if not taken:
                    await asyncio.sleep(self.forward_poll)
        finally:
            # Stepping down: the entries not answered yet stay in the table for the next
            # leader (cancelled, not dropped while pending with nothing holding them).
            for task in pending:
                task.cancel()

    async def _answer_forwarded(self, item: ForwardedEntry) -> None:
        assert self.shared is not None
        index: int | None = None
        error: dict[str, Any] | None = None
        try:
            envelope = Envelope.from_leaf_bytes(item.leaf_bytes)
            allowed = forwarding.BODIES[item.bodies]
            index = (await self.append(envelope, allowed, item.author, item.scope_signature)).index
        except ForumError as exc:
            if isinstance(exc, StoreError):
                return  # not answered: the next leader (or this one, later) takes it again
            error = forwarding.error_to_json(exc)
        except Exception as exc:
            error = forwarding.error_to_json(exc)
        with contextlib.suppress(StoreError):  # unanswered: taken again by the next leader
            await asyncio.to_thread(self.shared.finish_forwarded, item.ticket, index, error)

    async def append(
        self,
        envelope: Envelope,
        allowed: frozenset[type],
        author: str,
        scope_signature: bytes = b"",
    ) -> Receipt:
        """Append ``envelope`` durably and return its receipt.

        ``allowed`` is the set of body types the calling RPC accepts; ``author`` is the
        member the transport authenticated, who must be the body's member;
        ``scope_signature`` the author's scope claim signature, required exactly when the
        entry is scoped to a group.  An entry already in the log (the same bytes resent)
        returns its original receipt.  Raises EntryRejectedError, InvalidInputError or
        StoreError; nothing is written then.
        """
        leaf_bytes = envelope.leaf_bytes()
        h = leaf_hash(leaf_bytes)
        index = self._by_leaf_hash.get(h)
        if index is None and not self.leading:
            index = await self._forward(envelope, allowed, author, scope_signature)
        elif index is None:
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            await self._queue.put(
                _Pending(envelope, leaf_bytes, h, allowed, author, future, scope_signature)
            )
            index = await future
        return self.receipt(index)

    def receipt(self, index: int) -> Receipt:
        size = self.tree.size
        return Receipt(
            index,
            self.tree.leaf_hash_at(index),
            size,
            self.checkpoint_note,
            tuple(self.tree.inclusion_proof(index, size)),
        )

    async def wait_for_growth(self, beyond: int, timeout: float) -> bool:
        """Wait until the log is larger than ``beyond``; False on timeout."""
        async with self._grown:
            try:
                await asyncio.wait_for(
                    self._grown.wait_for(lambda: self.tree.size > beyond), timeout
                )
            except TimeoutError:
                return False
        return True

    async def _run(self) -> None:
        # Pipelined group commit: while one group's transaction is being written (on a
        # worker thread: SQLite releases the GIL), the next group is checked against the
        # state that group leaves; it is written only once that one has committed, so
        # writes stay in log order and nothing is acknowledged before it is durable.
        writing: asyncio.Task[bool] | None = None
        while True:
            holding = self._holding() or (self.deferred_view_rows and writing is not None)
            if holding and self._queue.empty():
                # Quiet for a moment: the deferred view rows are written meanwhile, a key
                # range at a time (after a failure to write them, a moment twice as long each
                # time, up to ~50 s); a pass under way goes on at once.
                quiet = DEFERRED_VIEW_IDLE_SECONDS * 2 ** min(self._view_failures, 8)
                if self._pass and not self._view_failures:
                    quiet = PASS_IDLE_SECONDS
                try:
                    first = await asyncio.wait_for(self._queue.get(), quiet)
                except TimeoutError:
                    if writing is not None:
                        await writing
                        writing = None
                    if not self._pass:
                        await self._start_pass()
                    await self._write_ranges(1)
                    continue
            else:
                first = await self._queue.get()
            group = [first]
            if writing is not None and writing.done():
                writing = None  # answered (or failed) by _write already; see _resync below
            if self._resync and writing is None:
                # The last write failed, but it may have committed: take in what the store
                # holds before checking anything against it.
                try:
                    await self._take_in_store()
                except ForumError as exc:
                    self._fail(group, exc)
                    continue
            while len(group) < self.max_group and not self._queue.empty():
                group.append(self._queue.get_nowait())
            current: frozenset[tuple[str, str]] = frozenset()
            if (
                self.deferred_view_rows
                and (self._holding() or writing is not None)
                and any(item.envelope.payload_type in _READS_VIEW for item in group)
            ):
                # Its content rules read the view: store the held rows of the signals they
                # name first (the rest stay held).
                try:
                    if writing is not None:
                        await writing
                        writing = None
                    if self._resync:
                        await self._take_in_store()
                    current = _named_signals(group)
                    await self._store_signals(current)
                except ForumError as exc:
                    self._fail(group, exc)
                    continue
            try:
                prepared = self._prepare(group, current)
            except StoreError as exc:  # the view could not be read: the database is down
                log.error("checking %d entries failed: %s", len(group), exc)
                prepared = None
                self._fail(group, exc)
            except Exception as exc:  # pragma: no cover - a bug: nobody is acknowledged
                log.exception("checking %d entries failed", len(group))
                prepared = None
                self._fail(group, exc)
            if writing is not None:
                ok = await writing
                writing = None
                if prepared is not None:
                    if ok:
                        # The group under it is stored now: read the store, not its overlay.
                        prepared.view.base = self.view
                    else:  # checked against a state that never became durable
                        self._reset_pipeline()
                        self._fail(prepared.accepted, self._last_error)
                        prepared = None
            if prepared is not None:
                writing = self._write_task = asyncio.get_running_loop().create_task(
                    self._write(prepared)
                )

    async def _take_in_store(self) -> None:
        """After a failed write: take in what the store holds (it may have committed), and
        bring the stored view up to it."""
        await self.catch_up()
        self._reset_pipeline()  # nothing is in flight: check the next group on what is stored
        if self.deferred_view_rows:
            self._deferred, self._deferred_rows, self._deferred_size = ViewDelta(), 0, 0
            self._pass = []  # ranges already written are written again: upserts, in log order
            await asyncio.to_thread(self._replay_view)
        self._resync = False

    def _replay_view(self) -> None:
        """Write the view of the stored entries it lags behind (own store), in log order:
        stored rows of later entries (a retraction's, and the held rows stored before it)
        are overwritten by the replay of the entries before them, then written again."""
        start, size = self.store.view_size(), self.tree.size
        if start >= size:
            return
        group = self.view.group()
        for leaf in self.store.leaves(start, size):
            envelope = Envelope.from_leaf_bytes(leaf.leaf_bytes)
            body = e.decode(envelope.payload_type, envelope.body)
            group.apply(self.state, body, leaf.index)
        self.store.write_view(group.delta, size)

    def _holding(self) -> bool:
        """Whether view rows are held back (deferred, or in a pass not yet all written)."""
        return bool(self._deferred_size or self._pass)

    def _pass_rows(self) -> int:
        """Held rows that make a pass: a share of the view, within the configured bounds."""
        share = self._view_rows // VIEW_PASS_SHARE
        return max(self.deferred_view_rows, min(self.deferred_view_max_rows, share))

    async def _start_pass(self) -> None:
        """Make the held rows a pass (with what is left of one under way, older: merged
        first), in key ranges."""
        if not self._deferred_size:
            return
        held = ViewDelta([run for part in self._pass for run in part.runs] + self._deferred.runs)
        merged = await asyncio.to_thread(merge_upserts, held)
        ranges = key_ranges(merged, PASS_RANGE_ROWS)
        self._pass, self._pass_size = ranges, self._deferred_size
        self._view_rows += self._deferred_rows
        self._deferred, self._deferred_rows, self._deferred_size = ViewDelta(), 0, 0

    async def _write_ranges(self, rows: int) -> None:
        """Write key ranges of the pass under way, one at least, until ``rows`` rows are
        written; on failure the range stays, and is written again later."""
        written = 0
        try:
            while self._pass and (written == 0 or written < rows):
                part, last = self._pass[0], len(self._pass) == 1
                await self._write_view(part, self._pass_size if last else None)
                self._pass.pop(0)
                written += len(part)
        except StoreError as exc:  # kept, and tried again later
            self._view_failures += 1
            log.error("writing %d held-back view rows failed: %s", self.deferred_rows, exc)
            return
        self._view_failures = 0

    async def _store_view(self) -> None:
        """Write every held view row (a pass under way too) in one transaction, in key
        order, with the log size they bring the view to; on failure they stay held."""
        if not self._holding():
            return
        size = self._deferred_size or self._pass_size
        newer = await asyncio.to_thread(merge_upserts, self._deferred)  # the pass is merged
        # The pass's ranges, then the newer rows: a key in both ends as if all were merged
        # (a signal's first index stands, a descriptor's last row replaces the earlier).
        runs = [run for part in self._pass for run in part.runs] + newer.runs
        await self._write_view(ViewDelta(runs, in_key_order=True), size)
        self._view_rows += self._deferred_rows
        self._pass, self._deferred, self._deferred_rows, self._deferred_size = [], ViewDelta(), 0, 0
        self._view_failures = 0

    async def _store_signals(self, keys: Set[tuple[str, str]]) -> None:
        """Write the held view rows of the signals ``keys`` names, ahead of the other held
        rows, which stay held; on failure all of them stay held.  The stored view is then
        current for those signals: an entry about them (a retraction, an opinion, a
        dispute) is checked against it, and its own rows written after them.  Those rows
        are past the recorded view size, which moves only once nothing is held any more; a
        replay from it (after a crash) replays every entry since, retractions included, in
        log order, which ends in the same view.  It costs a binary search of each of the
        pass's key ranges and a scan of the rows held since (a retraction right after a
        burst into a 5M forum is answered in 0.2 s; writing every held row first, 12.7 s)."""
        if not keys or not self._holding():
            return
        older, newer, rest = await asyncio.to_thread(self._split_held, keys)
        taken = ViewDelta([run for part, _ in older for run in part.runs] + newer.runs, True)
        left = [part for _, part in older if part.runs]
        remaining = bool(left or rest.runs)
        size = None if remaining else self._deferred_size or self._pass_size
        if taken.runs or size is not None:
            await self._write_view(taken, size)
        self._view_rows += self._deferred_rows - len(rest)  # about: these are not merged
        self._pass, self._deferred, self._deferred_rows = left, rest, len(rest)
        if not remaining:
            self._deferred_size = self._pass_size = 0
        elif not rest.runs and self._deferred_size:  # the pass left brings the view there
            self._pass_size, self._deferred_size = self._deferred_size, 0

    def _split_held(
        self, keys: Set[tuple[str, str]]
    ) -> tuple[list[tuple[ViewDelta, ViewDelta]], ViewDelta, ViewDelta]:
        """The held rows of ``keys`` and the rest: per range of the pass under way, then
        the newer rows, merged (each key once) and the rest of them.  Changes nothing."""
        older = [take_signals(part, keys) for part in self._pass]
        newer, rest = take_signals(self._deferred, keys)
        return older, merge_upserts(newer), rest

    async def _write_view(self, delta: ViewDelta, size: int | None) -> None:
        """``store.write_view`` on a worker thread, completed even if this task is cancelled
        (:meth:`stop` waits for it): held rows written later can never land before it."""
        self._view_task = asyncio.ensure_future(
            asyncio.to_thread(self.store.write_view, delta, size)
        )
        await asyncio.shield(self._view_task)

    def _reset_pipeline(self) -> None:
        """Forget every group not yet stored: the next is checked against the stored log."""
        self._spec_state = self.state
        self._spec_range = self._range
        self._in_flight.clear()
        self._writing = None

    def _fail(self, items: list[_Pending], exc: BaseException | None) -> None:
        error = exc if isinstance(exc, ForumError) else StoreError(str(exc))
        for item in items:
            if not item.future.done():
                item.future.set_exception(error)

    def _check_created(self, created_ms: int, now_ms: int) -> None:
        """A member entry's creation time must be within ``max_clock_skew_seconds`` of the
        server's clock (so no entry says it was made in 1677 or in ten years)."""
        skew = created_ms - now_ms
        if abs(skew) > self.max_clock_skew_ms:
            when = "ahead of" if skew > 0 else "behind"
            raise EntryRejectedError(
                REJECT_BODY,
                "entry.body.header.created_unix_ms",
                f"created_unix_ms {created_ms} is {abs(skew) / 3_600_000:.1f} h {when} the "
                f"server's clock; entries must be made within "
                f"{self.max_clock_skew_ms / 3_600_000:g} h of it (check this machine's clock)",
            )

    def _prepare(
        self, group: list[_Pending], current: frozenset[tuple[str, str]] = frozenset()
    ) -> _Prepared | None:
        """Check ``group`` against the state after every group already being written;
        answer the rejected entries and the duplicates now (a duplicate of an entry still
        being written is answered when that is).  ``current``: the signals whose held view
        rows were just stored (:meth:`_store_signals`)."""
        work = self._spec_state.copy()
        now_ms = int(self.clock() * 1000)
        view = self.view.group() if self._writing is None else self._writing.view.group()
        accepted: list[_Pending] = []
        seen: dict[bytes, _Pending] = {}
        duplicates: list[tuple[_Pending, _Pending | int]] = []
        for item in group:
            earlier: _Pending | int | None = self._by_leaf_hash.get(item.leaf_hash)
            if earlier is None:
                earlier = seen.get(item.leaf_hash) or self._in_flight.get(item.leaf_hash)
            if earlier is not None:
                duplicates.append((item, earlier))
                continue
            index = work.size
            try:
                body = work.check(index, item.envelope)
                if type(body) not in item.allowed:
                    raise EntryRejectedError(
                        REJECT_PERMISSION,
                        "entry.payload_type",
                        f"{item.envelope.payload_type} cannot be appended through this call",
                    )
                if body.header.member_id != item.author:
                    raise EntryRejectedError(
                        REJECT_PERMISSION,
                        "entry.body.header.member_id",
                        f"signed by {body.header.member_id} but sent by {item.author}",
                    )
                item.claim = _scope_claim(work, item, body, index)
                if item.allowed == e.MEMBER_BODIES:  # operator entries carry their own expiry
                    self._check_created(body.header.created_unix_ms, now_ms)
                view.check(work, body, index)
                if self.limiter is not None and work.members[item.author].role is not Role.OPERATOR:
                    signals = len(body.signals) if isinstance(body, e.Submission) else 0
                    self.limiter.charge(item.author, signals=signals, now=time.monotonic())
                work.advance(index, item.envelope, body)
                view.apply(work, body, index)
            except ForumError as exc:
                item.future.set_exception(exc)
                continue
            accepted.append(item)
            seen[item.leaf_hash] = item
        for item, original in duplicates:
            if isinstance(original, int):
                item.future.set_result(original)
            else:
                original.future.add_done_callback(functools.partial(_chain, target=item.future))
        if not accepted:
            return None
        start = self._spec_range.size
        new_range = self._spec_range.copy()
        new_range.extend(item.leaf_hash for item in accepted)
        size = start + len(accepted)
        note = sign_checkpoint(
            Checkpoint(work.origin, size, new_range.root()), work.log_key_name, self.log_key
        )
        leaves = [
            StoredLeaf(start + i, item.leaf_bytes, item.leaf_hash, item.claim)
            for i, item in enumerate(accepted)
        ]
        if not self.deferred_view_rows:  # else its rows are held back, or few
            self.store.plan_view(view.delta)  # here, rather than on the store's thread
        prepared = _Prepared(accepted, leaves, size, note, view, work, new_range, current)
        self._spec_state = work
        self._spec_range = new_range
        for item in accepted:
            self._in_flight[item.leaf_hash] = item
        self._writing = prepared
        return prepared

    async def _write(self, p: _Prepared) -> bool:
        """Store ``p`` durably and answer its entries; False (all of them failed, and the
        state after the stored log restored) if the store failed."""
        started = time.perf_counter()
        now, later = self._split_view(p.view.delta)
        try:
            # The rows it writes with its leaves are of signals its retractions and opinions
            # name, whose held (older) rows were stored before it was checked (_run): none
            # of those may be written after these.
            if later is not None and self._holding() and not row_signals(now) <= p.current:
                raise AssertionError("view rows written before held rows of their signals")
            # The view's size moves with the leaves unless rows are held (now or after).
            held = later is not None and (self._holding() or bool(later.runs))
            await asyncio.to_thread(
                functools.partial(self.store.append, records_view_size=not held),
                p.leaves,
                p.size,
                p.note,
                now,
            )
        except Exception as exc:  # the store failed: nobody is acknowledged
            if isinstance(exc, StoreError):  # the database is down or restarting: one line
                log.error("commit of %d entries failed: %s", len(p.accepted), exc)
            else:
                log.exception("commit of %d entries failed", len(p.accepted))
            self._last_error = exc
            self._resync = True
            self._reset_pipeline()
            self._fail(p.accepted, exc)
            return False
        for leaf in p.leaves:
            self.tree.append(leaf.leaf_hash)
            self._by_leaf_hash[leaf.leaf_hash] = leaf.index
            self._in_flight.pop(leaf.leaf_hash, None)
            if leaf.claim is not None:
                self.claims[leaf.index] = leaf.claim
        self._range = p.range
        self.state = p.state
        self.checkpoint_note = p.note
        if self.on_commit is not None:
            self.on_commit(len(p.leaves), time.perf_counter() - started)
        if self._writing is p:
            self._writing = None
        for leaf, item in zip(p.leaves, p.accepted, strict=True):
            if not item.future.done():
                item.future.set_result(leaf.index)
        async with self._grown:
            self._grown.notify_all()
        if held and later is not None:
            await self._hold(later, p.size)
        return True

    def _split_view(self, delta: ViewDelta) -> tuple[ViewDelta, ViewDelta | None]:
        """A group's view rows written with its leaves, and those held back (None: this
        server holds none back).  Held back: submissions' upserts, except those of a signal
        another row of the group retracts or gives an opinion on (those are written with
        that row, in log order)."""
        if not self.deferred_view_rows:
            return delta, None
        now = row_signals(ViewDelta([run for run in delta.runs if run[0] not in _UPSERTS]))
        if not now:
            return ViewDelta(), delta
        return take_signals(delta, now)

    async def _hold(self, rows: ViewDelta, size: int) -> None:
        """After the commit that brought the log to ``size``: hold ``rows`` back, with the
        rows held already, until written, which brings the stored view to ``size``; make a
        pass of them once there are enough, and write ranges of the pass under way."""
        if rows.runs or self._deferred_size:
            for op, run in rows.runs:
                self._deferred.add(op, list(run))
            self._deferred_rows += len(rows)
            self._deferred_size = size
        else:  # nothing newer than the pass under way: its last range brings it here
            self._pass_size = size
        if not rows.runs:
            return
        if self._deferred_rows >= self._pass_rows():
            await self._start_pass()
        if self._pass:  # twice this group's rows: a pass ends before the next is due
            await self._write_ranges(2 * len(rows))


@dataclass
class _Prepared:
    """A checked group, ready to be written: its leaves, checkpoint, view rows and the
    state after it."""

    accepted: list[_Pending]
    leaves: list[StoredLeaf]
    size: int
    note: bytes
    view: GroupView
    state: LogState
    range: CompactRange
    # Signals whose held view rows were stored before the group was checked.
    current: frozenset[tuple[str, str]] = frozenset()


def _scope_claim(state: LogState, item: _Pending, body: e.Body, index: int) -> ScopeClaim | None:
    """The verified scope claim of an entry scoped to a group, None for a forum-wide one."""
    scope = body.scope if isinstance(body, e.MEMBER_BODY_TYPES) else ""
    if not scope:
        if item.scope_signature:
            raise EntryRejectedError(
                REJECT_BODY,
                "scope_claim_signature",
                "only an entry scoped to a group carries a scope claim",
                index,
            )
        return None
    claim = ScopeClaim(scope, item.envelope.key_id, item.scope_signature)
    try:
        verify_scope_claim(
            state.keys[item.envelope.key_id].public_key, state.origin, claim, item.leaf_hash
        )
    except VerificationError as exc:
        raise EntryRejectedError(
            REJECT_BODY,
            "scope_claim_signature",
            f"an entry shared with group {scope} needs its author's scope claim: {exc}",
            index,
        ) from None
    return claim


def _named_signals(group: list[_Pending]) -> frozenset[tuple[str, str]]:
    """The signals that ``group``'s entries whose content rules read the view name (an
    entry that does not parse names none: its check refuses it)."""
    keys: set[tuple[str, str]] = set()
    for item in group:
        if item.envelope.payload_type not in _READS_VIEW:
            continue
        try:
            body = e.decode(item.envelope.payload_type, item.envelope.body)
        except ForumError:
            continue
        if isinstance(body, e.Retraction):
            keys.update((ref.type, ref.value) for ref in body.signals)
        elif isinstance(body, (e.Opinion, e.Dispute)):
            keys.add((body.signal.type, body.signal.value))
    return frozenset(keys)


def _chain(source: asyncio.Future[int], target: asyncio.Future[int]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(source.result())
