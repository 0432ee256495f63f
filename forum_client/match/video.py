"""vPDQ hashes of a member's own videos, computed locally (nothing leaves the member).

:func:`vpdq_of_video` decodes a video with PyAV (FFmpeg's libraries, shipped in its wheels)
and hashes sampled frames with ``pdqhash`` (Meta's PDQ), both in the optional ``media`` extra.
It follows Meta's reference ``vpdq`` hasher frame for frame:

- the frame rate is the stream's average rate (else its base rate ``r_frame_rate``);
- every decoded frame gets a number 0, 1, 2, ... in decoding order, and frame ``n`` is hashed
  when ``n % int(seconds_per_hash * fps) == 0`` (a step of at least 1, so
  ``seconds_per_hash=0`` hashes every frame);
- the frame is converted to RGB24 at its own size and hashed with PDQ; its timestamp is
  ``float32(n) / float32(fps)`` seconds, as the reference computes it.

Unlike the reference, frames whose PDQ quality is below ``min_quality`` (default 50, as for
images) are dropped here, so a black intro or a flat title card never becomes a frame that
matches every other dark video. The result says how many frames were hashed and dropped.

Why PyAV and not the ``vpdq`` binding: the binding is published on PyPI only as source, which
compiles against the system's FFmpeg development headers (``libavcodec-dev`` and friends, about
300 MB of Debian packages) and a C++ toolchain; PyAV and pdqhash install from wheels on a plain
Python. The speed of both is in ``docs/benchmarks.md`` and the two agree frame for frame on the
test videos (``tests/unit/test_video.py``; the comparison runs where the binding is installed).

Errors are :class:`~forum_client.errors.InvalidInputError` naming the file: not a video, no
video stream, a damaged or truncated file, no frames, or no frame of sufficient quality. A
file cut short is told by what its header declares: the frame count (MP4, MOV) or the video
track's length (Matroska and WebM written by FFmpeg or mkvmerge, their ``DURATION`` tag).
Containers that declare neither (MPEG-TS, FLV, WebM recorded live) cannot be told from a
shorter video, and hash as what they hold.
A video that keeps more frames than a vpdq value may hold
(:data:`~forum_client.signals.vpdq.MAX_FRAMES`) is refused too, naming the
``--seconds-per-hash`` that brings it under the limit: no value is made that ``submit`` and
``match`` would refuse.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from forum_client.errors import InvalidInputError
from forum_client.match.extra import DEFAULT_MIN_QUALITY, MEDIA_EXTRA_HINT, MediaExtraMissing
from forum_client.signals import vpdq as _vpdq
from forum_client.signals.vpdq import Frame, frames_to_value

DEFAULT_SECONDS_PER_HASH: Final = 1.0
"""One frame hashed per second of video, as the reference does."""

TRUNCATION_SLACK_SECONDS: Final = 0.5
"""A Matroska/WebM video whose decoded frames end more than this (or two frames, if longer)
before its declared length is refused as truncated."""
_DURATION_TAG = re.compile(r"([0-9]+):([0-9]{2}):([0-9]{2}(?:\.[0-9]*)?)")

Progress = Callable[[int, int], None]
"""``progress(frames_decoded, frames_expected)``; ``frames_expected`` is 0 when unknown."""


@dataclass(frozen=True)
class VideoHash:
    """The vPDQ hash of one video: the kept frames, and what was decoded and dropped."""

    frames: tuple[Frame, ...]
    frames_decoded: int
    frames_dropped: int
    fps: float
    duration: float

    @property
    def value(self) -> str:
        """The normalised ``vpdq`` signal value."""
        return frames_to_value(list(self.frames))


def _video_modules() -> tuple[Any, Any, Any]:
    """``(av, pdqhash, numpy)``, or MediaExtraMissing."""
    try:
        import av
        import numpy
        import pdqhash  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise MediaExtraMissing(
            f"vPDQ hashing of videos needs the optional media extra ({exc.name or exc} is not "
            f"installed): {MEDIA_EXTRA_HINT}"
        ) from None
    return av, pdqhash, numpy


def vpdq_of_video(
    path: str | os.PathLike[str],
    *,
    seconds_per_hash: float = DEFAULT_SECONDS_PER_HASH,
    min_quality: int = DEFAULT_MIN_QUALITY,
    progress: Progress | None = None,
) -> VideoHash:
    """Decode the video at ``path`` and return its vPDQ hash (see the module docstring).

    Raises:
        MediaExtraMissing: PyAV or pdqhash is not installed.
        InvalidInputError: field ``"file"``: not a readable video, damaged or truncated, no
            frames, no frame of quality ``min_quality`` or better, or more frames kept than
            :data:`~forum_client.signals.vpdq.MAX_FRAMES` (with the setting to use); field
            ``"seconds_per_hash"`` / ``"min_quality"`` for a bad setting.
        OSError: the file cannot be read.
    """
    if not (0 <= seconds_per_hash <= 3600):
        raise InvalidInputError.field("seconds_per_hash", "must be from 0 to 3600 seconds")
    if not 0 <= min_quality <= 100:
        raise InvalidInputError.field("min_quality", "must be from 0 to 100")
    av, pdqhash, np = _video_modules()
    name = os.fspath(path)
    with open(name, "rb"):  # OSError (missing, unreadable) before FFmpeg's own message
        pass

    def bad(reason: str) -> InvalidInputError:
        return InvalidInputError.field("file", f"{name}: {reason}")

    try:
        container = av.open(name, mode="r")
    except av.FFmpegError as exc:
        raise bad(f"not a readable video ({_reason(exc)})") from None
    with container:
        streams = [s for s in container.streams if s.type == "video"]
        if not streams:
            raise bad("has no video stream")
        stream = streams[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        if not fps > 0:
            raise bad("has no frame rate")
        step = max(1, int(seconds_per_hash * fps))
        expected = int(stream.frames or 0)
        declared = _declared_seconds(dict(stream.metadata))
        fps32 = np.float32(fps)
        frames: list[Frame] = []
        decoded = dropped = 0
        ends: float | None = None  # where the last decoded frame ends (s), by its timestamp
        try:
            for n, frame in enumerate(container.decode(stream)):
                decoded = n + 1
                if frame.time is not None:
                    ends = max(ends or 0.0, float(frame.time) + 1 / fps)
                if progress is not None and n % 32 == 0:
                    progress(n, expected)
                if n % step:
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                if rgb.shape[0] < 5 or rgb.shape[1] < 5:
                    raise bad(f"frame {n} is {rgb.shape[1]}x{rgb.shape[0]}, too small for PDQ")
                bits, quality = pdqhash.compute(rgb)
                if int(quality) < min_quality:
                    dropped += 1
                    continue
                pdq = bytes(np.packbits(np.asarray(bits, dtype=np.uint8))).hex()
                frames.append(Frame(pdq, int(quality), float(np.float32(n) / fps32)))
        except av.FFmpegError as exc:
            raise bad(
                f"damaged video: decoding stopped at frame {decoded} ({_reason(exc)})"
            ) from None
        if progress is not None:
            progress(decoded, expected)
    if decoded == 0:
        raise bad("has no frames")
    if expected and decoded < expected:
        raise bad(f"truncated or damaged: decoded {decoded} of its {expected} frames")
    slack = max(TRUNCATION_SLACK_SECONDS, 2 / fps)
    if declared is not None and ends is not None and ends < declared - slack:
        raise bad(f"truncated or damaged: decoded {ends:.1f} s of its {declared:.1f} s")
    if not frames:
        raise bad(
            f"no frame has PDQ quality {min_quality} or better ({dropped} sampled frames were "
            "all too flat to hash; lower --min-quality to keep them)"
        )
    limit = _vpdq.MAX_FRAMES
    if len(frames) > limit:
        seconds, sampled = _seconds_within(decoded, fps, limit)
        raise bad(
            f"{len(frames)} frames kept, more than a vpdq hash may hold ({limit}); hash it "
            f"with --seconds-per-hash {seconds:g} (at most {sampled} frames)"
        )
    return VideoHash(tuple(frames), decoded, dropped, fps, decoded / fps)


def _seconds_within(decoded: int, fps: float, limit: int) -> tuple[float, int]:
    """``(seconds_per_hash, frames sampled)``: the smallest setting, in whole tenths of a
    second up to one second and whole seconds above, that samples at most ``limit`` of
    ``decoded`` frames at ``fps`` (the step rule of :func:`vpdq_of_video`)."""
    tenths = itertools.chain((t / 10 for t in range(1, 10)), itertools.count(1))
    for seconds in tenths:
        step = max(1, int(seconds * fps))
        sampled = -(-decoded // step)
        if sampled <= limit:
            return float(seconds), sampled
    raise AssertionError("unreachable")  # itertools.count never ends


def _declared_seconds(metadata: dict[str, str]) -> float | None:
    """The track length a Matroska/WebM header declares (``DURATION``, ``HH:MM:SS.nnnnnnnnn``;
    ``DURATION-eng`` when the track has a language), or None."""
    for key, text in metadata.items():
        if key.upper() == "DURATION" or key.upper().startswith("DURATION-"):
            found = _DURATION_TAG.fullmatch(text.strip())
            if found:
                hours, minutes, seconds = found.groups()
                return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return None


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "strerror", "") or exc)
    return text.strip() or type(exc).__name__


__all__ = [
    "DEFAULT_SECONDS_PER_HASH",
    "TRUNCATION_SLACK_SECONDS",
    "Progress",
    "VideoHash",
    "vpdq_of_video",
]
