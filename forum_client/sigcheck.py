"""Ed25519 signature checks that run ahead of the in-order apply, on worker threads.

A sync of small entries (one signal each) spends most of its time on signatures, and
``cryptography``'s Ed25519 verification releases the GIL, so threads check several at once
while the sync thread decodes, applies and stores the entries before them::

    >>> from forum_client.envelope import Envelope, SigningKey
    >>> key = SigningKey.generate()
    >>> envs = [key.sign("forum.v1.Test", b"body %d" % i) for i in range(100)]
    >>> envs[7] = Envelope("forum.v1.Test", b"forged", key.key_id, envs[7].signature)
    >>> with SignatureChecker(threads=2) as checker:
    ...     checks = checker.submit([(i, env, key.public_bytes) for i, env in enumerate(envs)])
    ...     checks.verified_key(0, envs[0]) == key.public_bytes, checks.verified_key(7, envs[7])
    (True, None)

What it promises, and what it does not. :meth:`PendingChecks.verified_key` returns the public
key under which the envelope submitted for ``index`` (that very object, the first one given
for the index) verified exactly as :meth:`Envelope.verify` verifies it (canonical,
not-small-order key; the signature carrying the key's SHA-256 as its id; 64 bytes, over the
DSSE encoding), or None when it did not verify or was not asked.
It decides nothing else. Which key an entry must be signed with, whether that key is active
at the index, the body and the content rules stay with :meth:`LogState.check`, in log order,
which skips its own Ed25519 call only when the pre-checked key is exactly the key it
resolved. An entry with no pre-check or a failed one is verified again inline, so a failure
is reported the same way and at the same index as without this module: nothing about
fail-closed changes.

:func:`replay_checked` does the same for a replay of a whole stored log (a server's
start-up, a restore): the signatures of the next entries are checked while these are
applied, and :meth:`LogState.apply` still decides each one, in order.

Pure: no SQLite and no sockets. Thread-safe for one submitting thread.

Measured (2 shared cores, ``scripts/bench_sigcheck.py``): see ``docs/benchmarks.md``.
"""

from __future__ import annotations

import itertools
import os
import threading
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Final, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .envelope import SIGNATURE_SIZE, Envelope, check_public_key, key_id, pae
from .errors import ForumError
from .verifier import LogState

if TYPE_CHECKING:
    from . import entries as e
    from .verifier import TrustRoot

DEFAULT_CHUNK: Final = 64
"""Signatures per task: large enough to amortise the hand-off, small enough to pipeline."""
AHEAD_ENTRIES: Final = 1024
"""Entries :func:`replay_checked` reads and submits at a time."""


def default_threads() -> int:
    """One checking thread per CPU the process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


CheckItem = tuple[int, Envelope, bytes]
"""``(log index, envelope, public key it must verify under)``."""


class PendingChecks:
    """The outcome of one :meth:`SignatureChecker.submit`, chunk by chunk as it completes."""

    __slots__ = ("_chunks", "_positions", "_starts", "_unique")

    def __init__(
        self,
        starts: list[int],
        chunks: list[Future[dict[int, tuple[Envelope, bytes]]]],
        positions: dict[int, int],
        unique: bool = False,
    ) -> None:
        self._starts = starts  # first list position of each chunk
        self._chunks = chunks
        self._positions = positions  # log index -> list position
        self._unique = unique  # no index was submitted twice

    def verified_key(self, index: int, envelope: Envelope) -> bytes | None:
        """The key ``envelope``'s signature verified under as entry ``index`` (waits for its
        chunk), or None if it failed or this very envelope was not submitted at ``index``."""
        pos = self._positions.get(index)
        if pos is None:
            return None
        lo, hi = 0, len(self._starts)
        while hi - lo > 1:  # the chunk holding list position ``pos``
            mid = (lo + hi) // 2
            if self._starts[mid] <= pos:
                lo = mid
            else:
                hi = mid
        found = self._chunks[lo].result().get(index)
        if found is None or found[0] is not envelope:
            return None
        return found[1]

    def verified_keys(self) -> dict[int, tuple[Envelope, bytes]]:
        """Every answer at once (waits for all chunks): log index -> (the envelope submitted
        for it, the key it verified under), only for those that verified.  The caller must
        still compare the envelope by identity, as :meth:`verified_key` does; this spares it
        a lookup and a wait per entry."""
        merged: dict[int, tuple[Envelope, bytes]] = {}
        if self._unique:  # each index in one chunk only: nothing to tell apart
            for chunk in self._chunks:
                merged.update(chunk.result())
            return merged
        starts, positions = self._starts, self._positions
        for number, chunk in enumerate(self._chunks):
            for index, found in chunk.result().items():
                # As verified_key: only the chunk holding the index's first envelope answers.
                if bisect_right(starts, positions[index]) - 1 == number:
                    merged[index] = found
        return merged

    def cancel(self) -> None:
        """Drop checks not started yet (a sync that failed or stopped)."""
        for chunk in self._chunks:
            chunk.cancel()


class SignatureChecker:
    """A pool of ``threads`` threads that verify envelope signatures ahead of their use.

    Use as a context manager (or call :meth:`close`). Raises nothing for a bad signature:
    the answer is None and the caller verifies inline, which raises.
    """

    def __init__(self, threads: int | None = None, chunk: int = DEFAULT_CHUNK) -> None:
        self.threads = default_threads() if threads is None else threads
        if self.threads < 1 or chunk < 1:
            raise ValueError("threads and chunk must be at least 1")
        self.chunk = chunk
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="forum-sigcheck")
        self._keys: dict[bytes, Ed25519PublicKey | None] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> SignatureChecker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the threads (pending checks are cancelled)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, items: Sequence[CheckItem]) -> PendingChecks:
        """Start checking ``items`` in chunks of :attr:`chunk`, in order."""
        starts = list(range(0, len(items), self.chunk))
        futures = [self._pool.submit(self._check, items[s : s + self.chunk]) for s in starts]
        indexes = [item[0] for item in items]
        # Filled last to first, so a repeated index keeps its first position (envelope).
        positions = dict(zip(reversed(indexes), range(len(indexes) - 1, -1, -1), strict=True))
        return PendingChecks(starts, futures, positions, len(positions) == len(indexes))

    def _key(self, public_key: bytes) -> Ed25519PublicKey | None:
        """The loaded key, checked once (None if it is weak or malformed)."""
        loaded = self._keys.get(public_key, False)
        if loaded is not False:
            return loaded  # type: ignore[return-value]
        try:
            check_public_key(public_key)
            value: Ed25519PublicKey | None = Ed25519PublicKey.from_public_bytes(public_key)
        except (ForumError, ValueError):
            value = None
        with self._lock:
            self._keys[public_key] = value
        return value

    def _check(self, items: Sequence[CheckItem]) -> dict[int, tuple[Envelope, bytes]]:
        ok: dict[int, tuple[Envelope, bytes]] = {}
        ids: dict[bytes, bytes] = {}
        for index, envelope, public_key in items:
            key = self._key(public_key)
            if key is None:
                continue
            kid = ids.get(public_key)
            if kid is None:
                kid = ids[public_key] = key_id(public_key)
            # As Envelope.verify: the first signature carrying the key's id is the one checked.
            signature = next((sig for k, sig in envelope.signatures if k == kid), None)
            if signature is None or len(signature) != SIGNATURE_SIZE:
                continue
            try:
                key.verify(signature, pae(envelope.payload_type, envelope.body))
            except (InvalidSignature, ForumError):
                continue
            ok.setdefault(index, (envelope, public_key))
        return ok


Extra = TypeVar("Extra")


def replay_checked(
    items: Iterable[tuple[int, Envelope, Extra]],
    root: TrustRoot | None = None,
    threads: int | None = None,
) -> Iterator[tuple[LogState, e.Body | None, Extra]]:
    """Replay a whole log: ``items`` (log index, envelope, anything the caller wants back),
    from genesis (checked against ``root`` when given), in order.  Yields, after each entry
    is applied, the state, the entry's body (None for genesis) and the caller's item.

    For a replay of a stored log (a server's start-up, a restore, an operator's replay): the
    signatures of the next :data:`AHEAD_ENTRIES` entries are checked on ``threads`` worker
    threads while these are applied, under the keys the state knows when they are read.  An
    entry whose key it does not know yet has no pre-check and :meth:`LogState.apply`
    verifies it inline, so what is accepted and where a replay stops do not change.

    Raises what :meth:`LogState.from_genesis` and :meth:`LogState.apply` raise.
    """
    state: LogState | None = None
    with SignatureChecker(threads) as checker:
        waiting: tuple[list[tuple[int, Envelope, Extra]], PendingChecks] | None = None
        source = iter(items)
        while True:
            chunk = list(itertools.islice(source, AHEAD_ENTRIES))
            if chunk:
                keys = {} if state is None else state.keys
                checks = checker.submit(
                    [
                        (i, env, keys[env.key_id].public_key)
                        for i, env, _ in chunk
                        if env.key_id in keys
                    ]
                )
            if waiting is not None:
                answers = waiting[1].verified_keys()
                for index, envelope, extra in waiting[0]:
                    if state is None:
                        state = LogState.from_genesis(envelope, root)
                        yield state, None, extra
                        continue
                    found = answers.get(index)
                    key = found[1] if found is not None and found[0] is envelope else None
                    yield state, state.apply(index, envelope, key), extra
            if not chunk:
                return
            waiting = (chunk, checks)


__all__ = ["CheckItem", "PendingChecks", "SignatureChecker", "default_threads", "replay_checked"]
