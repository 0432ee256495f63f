"""Realistic PDQ benchmark data: real PDQ hashes of varied generated images and their edits,
replicated with bit flips into clusters of uneven size, plus uniform hashes as a second set.

    .venv/bin/python scripts/pdq_data.py --n 1000000 --out bench-out/pdq-realistic-1000000.npz

Why: uniform random hashes spread evenly over the 16 x 65,536 multi-index-hashing buckets
(~15 entries each at 1M). Real PDQ hashes do not. Images share structure (flat regions,
gradients, centred subjects), so some 16-bit chunk values are far more common than others,
and a hash list holds many near-copies of one image (re-encodes, crops, captions). An index
tuned on uniform hashes can be much slower on the lists members really hold.

How the set is made (all seeded, so one ``--seed`` always gives the same bytes):

1. ``base`` images are drawn with Pillow: a gradient or flat background, 3-12 shapes
   (ellipses, boxes, polygons, lines), sometimes text, sometimes noise.
2. Each image gets ``edits`` edited copies, chosen from the edits lists really see: JPEG
   re-encode at quality 20-90, crop of 3-20%, down/up-scale, brightness and contrast changes,
   a caption bar, a border, grey scale, a blur, a small rotation, a mirror.
3. Every original and edit is hashed with ``pdqhash`` (Meta's reference implementation); hashes
   of quality < 50 are dropped, as ``forum-client hash`` does.
4. The real hashes are replicated to ``n`` with 0-12 random bit flips each (what repeated
   re-encoding does to a PDQ hash). Cluster sizes follow a Zipf law, so a few images have
   tens of thousands of near-copies, and one cluster is forced to ``--giant`` (100,000 by
   default) to measure updates inside a large cluster.

Queries: *hits* are stored hashes with 5-31 bits flipped (always within the default
threshold 31 of a stored hash); *misses* are real PDQ hashes of fresh images drawn from a
different seed (an unrelated upload, the common case when a member scans its media). Whether
a query really matches is decided by brute force in the benchmark, not assumed here.

The result is cached: a second run with the same arguments loads the file.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SEED = 20261129
MIN_QUALITY = 50
_SIZE = 256


def _image(rng: np.random.Generator) -> Any:
    from PIL import Image, ImageDraw

    w = int(rng.integers(200, 400))
    h = int(rng.integers(200, 400))
    if rng.random() < 0.6:
        a = rng.integers(0, 256, 3)
        b = rng.integers(0, 256, 3)
        t = np.linspace(0.0, 1.0, w if rng.random() < 0.5 else h)
        ramp = (a[None, :] * (1 - t[:, None]) + b[None, :] * t[:, None]).astype(np.uint8)
        if len(t) == w:
            arr = np.broadcast_to(ramp[None, :, :], (h, w, 3))
        else:
            arr = np.broadcast_to(ramp[:, None, :], (h, w, 3))
        img = Image.fromarray(np.ascontiguousarray(arr), "RGB")
    else:
        img = Image.new("RGB", (w, h), tuple(int(x) for x in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 13))):
        colour = tuple(int(x) for x in rng.integers(0, 256, 3))
        x0, x1 = sorted(int(x) for x in rng.integers(0, w, 2))
        y0, y1 = sorted(int(y) for y in rng.integers(0, h, 2))
        kind = int(rng.integers(4))
        if kind == 0:
            draw.ellipse((x0, y0, x1 + 1, y1 + 1), fill=colour)
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind == 2:
            pts = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(5)]
            draw.polygon(pts, fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(2, 12)))
    if rng.random() < 0.4:
        draw.text((int(rng.integers(0, w // 2)), int(rng.integers(0, h - 20))), "sample", fill=0)
    if rng.random() < 0.3:
        noise = rng.normal(0, 12, (h, w, 3))
        arr2 = np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr2, "RGB")
    return img


def _edit(img: Any, rng: np.random.Generator) -> Any:
    from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

    w, h = img.size
    kind = int(rng.integers(10))
    if kind == 0:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(20, 91)))
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if kind == 1:
        f = rng.uniform(0.03, 0.2, 4)
        box = (int(w * f[0] / 2), int(h * f[1] / 2), w - int(w * f[2] / 2), h - int(h * f[3] / 2))
        return img.crop(box)
    if kind == 2:
        s = rng.uniform(0.3, 0.8)
        return img.resize((max(16, int(w * s)), max(16, int(h * s)))).resize((w, h))
    if kind == 3:
        return ImageEnhance.Brightness(img).enhance(rng.uniform(0.6, 1.4))
    if kind == 4:
        return ImageEnhance.Contrast(img).enhance(rng.uniform(0.6, 1.4))
    if kind == 5:
        out = img.copy()
        bar = int(h * rng.uniform(0.08, 0.18))
        ImageDraw.Draw(out).rectangle((0, h - bar, w, h), fill=(0, 0, 0))
        ImageDraw.Draw(out).text((5, h - bar + 2), "caption text", fill=(255, 255, 255))
        return out
    if kind == 6:
        return ImageOps.expand(img, border=int(rng.integers(4, 30)), fill=(255, 255, 255))
    if kind == 7:
        return ImageOps.grayscale(img).convert("RGB")
    if kind == 8:
        return img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))
    if rng.random() < 0.5:
        return ImageOps.mirror(img)
    return img.rotate(float(rng.uniform(-8, 8)), expand=False, fillcolor=(0, 0, 0))


def _pdq(img: Any) -> tuple[bytes, int]:
    import pdqhash  # type: ignore[import-not-found,unused-ignore]

    bits, quality = pdqhash.compute(np.asarray(img.convert("RGB")))
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes(), int(quality)


def real_hashes(
    base: int, edits: int, seed: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """PDQ hashes (m, 32) of ``base`` generated images and ``edits`` edits of each, with the
    base image each came from (m,)."""
    rng = np.random.default_rng(seed)
    out: list[bytes] = []
    family: list[int] = []
    for i in range(base):
        img = _image(rng)
        for variant in [img] + [_edit(img, rng) for _ in range(edits)]:
            h, q = _pdq(variant)
            if q >= MIN_QUALITY:
                out.append(h)
                family.append(i)
    arr = np.frombuffer(b"".join(out), np.uint8).reshape(-1, 32).copy()
    return arr, np.array(family, np.int64)


def flip_bits(
    hashes: npt.NDArray[np.uint8], counts: npt.NDArray[np.int64], rng: np.random.Generator
) -> npt.NDArray[np.uint8]:
    """Each row of ``hashes`` with ``counts[i]`` distinct random bits flipped (vectorised)."""
    n = len(hashes)
    bits = np.unpackbits(hashes, axis=1)
    # A random permutation prefix per row: distinct positions without a Python loop.
    keys = rng.random((n, 256))
    order = np.argsort(keys, axis=1)
    take = np.arange(256)[None, :] < counts[:, None]
    rows = np.repeat(np.arange(n), counts)
    cols = order[take]
    bits[rows, cols] ^= 1
    return np.packbits(bits, axis=1)


def replicate(
    real: npt.NDArray[np.uint8], n: int, giant: int, rng: np.random.Generator
) -> npt.NDArray[np.uint8]:
    """``n`` hashes: every real hash once, the rest near-copies in Zipf-sized clusters."""
    m = len(real)
    if n <= m:
        return real[rng.choice(m, n, replace=False)]
    weights = 1.0 / np.arange(1, m + 1) ** 1.1
    rng.shuffle(weights)
    rest = n - m - min(giant, n - m)
    sizes = np.floor(weights / weights.sum() * rest).astype(np.int64)
    sizes[: rest - int(sizes.sum())] += 1
    sizes[int(rng.integers(m))] += min(giant, n - m)
    src = np.repeat(np.arange(m), sizes)
    flips = np.minimum(rng.geometric(0.25, len(src)) - 1, 12).astype(np.int64)
    copies = np.empty((len(src), 32), np.uint8)
    step = 1 << 18  # bounded memory: unpackbits of 256 bits per row
    for i in range(0, len(src), step):
        copies[i : i + step] = flip_bits(real[src[i : i + step]], flips[i : i + step], rng)
    data = np.concatenate([real, copies])
    return data[rng.permutation(len(data))]


def near_queries(
    hashes: npt.NDArray[np.uint8], k: int, rng: np.random.Generator
) -> npt.NDArray[np.uint8]:
    """``k`` stored hashes with 5-31 bits flipped."""
    picks = hashes[rng.integers(0, len(hashes), k)]
    return flip_bits(picks, rng.integers(5, 32, k).astype(np.int64), rng)


def make(n: int, queries: int, base: int, edits: int, giant: int, seed: int) -> dict[str, Any]:
    t = time.perf_counter()
    real, _ = real_hashes(base, edits, seed)
    fresh, _ = real_hashes(max(queries // 4, 1), 3, seed + 1)  # unrelated images: misses
    rng = np.random.default_rng(seed + 2)
    hashes = replicate(real, n, giant, rng)
    miss = fresh[rng.permutation(len(fresh))[:queries]]
    uniform = np.random.default_rng(seed + 3).integers(0, 256, size=(n, 32), dtype=np.uint8)
    urng = np.random.default_rng(seed + 4)
    return {
        "realistic": hashes,
        "realistic_near": near_queries(hashes, queries, rng),
        "realistic_miss": miss,
        "real": real,
        "uniform": uniform,
        "uniform_near": near_queries(uniform, queries, urng),
        "uniform_miss": urng.integers(0, 256, size=(queries, 32), dtype=np.uint8),
        "extra": urng.integers(0, 256, size=(queries, 32), dtype=np.uint8),
        "seconds": np.array([time.perf_counter() - t]),
    }


def load_or_make(
    path: str | os.PathLike[str],
    n: int,
    queries: int = 1000,
    base: int = 1500,
    edits: int = 7,
    giant: int = 100_000,
    seed: int = SEED,
) -> dict[str, npt.NDArray[Any]]:
    """The data set for these arguments, read from ``path`` if it was made before."""
    target = Path(path)
    meta = np.array([n, queries, base, edits, giant, seed], np.int64)
    if target.exists():
        with np.load(target) as f:
            if np.array_equal(f["meta"], meta):
                return {k: f[k] for k in f.files}
    data = make(n, queries, base, edits, giant, seed)
    data["meta"] = meta
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    os.replace(tmp, target)
    return data


def bucket_sizes(hashes: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Entries per multi-index-hashing bucket (16 chunks of 16 bits), largest first."""
    chunks = np.ascontiguousarray(hashes).view("<u2")
    counts = [np.bincount(chunks[:, c], minlength=1 << 16) for c in range(16)]
    return np.sort(np.concatenate(counts))[::-1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="hashes per set")
    p.add_argument("--queries", type=int, default=1000, help="hit and miss queries per set")
    p.add_argument("--base", type=int, default=1500, help="generated images")
    p.add_argument("--edits", type=int, default=7, help="edited copies per image")
    p.add_argument("--giant", type=int, default=100_000, help="size of the forced big cluster")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--out", required=True, help="cache file (.npz)")
    args = p.parse_args(argv)
    data = load_or_make(
        args.out, args.n, args.queries, args.base, args.edits, args.giant, args.seed
    )
    for name in ("realistic", "uniform"):
        sizes = bucket_sizes(data[name])
        print(
            f"{name}: {len(data[name]):,} hashes; buckets: largest {sizes[:5].tolist()}, "
            f"mean {sizes.mean():.1f}, 99.99th pct {np.percentile(sizes, 99.99):.0f}",
            file=sys.stderr,
        )
    print(f"real PDQ hashes: {len(data['real']):,}; made in {float(data['seconds'][0]):.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
