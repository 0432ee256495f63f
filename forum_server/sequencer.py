"""The single writer: validate, append leaves, sign checkpoints, group commit.

Entries queue up; a group takes all of them (up to ``max_group``), checks each against the
log's rules in order, writes the accepted ones and one checkpoint in a single durable
transaction, and only then answers every caller.  The commit is pipelined: while one
group's transaction is being written (SQLite, off the event loop), the next group is checked
against the state the first leaves, and written once the first has committed; if that write
fails, the group checked on top of it is refused too and nothing of either is acknowledged.
On start the tree and the key state are rebuilt from the stored leaves and checked against
the last stored checkpoint, so the log never signs a checkpoint inconsistent with its last.

Member entries are also checked against the content rules (:func:`forum_client.rules.check_content`)
over the server's view (:mod:`forum_server.view`), whose rows are written in the same
transaction as the leaves; a per-member rate limit (:mod:`forum_server.ratelimit`) is charged
only for entries that pass every other check.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass

from forum_client import entries as e
from forum_client.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from forum_client.entries import Role
from forum_client.envelope import Envelope, SigningKey
from forum_client.errors import (
    REJECT_PERMISSION,
    EntryRejectedError,
    ForumError,
    StoreError,
)
from forum_client.merkle import CompactRange, MerkleTree, leaf_hash
from forum_client.verifier import LogState
from forum_client.wire import Receipt

from .ratelimit import RateLimiter
from .storage import ServerStore, StoredLeaf
from .view import GroupView, ServerView

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    envelope: Envelope
    leaf_bytes: bytes
    leaf_hash: bytes
    allowed: frozenset[type]
    author: str
    future: asyncio.Future[int]


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
    ) -> None:
        self.store = store
        self.log_key = log_key
        self.max_group = max_group
        self.limiter = limiter
        self.view = ServerView(store)
        self.replay_chunk = replay_chunk
        self.tree = MerkleTree()
        self._range = CompactRange.empty()
        self._by_leaf_hash: dict[bytes, int] = {}
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._grown = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.state = self._rebuild()
        self.checkpoint_note = self._latest_note()
        # The pipeline: the state, tree range and entries of the group being written.
        self._spec_state = self.state
        self._spec_range = self._range
        self._in_flight: dict[bytes, _Pending] = {}
        self._writing: _Prepared | None = None
        self._write_task: asyncio.Task[bool] | None = None
        self._last_error: BaseException | None = None

    # ---- start-up ----

    def _rebuild(self) -> LogState:
        """Replay the stored leaves into the key state and tree; bring the view up to date
        (it is normally current already: it is written with the leaves)."""
        state: LogState | None = None
        size = self.store.size()
        view_size = self.store.view_size()
        if view_size > size:
            raise StoreError(f"the view is at {view_size} but the log holds {size} entries")
        group = self.view.group()
        for leaf in self.store.leaves(0, size):
            envelope = Envelope.from_leaf_bytes(leaf.leaf_bytes)
            if state is None:
                state = LogState.from_genesis(envelope)
            else:
                body = state.apply(leaf.index, envelope)
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
            raise StoreError("the log key does not match the one named in genesis")
        return state

    def _latest_note(self) -> bytes:
        latest = self.store.latest_checkpoint()
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

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sequencer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._write_task is not None:  # a transaction under way completes and answers
            with contextlib.suppress(asyncio.CancelledError):
                await self._write_task
            self._write_task = None

    async def append(self, envelope: Envelope, allowed: frozenset[type], author: str) -> Receipt:
        """Append ``envelope`` durably and return its receipt.

        ``allowed`` is the set of body types the calling RPC accepts; ``author`` is the
        member the transport authenticated, who must be the body's member.  An entry already in
        the log (the same bytes resent) returns its original receipt.  Raises
        EntryRejectedError, InvalidInputError or StoreError; nothing is written then.
        """
        leaf_bytes = envelope.leaf_bytes()
        h = leaf_hash(leaf_bytes)
        index = self._by_leaf_hash.get(h)
        if index is None:
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            await self._queue.put(_Pending(envelope, leaf_bytes, h, allowed, author, future))
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
            group = [await self._queue.get()]
            while len(group) < self.max_group and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                prepared = self._prepare(group)
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

    def _prepare(self, group: list[_Pending]) -> _Prepared | None:
        """Check ``group`` against the state after every group already being written;
        answer the rejected entries and the duplicates now (a duplicate of an entry still
        being written is answered when that is)."""
        work = self._spec_state.copy()
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
            StoredLeaf(start + i, item.leaf_bytes, item.leaf_hash)
            for i, item in enumerate(accepted)
        ]
        self.store.plan_view(view.delta)  # here, rather than on the store's thread
        prepared = _Prepared(accepted, leaves, size, note, view, work, new_range)
        self._spec_state = work
        self._spec_range = new_range
        for item in accepted:
            self._in_flight[item.leaf_hash] = item
        self._writing = prepared
        return prepared

    async def _write(self, p: _Prepared) -> bool:
        """Store ``p`` durably and answer its entries; False (all of them failed, and the
        state after the stored log restored) if the store failed."""
        try:
            await asyncio.to_thread(self.store.append, p.leaves, p.size, p.note, p.view.delta)
        except Exception as exc:  # the store failed: nobody is acknowledged
            log.exception("commit of %d entries failed", len(p.accepted))
            self._last_error = exc
            self._reset_pipeline()
            self._fail(p.accepted, exc)
            return False
        for leaf in p.leaves:
            self.tree.append(leaf.leaf_hash)
            self._by_leaf_hash[leaf.leaf_hash] = leaf.index
            self._in_flight.pop(leaf.leaf_hash, None)
        self._range = p.range
        self.state = p.state
        self.checkpoint_note = p.note
        if self._writing is p:
            self._writing = None
        for leaf, item in zip(p.leaves, p.accepted, strict=True):
            if not item.future.done():
                item.future.set_result(leaf.index)
        async with self._grown:
            self._grown.notify_all()
        return True


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


def _chain(source: asyncio.Future[int], target: asyncio.Future[int]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(source.result())
