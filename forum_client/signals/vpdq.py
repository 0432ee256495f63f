"""vPDQ video hashes: ``vpdq``, the PDQ hashes of frames sampled over a video.

Meta's vPDQ hashes a video by hashing one frame per interval (one a second by default) with
PDQ. A *frame feature* is that frame's PDQ hash, its PDQ quality (0-100) and its timestamp in
seconds. Two videos match when enough of the frames of each have a near-identical frame in the
other (:mod:`forum_client.match.video_index`), so a re-encode, a resize or a trim still matches.

The value is exactly what python-threatexchange's ``VPDQSignal`` stores (``vpdq_to_json``), so
a hash computed on either side is the same string on the other: a JSON array with one string
per frame, ``"<pdq hex>,<quality>,<timestamp>"``, in the order the frames were hashed::

    ["e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,100,0.0", ...]

Normal form (what is signed, stored and compared):

- the JSON array above, items separated by ``", "`` (Python's ``json.dumps`` default);
- PDQ hex in lower case; quality a plain decimal integer from 0 to 100;
- the timestamp written as python-threatexchange writes it, Python's format spec ``.3``:
  three significant digits, ``0.0``, ``1.5``, ``12.3``, ``1.23e+03`` (a pytx quirk that drops
  precision after 999 s; matching never uses timestamps, only the frames' hashes).

Accepted input: that JSON array (frames in any spelling of hex, quality and timestamp);
python-threatexchange's earlier JSON object ``{"<frame number>": {"quality": ..., "hash": ...,
"timestamp": ...}}`` (frames taken in frame-number order); or one frame per line, either
``hex,quality,timestamp`` or the reference ``vpdq`` tool's ``frame_number,hex,quality,timestamp``.
Frame numbers are dropped, as python-threatexchange drops them. Blank lines are ignored.

Limits: 1 to :data:`MAX_FRAMES` frames (about 2 h 46 min at one frame a second) and
:data:`MAX_INPUT_CHARS` characters of input. Every error names the frame (1-based) and what is
wrong with it::

    >>> from forum_client.signals.base import normalize
    >>> normalize("vpdq", "0," + "F" * 64 + ",100,0\\n30," + "f" * 64 + ",87,1.0")
    '["ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff,100,0.0", \
"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff,87,1.0"]'
    >>> normalize("vpdq", '["' + "0" * 64 + ',101,0"]')
    Traceback (most recent call last):
    ...
    forum_client.errors.InvalidInputError: value: vpdq frame 1: quality must be an integer \
from 0 to 100, got '101'
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Final

from forum_client.errors import InvalidInputError
from forum_client.signals.base import ContentType, SignalType, register
from forum_client.signals.versions import CURRENT

MAX_FRAMES: Final = 10_000
"""The most frames one vpdq signal may carry (about 800 KB of value)."""
MAX_INPUT_CHARS: Final = MAX_FRAMES * 128
"""Input longer than this is refused before it is parsed."""

_HEX = re.compile(r"[0-9a-fA-F]{64}")
_INT = re.compile(r"[0-9]{1,3}")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?")
_FRAME_NUMBER = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True, slots=True)
class Frame:
    """One sampled frame: its PDQ hash (64 lowercase hex digits), quality and timestamp (s)."""

    pdq: str
    quality: int
    timestamp: float

    def __str__(self) -> str:
        return f"{self.pdq},{self.quality},{format_timestamp(self.timestamp)}"


def format_timestamp(seconds: float) -> str:
    """A timestamp as python-threatexchange writes it (format spec ``.3``)."""
    return format(float(seconds), ".3")


def parse_frames(value: str) -> list[Frame]:
    """The frames of a vpdq value in any accepted spelling (see the module docstring).

    Raises:
        InvalidInputError: field ``"value"``, naming the first bad frame and why.
    """
    if type(value) is not str:
        raise InvalidInputError.field("value", f"vpdq must be a string, got {type(value).__name__}")
    if len(value) > MAX_INPUT_CHARS:
        raise InvalidInputError.field(
            "value", f"vpdq value of {len(value)} characters exceeds {MAX_INPUT_CHARS}"
        )
    text = value.strip()
    if text.startswith(("[", "{")):
        items = _json_items(text)
    else:
        items = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not items:
        raise InvalidInputError.field("value", "a vpdq hash needs at least one frame")
    if len(items) > MAX_FRAMES:
        raise InvalidInputError.field(
            "value", f"vpdq hash of {len(items)} frames exceeds the limit of {MAX_FRAMES}"
        )
    return [_frame(number, item) for number, item in items]


def frames_to_value(frames: list[Frame]) -> str:
    """The normal form of a list of frames (python-threatexchange's ``vpdq_to_json``)."""
    return json.dumps([str(f) for f in frames])


def _json_items(text: str) -> list[tuple[int, str]]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError.field("value", f"vpdq JSON does not parse: {exc}") from None
    except RecursionError:  # "[[[[...": json's decoder recurses per level
        raise InvalidInputError.field("value", "vpdq JSON is nested too deeply") from None
    if isinstance(doc, dict):
        return _old_json_items(doc)
    # text starts with "[" or "{", so anything that parsed is an array or an object
    for number, item in enumerate(doc, 1):
        if not isinstance(item, str):
            raise InvalidInputError.field(
                "value",
                f"vpdq frame {number}: must be a string 'hex,quality,timestamp', "
                f"got {type(item).__name__}",
            )
    return list(enumerate(doc, 1))


def _old_json_items(doc: dict[str, object]) -> list[tuple[int, str]]:
    """python-threatexchange's earlier form: ``{frame_number: {quality, hash, timestamp}}``."""
    items = []
    for number, (frame_number, feature) in enumerate(doc.items(), 1):
        if not _FRAME_NUMBER.fullmatch(frame_number):
            raise InvalidInputError.field(
                "value", f"vpdq frame {number}: key must be a frame number, got {frame_number!r}"
            )
        if not isinstance(feature, dict) or set(feature) != {"quality", "hash", "timestamp"}:
            raise InvalidInputError.field(
                "value",
                f"vpdq frame {number}: must be an object with hash, quality and timestamp",
            )
        fields = (feature["hash"], feature["quality"], feature["timestamp"])
        if not all(isinstance(x, str | int | float) and not isinstance(x, bool) for x in fields):
            raise InvalidInputError.field(
                "value", f"vpdq frame {number}: hash, quality and timestamp must be scalars"
            )
        items.append((int(frame_number), number, ",".join(map(str, fields))))
    items.sort()
    return [(number, item) for _, number, item in items]


def _frame(number: int, item: str) -> Frame:
    def bad(reason: str) -> InvalidInputError:
        return InvalidInputError.field("value", f"vpdq frame {number}: {reason}")

    parts = [p.strip() for p in item.split(",")]
    if len(parts) == 4:  # the reference tool's line: frame_number,hex,quality,timestamp
        if not _FRAME_NUMBER.fullmatch(parts[0]):
            raise bad(f"frame number must be a non-negative integer, got {parts[0][:20]!r}")
        parts = parts[1:]
    if len(parts) != 3:
        raise bad(f"expected 'hex,quality,timestamp', got {item[:100]!r}")
    pdq, quality, timestamp = parts
    if not _HEX.fullmatch(pdq):
        raise bad(f"PDQ hash must be 64 hex digits, got {pdq[:70]!r}")
    if not _INT.fullmatch(quality) or int(quality) > 100:
        raise bad(f"quality must be an integer from 0 to 100, got {quality[:20]!r}")
    if len(timestamp) > 32 or not _NUMBER.fullmatch(timestamp):
        raise bad(f"timestamp must be a non-negative number of seconds, got {timestamp[:32]!r}")
    seconds = float(timestamp)
    if not math.isfinite(seconds):
        raise bad(f"timestamp must be finite, got {timestamp!r}")
    return Frame(pdq.lower(), int(quality), seconds)


@register
class Vpdq(SignalType):
    """vPDQ hash of a video: the PDQ hashes of its sampled frames."""

    name = "vpdq"
    default_content_type = ContentType.VIDEO

    def normalize(self, value: str, version: int = CURRENT) -> str:  # one rule in every version
        return frames_to_value(parse_frames(value))


__all__ = [
    "MAX_FRAMES",
    "MAX_INPUT_CHARS",
    "Frame",
    "Vpdq",
    "format_timestamp",
    "frames_to_value",
    "parse_frames",
]
