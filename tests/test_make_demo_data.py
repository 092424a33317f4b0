"""data.make_demo_data: a split in time of one video into training septuplets and a held-out test sequence."""

import numpy as np
import pytest
import torch
from PIL import Image

from data import Vimeo90k_quintuplet, build_test_set
from data.make_demo_data import (
    MAX_SPEED,
    SYNTHETIC_SIZE,
    build,
    fast_septuplet,
    parse_range,
    parse_strides,
    synthetic_septuplet,
    write_moved_test,
    write_test_sequence,
    write_training,
)


def _frames(count: int, height: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _coordinate_frame(height: int = 256, width: int = 448) -> np.ndarray:
    """Pixel (y, x) holds (y, x mod 256, x div 256), so a crop's first pixel tells where it was cut."""
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([ys, xs % 256, xs // 256], axis=-1).astype(np.uint8)


def _origin(crop: np.ndarray) -> tuple[int, int]:
    y, x_low, x_high = (int(value) for value in crop[0, 0])
    return y, x_low + 256 * x_high


@pytest.mark.parametrize("speed", [(3, -7), (-10, 10), (0, 0)])
def test_synthetic_septuplet_moves_by_whole_pixels(speed):
    frame = _coordinate_frame()
    crops = synthetic_septuplet(frame, speed, np.random.default_rng(1))
    assert len(crops) == 7 and all(crop.shape == (*SYNTHETIC_SIZE, 3) for crop in crops)
    top, left = _origin(crops[0])
    for k, crop in enumerate(crops):
        # Frame k is the exact crop at k whole steps, the target (k = 3) halfway between the inputs 1 and 5.
        y, x = top + k * speed[0], left + k * speed[1]
        np.testing.assert_array_equal(crop, frame[y:y + SYNTHETIC_SIZE[0], x:x + SYNTHETIC_SIZE[1]])


def test_training_layout_is_read_by_the_training_set(tmp_path):
    frames = [_coordinate_frame() + np.uint8(k) for k in range(11)]  # distinct frames that compress fast
    counts = write_training(frames, range(2, 10), synthetic=1, seed=0, root=tmp_path / "vimeo_septuplet")
    assert counts == {"real": 2, "synthetic": 1}  # windows starting at 2 and 3 fit in frames 2..9
    dataset = Vimeo90k_quintuplet(tmp_path / "vimeo_septuplet", crop_sz=None, augment_s=False, augment_t=False)
    assert len(dataset) == 3
    frame1, frame3, frame4, frame5, frame7 = dataset[1]  # the real window starting at frame 3
    for tensor, index in zip((frame1, frame3, frame4, frame5, frame7), (3, 5, 6, 7, 9)):
        torch.testing.assert_close(tensor, torch.from_numpy(frames[index]).permute(2, 0, 1).float() / 255)
    assert dataset[2][2].shape == (3, *SYNTHETIC_SIZE)
    validation = Vimeo90k_quintuplet(tmp_path / "vimeo_septuplet", train=False, crop_sz=None)
    assert [str(path).split("sequences")[1] for path in validation.sequence_dirs] == ["/real/0002", "/real/0003"]


def test_test_sequence_gives_a_window_every_two_frames(tmp_path):
    frames = _frames(15, 64, 96)
    assert write_test_sequence(frames, range(4, 15), tmp_path / "vfitex" / "clip") == 11
    test_set = build_test_set("VFITex_quintuplet", tmp_path)
    assert len(test_set) == 3  # windows starting at the sequence's frames 1, 3 and 5 of 11
    window, name = test_set[1]
    assert name == "clip/frame6"
    # Files 003, 005, 006, 007, 009 of the sequence: video frames 4 + 2, 4 + 4, 4 + 5, 4 + 6, 4 + 8.
    for tensor, index in zip(window, (6, 8, 9, 10, 12)):
        torch.testing.assert_close(tensor, torch.from_numpy(frames[index]).permute(2, 0, 1).float() / 255)


def test_overlapping_ranges_and_existing_folders_are_refused(tmp_path):
    video = tmp_path / "never_read.mp4"
    with pytest.raises(ValueError, match="overlap"):
        build(video, tmp_path / "out", test=range(90, 100), name="clip", train=range(0, 92))
    (tmp_path / "out" / "vfitex" / "clip").mkdir(parents=True)
    marker = tmp_path / "out" / "vfitex" / "clip" / "001.png"
    marker.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="already exist"):
        build(video, tmp_path / "out", test=range(96, 132), name="clip")
    assert marker.read_bytes() == b"mine"


@pytest.mark.parametrize("text", ["5", "9:3", "a:b", "-1:4"])
def test_bad_frame_ranges_are_refused(text):
    with pytest.raises(Exception, match="frame range"):
        parse_range(text)
    assert parse_range("3:9") == range(3, 9)


def test_moved_test_windows_are_exact_shifts_of_held_out_frames_only(tmp_path):
    """--test_synthetic: one 7-frame sequence per window, each a crop of one held-out frame moving at a constant
    whole-pixel speed; training frames never appear."""
    frames = [_coordinate_frame() for _ in range(12)]
    for index, frame in enumerate(frames):
        frame[..., 2] += 10 * index  # the third channel also tells which frame a crop came from
    write_moved_test(frames, range(8, 12), 5, 0, tmp_path, "clip")
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"clip-moved-0{n}" for n in range(1, 6)]
    for sequence in tmp_path.iterdir():
        crops = [np.asarray(Image.open(sequence / f"{k:03d}.png")) for k in range(1, 8)]
        origins = [_origin(crop - np.array([0, 0, crop[0, 0, 2] // 10 * 10], dtype=np.uint8)) for crop in crops]
        assert {int(crop[0, 0, 2]) // 10 for crop in crops} <= set(range(8, 12))
        assert len({int(crop[0, 0, 2]) // 10 for crop in crops}) == 1
        steps = {(b[0] - a[0], b[1] - a[1]) for a, b in zip(origins, origins[1:])}
        assert len(steps) == 1 and all(abs(step) <= MAX_SPEED for step in next(iter(steps)))


def test_negative_test_synthetic_is_a_one_line_error_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from data import make_demo_data

    monkeypatch.setattr("sys.argv", ["make_demo_data", "--out", str(tmp_path / "out"), "--test_only",
                                     "--test_synthetic", "-2"])
    assert make_demo_data.main() == 2
    assert capsys.readouterr().err == "make_demo_data.py: error: --test_synthetic must be 0 or more, got -2\n"
    assert not (tmp_path / "out").exists()


def test_strided_windows_hold_every_stride_th_frame(tmp_path):
    frames = [_coordinate_frame() + np.uint8(k) for k in range(16)]
    counts = write_training(frames, range(0, 16), synthetic=0, seed=0, root=tmp_path, strides=(1, 2))
    assert counts == {"real": 10 + 4, "synthetic": 0}  # stride 1: starts 0..9; stride 2 (span 12): starts 0..3
    listed = (tmp_path / "sep_trainlist.txt").read_text().split()
    assert listed[10:] == [f"real-stride2/{start:04d}" for start in range(4)]
    window = [np.asarray(Image.open(tmp_path / "sequences" / "real-stride2" / "0003" / f"im{k}.png"))
              for k in range(1, 8)]
    for k, frame in enumerate(window):  # frames 3, 5, ..., 15: twice the clip's motion
        np.testing.assert_array_equal(frame, frames[3 + 2 * k])
    validation = (tmp_path / "sep_testlist.txt").read_text().split()
    assert all(name.startswith("real/") for name in validation)  # validated on the clip's own motion


def test_fast_septuplets_move_up_to_max_speed_both_ways_by_whole_pixels():
    frame = _coordinate_frame()
    rng = np.random.default_rng(3)
    speeds = set()
    for _ in range(40):
        crops = fast_septuplet([frame], range(0, 1), 24, 192, rng)
        assert all(crop.shape == (192, 192, 3) for crop in crops)
        transposed = crops[0][0, 1, 0] != crops[0][0, 0, 0]  # channel 0 holds y: along a row only if transposed
        first = [crop.transpose(1, 0, 2) if transposed else crop for crop in crops]
        origins = [_origin(crop) for crop in first]
        steps = {(b[0] - a[0], b[1] - a[1]) for a, b in zip(origins, origins[1:])}
        assert len(steps) == 1  # a constant whole-pixel move: the middle frame is the exact midpoint
        (step,) = steps
        assert abs(step[0]) <= (256 - 192) // 6 and abs(step[1]) <= 24
        for k, crop in enumerate(first):
            y, x = origins[0][0] + k * step[0], origins[0][1] + k * step[1]
            np.testing.assert_array_equal(crop, frame[y:y + 192, x:x + 192])
        speeds.add((transposed, max(abs(step[1]), abs(step[0]))))
    assert any(transposed and speed > 10 for transposed, speed in speeds)  # fast vertical moves, once transposed
    assert any(not transposed and speed > 10 for transposed, speed in speeds)
    with pytest.raises(ValueError, match="--synthetic_size 300 does not fit"):
        fast_septuplet([frame], range(0, 1), 24, 300, rng)


def test_strides_are_parsed_and_checked():
    assert parse_strides("1,2,3") == (1, 2, 3)
    for text in ("0,1", "1,1", "a"):
        with pytest.raises(Exception, match="strides"):
            parse_strides(text)
