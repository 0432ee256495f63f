"""The log collects witness cosignatures: after each commit it asks every witness of the
policy the log states (``witness-set`` entries) to cosign the newest checkpoint, and serves
the newest checkpoint that carries a quorum of them.

One *round* takes the sequencer's newest checkpoint and asks all witnesses concurrently
(``POST <url>/add-checkpoint``, c2sp.org/tlog-witness).  A witness that is behind answers
409 with its size; it is sent a consistency proof from that size at once.  A witness that
fails (refused, unreachable, slower than ``witness_timeout_seconds``) is left out of the
next rounds for a backoff that doubles up to ``witness_backoff_max_seconds``.  A round ends
when every witness asked has answered, or ``witness_straggler_seconds`` after the quorum was
reached: a slow or dead witness never blocks submissions (they never wait for a round) and
delays a cosigned checkpoint by at most that.  When the log is idle, the checkpoint is sent
again every ``witness_refresh_seconds`` so its cosignatures stay fresh for members.

Without witnesses (no witness-set entry yet, or quorum 0) the sequencer's checkpoint is
served as it is.

When a round falls short of the quorum, its checkpoint is kept as the *pending* one, with the
cosignatures it did get (:meth:`Cosigner.pending`): ``GetCheckpoint`` serves it beside the
last quorum-cosigned checkpoint, so a member learns at once that the log holds entries no
quorum vouches for, and which witnesses did not cosign them, and fails closed saying so
(instead of waiting for its freshness window to expire).

Over PostgreSQL with several servers only the leader asks the witnesses: it writes what it
serves (cosigned and pending checkpoints, the witnesses' status) to the shared store, and the
other servers serve that (:meth:`Cosigner._follow_store`).  A server promoted after a
failover starts from what the old leader stored and goes on cosigning.  A single server
(SQLite) stores it too: restarted, it serves the last cosigned checkpoint at once, not its
plain one, which members would refuse as unwitnessed until the witnesses answered (or
forever, with too few of them reachable).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from forum_client.checkpoint import parse_unverified
from forum_client.cosignature import (
    Witness,
    WitnessPolicy,
    add_signature_lines,
    cosignature_lines,
    verify_quorum,
)
from forum_client.errors import VerificationError

from .config import ServerConfig

if TYPE_CHECKING:
    from .sequencer import Sequencer

log = logging.getLogger(__name__)


@dataclass
class _WitnessState:
    known_size: int | None = None  # what the witness last told us it holds
    next_try: float = 0.0  # monotonic time before which the witness is not asked
    backoff: float = 0.0
    last_error: str = ""


class Cosigner:
    """Gathers cosignatures for the sequencer's checkpoints; :meth:`checkpoint` is what the
    forum serves."""

    def __init__(self, sequencer: Sequencer, config: ServerConfig) -> None:
        self.sequencer = sequencer
        self.config = config
        self._served: tuple[int, bytes] | None = None  # (size, note with cosignatures)
        # The newest checkpoint a round could not get cosigned by a quorum, with the
        # cosignatures it got, and the witnesses' status then (see the module docstring).
        self._pending: tuple[int, bytes] | None = None
        self._pending_status: dict[str, str] = {}
        self._changed = asyncio.Condition()
        self._witnesses: dict[str, _WitnessState] = {}
        self._task: asyncio.Task[None] | None = None
        self._session: Any = None

    # ---- what the forum serves ----

    @property
    def policy(self) -> WitnessPolicy:
        return self.sequencer.state.witness_policy

    def checkpoint(self) -> tuple[int, bytes]:
        """The newest checkpoint to serve, ``(size, note)``: the sequencer's own while the
        policy names no witnesses, else the newest one cosigned by a quorum (the
        sequencer's plain one until a first quorum is reached: members refuse it)."""
        if not self.policy.enforced:
            return self.sequencer.size, self.sequencer.checkpoint_note
        if self._served is None:
            return self.sequencer.size, self.sequencer.checkpoint_note
        return self._served

    def pending(self) -> tuple[int, bytes, dict[str, str]] | None:
        """The log's newest checkpoint when the last round for it fell short of the quorum
        (and no quorum has cosigned it or a later one since): ``(size, note with the
        cosignatures it got, witness name -> status)``; None when there is none."""
        pending = self._pending
        if not self.policy.enforced or pending is None:
            return None
        if self._served is not None and self._served[0] >= pending[0]:
            return None
        return pending[0], pending[1], dict(self._pending_status)

    async def wait_beyond(
        self, size: int, timeout: float, pending_beyond: int | None = None
    ) -> bool:
        """Wait until :meth:`checkpoint` is larger than ``size`` (or, with
        ``pending_beyond``, until :meth:`pending` is larger than that); False on timeout."""
        if not self.policy.enforced:
            return await self.sequencer.wait_for_growth(size, timeout)

        def news() -> bool:
            if self.checkpoint()[0] > size:
                return True
            pending = self.pending() if pending_beyond is not None else None
            return pending is not None and pending[0] > (pending_beyond or 0)

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(news), timeout)
            except TimeoutError:
                return False
        return True

    def status(self) -> dict[str, str]:
        """Per witness: the size it holds, or the last error (for logs and operators)."""
        return {
            name: s.last_error or f"holds {s.known_size}" for name, s in self._witnesses.items()
        }

    # ---- the rounds ----

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cosigner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        last: bytes | None = None
        sent_at = 0.0
        while True:
            if not self.sequencer.leading:  # several servers: the leader asks the witnesses
                await self._follow_store()
                last, sent_at = None, 0.0
                continue
            policy = self.policy
            note = self.sequencer.checkpoint_note
            due = time.monotonic() - sent_at >= self.config.witness_refresh_seconds
            if not policy.enforced or (note == last and not due):
                await self.sequencer.wait_for_growth(
                    self.sequencer.size, timeout=self._idle_wait(policy)
                )
                continue
            try:
                got = await self.round(policy, note)
            except Exception:  # a bug here must not end cosigning for good
                log.exception("cosigning round failed")
                got = False
                await asyncio.sleep(1.0)
            await self._publish()
            if got:
                last, sent_at = note, time.monotonic()
            else:  # no quorum: wait for the first backoff to expire, or for a new commit
                await self.sequencer.wait_for_growth(
                    self.sequencer.size, timeout=self._idle_wait(policy)
                )

    def _idle_wait(self, policy: WitnessPolicy) -> float:
        if not policy.enforced:
            return 5.0  # a witness-set entry may arrive; re-read the policy now and then
        failing = [s.next_try for s in self._witnesses.values() if s.next_try]
        wait = self.config.witness_refresh_seconds
        if failing:
            wait = min(wait, max(0.05, min(failing) - time.monotonic()))
        return wait

    async def round(self, policy: WitnessPolicy, note: bytes) -> bool:
        """Ask the witnesses to cosign ``note``; serve it if a quorum did.  True if served."""
        cp, _ = parse_unverified(note)
        now = time.monotonic()
        asked = [w for w in policy.witnesses if self._state(w).next_try <= now]
        lines: list[str] = []
        tasks = {asyncio.ensure_future(self._ask(w, cp.size, note)): w for w in asked}
        pending = set(tasks)
        deadline: float | None = None
        try:
            while pending:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                done, pending = await asyncio.wait(
                    pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    break  # stragglers after the quorum: left for the next round
                for task in done:
                    lines += task.result()
                if deadline is None and self._count(policy, note, lines) >= policy.quorum:
                    deadline = time.monotonic() + self.config.witness_straggler_seconds
        finally:  # also when the round is cancelled (stop): no request outlives the session
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        cosigned = add_signature_lines(note, lines)
        if self._count(policy, note, lines) < policy.quorum:
            async with self._changed:
                if self._pending is None or cp.size >= self._pending[0]:
                    self._pending = (cp.size, cosigned)
                    self._pending_status = self.status()
                    self._changed.notify_all()  # follow streams tell their members
            log.warning(
                "checkpoint %d: %d of %d witness cosignatures (%s)",
                cp.size,
                self._count(policy, note, lines),
                policy.quorum,
                "; ".join(f"{k}: {v}" for k, v in self.status().items()),
            )
            return False
        async with self._changed:
            if self._served is None or cp.size >= self._served[0]:
                self._served = (cp.size, cosigned)
            self._changed.notify_all()
        return True

    # ---- several servers (PostgreSQL): the leader publishes, the others serve ----

    async def _publish(self) -> None:
        """The leader stores what it serves: for the other servers (several over PostgreSQL)
        and for itself after a restart."""
        if self._served is None:
            return
        doc = {
            "cosigned": [self._served[0], base64.b64encode(self._served[1]).decode("ascii")],
            "pending": None,
            "status": self.status(),
        }
        pending = self.pending()
        if pending is not None:
            doc["pending"] = [pending[0], base64.b64encode(pending[1]).decode("ascii")]
            doc["status"] = pending[2]
        try:
            await asyncio.to_thread(
                self.sequencer.store.save_witnessed, json.dumps(doc), self._served[0]
            )
        except Exception as exc:  # the store down: members still get it from this server
            log.warning("cannot store the cosigned checkpoint: %s", exc)

    async def _follow_store(self) -> None:
        """A server that does not lead serves the checkpoints the leader stored."""
        await asyncio.sleep(self.config.follow_store_seconds)
        if self.sequencer.shared is not None:
            await self.load_stored()

    async def load_stored(self) -> None:
        """Serve the checkpoints stored last (by the leader, or by this server before it
        restarted): the cosigned one once this server's own copy of the log has caught up
        with it.  Without this a restarted server would serve its plain checkpoint until the
        witnesses answer, and members would refuse it as unwitnessed."""
        try:
            raw = await asyncio.to_thread(self.sequencer.store.witnessed)
        except Exception as exc:
            log.warning("cannot read the cosigned checkpoint: %s", exc)
            return
        if raw is None:
            return
        doc = json.loads(raw)
        size, note = int(doc["cosigned"][0]), base64.b64decode(doc["cosigned"][1])
        async with self._changed:
            if size <= self.sequencer.size and (self._served is None or size >= self._served[0]):
                self._served = (size, note)
                self._changed.notify_all()
            if doc["pending"] is None:
                self._pending, self._pending_status = None, {}
            else:
                self._pending = (int(doc["pending"][0]), base64.b64decode(doc["pending"][1]))
                self._pending_status = {str(k): str(v) for k, v in doc["status"].items()}
                self._changed.notify_all()

    def _count(self, policy: WitnessPolicy, note: bytes, lines: list[str]) -> int:
        cosigned = add_signature_lines(note, lines)
        verdict = verify_quorum(cosigned, policy, now=int(time.time()), max_age=None, skew=300)
        return len(verdict.agreed)

    def _state(self, witness: Witness) -> _WitnessState:
        return self._witnesses.setdefault(witness.name, _WitnessState())

    async def _ask(self, witness: Witness, size: int, note: bytes) -> list[str]:
        """One witness's cosignature lines for ``note`` ([] if it would not give them)."""
        state = self._state(witness)
        try:
            for _attempt in range(2):  # a 409 with the witness's size: resend once from it
                old = state.known_size if state.known_size is not None else 0
                if old > size:
                    raise _Failed(f"holds size {old}, beyond this log's {size}: a fork?")
                status, body, ctype = await self._post(witness, self._request(old, size, note))
                if status == 200:
                    lines = cosignature_lines(body, witness)
                    if not lines:
                        raise _Failed("answered 200 without its cosignature")
                    state.known_size, state.backoff, state.next_try = size, 0.0, 0.0
                    state.last_error = ""
                    return lines
                if status == 409 and ctype.startswith("text/x.tlog.size"):
                    state.known_size = int(body.decode("ascii").strip())
                    continue
                raise _Failed(f"HTTP {status}: {body[:200].decode('utf-8', 'replace').strip()}")
            raise _Failed("kept answering 409")
        except asyncio.CancelledError:
            raise
        except (_Failed, VerificationError, ValueError, OSError, TimeoutError) as exc:
            self._failed(witness, state, str(exc) or type(exc).__name__)
        except Exception as exc:  # aiohttp.ClientError and the like
            self._failed(witness, state, f"{type(exc).__name__}: {exc}")
        return []

    def _failed(self, witness: Witness, state: _WitnessState, why: str) -> None:
        cfg = self.config
        state.backoff = min(cfg.witness_backoff_max_seconds, max(0.5, state.backoff * 2))
        state.next_try = time.monotonic() + state.backoff
        state.known_size = None  # ask again from 0: it answers 409 with its size
        state.last_error = why
        log.warning("witness %s: %s (next try in %.1f s)", witness.name, why, state.backoff)

    def _request(self, old: int, size: int, note: bytes) -> bytes:
        proof = self.sequencer.tree.consistency_proof(old, size) if 0 < old < size else []
        lines = "".join(base64.b64encode(node).decode("ascii") + "\n" for node in proof)
        return f"old {old}\n{lines}\n".encode() + note

    async def _post(self, witness: Witness, body: bytes) -> tuple[int, bytes, str]:
        try:
            import aiohttp  # the 'witness' extra
        except ImportError as exc:  # say which extra, not only that an import failed
            raise _Failed(
                "this forum-server cannot ask witnesses: install the 'witness' extra where it "
                f"runs (pip install 'shared-signal-forum[witness]') ({exc})"
            ) from None
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.witness_timeout_seconds)
            )
        url = witness.url + "/add-checkpoint"
        try:
            async with self._session.post(url, data=body) as resp:
                return resp.status, await resp.read(), resp.headers.get("Content-Type", "")
        except aiohttp.ServerDisconnectedError:  # a kept-alive connection the witness closed
            async with self._session.post(url, data=body) as resp:
                return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


class _Failed(Exception):
    pass


__all__ = ["Cosigner"]
