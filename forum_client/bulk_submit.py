"""Submitting a whole CSV or JSON Lines file: checked first, then sent, resumable.

1. The file is read once and every line checked (normalisation, and labels against the
   forum's vocabulary when it is known); any bad line stops the run before a single batch
   is signed, and every bad line is reported as ``FILE:LINE``.
2. It is read again and sent in batches.  The forum's refusals, which name ``signals[i]``
   of a batch, are reported as the ``FILE:LINE`` of that signal.
3. A small progress file (``FILE.forum-progress``, at most 64 KiB) records how many leading
   signals are in the log and a hash of them, and, written just before each batch is sent,
   that batch in flight: its sequence number, creation time, salt (a group's entry), signal
   count, a hash of the file's signals up to its end and the hash of the signed entry.  It
   is removed on success.

Running the same submission again (same key) resumes, and sends each signal once:

* the prefix the forum acknowledged is skipped if its lines are unchanged (lines after it
  may have been fixed);
* a batch in flight whose answer never came (connection cut, deadline, client killed) is
  rebuilt from the same lines with the recorded values (Ed25519 signatures are
  deterministic) and sent first, byte for byte as before: the forum answers with the
  original receipt if it had committed it, or appends it now;
* the rest goes out with fresh sequence numbers.

When the batch in flight cannot be resent as it was, its signals are sent as a new entry
and a warning says why: its lines changed (if the forum had committed the first one, the
unchanged signals among them are now in two entries), it cannot be rebuilt byte for byte
(``--group``/``--tlp`` or the ``forum-client`` version changed), or the forum refused it,
e.g. ``stale-sequence`` when the key has used that sequence number since (the forum does
not hold the first one then).  A duplicate is preferred to a loss.  A batch the forum
refused while the first run was waiting for it is not in flight any more (the progress file
says so).

Memory is constant in the file's size: one batch (and the line numbers of the one in flight).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .entries import SignalItem
from .errors import REJECT_SEQUENCE, InvalidInputError, TransportError, Violation
from .files import read_bounded
from .inputfiles import FileCheck, check_signals, detect_format, read_signals_at
from .merkle import leaf_hash

if TYPE_CHECKING:
    from .client import ForumClient, SentBatch
    from .envelope import SigningKey
    from .wire import Receipt

log = logging.getLogger(__name__)

PROGRESS_SUFFIX = ".forum-progress"
MAX_PROGRESS_BYTES = 64 * 1024
MAX_IN_FLIGHT = 8
"""Batches in flight a progress file may name (the SDK sends one at a time: one is written)."""

REFUSED_CODES = frozenset(
    {
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "PERMISSION_DENIED",
        "ALREADY_EXISTS",
        "UNAUTHENTICATED",
        "RESOURCE_EXHAUSTED",
    }
)
"""Answers that mean the forum did not append the entry (unlike UNAVAILABLE, a deadline or
an internal error, after which it may have)."""

_HEX = re.compile(r"[0-9a-f]*")


@dataclass(frozen=True)
class InFlight:
    """A batch sent (or about to be) whose answer has not come back: with the same lines,
    these values rebuild its signed entry byte for byte."""

    signals: int  # the batch's signals, following the prefix and earlier batches in flight
    digest: str  # sha256 over the file's signals up to the end of this batch, in order
    sequence: int
    created_unix_ms: int
    salt: str  # hex; "" for a forum-wide entry
    leaf_hash: str  # hex, of the entry sent

    def to_doc(self) -> dict[str, Any]:
        return {
            "signals": self.signals,
            "digest": self.digest,
            "sequence": self.sequence,
            "created_unix_ms": self.created_unix_ms,
            "salt": self.salt,
            "leaf_hash": self.leaf_hash,
        }

    @classmethod
    def from_doc(cls, doc: Any) -> InFlight:
        """Raises ValueError, KeyError or TypeError for a record that does not fit."""
        record = cls(
            int(doc["signals"]),
            str(doc["digest"]),
            int(doc["sequence"]),
            int(doc["created_unix_ms"]),
            str(doc["salt"]),
            str(doc["leaf_hash"]),
        )
        texts = (record.digest, record.salt, record.leaf_hash)
        if record.signals < 1 or record.sequence < 1 or not all(_HEX.fullmatch(t) for t in texts):
            raise ValueError("not an in-flight batch")
        return record


@dataclass(frozen=True)
class Progress:
    """What a previous run of the same submission got into the log, and the batches it had
    sent without an answer."""

    key_id: str
    signals: int
    digest: str  # sha256 over the accepted signals, in order
    in_flight: tuple[InFlight, ...] = ()

    def to_json(self) -> bytes:
        doc = {"key_id": self.key_id, "signals": self.signals, "digest": self.digest}
        if self.in_flight:
            doc["in_flight"] = [record.to_doc() for record in self.in_flight]
        return json.dumps(doc).encode()


def progress_path(path: Path) -> Path:
    return path.with_name(path.name + PROGRESS_SUFFIX)


def load_progress(path: Path) -> Progress | None:
    """The progress file of ``path`` if there is a readable one."""
    try:
        doc = json.loads(read_bounded(progress_path(path), MAX_PROGRESS_BYTES, "a progress file"))
        records = doc.get("in_flight", [])
        if not isinstance(records, list) or len(records) > MAX_IN_FLIGHT:
            return None
        return Progress(
            str(doc["key_id"]),
            int(doc["signals"]),
            str(doc["digest"]),
            tuple(InFlight.from_doc(record) for record in records),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
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
    resent: bool = False  # a batch in flight in an earlier run, sent again as it was


Notify = Callable[[str, bool], None]
"""Told ``(message, is_warning)``: what a resumed run does beyond the plain case."""


def _log_notice(message: str, warning: bool) -> None:
    log.log(logging.WARNING if warning else logging.INFO, "%s", message)


def _lines(wheres: list[str]) -> str:
    """``FILE:3`` or ``FILE:3-4`` for the lines of one batch."""
    if not wheres:
        return "(no lines)"
    if len(wheres) == 1:
        return wheres[0]
    return f"{wheres[0]}-{wheres[-1].rpartition(':')[2]}"


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
        notify: Notify | None = None,
    ) -> None:
        self.client = client
        self.key = key
        self.path = path
        self.fmt = fmt or detect_format(path)
        self.group = group
        self.tlp = tlp
        self.batch_size = batch_size
        self.known_labels = known_labels
        self.notify = notify or _log_notice
        self.skipped = 0
        self.in_flight = 0  # batches sent whose answer had not come when run() stopped
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

    def _previous(self) -> tuple[int, hashlib._Hash, tuple[InFlight, ...]]:
        """How many leading signals a previous run got into the log (0 if none, if the
        file changed within them, or if another key signed them), the hash over them, and
        the batches it had in flight after them."""
        digest = hashlib.sha256()
        previous = load_progress(self.path)
        if previous is None or previous.key_id != self.key.key_id.hex():
            return 0, digest, ()
        seen = 0
        for _, item in islice(self._open(), previous.signals):
            _signal_digest_update(digest, item)
            seen += 1
        if seen == previous.signals and digest.hexdigest() == previous.digest:
            return seen, digest, previous.in_flight
        return 0, hashlib.sha256(), ()

    def resume_point(self) -> int:
        """How many leading signals a previous run already got into the log (0 if none,
        or if the file changed within them, or another key signed them)."""
        return self._previous()[0]

    def _save(self, accepted: int, digest: str, in_flight: list[InFlight]) -> None:
        self.in_flight = len(in_flight)
        if not accepted and not in_flight:  # nothing to remember
            progress_path(self.path).unlink(missing_ok=True)
            return
        progress = Progress(self.key.key_id.hex(), accepted, digest, tuple(in_flight))
        self.progress_saved = _save_progress(self.path, progress)

    def run(self) -> Iterator[BatchDone]:
        """Send the file in batches, after what a previous run got into the log (the batches
        it left in flight first, as they were signed); yield each accepted batch.  Raises
        TransportError whose violations name ``FILE:LINE`` for the forum's refusals, and the
        SDK's other errors."""
        skip, digest, previous = self._previous()
        self.skipped = skip
        self.in_flight = len(previous)
        accepted = skip
        number = 0
        if previous:
            self.notify(
                f"resending {len(previous)} batch(es) sent before whose answer was lost, "
                "exactly as they were signed: the forum answers with the original receipt "
                "if it had committed them",
                False,
            )
        for record in previous:
            resent = self._resend(record, accepted, digest)
            if resent is None:
                break  # this batch and any after it go out as new entries
            receipt, digest = resent
            accepted += record.signals
            number += 1
            self._save(accepted, digest.hexdigest(), list(previous[number:]))
            yield BatchDone(number, record.signals, accepted, receipt, resent=True)

        # ``digest`` runs over every signal handed to the SDK to send, ``pending`` holds the
        # signals read and not yet accepted (those of the batches in flight first).
        pending: list[tuple[str, SignalItem]] = []
        in_flight: list[InFlight] = []
        accepted_digest = digest.hexdigest()
        start = accepted

        def items() -> Iterator[SignalItem]:
            for where, item in islice(self._open(), start, None):
                pending.append((where, item))
                yield item

        def on_send(batch: SentBatch) -> None:
            covered = sum(record.signals for record in in_flight)
            for _, item in pending[covered : covered + batch.signals]:
                _signal_digest_update(digest, item)
            record = InFlight(
                batch.signals,
                digest.hexdigest(),
                batch.sequence,
                batch.created_unix_ms,
                batch.salt.hex(),
                batch.leaf_hash.hex(),
            )
            in_flight.append(record)
            self._save(accepted, accepted_digest, in_flight)

        try:
            for count, receipt in self.client.submit_batches(
                items(),
                self.key,
                group=self.group,
                tlp=self.tlp,
                batch_size=self.batch_size,
                on_send=on_send,
            ):
                number += 1
                done = in_flight.pop(0)  # answers come in the order the batches were sent
                del pending[:count]
                accepted += count
                accepted_digest = done.digest
                self._save(accepted, accepted_digest, in_flight)
                yield BatchDone(number, count, accepted, receipt)
        except (TransportError, InvalidInputError) as exc:
            if in_flight and isinstance(exc, TransportError) and exc.code in REFUSED_CODES:
                in_flight.pop(0)  # the forum said no to the first batch in flight
                self._save(accepted, accepted_digest, in_flight)
            raise self._locate(exc, [where for where, _ in pending]) from None
        progress_path(self.path).unlink(missing_ok=True)
        self.in_flight = 0

    def _resend(
        self, record: InFlight, offset: int, digest: hashlib._Hash
    ) -> tuple[Receipt, hashlib._Hash] | None:
        """Send the batch ``record`` names again, rebuilt from the file's signals after the
        first ``offset`` (``digest`` is the hash over those); its receipt and the hash up to
        the batch's end.  None (with a warning) when it cannot be resent as it was or the
        forum refused it: its signals then go out as a new entry."""
        batch = list(islice(self._open(), offset, offset + record.signals))
        wheres = [where for where, _ in batch]
        lines = _lines(wheres)
        trial = digest.copy()
        for _, item in batch:
            _signal_digest_update(trial, item)
        first = f"the batch sent as sequence {record.sequence}"
        if len(batch) != record.signals or trial.hexdigest() != record.digest:
            self.notify(
                f"{lines}: changed since they were sent in {first}, whose answer was lost: "
                "they are sent as a new entry (if the forum had committed the first one, the "
                "signals unchanged among them are now in the log twice)",
                True,
            )
            return None
        client = self.client
        try:
            envelope = client.prepare_submission(
                [item for _, item in batch],
                self.key,
                group=self.group,
                tlp=self.tlp,
                sequence=record.sequence,
                created_unix_ms=record.created_unix_ms,
                salt=bytes.fromhex(record.salt),
            )
        except InvalidInputError as exc:
            raise self._locate(exc, wheres) from None
        if leaf_hash(envelope.leaf_bytes()).hex() != record.leaf_hash:
            self.notify(
                f"{lines}: {first} cannot be rebuilt byte for byte (were --group or --tlp "
                "changed, or forum-client upgraded?): its signals are sent as a new entry "
                "(if the forum had committed the first one, they are now in the log twice)",
                True,
            )
            return None
        try:
            receipt = client.submit_envelope(
                envelope, client.scope_claim(envelope, self.group, self.key)
            )
        except TransportError as exc:
            if exc.code not in REFUSED_CODES:
                raise self._locate(exc, wheres) from None
            if exc.reason == REJECT_SEQUENCE:
                why = (
                    f"the forum does not hold {first}, and this key has used sequence "
                    f"{record.sequence} since (stale-sequence)"
                )
            else:
                why = f"the forum refused {first} ({exc})"
            self.notify(f"{lines}: {why}: its signals are sent again as a new entry", True)
            return None
        return receipt, trial

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
