"""The replay: the one place a log entry is checked and applied, by the sync and the audit.

:class:`Replay` holds what a verified prefix of the log proves (the key state and the compact
range) for one reader (the member whose copy it is: its groups decide what it may read) and
extends it by one entry at a time:

- :meth:`Replay.apply`, a full entry: the genesis entry pins the trust root; every later one
  must verify under the key active at its index (:meth:`LogState.check`), be one the reader
  may read (else :class:`LeakedEntry`: the caller decides, see below), and pass the content
  rules (:func:`~forum_client.rules.check_content`, asked against the view being written, or
  a :class:`~forum_client.rules.BlindLookup` for a group whose earlier entries the reader
  holds redacted); only then is it applied to the view, staged and hashed into the range;
- :meth:`Replay.apply_redacted`, an entry held as its leaf hash: the author's scope claim
  must verify (:meth:`LogState.check_redacted`) and name a group the reader was *not* in at
  that index, else the entry was withheld.

The sync (:mod:`forum_client.sync`) and the offline audit (:mod:`forum_client.store.audit`)
both replay through it, so a fix to what an entry must satisfy lands once.  They differ only
in what a :class:`LeakedEntry` means: the sync keeps its leaf hash and reports it, the audit
reports a copy that holds such a body.

Pure: no sockets and no SQL here; the view is whatever :class:`ViewSink` the caller gives.
"""

from __future__ import annotations

from typing import Protocol

from . import entries as e
from .entries import MEMBER_BODY_TYPES
from .envelope import Envelope
from .errors import VerificationError
from .merkle import CompactRange, leaf_hash
from .replay_bulk import Run, apply_submission_run
from .rules import BlindLookup, SignalLookup, check_content
from .scopes import ScopeClaim
from .verifier import LogState, TrustRoot


class ViewSink(SignalLookup, Protocol):
    """Where replayed entries go: the content rules' lookups plus the writes."""

    def apply(self, index: int, body: e.Body, state: LogState) -> None: ...

    def add_entry(self, index: int, leaf: bytes) -> None: ...

    def add_redacted(
        self, index: int, leaf_hash: bytes, group_id: str, key_id: bytes, signature: bytes | None
    ) -> None: ...

    def add_submissions(
        self,
        leaves: list[tuple[int, bytes]],
        signals: list[tuple[int, str, str, tuple[str, ...], str, str, str]],
    ) -> None: ...


class LeakedEntry(VerificationError):
    """A full entry scoped to a group the reader was not in at its index: it verified, but
    the reader may not hold its body.  Nothing was applied; :meth:`Replay.skip_leaked`
    keeps its leaf hash instead."""

    def __init__(self, index: int, body: e.MemberBody, reader: str) -> None:
        super().__init__(
            f"entry {index} by {body.header.member_id} is shared with group {body.scope} "
            f"({body.tlp.label}), which {reader} is not in at this index"
        )
        self.index = index
        self.body = body


class Replay:
    """Extends a verified prefix (``state`` None and an empty ``range`` for a new copy).

    ``blind``: the groups the reader holds redacted entries of (grows as they come).
    """

    def __init__(
        self,
        root: TrustRoot,
        state: LogState | None,
        rng: CompactRange,
        reader: str = "",
        blind: set[str] | None = None,
    ) -> None:
        self.root = root
        self.state = state
        self.range = rng
        self.reader = reader
        self.blind: set[str] = set() if blind is None else blind

    @property
    def size(self) -> int:
        return self.range.size

    def apply(
        self,
        index: int,
        envelope: Envelope,
        leaf: bytes,
        view: ViewSink,
        verified_key: bytes | None = None,
    ) -> e.Body | None:
        """Verify entry ``index`` (``leaf`` is its canonical bytes) and apply it to ``view``;
        return its body (None for the genesis entry).

        Raises LeakedEntry (nothing applied; the state unchanged) for an entry the reader
        may not read, VerificationError (an EntryRejectedError for a broken rule) or another
        ForumError the entry's content causes; then nothing was applied or staged.
        ``verified_key``: a :class:`~forum_client.sigcheck.SignatureChecker` answer for this
        envelope (see :meth:`LogState.check`: it only spares the Ed25519 call).
        """
        state = self.state
        body: e.Body | None = None
        if state is None:
            if index != 0:
                raise VerificationError(f"entry {index} came before the genesis entry")
            self.state = LogState.from_genesis(envelope, self.root)
        else:
            body = state.check(index, envelope, verified_key)
            scope = body.scope if isinstance(body, MEMBER_BODY_TYPES) else ""
            if scope and not state.entitled(self.reader, scope, index):
                assert isinstance(body, MEMBER_BODY_TYPES)
                raise LeakedEntry(index, body, self.reader)
            check_content(state, body, BlindLookup() if scope in self.blind else view, index)
            state.advance(index, envelope, body)
            view.apply(index, body, state)
        view.add_entry(index, leaf)
        self.range.append(leaf_hash(leaf))
        return body

    def apply_run(self, run: Run, view: ViewSink) -> list[tuple[int, int]]:
        """Apply ``run``'s entries while they are small forum-wide submissions whose
        signatures it holds and that pass every check
        (:func:`~forum_client.replay_bulk.apply_submission_run`: the same checks as
        :meth:`apply`, a run at a time); return ``(index, created_unix_ms)`` of each.  The
        entry it stops at, if any, is the caller's to :meth:`apply`.  Raises nothing."""
        if self.state is None:
            return []
        return apply_submission_run(self.state, self.range, run, view)

    def skip_leaked(self, leaked: LeakedEntry, leaf: bytes, key_id: bytes, view: ViewSink) -> None:
        """Keep a leaked entry as its leaf hash only (no claim: it verified in full)."""
        state = self._state()
        h = leaf_hash(leaf)
        state.skip(leaked.index)
        self.blind.add(leaked.body.scope)
        view.add_redacted(leaked.index, h, leaked.body.scope, key_id, None)
        self.range.append(h)

    def apply_redacted(
        self,
        index: int,
        leaf_hash: bytes,
        group_id: str,
        key_id: bytes,
        signature: bytes | None,
        view: ViewSink,
    ) -> None:
        """Verify and keep an entry held as its leaf hash.  With a ``signature``, the scope
        claim must verify; without one (a leaked entry the sync kept), the group must exist.
        Either way the reader must not have been in the group at ``index``.  Raises
        VerificationError (an EntryRejectedError for a claim that does not hold)."""
        state = self._state()
        if len(leaf_hash) != 32:
            raise VerificationError(f"a leaf hash of {len(leaf_hash)} bytes")
        if signature is not None:
            group_id = state.check_redacted(
                index, leaf_hash, ScopeClaim(group_id, key_id, signature)
            ).group_id
        elif group_id not in state.groups:
            raise VerificationError(f"redacted for a group {group_id!r} the log does not know")
        if state.entitled(self.reader, group_id, index):
            raise VerificationError(
                f"an entry shared with group {group_id}, which {self.reader} is in at this "
                "index, is held as its leaf hash only"
            )
        state.skip(index)
        self.blind.add(group_id)
        view.add_redacted(index, leaf_hash, group_id, key_id, signature)
        self.range.append(leaf_hash)

    def _state(self) -> LogState:
        if self.state is None:
            raise VerificationError("the genesis entry is never redacted")
        return self.state
