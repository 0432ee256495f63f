"""vPDQ: hashing generated videos, the matching rule, the frame index against brute force,
and agreement with Meta's reference hasher and python-threatexchange's serialisation."""

from __future__ import annotations

import doctest
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import forum_client.match.video_index as video_index_module
import forum_client.signals.vpdq as vpdq_module
from forum_client.cli import main as client_main
from forum_client.errors import InvalidInputError
from forum_client.match.extra import MediaExtraMissing
from forum_client.match.media import hash_file
from forum_client.match.video import vpdq_of_video
from forum_client.match.video_index import (
    VideoIndex,
    frame_arrays,
    frame_arrays_of_normal_value,
    matchable,
)
from forum_client.signals import normalize
from forum_client.signals.vpdq import Frame, parse_frames
from tests.videos import decode_rgb, make_video, reencode, write_frames

pytest.importorskip("av")


def test_module_examples_run() -> None:
    assert doctest.testmod(vpdq_module).failed == 0
    assert doctest.testmod(video_index_module).failed == 0


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    shared = make_video(d / "shared.mp4", seed=1, seconds=10)
    return {
        "shared": shared,
        "low_bitrate": reencode(shared, d / "low.mp4", bit_rate=120_000),
        "resized": reencode(shared, d / "small.mp4", size=(200, 150)),
        "trimmed": reencode(shared, d / "trimmed.mp4", skip_seconds=3),
        "vp8_webm": reencode(shared, d / "other.webm", codec="libvpx"),
        "different": make_video(d / "different.mp4", seed=2, seconds=10),
    }


def shares(query: Path, shared: Path) -> tuple[float, float]:
    index: VideoIndex[str] = VideoIndex()
    index.add("shared", vpdq_of_video(shared).frames)
    found = index.query(vpdq_of_video(query).frames, query_match=0, compared_match=0)
    return (found[0].query_match, found[0].compared_match) if found else (0.0, 0.0)


def test_one_frame_a_second_with_timestamps(videos: dict[str, Path]) -> None:
    h = vpdq_of_video(videos["shared"])
    assert h.frames_decoded == 250 and h.fps == 25.0 and h.duration == 10.0
    assert [f.timestamp for f in h.frames] == [float(s) for s in range(10)]
    assert all(f.quality >= 50 and len(f.pdq) == 64 for f in h.frames)
    assert parse_frames(h.value) == list(h.frames)
    # As the reference: every int(0.5 s * 25 fps) = 12th frame, timestamps in float32.
    half = vpdq_of_video(videos["shared"], seconds_per_hash=0.5)
    assert [f.timestamp for f in half.frames] == [
        float(np.float32(n) / np.float32(25)) for n in range(0, 250, 12)
    ]


@pytest.mark.parametrize("variant", ["low_bitrate", "resized", "trimmed", "vp8_webm"])
def test_edited_copies_match_both_ways(videos: dict[str, Path], variant: str) -> None:
    query_share, shared_share = shares(videos[variant], videos["shared"])
    assert query_share >= 80
    if variant == "trimmed":  # 7 of the shared video's 10 seconds are in the query
        assert 60 <= shared_share < 80
    else:
        assert shared_share >= 80


def test_three_seconds_trimmed_from_a_20_second_video_match_by_the_default_rule(
    tmp_path: Path,
) -> None:
    shared = make_video(tmp_path / "shared.mp4", seed=6, seconds=20, fps=5, size=(160, 120))
    trimmed = reencode(shared, tmp_path / "trimmed.mp4", skip_seconds=3)
    index: VideoIndex[str] = VideoIndex()
    index.add("shared", vpdq_of_video(shared).frames)
    [found] = index.query(vpdq_of_video(trimmed).frames)  # 80% each way, distance 31
    assert (found.key, found.query_match, found.compared_match) == ("shared", 100.0, 85.0)


def test_a_different_video_does_not_match(videos: dict[str, Path]) -> None:
    assert shares(videos["different"], videos["shared"]) == (0.0, 0.0)


def test_one_matching_frame_in_ten_fails_the_80_percent_rule() -> None:
    rng = np.random.default_rng(5)
    shared = [Frame(rng.bytes(32).hex(), 100, float(i)) for i in range(10)]
    query = [shared[0]] + [Frame(rng.bytes(32).hex(), 100, float(i)) for i in range(1, 10)]
    index: VideoIndex[str] = VideoIndex()
    index.add("v", shared)
    [loose] = index.query(query, query_match=0, compared_match=0)
    assert (loose.query_match, loose.compared_match, loose.distance) == (10.0, 10.0, 0)
    assert index.query(query) == []
    assert index.query(shared)[0].query_match == 100.0


def test_a_video_sharing_one_second_in_ten_fails_the_80_percent_rule(
    videos: dict[str, Path], tmp_path: Path
) -> None:
    """The same on generated videos: the first second of the shared video, then nine of the
    different one, so 1 of the 10 sampled frames matches each way."""
    shared, fps = decode_rgb(videos["shared"])
    different, _ = decode_rgb(videos["different"])
    spliced = write_frames(tmp_path / "spliced.mp4", shared[:fps] + different[fps:], fps=fps)
    assert shares(spliced, videos["shared"]) == (10.0, 10.0)
    index: VideoIndex[str] = VideoIndex()
    index.add("shared", vpdq_of_video(videos["shared"]).frames)
    assert index.query(vpdq_of_video(spliced).frames) == []


def flip(h: bytes, bits: int, rng: np.random.Generator) -> bytes:
    b = np.unpackbits(np.frombuffer(h, np.uint8))
    b[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(b).tobytes()


def brute(
    videos: dict[int, list[Frame]], query: list[Frame], threshold: int, q_pct: float, c_pct: float
) -> dict[int, tuple[float, float]]:
    """The reference rule written out: popcount every query frame against every frame."""
    q = matchable(query)
    out = {}
    for key, frames in videos.items():
        v = matchable(frames)
        if not v:
            continue
        dist = np.array(
            [
                [bin(int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).count("1") for b in v]
                for a in q
            ]
        )
        near = dist <= threshold
        qs, cs = 100 * near.any(axis=1).mean(), 100 * near.any(axis=0).mean()
        if near.any() and qs >= q_pct and cs >= c_pct:
            out[key] = (float(qs), float(cs))
    return out


def test_index_equals_brute_force_on_clustered_data_and_after_removals() -> None:
    rng = np.random.default_rng(11)
    # 40 videos from 8 "scenes": copies share frames within a few bits, some frames are flat.
    scenes = [[rng.bytes(32) for _ in range(12)] for _ in range(8)]
    videos: dict[int, list[Frame]] = {}
    for key in range(40):
        base = scenes[key % 8]
        keep = rng.choice(12, int(rng.integers(4, 13)), replace=False)
        videos[key] = [
            Frame(
                flip(base[i], int(rng.integers(0, 24)), rng).hex(),
                int(rng.choice([20, 80, 100])),
                float(t),
            )
            for t, i in enumerate(sorted(keep))
        ]
    built: VideoIndex[int] = VideoIndex.build(videos.items())
    added: VideoIndex[int] = VideoIndex()  # the same, one video at a time
    for key, frames in videos.items():
        added.add(key, frames)
    assert built.frame_count == added.frame_count < sum(map(len, videos.values()))  # shared
    for removed in (None, 3, 11, 19):
        if removed is not None:
            for index in (built, added):
                assert index.remove(removed) and not index.remove(removed)
            del videos[removed]
        for s in range(8):
            query = [
                Frame(flip(h, int(rng.integers(0, 30)), rng).hex(), 100, float(t))
                for t, h in enumerate(scenes[s][: int(rng.integers(3, 13))])
            ]
            for threshold, q_pct, c_pct in ((31, 80, 80), (20, 50, 0), (40, 0, 0)):
                want = brute(videos, query, threshold, q_pct, c_pct)
                for index in (built, added):
                    got = {
                        m.key: (m.query_match, m.compared_match)
                        for m in index.query(
                            query, threshold=threshold, query_match=q_pct, compared_match=c_pct
                        )
                    }
                    assert got.keys() == want.keys()
                    for key, (qs, cs) in want.items():
                        assert got[key] == pytest.approx((qs, cs))
    # Removing every video that held a frame takes the frame out of the PDQ index too.
    for index in (built, added):
        for key in list(videos):
            index.remove(key)
        assert len(index) == 0 and index.frame_count == 0


def test_normal_values_parse_fast_to_the_same_frames() -> None:
    rng = np.random.default_rng(8)
    frames = [Frame(rng.bytes(32).hex(), int(rng.integers(0, 101)), t * 0.7) for t in range(50)]
    value = normalize("vpdq", "\n".join(map(str, frames)))
    hashes, qualities = frame_arrays_of_normal_value(value)
    want_hashes, want_qualities = frame_arrays(parse_frames(value))
    assert (hashes == want_hashes).all() and (qualities == want_qualities).all()


def test_pytx_serialisation_byte_for_byte() -> None:
    """python-threatexchange writes each frame as f"{hex},{quality},{timestamp:.3}" and the
    list with json.dumps (its vpdq_util.VpdqCompactFeature.__str__ and vpdq_to_json); the same
    rule written out here from that description, independently of forum_client."""
    rng = np.random.default_rng(3)
    frames = [(rng.bytes(32).hex(), int(rng.integers(0, 101)), float(t) * 1.7) for t in range(700)]
    theirs = json.dumps([f"{h},{q},{t:.3}" for h, q, t in frames])
    lines = "\n".join(f"{n},{h.upper()},{q},{t}" for n, (h, q, t) in enumerate(frames))
    assert normalize("vpdq", lines) == theirs
    assert normalize("vpdq", theirs) == theirs


def test_bad_videos_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_bytes(b"this is not a video at all" * 10)
    good = make_video(tmp_path / "good.mp4", seed=3, seconds=3)
    data = good.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    flat = write_frames(tmp_path / "flat.mp4", [np.full((120, 160, 3), 40, np.uint8)] * 50)
    import av

    with av.open(str(tmp_path / "empty.mkv"), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        out.start_encoding()
    for name, words in [
        ("notes.mp4", "not a readable video"),
        ("cut.mp4", "not a readable video"),
        ("empty.mkv", "not a readable video"),
        ("flat.mp4", "no frame has PDQ quality 50 or better"),
    ]:
        with pytest.raises(InvalidInputError, match=str(tmp_path / name)) as caught:
            vpdq_of_video(tmp_path / name)
        assert words in str(caught.value)
    assert vpdq_of_video(flat, min_quality=0).frames  # the floor is the caller's to lower


def test_a_truncated_fragment_at_the_end_is_refused(tmp_path: Path) -> None:
    import av

    src = make_video(tmp_path / "src.mp4", seed=4, seconds=4)
    frames = [f.to_ndarray(format="rgb24") for f in av.open(str(src)).decode(video=0)]
    fast = tmp_path / "fast.mp4"
    with av.open(str(fast), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = fast.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])  # index first, data cut
    with pytest.raises(InvalidInputError, match=r"cut\.mp4: truncated or damaged: decoded \d+ of"):
        vpdq_of_video(tmp_path / "cut.mp4")


@pytest.mark.parametrize("codec", ["libx264", "libvpx"])
def test_a_truncated_matroska_or_webm_is_refused(tmp_path: Path, codec: str) -> None:
    """Matroska and WebM declare no frame count, but FFmpeg and mkvmerge write each track's
    length (its DURATION tag): a file cut short decodes cleanly to its last whole cluster."""
    src = make_video(tmp_path / "src.mp4", seed=4, seconds=6)
    whole = reencode(
        src, tmp_path / ("whole.mkv" if codec == "libx264" else "whole.webm"), codec=codec
    )
    assert len(vpdq_of_video(whole).frames) == 6
    data = whole.read_bytes()
    cut = tmp_path / f"cut{whole.suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match=rf"cut\{whole.suffix}: truncated or damaged: "):
        vpdq_of_video(cut)


def test_missing_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    video = make_video(tmp_path / "v.mp4", seed=5, seconds=1)
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(MediaExtraMissing, match=r"pip install 'shared-signal-forum\[media\]'"):
        hash_file(video)
    assert hash_file(video, video=False).vpdq is None  # digests need no extra


def test_cli_hash_prints_a_value_submit_accepts(
    videos: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.mp4").write_bytes(b"\0\0\0\x18ftypisom" + bytes(64))
    assert client_main(["hash", str(videos["shared"]), str(tmp_path / "bad.mp4")]) == 2
    ok, bad = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert ok["kind"] == "video" and ok["frames"] == 10 and ok["pdq"] is None
    assert normalize("vpdq", ok["vpdq"]) == ok["vpdq"]
    assert "bad.mp4" in bad["error"] and "not a readable video" in bad["error"]
    assert client_main(["hash", "--seconds-per-hash", "-1", str(videos["shared"])]) == 2
    assert "--seconds-per-hash" in capsys.readouterr().err


def test_agrees_with_the_reference_hasher_frame_for_frame(videos: dict[str, Path]) -> None:
    vpdq = pytest.importorskip(
        "vpdq",
        reason="Meta's vpdq binding is not installed: it builds only from source against "
        "FFmpeg's development headers (apt-get install libavformat-dev libavcodec-dev "
        "libswscale-dev libavdevice-dev; pip install vpdq)",
    )
    for name in ("shared", "resized", "vp8_webm"):
        ours = vpdq_of_video(videos[name], min_quality=0).frames
        theirs = vpdq.computeHash(str(videos[name]), seconds_per_hash=1)
        assert [(f.pdq, f.quality, f.timestamp) for f in ours] == [
            (t.hex, t.quality, pytest.approx(t.timestamp)) for t in theirs
        ]


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so the CLI draws its progress bar."""

    def isatty(self) -> bool:
        return True


def test_cli_shows_progress_on_a_terminal_whether_or_not_the_frame_count_is_known(
    videos: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An MP4 declares its frame count, a Matroska file (or WebM, FLV, MPEG-TS) does not.
    mkv = reencode(videos["shared"], tmp_path / "shared.mkv")
    for video, counted in ((videos["shared"], "100%"), (mkv, "250")):
        terminal = _Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        assert client_main(["hash", str(video)]) == 0
        assert json.loads(capsys.readouterr().out)["frames"] == 10
        assert f"hashing {video.name}" in terminal.getvalue()
        assert counted in terminal.getvalue()
        quiet = _Terminal()
        monkeypatch.setattr(sys, "stderr", quiet)
        assert client_main(["--quiet", "hash", str(video)]) == 0
        assert json.loads(capsys.readouterr().out)["frames"] == 10
        assert quiet.getvalue() == ""


def test_a_video_over_the_frame_limit_is_refused_with_the_setting_that_fits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hash`` and ``match FILE`` refuse a video that would keep more frames than a vpdq value
    may hold (the limit lowered to 5 here: 3 s at 25 fps, every frame hashed, keeps 75), name
    the file and the ``--seconds-per-hash`` that fits, and print no value."""
    from forum_client.store import LocalStore

    video = make_video(tmp_path / "long.mp4", seed=4, seconds=3)
    LocalStore(tmp_path / "copy.db").close()
    monkeypatch.setattr(vpdq_module, "MAX_FRAMES", 5)
    # 75 frames at 25 fps: 0.6 s is a step of 15 frames, 5 sampled (0.5 s would give 7).
    fix = "--seconds-per-hash 0.6 (at most 5 frames)"
    assert client_main(["hash", "--seconds-per-hash", "0", str(video)]) == 2
    out, err = capsys.readouterr()
    (doc,) = [json.loads(x) for x in out.splitlines()]
    assert set(doc) == {"path", "error"} and "long.mp4" in doc["error"]
    assert "75 frames kept" in doc["error"] and fix in doc["error"]
    db = str(tmp_path / "copy.db")
    assert client_main(["match", "--db", db, "--seconds-per-hash", "0", str(video)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "long.mp4" in err and fix in err
    # The suggested setting works: the value it prints is one submit accepts.
    assert client_main(["hash", "--seconds-per-hash", "0.6", str(video)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["frames"] == 5 and normalize("vpdq", doc["vpdq"]) == doc["vpdq"]
