"""Submitting a whole CSV or JSON Lines file: checked first, then sent, resumable.

1. The file is read once and every line checked (normalisation, and labels against the
   forum's vocabulary when it is known); any bad line stops the run before a single batch
   is signed, and every bad line is reported as ``FILE:LINE``.
2. It is read again and sent in batches.  The forum's refusals, which name ``signals[i]``
   of a batch, are reported as the ``FILE:LINE`` of that signal.
3. After each accepted batch a small progress file (``FILE.forum-progress``) records how many
   signals are in the log and a hash of them.  Running the same submission again skips that
   prefix if it is unchanged (lines after it may have been fixed), so a resubmission after
   a partial failure sends each signal once.  The progress file is removed on success.

Memory is constant in the file's size: one batch (and the line numbers of the one in flight).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .entries import SignalItem
from .errors import InvalidInputError, TransportError, Violation
from .files import read_bounded
from .inputfiles import FileCheck, check_signals, detect_format, read_signals_at

if TYPE_CHECKING:
    from .client import ForumClient
    from .envelope import SigningKey
    from .wire import Receipt

PROGRESS_SUFFIX = ".forum-progress"
MAX_PROGRESS_BYTES = 64 * 1024


@dataclass(frozen=True)
class Progress:
    """What a previous run of the same submission got into the log."""

    key_id: str
    signals: int
    digest: str  # sha256 over the accepted signals, in order

    def to_json(self) -> bytes:
        doc = {"key_id": self.key_id, "signals": self.signals, "digest": self.digest}
        return json.dumps(doc).encode()


def progress_path(path: Path) -> Path:
    return path.with_name(path.name + PROGRESS_SUFFIX)


def load_progress(path: Path) -> Progress | None:
    """The progress file of ``path`` if there is a readable one."""
    try:
        doc = json.loads(read_bounded(progress_path(path), MAX_PROGRESS_BYTES, "a progress file"))
        return Progress(str(doc["key_id"]), int(doc["signals"]), str(doc["digest"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_progress(path: Path, progress: Progress) -> bool:
    target = progress_path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(progress.to_json())
        os.replace(tmp, target)
    except OSError:
        return False
    return True


def _signal_digest_update(digest: hashlib._Hash, item: SignalItem) -> None:
    fields = (item.type, item.value, ";".join(item.labels), item.content_type, str(item.quality))
    digest.update(("\x1f".join(fields) + "\x1e").encode())


@dataclass
class BatchDone:
    number: int
    signals: int  # in this batch
    total: int  # accepted so far, including skipped ones
    receipt: Receipt


class BulkSubmission:
    """One file's submission: :meth:`check`, then iterate :meth:`run` for each batch."""

    def __init__(
        self,
        client: ForumClient,
        key: SigningKey,
        path: Path,
        fmt: str | None = None,
        *,
        group: str = "",
        tlp: str | None = None,
        batch_size: int = 10_000,
        known_labels: Callable[[str], bool] | None = None,
    ) -> None:
        self.client = client
        self.key = key
        self.path = path
        self.fmt = fmt or detect_format(path)
        self.group = group
        self.tlp = tlp
        self.batch_size = batch_size
        self.known_labels = known_labels
        self.skipped = 0
        self.progress_saved = True

    def _open(self) -> Iterator[tuple[str, SignalItem]]:
        with self.path.open(newline="", encoding="utf-8") as stream:
            yield from read_signals_at(stream, self.fmt, name=str(self.path))

    def check(self) -> FileCheck:
        """Read the whole file; raise InvalidInputError listing every bad ``FILE:LINE``."""
        with self.path.open(newline="", encoding="utf-8") as stream:
            found = check_signals(
                stream, self.fmt, name=str(self.path), known_labels=self.known_labels
            )
        found.raise_if_bad(str(self.path))
        return found

    def resume_point(self) -> int:
        """How many leading signals a previous run already got into the log (0 if none,
        or if the file changed within them, or another key signed them)."""
        previous = load_progress(self.path)
        if previous is None or previous.key_id != self.key.key_id.hex():
            return 0
        digest = hashlib.sha256()
        seen = 0
        for _, item in self._open():
            if seen == previous.signals:
                break
            _signal_digest_update(digest, item)
            seen += 1
        if seen == previous.signals and digest.hexdigest() == previous.digest:
            return seen
        return 0

    def run(self) -> Iterator[BatchDone]:
        """Send the file (after :meth:`resume_point` signals) in batches; yield each accepted
        batch.  Raises TransportError whose violations name ``FILE:LINE`` for the forum's
        refusals, and the SDK's other errors."""
        skip = self.skipped = self.resume_point()
        digest = hashlib.sha256()
        wheres: list[str] = []  # line of each signal sent and not yet accepted
        offset = 0  # index (in the file's signals) of wheres[0]

        def items() -> Iterator[SignalItem]:
            for n, (where, item) in enumerate(self._open()):
                if n < skip:
                    _signal_digest_update(digest, item)
                    continue
                wheres.append(where)
                yield item

        accepted = skip
        number = 0
        pending: list[SignalItem] = []
        stream = items()

        def tracked() -> Iterator[SignalItem]:
            for item in stream:
                pending.append(item)
                yield item

        try:
            for count, receipt in self.client.submit_batches(
                tracked(), self.key, group=self.group, tlp=self.tlp, batch_size=self.batch_size
            ):
                number += 1
                for item in pending[:count]:
                    _signal_digest_update(digest, item)
                del pending[:count]
                del wheres[:count]
                offset += count
                accepted += count
                self.progress_saved = _save_progress(
                    self.path, Progress(self.key.key_id.hex(), accepted, digest.hexdigest())
                )
                yield BatchDone(number, count, accepted, receipt)
        except (TransportError, InvalidInputError) as exc:
            raise self._locate(exc, wheres) from None
        progress_path(self.path).unlink(missing_ok=True)

    def _locate(self, exc: TransportError | InvalidInputError, wheres: list[str]) -> Exception:
        """Name ``FILE:LINE`` instead of ``signals[i]`` (i counts from the failed batch)."""
        if not exc.violations:
            return exc
        located = []
        for v in exc.violations:
            field = v.field
            if field.startswith("signals["):
                index, _, rest = field[len("signals[") :].partition("]")
                if index.isdigit() and int(index) < len(wheres):
                    field = wheres[int(index)] + (f" ({rest.lstrip('.')})" if rest else "")
            located.append(Violation(field, v.reason))
        if isinstance(exc, TransportError):
            return TransportError(str(exc), exc.code, located, exc.reason, exc.retry_after)
        return InvalidInputError(str(exc), located)
