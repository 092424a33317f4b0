"""data/: training sets, augmentations, Sampler and test sets on tiny trees written in each exact layout.

Every fixture frame encodes its frame number in the red channel (FRAME_STEP * number) and its pixel
position in green (column) and blue (row), so a test can read back which frame came where, and how it
was cropped or flipped.
"""
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import DataLoader

from data import (
    NO_AUGMENTATION,
    TEST_SETS,
    Augmentation,
    BVIDVC_quintuplet,
    Davis90_quintuplet,
    Sampler,
    Snufilm_easy_quintuplet,
    Snufilm_extreme_quintuplet,
    Snufilm_hard_quintuplet,
    Ucf101_quintuplet,
    VFITex_quintuplet,
    Vimeo90k_quintuplet,
    build_test_set,
    item_generator,
)
from data.frames import center_crop, load_frame, read_image_rgb
from image_kinds import KINDS, expected_rgb, write_kind, write_png16

FRAME_STEP = 4  # red value per frame number: numbers up to 63 fit in 8 bits
QUINTUPLET = [1, 3, 4, 5, 7]


def make_frame(number: int, height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    red = np.full((height, width), FRAME_STEP * number)
    return np.stack([red, cols % 256, rows % 256], axis=-1).astype(np.uint8)


def save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def frame_number(frame: torch.Tensor) -> int:
    return round(frame[0].mean().item() * 255 / FRAME_STEP)


def numbers(frames) -> list[int]:
    return [frame_number(f) for f in frames]


def as_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255


# ---------------------------------------------------------------- frames and augmentations


def test_load_frame_matches_torchvision_to_tensor(tmp_path):
    array = make_frame(5, 12, 20)
    save(array, tmp_path / "f.png")
    frame = load_frame(tmp_path / "f.png")
    assert frame.dtype == torch.float32 and frame.shape == (3, 12, 20)
    assert torch.equal(frame, TF.to_tensor(Image.open(tmp_path / "f.png")))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_frame(tmp_path / "missing.png")


@pytest.mark.parametrize("kind", KINDS)
def test_every_png_kind_reads_as_its_8_bit_rgb(tmp_path, kind):
    # 60 colours, so the palette kind can hold them all; values across the whole 0..255 range.
    rgb = np.random.default_rng(1).integers(0, 60, (9, 11, 3)).astype(np.uint8) * 4 + 15
    path = write_kind(tmp_path / f"{kind}.png", rgb, kind)
    frame = read_image_rgb(path)
    assert frame.dtype == np.uint8 and frame.flags.writeable
    np.testing.assert_array_equal(frame, expected_rgb(rgb, kind))
    assert torch.equal(load_frame(path), torch.from_numpy(expected_rgb(rgb, kind)).permute(2, 0, 1).float() / 255)


def test_sixteen_bit_grey_is_rounded_not_clipped(tmp_path):
    write_png16(tmp_path / "g.png", np.array([[0, 128, 300, 32896, 40000, 65535]], dtype=np.uint16))
    assert read_image_rgb(tmp_path / "g.png")[0, :, 0].tolist() == [0, 0, 1, 128, 156, 255]


@pytest.mark.parametrize("damage", ["truncated", "not_an_image", "empty"])
def test_damaged_image_names_the_file(tmp_path, damage):
    path = write_kind(tmp_path / "frame.png", np.zeros((32, 32, 3), np.uint8) + 90, "rgb")
    content = path.read_bytes()
    path.write_bytes({"truncated": content[: len(content) // 2], "not_an_image": b"hello" * 20, "empty": b""}[damage])
    with pytest.raises(ValueError, match=f"cannot read {path} as an image"):
        read_image_rgb(path)


@pytest.mark.parametrize("size", [(7, 9), (8, 10), (5, 6)])
def test_center_crop_matches_torchvision(size):
    frame = torch.rand(3, 13, 18)
    assert torch.equal(center_crop(frame, *size), TF.center_crop(frame, list(size)))


def test_augmentation_is_reproducible_per_item():
    augmentation = Augmentation(crop_size=(4, 6))
    draws = [augmentation.draw(10, 20, item_generator(7, index)) for index in range(20)]
    assert draws == [augmentation.draw(10, 20, item_generator(7, index)) for index in range(20)]
    assert len(set(draws)) > 10
    assert item_generator(None, 3) is None


def test_augmentation_frequencies_and_crop_range():
    augmentation = Augmentation(crop_size=(4, 6))
    generator = torch.Generator().manual_seed(0)
    draws = [augmentation.draw(10, 20, generator) for _ in range(400)]
    for flag in ("hflip", "vflip", "reverse"):
        assert 0.4 < np.mean([getattr(d, flag) for d in draws]) < 0.6
    assert {d.top for d in draws} == set(range(7)) and {d.left for d in draws} == set(range(15))


def test_switching_one_augmentation_off_keeps_the_other_draws():
    full = [Augmentation().draw(300, 300, item_generator(1, i)) for i in range(30)]
    no_hflip = [Augmentation(hflip=False).draw(300, 300, item_generator(1, i)) for i in range(30)]
    assert not any(d.hflip for d in no_hflip)
    assert [d._replace(hflip=False) for d in full] == no_hflip


def test_augmentation_apply_crops_flips_and_reverses():
    frames = [as_tensor(make_frame(n, 10, 20)) for n in QUINTUPLET]
    augmentation = Augmentation(crop_size=(4, 6))
    draw = augmentation.draw(10, 20)._replace(top=3, left=5, hflip=True, vflip=True, reverse=True)
    out = augmentation.apply(frames, draw)
    assert numbers(out) == QUINTUPLET[::-1]
    assert out[0].shape == (3, 4, 6)
    assert torch.equal(out[0], frames[-1][:, 3:7, 5:11].flip(-1).flip(-2))
    assert all(torch.equal(a, b) for a, b in zip(NO_AUGMENTATION(frames), frames))
    with pytest.raises(ValueError, match="larger than the frames"):
        Augmentation(crop_size=(11, 4))(frames)


# ---------------------------------------------------------------- Vimeo-90K

VIMEO_SIZE = (16, 24)


@pytest.fixture
def vimeo_dir(tmp_path):
    root = tmp_path / "vimeo_septuplet"
    train, test = ["00001/0001", "00001/0002", "00002/0001"], ["00003/0001"]
    for base, name in enumerate(train + test):
        for k in range(1, 8):
            save(make_frame(10 * base + k, *VIMEO_SIZE), root / "sequences" / name / f"im{k}.png")
    (root / "sep_trainlist.txt").write_text("\n".join(train) + "\n\n")
    (root / "sep_testlist.txt").write_text("\n".join(test) + "\n")
    return root


def test_vimeo_frames_in_order_without_augmentation(vimeo_dir):
    dataset = Vimeo90k_quintuplet(vimeo_dir, crop_sz=None, augment_s=False, augment_t=False)
    assert len(dataset) == 3
    frames = dataset[1]
    assert isinstance(frames, tuple) and len(frames) == 5
    assert numbers(frames) == [10 + n for n in QUINTUPLET]  # target im4 in the middle
    assert torch.equal(frames[2], as_tensor(make_frame(14, *VIMEO_SIZE)))
    assert all(f.dtype == torch.float32 and f.shape == (3, *VIMEO_SIZE) for f in frames)

    test_split = Vimeo90k_quintuplet(vimeo_dir, train=False, augmentation=NO_AUGMENTATION)
    assert len(test_split) == 1 and numbers(test_split[0]) == [30 + n for n in QUINTUPLET]


def test_vimeo_augmentation_follows_the_seeded_draw(vimeo_dir):
    augmentation = Augmentation(crop_size=(8, 12))
    reversed_seen = set()
    for seed in range(6):
        dataset = Vimeo90k_quintuplet(vimeo_dir, crop_sz=(8, 12), seed=seed)
        assert dataset.augmentation == augmentation
        for index in range(len(dataset)):
            frames = dataset[index]
            draw = augmentation.draw(*VIMEO_SIZE, item_generator(seed, index))
            order = [10 * index + n for n in (QUINTUPLET[::-1] if draw.reverse else QUINTUPLET)]
            expected = [make_frame(n, *VIMEO_SIZE)[draw.top:draw.top + 8, draw.left:draw.left + 12] for n in order]
            if draw.hflip:
                expected = [e[:, ::-1] for e in expected]
            if draw.vflip:
                expected = [e[::-1] for e in expected]
            assert all(torch.equal(f, as_tensor(e.copy())) for f, e in zip(frames, expected))
            assert frame_number(frames[2]) == 10 * index + 4
            reversed_seen.add(draw.reverse)
    assert reversed_seen == {True, False}


def test_vimeo_flags_switch_augmentations_off(vimeo_dir):
    dataset = Vimeo90k_quintuplet(vimeo_dir, crop_sz=(8, 12), augment_s=False, augment_t=False, seed=0)
    for index in range(len(dataset)):
        frames = dataset[index]
        assert numbers(frames) == [10 * index + n for n in QUINTUPLET]
        top, left = int(frames[0][2, 0, 0] * 255), int(frames[0][1, 0, 0] * 255)
        assert torch.equal(frames[0], as_tensor(make_frame(10 * index + 1, *VIMEO_SIZE)[top:top + 8, left:left + 12]))


def test_vimeo_global_rng_is_seeded_by_torch_manual_seed(vimeo_dir):
    dataset = Vimeo90k_quintuplet(vimeo_dir, crop_sz=(8, 12))
    torch.manual_seed(5)
    first = [dataset[i] for i in range(3)]
    torch.manual_seed(5)
    second = [dataset[i] for i in range(3)]
    assert all(torch.equal(a, b) for x, y in zip(first, second) for a, b in zip(x, y))


def test_vimeo_batches_through_a_dataloader(vimeo_dir):
    dataset = Vimeo90k_quintuplet(vimeo_dir, crop_sz=(8, 12), seed=0)
    frame1, frame3, frame4, frame5, frame7 = next(iter(DataLoader(dataset, batch_size=2)))
    assert frame4.shape == (2, 3, 8, 12)


def test_vimeo_missing_files_name_the_path_and_layout(tmp_path, vimeo_dir):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*expected layout.*sep_trainlist\.txt"):
        Vimeo90k_quintuplet(tmp_path / "nowhere")
    (vimeo_dir / "sep_testlist.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"sep_testlist\.txt not found"):
        Vimeo90k_quintuplet(vimeo_dir, train=False)


# ---------------------------------------------------------------- BVI-DVC


@pytest.fixture
def bvidvc_dir(tmp_path):
    root = tmp_path / "bvidvc"
    for number in range(2):
        tiles = [make_frame(10 * number + n, 256, 256) for n in (1, 3, 5, 7, 4)]  # stored order 1, 3, 5, 7, 4
        save(np.concatenate(tiles, axis=1), root / "quintuplets" / f"{number:05d}" / "quintuplet.png")
    (root / "quintuplets" / "notes.txt").write_text("not a quintuplet")
    return root


def test_bvidvc_tiles_are_reordered_with_target_in_the_middle(bvidvc_dir):
    dataset = BVIDVC_quintuplet(bvidvc_dir, augment_s=False, augment_t=False)
    assert len(dataset) == 2
    frames = dataset[1]
    assert numbers(frames) == [10 + n for n in QUINTUPLET]
    assert all(f.shape == (3, 256, 256) for f in frames)
    assert torch.equal(frames[2], as_tensor(make_frame(14, 256, 256)))


def test_bvidvc_crop_and_time_reversal(bvidvc_dir):
    dataset = BVIDVC_quintuplet(bvidvc_dir, crop_sz=(64, 96), augment_s=False, seed=2)
    for index in range(2):
        frames = dataset[index]
        assert all(f.shape == (3, 64, 96) for f in frames)
        reverse = dataset.augmentation.draw(256, 256, item_generator(2, index)).reverse
        assert numbers(frames) == [10 * index + n for n in (QUINTUPLET[::-1] if reverse else QUINTUPLET)]


def test_bvidvc_takes_the_original_positional_arguments(bvidvc_dir):
    # The original's order: (db_dir, res, crop_sz, augment_s, augment_t); res is unused.
    positional = BVIDVC_quintuplet(bvidvc_dir, "1080p", (64, 96), False, False)
    keywords = BVIDVC_quintuplet(bvidvc_dir, crop_sz=(64, 96), augment_s=False, augment_t=False)
    assert positional.augmentation == keywords.augmentation
    assert (positional.augmentation.hflip, positional.augmentation.reverse) == (False, False)
    assert all(f.shape == (3, 64, 96) for f in positional[0])


def test_bvidvc_bad_strip_and_missing_folder(bvidvc_dir, tmp_path):
    save(make_frame(0, 256, 1024), bvidvc_dir / "quintuplets" / "00000" / "quintuplet.png")
    with pytest.raises(ValueError, match="five 256x256 tiles"):
        BVIDVC_quintuplet(bvidvc_dir)[0]
    with pytest.raises(FileNotFoundError, match=r"quintuplets not found.*quintuplet\.png"):
        BVIDVC_quintuplet(tmp_path / "empty")


# ---------------------------------------------------------------- Sampler


def test_sampler_iter_concatenates_in_order():
    sampler = Sampler([["a0", "a1"], ["b0", "b1", "b2"]], iter=True)
    assert len(sampler) == 5
    assert [sampler[i] for i in range(5)] == ["a0", "a1", "b0", "b1", "b2"]
    with pytest.raises(IndexError):
        sampler[5]


def test_sampler_random_mode_draws_by_probability():
    datasets = [["a"], ["b", "c", "d"]]
    sampler = Sampler(datasets, samples_per_epoch=1000, seed=0)
    assert len(sampler) == 1000
    items = [sampler[i] for i in range(1000)]
    assert items == [sampler[i] for i in range(1000)]
    assert 0.2 < items.count("a") / 1000 < 0.3  # p proportional to size: 1/4
    assert {"b", "c", "d"} <= set(items)
    only_second = Sampler(datasets, p_datasets=[0.0, 1.0], samples_per_epoch=50)
    assert "a" not in [only_second[i] for i in range(50)]
    with pytest.raises(ValueError, match="2 probabilities for 3 datasets"):
        Sampler([["a"], ["b"], ["c"]], p_datasets=[0.5, 0.5])


# ---------------------------------------------------------------- test sets

SMALL = (8, 12)


def test_ucf101_items_in_natural_order(tmp_path):
    root = tmp_path / "ucf101"
    files = {"frame0.png": 1, "frame1.png": 3, "framet.png": 4, "frame2.png": 5, "frame3.png": 7}
    for item in ("10", "2", "0"):
        for file, n in files.items():
            save(make_frame(int(item) + n, 16, 16), root / item / file)
    test_set = Ucf101_quintuplet(root)
    assert [item.name for item in test_set.items] == ["0", "2", "10"]
    frames, name = test_set[2]
    assert name == "10" and numbers(frames) == [10 + n for n in QUINTUPLET]
    assert all(f.shape == (3, 16, 16) for f in frames)
    assert test_set.items[2].output_file == "10/output.png" and test_set.items[2].sequence == "10"

    (root / "2" / "framet.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"2/framet\.png not found; expected layout: ucf101/"):
        Ucf101_quintuplet(root)


def test_davis90_windows_every_two_frames(tmp_path):
    root = tmp_path / "davis90"
    for sequence, num_frames in (("bear", 11), ("car", 7)):  # windows at t = 0, 2, 4 and at t = 0
        (root / sequence).mkdir(parents=True)
        for k in range(num_frames):  # flat grey frames survive JPEG compression
            Image.new("RGB", (12, 8), (FRAME_STEP * k,) * 3).save(root / sequence / f"{k:05d}.jpg")
    (root / "bear" / "Thumbs.db").write_text("not a frame")
    test_set = Davis90_quintuplet(root)
    assert [item.name for item in test_set.items] == ["bear/frame3", "bear/frame5", "bear/frame7", "car/frame3"]
    assert [item.sequence for item in test_set.items] == ["bear"] * 3 + ["car"]
    assert test_set.items[1].output_file == "bear/frame5.png"
    frames, name = test_set[1]
    assert name == "bear/frame5" and numbers(frames) == [2, 4, 5, 6, 8]
    assert frames[0].shape == (3, 8, 12)


def test_vfitex_windows_and_4k_half_crop(tmp_path):
    root = tmp_path / "vfitex"
    for k in range(1, 10):
        save(make_frame(k, 16, 24), root / "beach02_4K_test" / f"{k:03d}.png")
        save(make_frame(k, *SMALL), root / "plain" / f"{k:03d}.png")
    test_set = VFITex_quintuplet(root)
    names = [item.name for item in test_set.items]
    assert names == ["beach02_4K_test/frame4", "beach02_4K_test/frame6", "plain/frame4", "plain/frame6"]
    frames, _ = test_set[1]
    assert numbers(frames) == [3, 5, 6, 7, 9]
    # half of 16x24, centred: rows 4..12, columns 6..18
    assert torch.equal(frames[2], as_tensor(make_frame(6, 16, 24)[4:12, 6:18]))
    frames, _ = test_set[2]
    assert numbers(frames) == QUINTUPLET and torch.equal(frames[0], as_tensor(make_frame(1, *SMALL)))


SNU_SEQ = "data/SNU-FILM/test/GOPRO_test/GOPR0384_11_00"
SNU_YOUTUBE = "data/SNU-FILM/test/YouTube_test/0"


def snufilm_line(sequence: str, first: int, offset: int, digits: int = 6) -> str:
    return " ".join(f"{sequence}/{first + step:0{digits}d}.png" for step in (0, offset // 2, offset))


@pytest.fixture
def snufilm_dir(tmp_path):
    root = tmp_path / "snufilm"
    for k in range(57):  # frames 000000 ... 000056
        save(make_frame(k, 4, 4), root / SNU_SEQ / f"{k:06d}.png")
    for k in range(11):  # frames 0000 ... 0010
        save(make_frame(k, 4, 4), root / SNU_YOUTUBE / f"{k:04d}.png")
    lines = {
        "easy": [snufilm_line(SNU_SEQ, 2, 2), snufilm_line(SNU_YOUTUBE, 4, 2, digits=4),
                 snufilm_line(SNU_YOUTUBE, 8, 2, digits=4)],  # frame 7 would be 0012: skipped
        "medium": [snufilm_line(SNU_SEQ, 4, 4)],
        "hard": [snufilm_line(SNU_SEQ, 8, 8)],
        "extreme": [snufilm_line(SNU_SEQ, 0, 16),  # frame 1 would be -16: skipped
                    snufilm_line(SNU_SEQ, 16, 16), snufilm_line(SNU_SEQ, 30, 16),  # frame 7 = 62: skipped
                    "", snufilm_line(SNU_SEQ, 20, 16)],
    }
    for mode, mode_lines in lines.items():
        (root / f"test-{mode}.txt").write_text("\n".join(mode_lines) + "\n")
    return root


def test_snufilm_outer_frames_at_the_mode_offset(snufilm_dir):
    easy = Snufilm_easy_quintuplet(snufilm_dir)
    assert [numbers(easy[i][0]) for i in range(len(easy))] == [[0, 2, 3, 4, 6], [2, 4, 5, 6, 8]]
    assert easy.items[1].frame_paths[0] == snufilm_dir / SNU_YOUTUBE / "0002.png"
    assert easy.num_skipped == 1
    assert numbers(build_test_set("Snufilm_medium_quintuplet", snufilm_dir.parent)[0][0]) == [0, 4, 6, 8, 12]
    assert numbers(Snufilm_hard_quintuplet(snufilm_dir)[0][0]) == [0, 8, 12, 16, 24]


def test_snufilm_skips_and_logs_triplets_without_outer_frames(snufilm_dir, caplog):
    with caplog.at_level(logging.INFO, logger="data.testsets"):
        extreme = Snufilm_extreme_quintuplet(snufilm_dir)
    assert len(extreme) == 2 and extreme.num_skipped == 2
    assert "Snufilm_extreme_quintuplet: skipped 2 of 4" in caplog.text
    # names keep the original's numbering: the 1-based line of the list, skipped lines included
    assert [item.name for item in extreme.items] == ["extreme-002", "extreme-004"]
    assert extreme.items[0].output_file == "extreme-002/output.png"
    frames, name = extreme[1]
    assert name == "extreme-004" and numbers(frames) == [4, 20, 28, 36, 52]


def test_snufilm_missing_list_names_path_and_layout(snufilm_dir):
    (snufilm_dir / "test-hard.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"test-hard\.txt not found; expected layout: snufilm/"):
        Snufilm_hard_quintuplet(snufilm_dir)


def test_test_sets_load_lazily(tmp_path):
    root = tmp_path / "vfitex"
    for k in range(1, 10):
        save(make_frame(k, *SMALL), root / "seq" / f"{k:03d}.png")
    test_set = VFITex_quintuplet(root)
    (root / "seq" / "009.png").unlink()  # only the second window uses frame 9
    assert numbers(test_set[0][0]) == QUINTUPLET
    with pytest.raises(FileNotFoundError, match="009.png"):
        test_set[1]
    frames, names = next(iter(DataLoader(test_set, batch_size=1)))
    assert len(frames) == 5 and frames[2].shape == (1, 3, *SMALL) and list(names) == ["seq/frame4"]


def test_test_set_registry_and_missing_folder(tmp_path):
    assert set(TEST_SETS) == {
        "Ucf101_quintuplet", "Davis90_quintuplet", "VFITex_quintuplet", "Snufilm_easy_quintuplet",
        "Snufilm_medium_quintuplet", "Snufilm_hard_quintuplet", "Snufilm_extreme_quintuplet",
    }
    assert {cls.layout.folder for cls in TEST_SETS.values()} == {"ucf101", "davis90", "vfitex", "snufilm"}
    with pytest.raises(ValueError, match="unknown test set 'Vimeo'"):
        build_test_set("Vimeo", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"davis90 not found; expected layout: davis90/<seq>/00000\.jpg"):
        build_test_set("Davis90_quintuplet", tmp_path)
    (tmp_path / "davis90").mkdir()
    with pytest.raises(FileNotFoundError, match="no complete items"):
        build_test_set("Davis90_quintuplet", tmp_path)
