"""forum_client.match.media: MD5/SHA-256 streamed, PDQ of images through the media extra,
and image file -> PDQ -> match end to end on generated images."""

from __future__ import annotations

import doctest
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from forum_client.cli import main as client_main
from forum_client.match import media
from forum_client.match.media import MediaExtraMissing, hash_file, sniff_kind
from forum_client.store import LocalStore

from .test_match import FakeLog

pdqhash = pytest.importorskip(
    "pdqhash", reason="the media extra is not installed: pip install 'shared-signal-forum[media]'"
)
Image = pytest.importorskip("PIL.Image", reason="Pillow (media extra) is not installed")


def _dist(a: str, b: str) -> int:
    x = np.frombuffer(bytes.fromhex(a), np.uint8) ^ np.frombuffer(bytes.fromhex(b), np.uint8)
    return int(np.unpackbits(x).sum())


def noise_image(path: Path, seed: int, size: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((size, size), Image.BILINEAR)
    img.save(path)
    return np.asarray(img)


def shapes_image(path: Path) -> None:
    from PIL import ImageDraw

    img = Image.new("RGB", (300, 200), (240, 240, 240))
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 30, 140, 170), fill=(200, 30, 30))
    draw.ellipse((150, 40, 280, 180), fill=(20, 60, 200))
    draw.line((0, 199, 299, 0), fill=(0, 0, 0), width=5)
    img.save(path)


def test_module_example_runs() -> None:
    assert doctest.testmod(media).failed == 0


def test_streamed_digests_and_kinds(tmp_path: Path) -> None:
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)  # > one chunk
    clip = tmp_path / "clip.bin"
    clip.write_bytes(b"\x1a\x45\xdf\xa3" + data)  # Matroska magic: a video whatever its name
    h = hash_file(clip, video=False)  # digests only: this is no decodable video
    assert h.kind == "video" and h.pdq is None and h.quality is None and h.vpdq is None
    assert h.md5 == hashlib.md5(clip.read_bytes()).hexdigest()
    assert h.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()
    by_ext = tmp_path / "movie.MP4"
    by_ext.write_bytes(b"no magic here")
    assert sniff_kind(by_ext) == "video"
    other = tmp_path / "notes.txt"
    other.write_bytes(b"hello")
    assert hash_file(other).kind == "other"
    assert [t for t, _ in hash_file(other).signals()] == ["md5", "sha256"]


def test_pdq_of_generated_images_near_copies_match_others_do_not(tmp_path: Path) -> None:
    pixels = noise_image(tmp_path / "a.png", seed=1)
    # A slightly modified copy: re-encoded as JPEG, brightened, one corner scribbled on.
    tweaked = np.clip(pixels.astype(int) + 12, 0, 255).astype(np.uint8)
    tweaked[:10, :10] = 0
    Image.fromarray(tweaked).save(tmp_path / "a-copy.jpg", quality=80)
    noise_image(tmp_path / "b.png", seed=2)
    shapes_image(tmp_path / "c.png")

    a, copy, b, c = (hash_file(tmp_path / n) for n in ("a.png", "a-copy.jpg", "b.png", "c.png"))
    assert a.kind == copy.kind == "image"
    assert a.pdq and copy.pdq and b.pdq and c.pdq
    assert a.quality is not None and a.quality >= 50
    assert _dist(a.pdq, copy.pdq) <= 31
    assert _dist(a.pdq, b.pdq) > 31 and _dist(a.pdq, c.pdq) > 31
    # Reference check: the same bits as Meta's pdqhash called directly.
    bits, quality = pdqhash.compute(np.asarray(Image.open(tmp_path / "a.png").convert("RGB")))
    assert a.pdq == np.packbits(np.asarray(bits, np.uint8)).tobytes().hex()
    assert a.quality == quality


def test_low_quality_pdq_is_dropped_by_default(tmp_path: Path) -> None:
    Image.new("RGB", (128, 128), (30, 30, 30)).save(tmp_path / "blank.png")
    dropped = hash_file(tmp_path / "blank.png")
    assert dropped.pdq is None and dropped.quality is not None and dropped.quality < 50
    kept = hash_file(tmp_path / "blank.png", min_quality=0)
    assert kept.pdq is not None and len(kept.pdq) == 64


def test_missing_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    noise_image(tmp_path / "a.png", seed=3)
    monkeypatch.setitem(sys.modules, "pdqhash", None)  # import pdqhash -> ImportError
    with pytest.raises(MediaExtraMissing, match=r"pip install 'shared-signal-forum\[media\]'"):
        hash_file(tmp_path / "a.png")
    # Videos need the extra for vPDQ (tests/unit/test_video.py), not for their digests.
    (tmp_path / "v.mp4").write_bytes(b"\0\0\0\x18ftypisom" + bytes(64))
    assert hash_file(tmp_path / "v.mp4", video=False).kind == "video"
    with pytest.raises(MediaExtraMissing):
        hash_file(tmp_path / "v.mp4")
    assert client_main(["hash", str(tmp_path / "a.png")]) == 3  # a configuration error


def test_cli_hash_and_match_images_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    noise_image(tmp_path / "shared.png", seed=4)
    pixels = np.asarray(Image.open(tmp_path / "shared.png"))
    modified = np.clip(pixels.astype(int) - 15, 0, 255).astype(np.uint8)  # darker,
    modified[:12, :12] = 255  # with a small white mark in a corner
    Image.fromarray(modified).save(tmp_path / "mine.png")
    noise_image(tmp_path / "unrelated.png", seed=5)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")

    assert client_main(["hash", str(tmp_path / "shared.png"), str(tmp_path / "broken.png")]) == 2
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert set(out[0]) == {"path", "kind", "md5", "sha256", "pdq", "quality"}
    assert "error" in out[1]
    shared = out[0]

    with LocalStore(tmp_path / "copy.db") as store:
        log = FakeLog(store)
        log.genesis()
        log.submit("alice", [("pdq", shared["pdq"])])
        log.submit("bob", [("sha256", shared["sha256"])])
    db = str(tmp_path / "copy.db")
    files = [str(tmp_path / n) for n in ("mine.png", "shared.png", "unrelated.png")]
    assert client_main(["match", "--db", db, *files]) == 0
    mine, same, unrelated = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(m["query_type"], m["value"]) for m in mine["matches"]] == [("pdq", shared["pdq"])]
    assert 0 < mine["matches"][0]["distance"] <= 31
    assert sorted(m["query_type"] for m in same["matches"]) == ["pdq", "sha256"]
    assert unrelated["matches"] == []
