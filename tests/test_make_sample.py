"""data.make_sample: the shipped clip cut into every dataset layout, each loadable by its dataset class."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data import (
    TEST_SETS,
    BVIDVC_quintuplet,
    Sampler,
    Vimeo90k_quintuplet,
    build_test_set,
)
from data.make_sample import DEFAULT_VIDEO, LAYOUT_FOLDERS, build_sample
from video.readers import read_video_frames

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    """The sample written by the command line with its default video (the shipped clip)."""
    out = tmp_path_factory.mktemp("sample") / "data"
    result = subprocess.run(
        [sys.executable, "-m", "data.make_sample", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "vimeo_septuplet  6 septuplets" in result.stderr  # the summary
    return out


@pytest.fixture(scope="module")
def video_frames():
    return [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in read_video_frames(DEFAULT_VIDEO, 49)]


def test_shipped_clip_is_the_default_video():
    assert DEFAULT_VIDEO == REPO_ROOT / "assets" / "bbb_448x256.mp4" and DEFAULT_VIDEO.is_file()


def test_every_layout_is_written(sample_dir):
    assert sorted(p.name for p in sample_dir.iterdir()) == sorted(LAYOUT_FOLDERS)
    for mode in ("easy", "medium", "hard", "extreme"):
        lines = (sample_dir / "snufilm" / f"test-{mode}.txt").read_text().splitlines()
        assert len(lines) == 4
        assert all(len(line.split()) == 3 and line.startswith("data/SNU-FILM/test/") for line in lines)


def test_training_sets_load_the_video_frames(sample_dir, video_frames):
    train = Vimeo90k_quintuplet(sample_dir / "vimeo_septuplet", crop_sz=None, augment_s=False, augment_t=False)
    valid = Vimeo90k_quintuplet(sample_dir / "vimeo_septuplet", train=False, seed=0)
    assert len(train) == 4 and len(valid) == 2
    # septuplet 0 holds video frames 0..6, so its quintuplet is frames 0, 2, 3, 4, 6 (PNG is lossless)
    assert all(torch.equal(f, video_frames[k]) for f, k in zip(train[0], (0, 2, 3, 4, 6)))
    assert all(f.shape == (3, 256, 256) for f in valid[1])  # the default 256x256 crop

    bvidvc = BVIDVC_quintuplet(sample_dir / "bvidvc", augment_s=False, augment_t=False)
    assert len(bvidvc) == 3
    # quintuplet 1 starts at video frame 40; tiles are the central 256 columns
    assert all(torch.equal(f, video_frames[40 + k][:, :, 96:352]) for f, k in zip(bvidvc[1], (0, 2, 3, 4, 6)))

    mixed = Sampler([Vimeo90k_quintuplet(sample_dir / "vimeo_septuplet"), bvidvc], iter=True)
    assert len(mixed) == 7 and all(f.shape == (3, 256, 256) for f in mixed[6])


EXPECTED_TEST_SETS = {
    # name: (items, skipped, frame size, first item's name)
    "Ucf101_quintuplet": (3, 0, (256, 256), "0"),
    "Davis90_quintuplet": (4, 0, (256, 448), "bbb-meadow/frame3"),
    "VFITex_quintuplet": (4, 0, (256, 448), "bbb_4K_sample/frame4"),
    "Snufilm_easy_quintuplet": (2, 2, (256, 448), "easy-002"),
    "Snufilm_medium_quintuplet": (2, 2, (256, 448), "medium-002"),
    "Snufilm_hard_quintuplet": (2, 2, (256, 448), "hard-002"),
    "Snufilm_extreme_quintuplet": (2, 2, (256, 448), "extreme-002"),
}


@pytest.mark.parametrize("name", sorted(TEST_SETS))
def test_every_test_set_loads(sample_dir, name):
    num_items, num_skipped, size, first_name = EXPECTED_TEST_SETS[name]
    test_set = build_test_set(name, sample_dir)
    assert (len(test_set), test_set.num_skipped) == (num_items, num_skipped)
    for index in range(len(test_set)):
        frames, item_name = test_set[index]
        assert len(frames) == 5 and all(f.shape == (3, *size) for f in frames)
    assert test_set.items[0].name == first_name


def test_snufilm_extreme_quintuplet_is_16_frames_apart(sample_dir, video_frames):
    frames, name = build_test_set("Snufilm_extreme_quintuplet", sample_dir)[0]
    assert name == "extreme-002"
    assert all(torch.equal(f, video_frames[k]) for f, k in zip(frames, (0, 16, 24, 32, 48)))


def test_refuses_to_overwrite_without_force(sample_dir):
    with pytest.raises(FileExistsError, match="vimeo_septuplet"):
        build_sample(DEFAULT_VIDEO, sample_dir)


def test_data_frames_are_ffmpeg_s_rgb24_conversion_from_the_one_decoder(tmp_path):
    """The data sets keep the values every shipped figure was made from: FFmpeg's rgb24 conversion (swscale,
    BT.601), decoded by video/readers.py, which also names a file it cannot read."""
    import av

    with av.open(str(DEFAULT_VIDEO)) as container:
        direct = [frame.to_ndarray(format="rgb24") for _, frame in zip(range(3), container.decode(video=0))]
    frames = read_video_frames(DEFAULT_VIDEO, max_frames=3)
    assert len(frames) == 3 and all((a == b).all() for a, b in zip(frames, direct))
    with pytest.raises(FileNotFoundError, match="missing.mp4 does not exist"):
        read_video_frames(tmp_path / "missing.mp4")
    (tmp_path / "noise.mp4").write_bytes(b"not a video" * 100)
    with pytest.raises(ValueError, match="noise.mp4"):
        read_video_frames(tmp_path / "noise.mp4")
