"""interpolate.py and video/: frame counts and rates, bit-exact originals, odd sizes, YUV reading, tiling,
audio copy, start-up errors and clean failure. Most runs use the model-free ``--baseline average``; two tests run
the student with random weights on tiny frames."""
from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import interpolate
import models
from pipeline import conversion
from video.interpolation import (
    double_frame_rate,
    frame_to_tensor,
    model_interpolator,
    output_frame_count,
    raise_frame_rate,
    tensor_to_frame,
)
from video.readers import open_source
from video.tiling import interpolate_tiled, tile_starts
from video.writers import VideoWriter
from video.yuv import YUVFormat, format_from_name

CLIP = Path(__file__).resolve().parents[1] / "assets" / "bbb_448x256.mp4"
FAST = ["--baseline", "average", "--preset", "ultrafast"]


def converted(argv: list[str]) -> dict:
    """The summary of an interpolate.py run that must succeed."""
    return interpolate.run(interpolate.build_parser().parse_args(argv))


def random_frames(count: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    generators = [np.random.default_rng(seed + index) for index in range(count)]
    return [generator.integers(0, 256, (height, width, 3), dtype=np.uint8) for generator in generators]


def smooth_frame(height: int, width: int, phase: float = 0.0) -> np.ndarray:
    """Low-frequency colour ramps (chroma subsampling loses little)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [np.sin(x / 30 + phase) + np.cos(y / 25), np.cos(x / 35 - y / 40 + phase), np.sin(y / 30 - phase)]
    return np.stack([np.rint(120 + 50 * c) for c in channels], axis=-1).astype(np.uint8)


def write_video(path: Path, frames: list[np.ndarray], rate: int = 10, audio_seconds: float = 0.0) -> Path:
    """A lossless RGB (libx264rgb) test clip, optionally with a mono AAC tone."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264rgb", rate=rate, options={"crf": "0", "preset": "ultrafast"})
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "rgb24"
        audio = container.add_stream("aac", rate=16000) if audio_seconds else None
        if audio is not None:
            audio.layout = "mono"
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for start in range(0, int(16000 * audio_seconds), 1024):
            samples = (0.2 * np.sin(np.arange(start, start + 1024) / 10)).astype(np.float32)[None]
            tone = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            tone.sample_rate, tone.pts = 16000, start
            for packet in audio.encode(tone):
                container.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode() if stream is not None else []:
                container.mux(packet)
    return path


def read_video(path: Path) -> tuple[list[np.ndarray], Fraction, list[dict]]:
    """Frames, frame rate and, per stream, its type, codec, pixel format and duration in seconds."""
    with av.open(str(path)) as container:
        streams = [
            {
                "type": stream.type,
                "codec": stream.codec_context.name,
                "pix_fmt": getattr(stream.codec_context, "pix_fmt", None),
                "seconds": stream.duration * stream.time_base if stream.duration else None,
            }
            for stream in container.streams
        ]
        rate = container.streams.video[0].average_rate
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return frames, rate, streams


def write_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir()
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"img{index + 1}.png")  # 1-based, unpadded: sorted by number
    return folder


def read_folder(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(path)) for path in sorted(folder.glob("*.png"))]


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if "partial" in path.name)


# --- the engine ---------------------------------------------------------------------------------------------


def ramp(count: int) -> list[torch.Tensor]:
    """Frames whose single value is their time t / 10 (all in [0, 1])."""
    return [torch.full((1, 1, 1, 1), i / 10, dtype=torch.float64) for i in range(count)]


def recording_average(calls: list[tuple[float, ...]]):
    def interpolate_frames(frame0, frame1, frame2, frame3):
        calls.append(tuple(round(frame.item() * 10, 3) for frame in (frame0, frame1, frame2, frame3)))
        return (frame1 + frame2) / 2

    return interpolate_frames


def test_windows_repeat_end_frames_and_counts_follow_factor():
    calls = []
    out = [frame.item() * 10 for frame in double_frame_rate(ramp(4), recording_average(calls))]
    assert calls == [(0, 0, 1, 2), (0, 1, 2, 3), (1, 2, 3, 3)]
    assert out == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5, 3])
    for factor in (2, 4, 8):
        out = [frame.item() * 10 for frame in raise_frame_rate(ramp(3), recording_average([]), factor)]
        assert len(out) == output_frame_count(3, factor) == factor * 2 + 1
        assert out == pytest.approx(np.linspace(0, 2, len(out)))


def test_second_pass_windows_come_from_the_doubled_sequence():
    calls = []
    list(raise_frame_rate(ramp(3), recording_average(calls), 4))  # the passes interleave as they stream
    first_pass = [(0, 0, 1, 2), (0, 1, 2, 2)]
    # Equally spaced at the 2x rate: (t - 1/2, t, t + 1/2, t + 1), the ends repeated.
    second_pass = [(0, 0, 0.5, 1), (0, 0.5, 1, 1.5), (0.5, 1, 1.5, 2), (1, 1.5, 2, 2)]
    assert sorted(calls) == sorted(first_pass + second_pass)


def test_duplicate_boundary_copies_end_frames_like_the_original():
    calls = []
    out = [frame.item() * 10 for frame in double_frame_rate(ramp(4), recording_average(calls), "duplicate")]
    assert calls == [(0, 1, 2, 3)]
    assert out == pytest.approx([0, 0, 1, 1.5, 2, 3, 3])
    with pytest.raises(ValueError, match="at least 2 frames"):
        list(double_frame_rate(ramp(1), recording_average([])))


def test_frame_tensor_conversion_is_exact_for_8_bit_frames():
    frame = random_frames(1, 5, 7)[0]
    assert np.array_equal(tensor_to_frame(frame_to_tensor(frame)), frame)


# --- tiling -------------------------------------------------------------------------------------------------


def test_tile_starts_cover_the_frame_with_the_last_tile_flush():
    assert tile_starts(100, 128, 32) == [0]
    assert tile_starts(256, 128, 32) == [0, 96, 128]
    assert tile_starts(300, 100, 20) == [0, 80, 160, 200]
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(300, 100, 60)


def test_tiling_a_pixelwise_interpolator_is_exact_everywhere():
    frames = [torch.rand(2, 3, 37, 53, dtype=torch.float64) for _ in range(4)]
    average = lambda f0, f1, f2, f3: (f1 + f2) / 2  # noqa: E731
    tiled = interpolate_tiled(average, frames, tile_size=16, overlap=5, batch_size=3)
    torch.testing.assert_close(tiled, average(*frames), rtol=0, atol=1e-12)


def test_tiling_a_local_filter_is_exact_away_from_tile_borders():
    """A 5x5 box filter (radius 2) sees zero padding at tile borders; elsewhere every tile agrees."""
    def box_filter(f0, f1, f2, f3):
        return torch.nn.functional.avg_pool2d(f1, 5, stride=1, padding=2, count_include_pad=True)

    frames = [torch.rand(1, 3, 40, 70, dtype=torch.float64) for _ in range(4)]
    tiled = interpolate_tiled(box_filter, frames, tile_size=32, overlap=8)
    difference = (tiled - box_filter(*frames)).abs()[0].amax(0)
    near_border = torch.zeros(40, 70, dtype=torch.bool)
    for start in tile_starts(70, 32, 8)[1:]:
        near_border[:, start - 2 : start + 2] = True  # left border of a tile inside the frame
    for start in tile_starts(70, 32, 8)[:-1]:
        near_border[:, start + 32 - 2 : start + 32 + 2] = True  # right border
    for start in tile_starts(40, 32, 8)[1:]:
        near_border[start - 2 : start + 2, :] = True
    for start in tile_starts(40, 32, 8)[:-1]:
        near_border[start + 32 - 2 : start + 32 + 2, :] = True
    assert difference[~near_border].max() < 1e-12
    assert difference[near_border].max() > 1e-3  # the test would notice unblended borders


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    return models.get_model_class("student_STMFNet")().eval()


@pytest.mark.slow
def test_tiled_student_matches_whole_frame_away_from_seams(student):
    """128x192 crop of the clip, two 128-px tiles overlapping by 64 px (columns 64..127)."""
    with av.open(str(CLIP)) as container:
        clip = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(4), container.decode(video=0))]
    frames = [frame_to_tensor(frame[64:192, 128:320]) for frame in clip]
    run = model_interpolator(student)
    whole = run(*frames)
    tiled = interpolate_tiled(run, frames, tile_size=128, overlap=64, batch_size=2)
    difference = (whole - tiled).abs()[0].amax(0)
    # Away from the seam zone (and from the right edge, where the whole frame is reflect-padded to 256 px by the
    # model and the tile is not) the two agree to within 1/255; measured max ~3e-4 with these random weights.
    away = torch.cat([difference[:, :56], difference[:, 136:176]], dim=1)
    assert away.max() < 1 / 255
    assert away.mean() < 1e-3


# --- YUV ----------------------------------------------------------------------------------------------------


def test_yuv_format_from_file_name_as_the_original():
    assert format_from_name("A_1920x1080_60fps_10bit_420.yuv") == YUVFormat(1920, 1080, "420", 10)
    assert format_from_name("B-444-16bit.yuv", size="64x32") == YUVFormat(64, 32, "444", 16)
    assert format_from_name("plain.yuv") == YUVFormat(1920, 1080, "420", 8)
    assert YUVFormat(5, 3).bytes_per_frame == 15 + 2 * 3 * 2
    assert YUVFormat(4, 2, "444", 10).bytes_per_frame == 4 * 2 * 3 * 2


def write_yuv(path: Path, frames: list[np.ndarray], pix_fmt: str) -> Path:
    """Raw planes converted by FFmpeg's swscale (BT.601 limited range), an independent reference."""
    with open(path, "wb") as file:
        for frame in frames:
            converted = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format=pix_fmt)
            dtype = np.uint8 if pix_fmt.endswith("p") else np.dtype("<u2")
            for plane in converted.planes:
                samples = np.frombuffer(plane, dtype=dtype).reshape(plane.height, -1)[:, : plane.width]
                file.write(samples.tobytes())
    return path


@pytest.mark.parametrize("pix_fmt, name", [
    ("yuv420p", "seq_48x32_25fps.yuv"),
    ("yuv420p10le", "seq_48x32_25fps_10bit.yuv"),
    ("yuv444p16le", "seq-444-16bit_48x32_25fps.yuv"),
])
def test_yuv_round_trip_through_the_reader(tmp_path, pix_fmt, name):
    frames = [smooth_frame(32, 48, phase) for phase in (0.0, 0.5, 1.0)]
    source = open_source(write_yuv(tmp_path / name, frames, pix_fmt))
    assert (source.info.width, source.info.height, source.info.frame_count) == (48, 32, 3)
    assert source.info.frame_rate == 25
    decoded = list(source)
    assert decoded[0].dtype == (np.uint8 if pix_fmt == "yuv420p" else np.uint16)  # deeper sources are not rounded
    decoded = [tensor_to_frame(frame_to_tensor(frame)) for frame in decoded]
    error = np.abs(np.stack(decoded).astype(int) - np.stack(frames).astype(int))
    # Differences: 8-bit rounding twice and 4:2:0 chroma (swscale subsamples, we repeat); measured 0.7 / 3 (8-bit).
    assert error.mean() < 1.0 and error.max() <= 3


def test_yuv_input_end_to_end_takes_rate_from_name(tmp_path):
    yuv = write_yuv(tmp_path / "seq_48x32_25fps.yuv", [smooth_frame(32, 48, p) for p in (0.0, 0.5, 1.0)], "yuv420p")
    summary = converted([*FAST, "--yuv_path", str(yuv), "--out_dir", str(tmp_path)])
    # The original's naming: <name up to the first '-'>_<W>x<H>_<fps>fps_<net>.mp4
    frames, rate, _ = read_video(tmp_path / "seq_48x32_25fps_48x32_50fps_baseline_average.mp4")
    assert (len(frames), rate, summary["frames_out"]) == (5, 50, 5)


# --- the script ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("factor", [2, 4])
def test_frame_count_and_rate_on_the_shipped_clip(tmp_path, factor):
    output = tmp_path / f"bbb_{factor}x.mp4"
    summary = converted([*FAST, "--input", str(CLIP), "--output", str(output), "--factor", str(factor),
                                "--max_frames", "5"])
    frames, rate, _ = read_video(output)
    assert len(frames) == summary["frames_out"] == factor * 4 + 1
    assert rate == 25 * factor and frames[0].shape == (256, 448, 3)


def test_slow_motion_keeps_the_input_rate(tmp_path):
    clip = write_video(tmp_path / "in.mp4", random_frames(3, 16, 24), rate=10)
    interpolate.main([*FAST, "--input", str(clip), "--output", str(tmp_path / "out.mp4"), "--keep_duration", "false"])
    frames, rate, _ = read_video(tmp_path / "out.mp4")
    assert (len(frames), rate) == (5, 10)


@pytest.mark.parametrize("factor", [2, 4])
def test_png_output_keeps_originals_bit_exact_at_odd_size(tmp_path, factor):
    originals = random_frames(3, 23, 37)
    folder = write_folder(tmp_path / "in", originals)
    interpolate.main([*FAST, "--input", str(folder), "--output", str(tmp_path / "out"), "--factor", str(factor),
                      "--scene_threshold", "off"])  # unrelated noise frames: every pair would be a cut
    out = read_folder(tmp_path / "out")
    assert len(out) == factor * 2 + 1 and out[0].shape == (23, 37, 3)
    for index, original in enumerate(originals):
        assert np.array_equal(out[index * factor], original)
    middle = (originals[0].astype(float) + originals[1]) / 2
    assert np.abs(out[factor // 2] - middle).max() <= 0.5  # the average baseline, rounded to nearest
    assert leftovers(tmp_path) == []


def test_lossless_video_output_at_odd_size(tmp_path):
    originals = random_frames(3, 23, 37, seed=5)
    clip = write_video(tmp_path / "in.mkv", originals, rate=12)
    interpolate.main([*FAST, "--input", str(clip), "--output", str(tmp_path / "out.mkv"), "--lossless"])
    frames, rate, _ = read_video(tmp_path / "out.mkv")
    assert (len(frames), rate, frames[0].shape) == (5, 24, (23, 37, 3))
    assert all(np.array_equal(frames[2 * i], original) for i, original in enumerate(originals))
    # Default (lossy 4:2:0 requested) switches to 4:4:4 for odd sizes instead of failing.
    interpolate.main([*FAST, "--input", str(clip), "--output", str(tmp_path / "lossy.mp4")])
    frames, _, streams = read_video(tmp_path / "lossy.mp4")
    assert frames[0].shape == (23, 37, 3) and streams[0]["pix_fmt"] == "yuv444p"


def test_audio_is_copied_when_the_duration_is_kept(tmp_path):
    clip = write_video(tmp_path / "in.mp4", random_frames(10, 16, 24), rate=10, audio_seconds=1.0)
    interpolate.main([*FAST, "--input", str(clip), "--output", str(tmp_path / "out.mp4")])
    _, rate, streams = read_video(tmp_path / "out.mp4")
    _, _, input_streams = read_video(clip)
    audio, input_audio = streams[1], input_streams[1]
    assert rate == 20 and audio["type"] == "audio" and audio["codec"] == "aac"
    assert audio["seconds"] == input_audio["seconds"]
    interpolate.main([*FAST, "--input", str(clip), "--output", str(tmp_path / "slow.mp4"), "--keep_duration", "no"])
    assert [stream["type"] for stream in read_video(tmp_path / "slow.mp4")[2]] == ["video"]


@pytest.mark.slow
def test_student_checkpoint_run_matches_a_direct_call(tmp_path, student):
    originals = [smooth_frame(24, 40, phase) for phase in (0.0, 0.4)]
    folder = write_folder(tmp_path / "in", originals)
    checkpoint = tmp_path / "student.pth"
    torch.save({"epoch": 0, "state_dict": student.state_dict()}, checkpoint)
    interpolate.main(["--net", "student_STMFNet", "--checkpoint", str(checkpoint), "--input", str(folder),
                      "--output", str(tmp_path / "out"), "--device", "cpu"])
    out = read_folder(tmp_path / "out")
    assert len(out) == 3 and np.array_equal(out[0], originals[0]) and np.array_equal(out[2], originals[1])
    first, second = (frame_to_tensor(frame) for frame in originals)
    with torch.no_grad():
        expected = tensor_to_frame(student(first, first, second, second).clamp(0, 1))  # two frames: ends repeated
    assert np.abs(out[1].astype(int) - expected).max() <= 1


# --- errors and failures ------------------------------------------------------------------------------------


def expect_error(capsys, argv: list[str], message: str, output: Path) -> None:
    status = interpolate.main(argv)
    assert status == 2
    assert message in capsys.readouterr().err
    assert not output.exists() and leftovers(output.parent) == []


def test_bad_input_fails_before_any_output(tmp_path, capsys):
    output = tmp_path / "out.mp4"
    run = [*FAST, "--output", str(output), "--input"]
    expect_error(capsys, [*run, str(tmp_path / "missing.mp4")], "does not exist", output)
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    expect_error(capsys, [*run, str(tmp_path / "junk.mp4")], "cannot read", output)
    single = write_video(tmp_path / "single.mp4", random_frames(1, 16, 24))
    expect_error(capsys, [*run, str(single)], "needs at least 2", output)
    (tmp_path / "clip_16x8.yuv").write_bytes(bytes(16 * 8 * 3 // 2 * 2 + 7))
    expect_error(capsys, [*run, str(tmp_path / "clip_16x8.yuv")], "not a whole number of 16x8 420 8-bit frames",
                 output)
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_error(capsys, [*run, str(empty)], "holds no", output)


def test_bad_options_fail_before_any_output(tmp_path, capsys):
    clip = write_video(tmp_path / "in.mp4", random_frames(3, 16, 24))
    output = tmp_path / "out.mp4"
    run = [*FAST, "--input", str(clip), "--output", str(output)]
    expect_error(capsys, [*run, "--factor", "3"], "invalid choice", output)
    expect_error(capsys, [*run, "--device", "cpu", "--fp16"], "--precision fp16 runs on CUDA only", output)
    expect_error(capsys, [*run, "--tile", "64", "--overlap", "40"], "overlap", output)
    expect_error(capsys, [*run, "--input", str(clip), "--output", str(clip)], "is the same file as --input", output)
    expect_error(capsys, ["--input", str(clip), "--output", str(output), "--checkpoint", str(tmp_path / "no.pth")],
                 "not found", output)


def test_existing_output_needs_overwrite(tmp_path, capsys):
    clip = write_video(tmp_path / "in.mp4", random_frames(3, 16, 24))
    output = tmp_path / "out.mp4"
    output.write_bytes(b"precious")
    assert interpolate.main([*FAST, "--input", str(clip), "--output", str(output)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err and output.read_bytes() == b"precious"
    interpolate.main([*FAST, "--input", str(clip), "--output", str(output), "--overwrite"])
    assert len(read_video(output)[0]) == 5 and leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix, error", [(".mp4", RuntimeError), ("", KeyboardInterrupt)])
def test_interrupted_run_leaves_no_output(tmp_path, monkeypatch, capsys, suffix, error):
    clip = write_video(tmp_path / "in.mp4", random_frames(6, 16, 24))
    calls = []

    def failing(settings, device):
        def interpolate_frames(frame0, frame1, frame2, frame3):
            calls.append(1)
            if len(calls) == 3:
                raise error("stop")
            return (frame1 + frame2) / 2

        return interpolate_frames

    monkeypatch.setattr(conversion, "build_interpolator", failing)
    output = tmp_path / f"out{suffix}"
    argv = [*FAST, "--input", str(clip), "--output", str(output), "--scene_threshold", "off"]
    if error is KeyboardInterrupt:  # a user's choice, not a bug: one line and the shell's status 130
        assert interpolate.main(argv) == 130
        assert capsys.readouterr().err.splitlines()[-1] == f"interpolate.py: interrupted; {output} was not written"
    else:  # a bug keeps its traceback
        with pytest.raises(error):
            interpolate.main(argv)
    assert not output.exists() and leftovers(tmp_path) == []


def test_writer_publishes_only_on_close(tmp_path):
    output = tmp_path / "clip.mp4"
    writer = VideoWriter(output, 24, 16, Fraction(10), preset="ultrafast")
    writer.write(random_frames(1, 16, 24)[0])
    (temporary,) = leftovers(tmp_path)
    assert not output.exists() and re.fullmatch(rf"\.clip\.{os.getpid()}-[0-9a-f]{{8}}\.partial\.mp4", temporary)
    writer.close()
    assert output.exists() and leftovers(tmp_path) == []
