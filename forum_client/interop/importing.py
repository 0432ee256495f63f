"""What an import found: the signals it can submit, and per object what it skipped and why.

Both importers (:mod:`.stix`, :mod:`.misp`) read a whole document (a STIX bundle or a MISP
event is one JSON value), so they refuse a file above :data:`MAX_IMPORT_BYTES` before
reading it, which keeps memory bounded whatever the file holds.  An object is all or
nothing: if any of its values is invalid, none of them is submitted and the object is
reported with the reason.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import normalize_item
from ..entries import SignalItem
from ..errors import InvalidInputError
from ..taxonomy import LABEL_ID_RE

MAX_IMPORT_BYTES = 256 * 1024 * 1024
"""The largest STIX bundle or MISP event file read (parsing JSON needs several times its
size in memory)."""


@dataclass(frozen=True)
class Skipped:
    """An object, or a value inside one, that was not submitted."""

    object: str
    """The object's id (STIX ``indicator--...``; MISP attribute uuid or position)."""
    reason: str


@dataclass
class ImportResult:
    """The signals to submit, in document order, and what was skipped."""

    signals: list[SignalItem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[Skipped] = field(default_factory=list)
    """Things kept but changed, e.g. a label that is not a forum label and was dropped."""
    objects: int = 0

    def add_object(self, name: str, items: list[dict[str, Any]]) -> None:
        """Normalise every item of one object; keep all of them or none (then report why)."""
        normalised: list[SignalItem] = []
        for item in items:
            try:
                normalised.append(normalize_item(item, name))
            except InvalidInputError as exc:
                reason = exc.violations[0].reason if exc.violations else str(exc)
                self.skipped.append(Skipped(name, f"invalid {item.get('type')} value: {reason}"))
                return
        self.signals.extend(normalised)

    def forum_labels(self, name: str, labels: list[Any]) -> tuple[str, ...]:
        """The labels that are forum label ids; the others are noted as dropped."""
        kept: list[str] = []
        for label in labels:
            if isinstance(label, str) and LABEL_ID_RE.fullmatch(label):
                if label not in kept:
                    kept.append(label)
            else:
                self.notes.append(Skipped(name, f"label {str(label)[:80]!r} is not a forum label"))
        return tuple(kept)


def load_json_document(path: Path, what: str) -> Any:
    """Parse ``path`` as one JSON value, refusing files above :data:`MAX_IMPORT_BYTES`.

    Raises:
        InvalidInputError: field ``"input"``: too large, unreadable, not UTF-8 or not JSON.
    """
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise InvalidInputError.field("input", f"{path}: {exc.strerror}") from None
    if size > MAX_IMPORT_BYTES:
        raise InvalidInputError.field(
            "input",
            f"{path}: {size:,} bytes; a {what} larger than {MAX_IMPORT_BYTES:,} bytes is refused "
            "(split it into several files)",
        )
    try:
        with path.open("rb") as f:
            return json.loads(f.read())
    except UnicodeDecodeError as exc:
        raise InvalidInputError.field("input", f"{path}: not UTF-8: {exc}") from None
    except ValueError as exc:
        raise InvalidInputError.field("input", f"{path}: not a {what} (not JSON: {exc})") from None
    except RecursionError:  # "[[[[...": json's decoder recurses per level
        raise InvalidInputError.field(
            "input", f"{path}: not a {what} (JSON nested too deeply)"
        ) from None


__all__ = ["MAX_IMPORT_BYTES", "ImportResult", "Skipped", "load_json_document"]
