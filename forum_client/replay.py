"""The replay: the one place a log entry is checked and applied, by the sync and the audit.

:class:`Replay` holds what a verified prefix of the log proves (the key state and the compact
range) and extends it by one entry at a time: the genesis entry pins the trust root, every
later one must verify under the key active at its index (:meth:`LogState.apply`) and pass the
content rules (:func:`~forum_client.rules.check_content`, asked against the view being
written), and only then is it applied to the view, staged and hashed into the range.  The
sync (:mod:`forum_client.sync`) and the offline audit (:mod:`forum_client.store.audit`) both
replay through it, so a fix to what an entry must satisfy lands once.

Pure: no sockets and no SQL here; the view is whatever :class:`ViewSink` the caller gives.
"""

from __future__ import annotations

from typing import Protocol

from . import entries as e
from .envelope import Envelope
from .errors import VerificationError
from .merkle import CompactRange, leaf_hash
from .rules import SignalLookup, check_content
from .verifier import LogState, TrustRoot


class ViewSink(SignalLookup, Protocol):
    """Where replayed entries go: the content rules' lookups plus the two writes."""

    def apply(self, index: int, body: e.Body, state: LogState) -> None: ...

    def add_entry(self, index: int, leaf: bytes) -> None: ...


class Replay:
    """Extends a verified prefix (``state`` None and an empty ``range`` for a new copy)."""

    def __init__(self, root: TrustRoot, state: LogState | None, rng: CompactRange) -> None:
        self.root = root
        self.state = state
        self.range = rng

    @property
    def size(self) -> int:
        return self.range.size

    def apply(self, index: int, envelope: Envelope, leaf: bytes, view: ViewSink) -> None:
        """Verify entry ``index`` (``leaf`` is its canonical bytes) and apply it to ``view``.

        Raises VerificationError (an EntryRejectedError for a broken rule) or another
        ForumError the entry's content causes; then nothing was applied or staged, but the
        key state may have advanced, so the caller must discard this replay.
        """
        state = self.state
        if state is None:
            if index != 0:
                raise VerificationError(f"entry {index} came before the genesis entry")
            self.state = LogState.from_genesis(envelope, self.root)
        else:
            body = state.apply(index, envelope)
            check_content(state, body, view, index)
            view.apply(index, body, state)
        view.add_entry(index, leaf)
        self.range.append(leaf_hash(leaf))
