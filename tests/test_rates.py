"""--fps (any output rate from the 1/8 midpoint grid, video/rate_plan.py) and --dedup (held frames removed,
video/dedup.py): the grid frames equal a full 8x run's, only the needed ones are computed, output times are exact
multiples of 1 / rate, and held frames are replaced from the distinct frames around them."""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import interpolate
from video.scenes import DEFAULT_STATIC_THRESHOLD
from video.dedup import drop_held_frames
from video.gaps import CUT, INTERPOLATE, STATIC
from video.interpolation import raise_planned_frame_rate
from video.rate_plan import GridPoint, GridStats, MidpointGrid, factor_clock, frames_at_times, parse_rate, rate_clock
from test_interpolate import converted

FAST = ["--baseline", "average", "--preset", "ultrafast"]


def weighted(frame0, frame1, frame2, frame3):
    """A window-dependent interpolator: any change in which frames form a window changes its output."""
    return 0.1 * frame0 + 0.4 * frame1 + 0.35 * frame2 + 0.15 * frame3


def counted(interpolate_frames, calls: list[int]):
    def run(*frames):
        calls.append(1)
        return interpolate_frames(*frames)

    return run


def values(count: int, step: float = 0.37) -> list[torch.Tensor]:
    return [torch.full((1, 1, 1, 1), (index * step) % 1, dtype=torch.float64) for index in range(count)]


def time_frames(times: list[Fraction]) -> list[torch.Tensor]:
    """Frames whose value is their time, so that the midpoint of two is the frame at the middle time."""
    return [torch.full((1, 1, 1, 1), float(time), dtype=torch.float64) for time in times]


def centre_average(frame0, frame1, frame2, frame3):
    return (frame1 + frame2) / 2


@pytest.mark.parametrize("text, rate", [
    ("60", Fraction(60)), ("60000/1001", Fraction(60000, 1001)), ("59.94", Fraction(60000, 1001)),
    ("29.97", Fraction(30000, 1001)), ("23.976", Fraction(24000, 1001)), ("12.5", Fraction(25, 2)),
    ("59.9", Fraction(599, 10)),
])
def test_rates_parse_to_exact_fractions(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["0", "-30", "abc", "1/0", "60:1"])
def test_bad_rates_are_refused(text):
    with pytest.raises(ValueError, match="frame rate"):
        parse_rate(text)


@pytest.mark.parametrize("boundary", ["pad", "duplicate"])
def test_every_grid_frame_equals_the_full_8x_run(boundary):
    gaps = [INTERPOLATE, CUT, INTERPOLATE, STATIC, INTERPOLATE, INTERPOLATE, CUT, INTERPOLATE, INTERPOLATE]
    planned = list(zip(values(len(gaps)), gaps))
    full = list(raise_planned_frame_rate(planned, weighted, 8, boundary))
    grid = MidpointGrid(planned, [Fraction(index) for index in range(len(gaps))], weighted, boundary)
    for index, expected in enumerate(full[:-1]):
        assert torch.equal(grid.frame(GridPoint(*divmod(index, 8))), expected), index


@pytest.mark.parametrize("multiple, calls_per_gap", [(2, 1), (4, 3), (8, 7)])
def test_power_of_two_rates_compute_what_the_factor_does(multiple, calls_per_gap):
    count, calls = 9, []
    times = [Fraction(index, 25) for index in range(count)]
    out = list(frames_at_times(zip(values(count), [INTERPOLATE] * count), times, times, rate_clock(Fraction(25 * multiple)),
                               counted(weighted, calls)))
    full = list(raise_planned_frame_rate(zip(values(count), [INTERPOLATE] * count), weighted, multiple))
    assert len(calls) == calls_per_gap * (count - 1)
    assert len(out) == len(full) and all(torch.equal(frame, expected) for (frame, _), expected in zip(out, full))


def test_25_to_60_computes_only_the_grid_frames_it_uses():
    count, calls = 26, []
    times = [Fraction(index, 25) for index in range(count)]
    stats = GridStats()
    out = list(frames_at_times(zip(time_frames(times), [INTERPOLATE] * count), times, times,
                               rate_clock(Fraction(60)), counted(centre_average, calls), stats=stats))
    assert [time for _, time in out] == [Fraction(index, 60) for index in range(61)]  # 1 s at 60 fps, exact
    # Output k sits at 5k/12 of an interval: 1/24 of an interval is the worst distance to an eighth.
    assert stats.worst_error_of_interval == Fraction(1, 24)
    assert stats.worst_error_seconds == Fraction(1, 24 * 25)
    for frame, time in out:
        assert abs(frame.item() - float(time)) <= 1 / (24 * 25) + 1e-12
    assert len(calls) < 7 * (count - 1)  # fewer than a full 8x run


def test_variable_frame_rate_uses_the_real_times():
    times = [Fraction(0), Fraction(1, 10), Fraction(3, 10), Fraction(4, 10), Fraction(8, 10)]
    stats = GridStats()
    out = list(frames_at_times(zip(time_frames(times), [INTERPOLATE] * 5), times, times, rate_clock(Fraction(30)),
                               centre_average, stats=stats))
    assert len(out) == 25  # 0 to 0.8 s at 30 fps
    assert stats.worst_error_of_interval <= Fraction(1, 16)
    for frame, time in out:
        interval = next(b - a for a, b in zip(times, times[1:]) if a <= time <= b)
        assert abs(frame.item() - float(time)) <= float(interval) / 16 + 1e-12
        position = (frame.item() - float(max(t for t in times if t <= time))) / float(interval)
        assert abs(position * 8 - round(position * 8)) < 1e-9  # on the eighths grid


def test_factor_clock_gives_the_factor_runs_times():
    times = [Fraction(0), Fraction(1, 10), Fraction(3, 10)]
    clock = factor_clock(2)
    assert [clock(index, times, True) for index in range(6)] == [0, Fraction(1, 20), Fraction(1, 10),
                                                                 Fraction(2, 10), Fraction(3, 10), None]


def test_held_frames_are_dropped_and_the_last_frame_kept():
    # Flat frames have no contrast: a change of a hundredth of a level (2 % of the contrast floor) is a hold.
    frames = [torch.full((1, 3, 4, 4), level / 255) for level in (10, 10, 40, 40, 40.01, 90, 90)]
    times = [Fraction(index, 24) for index in range(7)]
    kept_indices, kept_times = [], []
    kept = list(drop_held_frames(frames, times, DEFAULT_STATIC_THRESHOLD, kept_indices, kept_times))
    assert kept_indices == [0, 2, 5, 6] and kept_times == [times[i] for i in kept_indices]
    assert [round(frame.max().item() * 255) for frame in kept] == [10, 40, 90, 90]


# --- the script ---------------------------------------------------------------------------------------------


def write_clip(path: Path, count: int, rate: int) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=rate, options={"crf": "0", "preset": "ultrafast"})
        stream.height, stream.width, stream.pix_fmt = 16, 24, "rgb24"
        for index in range(count):
            frame = np.full((16, 24, 3), 40 + 3 * index, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def packet_times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(Fraction(packet.pts) * packet.time_base for packet in container.demux(stream)
                      if packet.pts is not None)


@pytest.mark.parametrize("rate, input_fps", [("60", None), ("60000/1001", None), ("60", "24")])
def test_fps_writes_exact_times_over_the_input_span(tmp_path, rate, input_fps):
    clip = write_clip(tmp_path / "in.mp4", 11, 25)
    output = tmp_path / "out.mp4"
    extra = ["--input_fps", input_fps] if input_fps else []
    summary = converted([*FAST, "--input", str(clip), "--output", str(output), "--fps", rate, *extra])
    out_rate, span = parse_rate(rate), Fraction(10, int(input_fps or 25))
    times = packet_times(output)
    assert len(times) == summary["frames_out"] == math.floor(span * out_rate) + 1
    assert times == [Fraction(index) / out_rate for index in range(len(times))]
    assert summary["worst_time_error_of_interval"] <= 1 / 16


@pytest.mark.parametrize("flags, message", [
    (["--fps", "25"], "is not above the input's 25 fps"),
    (["--fps", "20"], "is not above the input's 25 fps"),
    (["--fps", "60", "--factor", "4"], "--fps and --factor cannot be used together"),
    (["--fps", "60", "--out_fps", "30"], "--fps and --out_fps cannot be used together"),
    (["--fps", "ab"], "argument --fps"),
    (["--dedup", "--static_threshold", "off"], "give --static_threshold a number"),
])
def test_bad_rate_flags_fail_before_any_output(tmp_path, capsys, flags, message):
    clip = write_clip(tmp_path / "in.mp4", 3, 25)
    status = interpolate.main([*FAST, "--input", str(clip), "--output", str(tmp_path / "out.mp4"), *flags])
    assert status == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


def test_fps_needs_a_rate_for_a_folder(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(np.full((8, 8, 3), 60 + 5 * index, np.uint8)).save(folder / f"{index}.png")
    assert interpolate.main([*FAST, "--input", str(folder), "--output", str(tmp_path / "out"), "--fps", "60"]) == 2
    assert "pass --input_fps" in capsys.readouterr().err


def on_twos_folder(folder: Path, count: int) -> list[int]:
    """Flat frames whose true level at frame k is 40 + 2k, each even frame shown twice ("on twos"): the drawings
    differ by 4 levels, neither duplicates nor a scene cut."""
    folder.mkdir()
    truth = [40 + 2 * index for index in range(count)]
    for index in range(count):
        Image.fromarray(np.full((8, 12, 3), truth[index - index % 2], np.uint8)).save(folder / f"{index:03d}.png")
    return truth


def folder_levels(folder: Path) -> list[int]:
    return [int(np.asarray(Image.open(path)).max()) for path in sorted(folder.glob("*.png"))]


def test_dedup_replaces_held_frames_at_the_input_rate(tmp_path):
    truth = on_twos_folder(tmp_path / "in", 9)
    run = [*FAST, "--input", str(tmp_path / "in"), "--input_fps", "12", "--fps", "12"]
    summary = converted([*run, "--output", str(tmp_path / "dedup"), "--dedup"])
    assert folder_levels(tmp_path / "dedup") == truth  # the held slots are the midpoints of the drawings
    assert summary["held_frames_dropped"] == 4 and summary["frames_synthesised"] == 4


def test_dedup_at_the_default_factor_keeps_timing_and_holds_the_last_drawing(tmp_path):
    truth = on_twos_folder(tmp_path / "in", 10)  # ends on a held frame: nothing after it to move towards
    summary = converted([*FAST, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                                "--dedup"])
    levels = folder_levels(tmp_path / "out")
    assert len(levels) == summary["frames_out"] == 19
    assert levels[:17] == [40 + index for index in range(17)]  # every half frame, on the true motion
    assert levels[17:] == [truth[8]] * 2


def test_without_dedup_held_frames_stay(tmp_path):
    truth = on_twos_folder(tmp_path / "in", 9)
    interpolate.main([*FAST, "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--input_fps", "12",
                      "--fps", "24"])
    levels = folder_levels(tmp_path / "out")
    assert levels[2] == truth[0]  # frame 1 is a copy of frame 0, and so is the frame between them
