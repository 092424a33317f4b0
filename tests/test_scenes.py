"""Scene cuts and static pairs (video/scenes.py, video/gaps.py) in the engine and in interpolate.py: copies at cuts
and duplicates, windows that stop at cuts at every factor, the detector on the shipped clip, the end summary."""
from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import interpolate
import models
from pipeline import conversion
from video.gaps import CUT, INTERPOLATE, LEFT, RIGHT, STATIC, Gap
from video.interpolation import frame_to_tensor, raise_planned_frame_rate, tensor_to_frame
from video.readers import open_source
from video.scenes import GapCounts, largest_block_change, plan_gaps, scored_frames
from test_interpolate import converted

CLIP = Path(__file__).resolve().parents[1] / "assets" / "bbb_448x256.mp4"
FAST = ["--baseline", "average", "--device", "cpu"]
SHOT_A, SHOT_B = range(20, 24), range(100, 104)  # two distant parts of the shipped clip, joined by a hard cut


# --- the engine ---------------------------------------------------------------------------------------------


def ramp(count: int) -> list[torch.Tensor]:
    """Frames whose single value is their time t / 10."""
    return [torch.full((1, 1, 1, 1), i / 10, dtype=torch.float64) for i in range(count)]


def run_planned(gaps: list[Gap], factor: int) -> tuple[list[float], list[tuple[float, ...]]]:
    """Output times (frame value x 10) and the windows of each interpolator call, for len(gaps) + 1 ramp frames."""
    calls = []

    def average(*window):
        calls.append(tuple(round(frame.item() * 10, 4) for frame in window))
        return (window[1] + window[2]) / 2

    frames = ramp(len(gaps) + 1)
    planned = zip(frames, [*gaps, INTERPOLATE])
    out = [round(frame.item() * 10, 4) for frame in raise_planned_frame_rate(planned, average, factor)]
    return out, calls


def test_gap_halves_keep_copies_and_cuts_through_the_passes():
    assert CUT.halves() == (Gap(LEFT, cut=True), Gap(RIGHT, cut=True))
    assert STATIC.halves() == (Gap(LEFT), Gap(RIGHT))
    assert Gap(RIGHT, cut=True).halves() == (Gap(RIGHT, cut=True),) * 2
    assert INTERPOLATE.halves() == (INTERPOLATE, INTERPOLATE)
    left, right = torch.zeros(1), torch.ones(1)
    assert CUT.middle_copy(left, right) is left and Gap(RIGHT).middle_copy(left, right) is right


def test_windows_stop_at_a_cut_and_the_cut_gap_is_copied():
    out, calls = run_planned([INTERPOLATE, CUT, INTERPOLATE, INTERPOLATE], 2)
    assert calls == [(0, 0, 1, 1), (2, 2, 3, 4), (2, 3, 4, 4)]  # each shot padded with its own frames
    assert out == [0, 0.5, 1, 1, 2, 2.5, 3, 3.5, 4]


@pytest.mark.parametrize("factor", [4, 8])
def test_cut_gap_holds_the_nearest_original_at_every_factor(factor):
    out, calls = run_planned([INTERPOLATE, INTERPOLATE, CUT, INTERPOLATE, INTERPOLATE], factor)
    gap = out[2 * factor : 3 * factor + 1]
    # Output frame j of the gap sits at 2 + j/factor: the first half and the tie take frame 2, the rest frame 3.
    assert gap == [2] * (factor // 2 + 1) + [3] * (factor // 2)
    for window in calls:
        assert all(t <= 2 for t in window) or all(t >= 3 for t in window), window
    inside = out[: 2 * factor + 1] + out[3 * factor :]
    assert inside == pytest.approx(np.r_[np.linspace(0, 2, 2 * factor + 1), np.linspace(3, 5, 2 * factor + 1)])
    assert len(calls) == 4 * (factor - 1)  # every gap inside a shot is still synthesised


def test_static_gaps_are_copied_without_calls_at_every_pass():
    out, calls = run_planned([STATIC, STATIC], 8)
    assert calls == [] and out == [0] * 5 + [1] * 8 + [2] * 4
    out, calls = run_planned([INTERPOLATE, STATIC, INTERPOLATE], 2)
    assert calls == [(0, 0, 1, 2), (1, 2, 3, 3)]  # windows do reach across a static pair (same shot)
    assert out == [0, 0.5, 1, 1, 2, 2.5, 3]


# --- the detector -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    with av.open(str(CLIP)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


REPEATS = [6, 31, 56, 81, 106]  # the 24 -> 25 fps conversion of the source repeats every 25th frame


def planned_gaps(frames: list[torch.Tensor], **thresholds) -> tuple[list[Gap], GapCounts]:
    counts = GapCounts()
    gaps = [gap for _, gap in plan_gaps(frames, counts=counts, **thresholds)]
    assert len(gaps) == len(frames)
    return gaps[:-1], counts


def test_shipped_clip_has_no_cut_and_its_repeated_frames_are_static(clip):
    gaps, counts = planned_gaps([frame_to_tensor(frame) for frame in clip], scene_threshold=3.0)
    assert counts.cuts == []  # even at half the default threshold
    assert [index for index, gap in enumerate(gaps) if gap == STATIC] == REPEATS


@pytest.mark.parametrize("brightness", [0.05, 0.25])
def test_dark_footage_moving_pairs_are_interpolated_and_repeats_still_found(clip, brightness):
    dark = [frame_to_tensor(np.round(frame * brightness).astype(np.uint8)) for frame in clip]
    gaps, counts = planned_gaps(dark, scene_threshold=None)
    assert [index for index, gap in enumerate(gaps) if gap == STATIC] == REPEATS  # no moving pair among them


def pan(frame: np.ndarray, speed: int, count: int, height: int = 128, width: int = 192) -> list[torch.Tensor]:
    """A window of ``height`` x ``width`` moving ``speed`` pixels to the right per frame across ``frame``."""
    top = (frame.shape[0] - height) // 2
    return [frame_to_tensor(frame[top : top + height, step * speed : step * speed + width]) for step in range(count)]


@pytest.mark.parametrize("speed", [8, 13])
def test_fast_pan_of_a_small_crop_is_no_cut_from_the_first_frame_or_after_a_cut(clip, speed):
    moving = pan(clip[40], speed, count=(448 - 192) // speed + 1)
    gaps, counts = planned_gaps(moving, static_threshold=None)
    assert counts.cuts == [] and gaps == [INTERPOLATE] * (len(moving) - 1)
    other_shot = [frame_to_tensor(frame[64:192, 128:320]) for frame in clip[100:105]]
    gaps, counts = planned_gaps(other_shot + moving, static_threshold=None)
    assert counts.cuts == [4]


def small(frame: np.ndarray) -> np.ndarray:
    """A 64x112 area-downscaled frame (keeps the tests fast)."""
    tensor = torch.tensor(frame).permute(2, 0, 1)[None].float()
    return F.avg_pool2d(tensor, 4)[0].permute(1, 2, 0).round().to(torch.uint8).numpy()


@pytest.fixture(scope="module")
def shots(clip) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return [small(clip[i]) for i in SHOT_A], [small(clip[i]) for i in SHOT_B]


def test_detector_finds_the_hard_cut_and_a_flash_frame_on_both_sides(shots):
    first, second = [[frame_to_tensor(frame) for frame in shot] for shot in shots]
    scores = [score for _, score in scored_frames(first + second, threshold=6.0)]
    assert scores[3] > 20 and max(scores[:3] + scores[4:-1]) < 3 and scores[-1] is None  # measured 24.6 and 1.5
    flash = [first[0], first[1], second[0], first[2], first[3]]
    assert planned_gaps(flash, static_threshold=None)[1].cuts == [1, 2]


def test_score_does_not_depend_on_the_frame_size(shots):
    frames = [frame_to_tensor(frame) for frame in shots[0] + shots[1]]
    larger = [F.interpolate(frame, scale_factor=4, mode="nearest") for frame in frames]
    scores = [score for _, score in scored_frames(frames, 6.0)][:-1]
    assert [score for _, score in scored_frames(larger, 6.0)][:-1] == pytest.approx(scores, rel=0.05, abs=0.1)


def test_largest_block_change_is_relative_to_the_contrast():
    frame = torch.zeros(1, 3, 40, 40)
    frame[..., :20] = 0.4
    moved = frame.clone()
    moved[..., 33:36, 33:36] = 0.4  # 9 pixels in a partial 8x8 edge block
    # Brightness of the pair's average: 800 pixels at 0.4, 9 at 0.2, 791 at 0; mean 0.201125, mean absolute
    # deviation (800 * 0.198875 + 9 * 0.001125 + 791 * 0.201125) / 1600 = 0.198875.
    assert largest_block_change(frame, moved) == pytest.approx(100 * 0.4 * 9 / 64 / 0.198875, rel=1e-5)
    assert largest_block_change(frame * 0.05, moved * 0.05) == pytest.approx(largest_block_change(frame, moved))


# --- interpolate.py -----------------------------------------------------------------------------------------


class ShotSpy:
    """Wraps the interpolator; knows which shot every frame it sees comes from (originals given, then its own
    outputs) and records the shots of each window. A frame of neither shot (a mix) raises StopIteration."""

    def __init__(self, shots: list[list[torch.Tensor]]) -> None:
        self.known = [(frame, label) for label, shot in enumerate(shots) for frame in shot]
        self.windows: list[set[int]] = []
        self.interpolate = None

    def label(self, frame: torch.Tensor) -> int:
        return next(label for known, label in self.known if torch.equal(known, frame))

    def label_of_output(self, frame: np.ndarray) -> int:
        return next(label for known, label in self.known if np.array_equal(tensor_to_frame(known), frame))

    def __call__(self, *window: torch.Tensor) -> torch.Tensor:
        labels = {self.label(frame) for frame in window}
        self.windows.append(labels)
        result = self.interpolate(*window).clamp(0, 1)
        if len(labels) == 1:
            self.known.append((result, next(iter(labels))))
        return result


def spy_on(monkeypatch, spy: ShotSpy) -> None:
    build = conversion.build_interpolator

    def spying(settings, device):
        spy.interpolate = build(settings, device)
        return spy

    monkeypatch.setattr(conversion, "build_interpolator", spying)


def write_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir()
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame{index:03d}.png")
    return folder


def read_folder(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(path)) for path in sorted(folder.glob("*.png"))]


def write_yuv(path: Path, frames: list[np.ndarray]) -> Path:
    with open(path, "wb") as file:
        for frame in frames:
            converted = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv444p")
            for plane in converted.planes:
                file.write(np.frombuffer(plane, np.uint8).reshape(plane.height, -1)[:, : plane.width].tobytes())
    return path



@pytest.fixture(scope="module")
def student_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("student") / "student.pth"
    torch.save({"epoch": 0, "state_dict": models.get_model_class("student_STMFNet")().state_dict()}, path)
    return path


def check_cut_output(out: list[np.ndarray], originals: list[np.ndarray], spy: ShotSpy, factor: int, cut: int
                     ) -> None:
    """Originals in place, the cut gap (between frames ``cut`` and ``cut + 1``) holding the nearest originals,
    every output frame from one shot (in time order), and no window with frames of both shots."""
    assert len(out) == factor * (len(originals) - 1) + 1
    for index, original in enumerate(originals):
        assert np.array_equal(out[index * factor], original)
    for step in range(1, factor):
        nearest = originals[cut] if step <= factor // 2 else originals[cut + 1]
        assert np.array_equal(out[cut * factor + step], nearest)
    assert spy.windows and all(len(labels) == 1 for labels in spy.windows)
    labels = [spy.label_of_output(frame) for frame in out]
    first_shot = cut * factor + factor // 2 + 1
    assert labels == [0] * first_shot + [1] * (len(out) - first_shot)
    assert len(spy.windows) == (len(originals) - 2) * (factor - 1)  # every gap inside the shots is synthesised


@pytest.mark.parametrize("model, factor, extra", [
    ("average", 2, []),
    ("average", 4, []),
    ("average", 4, ["--tile", "32", "--overlap", "8"]),
    ("student", 2, []),
    pytest.param("student", 4, [], marks=pytest.mark.slow),
])
def test_hard_cut_gives_copies_and_windows_within_one_shot(tmp_path, monkeypatch, shots, student_checkpoint,
                                                           model, factor, extra):
    # The student pads every frame to 256x256, so its runs get two frames a shot (still a four-frame window).
    first, second = shots if model == "average" else (shots[0][2:], shots[1][:2])
    originals = first + second
    spy = ShotSpy([[frame_to_tensor(frame) for frame in shot] for shot in (first, second)])
    spy_on(monkeypatch, spy)
    network = FAST if model == "average" else ["--net", "student_STMFNet", "--checkpoint", str(student_checkpoint),
                                               "--device", "cpu"]
    summary = converted([*network, "--input", str(write_folder(tmp_path / "in", originals)),
                                "--output", str(tmp_path / "out"), "--factor", str(factor), *extra])
    cut = len(first) - 1
    check_cut_output(read_folder(tmp_path / "out"), originals, spy, factor, cut)
    assert [found["after_frame"] for found in summary["scene_cuts"]] == [cut]
    assert summary["frames_synthesised"] == (len(originals) - 2) * (factor - 1)
    assert summary["static_pairs_skipped"] == 0


def test_hard_cut_in_a_yuv_input(tmp_path, monkeypatch, shots):
    yuv = write_yuv(tmp_path / "cut_112x64_25fps_444.yuv", shots[0] + shots[1])
    decoded = list(open_source(yuv))  # the originals as the reader gives them (YUV -> RGB is not exact)
    spy = ShotSpy([[frame_to_tensor(frame) for frame in decoded[:4]], [frame_to_tensor(f) for f in decoded[4:]]])
    spy_on(monkeypatch, spy)
    summary = converted([*FAST, "--input", str(yuv), "--output", str(tmp_path / "out"), "--factor", "4"])
    check_cut_output(read_folder(tmp_path / "out"), decoded, spy, 4, 3)
    assert summary["scene_cuts"] == [{"after_frame": 3, "seconds": 4 / 25}]


def test_without_detection_the_cut_is_blended(tmp_path, monkeypatch, shots):
    spy = ShotSpy([[frame_to_tensor(frame) for frame in shot] for shot in shots])
    spy_on(monkeypatch, spy)
    summary = converted([*FAST, "--input", str(write_folder(tmp_path / "in", shots[0] + shots[1])),
                                "--output", str(tmp_path / "out"), "--scene_threshold", "off"])
    assert summary["scene_cuts"] == [] and summary["frames_synthesised"] == 7
    with pytest.raises(StopIteration):  # the middle of the cut is a mix of the two shots
        spy.label_of_output(read_folder(tmp_path / "out")[7])


def test_repeated_frames_run_the_model_zero_times_and_the_report(tmp_path, monkeypatch, capsys, shots):
    clip = tmp_path / "still.mkv"
    with av.open(str(clip), "w") as container:  # lossy x264: the repeats decode close, not always identical
        stream = container.add_stream("libx264", rate=25, options={"crf": "18", "preset": "ultrafast"})
        stream.height, stream.width = shots[0][0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for _ in range(6):
            for packet in stream.encode(av.VideoFrame.from_ndarray(shots[0][0], format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    calls = []
    monkeypatch.setattr(conversion, "build_interpolator", lambda settings, device: lambda *w: calls.append(w))
    report = tmp_path / "report.json"
    summary = converted(["--net", "student_STMFNet", "--input", str(clip), "--output", str(tmp_path / "out"),
                                "--factor", "8", "--report", str(report)])
    assert calls == [] and summary["static_pairs_skipped"] == 5 and summary["frames_synthesised"] == 0
    assert json.loads(report.read_text()) == summary and summary["frames_in"] == 6 and summary["frames_out"] == 41
    assert "6 frames in, 41 out; 0 scene cut(s), 5 static pair(s) copied, 0 frame(s) synthesised" in (
        capsys.readouterr().err)
    # An existing report is kept without --overwrite.
    assert interpolate.main([*FAST, "--input", str(clip), "--output", str(tmp_path / "other"),
                             "--report", str(report)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err and not (tmp_path / "other").exists()


def test_bad_threshold_and_report_paths_fail_before_any_output(tmp_path, capsys, shots):
    folder = write_folder(tmp_path / "in", shots[0][:2])
    output = tmp_path / "out"
    for flags, message in [
        (["--scene_threshold", "-1"], "expected a number >= 0 or 'off'"),
        (["--static_threshold", "some"], "expected a number or 'off'"),
        (["--report", str(tmp_path / "missing" / "run.json")], "does not exist"),
        (["--report", str(folder)], "is the same file as --input"),
    ]:
        status = interpolate.main([*FAST, "--input", str(folder), "--output", str(output), *flags])
        assert status == 2 and message in capsys.readouterr().err
        assert not output.exists()
