"""Hashing a member's own media files locally: PDQ for images, vPDQ for videos, MD5 and
SHA-256 for everything.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = pathlib.Path(d) / "clip.mp4"
    ...     _ = path.write_bytes(b"\\0\\0\\0\\x18ftypmp42" + bytes(100))
    ...     h = hash_file(path, video=False)
    >>> h.kind, h.pdq, h.vpdq, h.md5
    ('video', None, None, 'c426c0cbb1abaa7c3d40bc3a40159ae5')

MD5 and SHA-256 are computed in one streamed pass (1 MiB at a time; a file is never read
whole). Images also get a PDQ hash and its quality (0-100) through ``pdqhash`` (Meta's
reference implementation) and Pillow, the optional ``media`` extra
(``pip install 'shared-signal-forum[media]'``); without it, hashing an image raises
:class:`MediaExtraMissing` naming the extra. As Meta recommends, a PDQ hash whose quality is
below :data:`DEFAULT_MIN_QUALITY` (50) is dropped (blank, tiny or flat images hash to
near-identical values that match everything): ``pdq`` is then None, ``quality`` says why.
Videos (told by their magic bytes, else their extension) also get a vPDQ hash
(:mod:`forum_client.match.video`, PyAV in the same extra): one PDQ-hashed frame per second by
default, frames below the same quality floor dropped.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from forum_client.errors import InvalidInputError
from forum_client.match.extra import DEFAULT_MIN_QUALITY, MEDIA_EXTRA_HINT, MediaExtraMissing
from forum_client.match.video import DEFAULT_SECONDS_PER_HASH, Progress, vpdq_of_video

_CHUNK: Final = 1 << 20

IMAGE, VIDEO, OTHER = "image", "video", "other"

_VIDEO_EXTENSIONS: Final = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".qt",
        ".avi",
        ".mkv",
        ".webm",
        ".wmv",
        ".asf",
        ".flv",
        ".mpg",
        ".mpeg",
        ".m2ts",
        ".mts",
        ".ts",
        ".3gp",
        ".3g2",
        ".ogv",
        ".vob",
    }
)
_IMAGE_EXTENSIONS: Final = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".png",
        ".gif",
        ".bmp",
        ".webp",
        ".tif",
        ".tiff",
        ".ico",
        ".ppm",
        ".pgm",
        ".pbm",
        ".tga",
    }
)
_VIDEO_BRANDS: Final = (
    b"isom",
    b"iso2",
    b"mp41",
    b"mp42",
    b"qt  ",
    b"M4V ",
    b"avc1",
    b"dash",
    b"3gp",
    b"3g2",
    b"f4v ",
    b"mmp4",
    b"MSNV",
)


@dataclass(frozen=True)
class MediaHashes:
    """The hashes of one file. ``pdq`` is None for non-images and for images whose PDQ
    quality is below the minimum (``quality`` is then still reported)."""

    path: str
    kind: str
    md5: str
    sha256: str
    pdq: str | None = None
    quality: int | None = None
    vpdq: str | None = None
    frames: int | None = None
    """Videos: how many sampled frames the vpdq value keeps."""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "path": self.path,
            "kind": self.kind,
            "md5": self.md5,
            "sha256": self.sha256,
            "pdq": self.pdq,
            "quality": self.quality,
        }
        if self.kind == VIDEO:
            doc.update(vpdq=self.vpdq, frames=self.frames)
        return doc

    def signals(self) -> list[tuple[str, str]]:
        """``(type, value)`` pairs to match: md5, sha256, and pdq or vpdq (when kept)."""
        out = [("md5", self.md5), ("sha256", self.sha256)]
        if self.pdq is not None:
            out.append(("pdq", self.pdq))
        if self.vpdq is not None:
            out.append(("vpdq", self.vpdq))
        return out


def file_digests(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(md5, sha256)`` hex digests of a file, streamed."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            md5.update(view[:n])
            sha256.update(view[:n])
    return md5.hexdigest(), sha256.hexdigest()


def sniff_kind(path: str | os.PathLike[str]) -> str:
    """``image``, ``video`` or ``other``: by magic bytes, else by extension."""
    with open(path, "rb") as f:
        head = f.read(16)
    if (
        head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM"))
        or head.startswith((b"II*\x00", b"MM\x00*"))
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    ):
        return IMAGE
    if (
        (head[4:8] == b"ftyp" and head[8:12].startswith(_VIDEO_BRANDS))
        or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        or head.startswith(
            (b"\x1a\x45\xdf\xa3", b"FLV\x01", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")
        )
        or head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")  # ASF / WMV
    ):
        return VIDEO
    suffix = Path(path).suffix.lower()
    if suffix in _VIDEO_EXTENSIONS:
        return VIDEO
    if suffix in _IMAGE_EXTENSIONS:
        return IMAGE
    return OTHER


def _media_modules() -> tuple[Any, Any, Any]:
    """``(pdqhash, PIL.Image, numpy)``, or MediaExtraMissing."""
    try:
        import numpy
        import pdqhash  # type: ignore[import-not-found,unused-ignore]
        from PIL import Image
    except ImportError as exc:
        raise MediaExtraMissing(
            f"PDQ hashing of images needs the optional media extra ({exc.name or exc} is not "
            f"installed): {MEDIA_EXTRA_HINT}"
        ) from None
    return pdqhash, Image, numpy


def pdq_of_image(path: str | os.PathLike[str]) -> tuple[str, int]:
    """``(pdq hex, quality)`` of an image file. Raises MediaExtraMissing without the media
    extra, InvalidInputError if the file is not a readable image."""
    pdqhash, image_module, np = _media_modules()
    try:
        with image_module.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, ValueError, image_module.DecompressionBombError) as exc:
        raise InvalidInputError.field("file", f"{path}: not a readable image ({exc})") from None
    bits, quality = pdqhash.compute(np.asarray(rgb))
    packed = np.packbits(np.asarray(bits, dtype=np.uint8))
    return bytes(packed).hex(), int(quality)


def hash_file(
    path: str | os.PathLike[str],
    *,
    min_quality: int = DEFAULT_MIN_QUALITY,
    video: bool = True,
    seconds_per_hash: float = DEFAULT_SECONDS_PER_HASH,
    progress: Progress | None = None,
) -> MediaHashes:
    """MD5, SHA-256, and PDQ (images) or vPDQ (videos, unless ``video=False``) of one file;
    see the module docstring. ``progress(frames_decoded, frames_expected)`` follows a video.

    Raises OSError if the file cannot be read, MediaExtraMissing for an image or video without
    the media extra, InvalidInputError for an image or video that cannot be decoded.
    """
    if not 0 <= min_quality <= 100:
        raise InvalidInputError.field("min_quality", "must be from 0 to 100")
    kind = sniff_kind(path)
    md5, sha256 = file_digests(path)
    if kind == VIDEO and video:
        hashed = vpdq_of_video(
            path, seconds_per_hash=seconds_per_hash, min_quality=min_quality, progress=progress
        )
        return MediaHashes(
            os.fspath(path), kind, md5, sha256, vpdq=hashed.value, frames=len(hashed.frames)
        )
    if kind != IMAGE:
        return MediaHashes(os.fspath(path), kind, md5, sha256)
    pdq, quality = pdq_of_image(path)
    return MediaHashes(
        os.fspath(path), kind, md5, sha256, pdq if quality >= min_quality else None, quality
    )


__all__ = [
    "DEFAULT_MIN_QUALITY",
    "MEDIA_EXTRA_HINT",
    "MediaExtraMissing",
    "MediaHashes",
    "file_digests",
    "hash_file",
    "pdq_of_image",
    "sniff_kind",
]
