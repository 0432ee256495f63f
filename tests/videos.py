"""Videos made in the test: moving shapes and text, written with PyAV (the media extra).

``make_video(path, seed=1, seconds=6)`` draws a scene whose shapes, colours and caption follow
from ``seed``, so two seeds give two different videos and one seed always the same frames.
``reencode`` writes an existing video again with another size, bitrate, codec or start.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont


def scene(seed: int, t: float, width: int = 320, height: int = 240) -> np.ndarray:
    """The RGB frame of scene ``seed`` at time ``t`` seconds."""
    rng = np.random.default_rng(seed)
    # A textured background (two drifting sine gratings) gives PDQ gradients to work with.
    fx, fy, phase = rng.uniform(0.02, 0.08), rng.uniform(0.02, 0.08), rng.uniform(0, 6.3)
    yy, xx = np.mgrid[0:height, 0:width]
    wave = np.sin(fx * xx + phase + 0.8 * t) + np.cos(fy * yy - 0.5 * t)
    tint = rng.uniform(0.3, 1.0, 3)
    base = (127 + 60 * wave)[..., None] * tint
    img = Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for k in range(6):
        colour = tuple(int(x) for x in rng.integers(0, 256, 3))
        cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        vx, vy = rng.uniform(-60, 60), rng.uniform(-40, 40)
        r = rng.uniform(12, 40)
        x = (cx + vx * t) % width
        y = (cy + vy * t) % height
        box = (x - r, y - r, x + r, y + r)
        if k % 2:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    font = ImageFont.load_default()
    draw.text((10, height - 30), f"scene {seed} t={t:5.2f}s", fill=(255, 255, 255), font=font)
    return np.asarray(img)


def make_video(
    path: Path,
    seed: int = 1,
    seconds: float = 6.0,
    fps: int = 25,
    size: tuple[int, int] = (320, 240),
    codec: str = "libx264",
    bit_rate: int | None = None,
) -> Path:
    """Write ``seconds`` of scene ``seed`` to ``path`` and return it."""
    frames = [scene(seed, n / fps, *size) for n in range(round(seconds * fps))]
    return write_frames(path, frames, fps=fps, codec=codec, bit_rate=bit_rate)


def write_frames(
    path: Path,
    frames: list[np.ndarray],
    fps: int = 25,
    codec: str = "libx264",
    bit_rate: int | None = None,
) -> Path:
    """Encode RGB ``frames`` to ``path`` (container from the file name)."""
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if bit_rate:
            stream.bit_rate = bit_rate
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def decode_rgb(path: Path) -> tuple[list[np.ndarray], int]:
    """Every frame of ``path`` as RGB, and its frame rate (rounded)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = round(float(stream.average_rate or 25))
        return [f.to_ndarray(format="rgb24") for f in container.decode(stream)], fps


def reencode(
    src: Path,
    dst: Path,
    *,
    size: tuple[int, int] | None = None,
    bit_rate: int | None = None,
    codec: str = "libx264",
    skip_seconds: float = 0.0,
) -> Path:
    """``src`` written again to ``dst``: resized, at another bitrate or codec, or with its
    first ``skip_seconds`` trimmed."""
    frames, fps = decode_rgb(src)
    frames = frames[round(skip_seconds * fps) :]
    if size is not None:
        frames = [np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames]
    return write_frames(dst, frames, fps=fps, codec=codec, bit_rate=bit_rate)
