"""The scripts' shared helpers in utility.py: device choice, logging, atomic saving, file hashing, and the original
utility names (tensor2rgb, calc_lpips, FoldUnfold, read_frame_yuv2rgb)."""
import errno
import hashlib
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import utility
from conftest import disk_filling_after, small_tmpfs
from metrics import LPIPS
from video.yuv import YUVFormat, split_planes, yuv_to_rgb


def test_select_device():
    assert utility.select_device("cpu") == torch.device("cpu")
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert utility.select_device("auto") == expected
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        utility.select_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            utility.select_device("cuda")


def test_setup_logging_writes_console_and_file_once(tmp_path, capsys):
    logger = utility.setup_logging(tmp_path)
    utility.setup_logging(tmp_path)  # a second call must not duplicate lines
    logger.info("hello %d", 7)
    logging.getLogger("models.anything").info("from a library")
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert [line.split(" INFO ")[1] for line in lines] == ["hello 7", "from a library"]
    assert capsys.readouterr().out.count("hello 7") == 1


def test_atomic_save_roundtrip_and_failure_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint" / "last.pth"
    utility.atomic_save({"epoch": 1}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}

    def failing_save(obj, file):
        file.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        utility.atomic_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in path.parent.iterdir()] == ["last.pth"]  # no temporary left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # usual permissions, not mkstemp's private 0600


def test_file_sha256(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"st-mfnet" * 100_000)
    assert utility.file_sha256(path) == hashlib.sha256(b"st-mfnet" * 100_000).hexdigest()


def test_a_full_disk_is_reported_as_enospc_naming_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint" / "last.pth"
    utility.atomic_save({"epoch": 1, "weights": torch.zeros(10)}, path)
    with disk_filling_after(monkeypatch, 600):
        # torch.save alone would say "RuntimeError: [enforce fail at inline_container.cc] unexpected pos".
        with pytest.raises(OSError) as excinfo:
            utility.atomic_save({"epoch": 2, "weights": torch.zeros(100_000)}, path)
    assert excinfo.value.errno == errno.ENOSPC and excinfo.value.filename == str(path)
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pth"]


def test_a_real_full_disk_is_reported_as_enospc(tmp_path):
    with small_tmpfs(tmp_path / "disk", 64) as mounted:
        if not mounted:
            pytest.skip("mounting a tmpfs needs root on Linux; the injected full disk above covers the logic")
        path = tmp_path / "disk" / "last.pth"
        utility.atomic_save({"epoch": 1}, path)
        with pytest.raises(OSError) as excinfo:
            utility.atomic_save({"epoch": 2, "weights": torch.zeros(100_000)}, path)
        assert excinfo.value.errno == errno.ENOSPC and excinfo.value.filename == str(path)
        assert torch.load(path, weights_only=True) == {"epoch": 1}
        assert [p.name for p in path.parent.iterdir()] == ["last.pth"]


def test_temporary_names_are_unique_per_call_and_name_the_process(tmp_path):
    first, second = utility.temporary_path(tmp_path / "last.pth"), utility.temporary_path(tmp_path / "last.pth")
    assert first != second and first.parent == tmp_path
    assert first.name.startswith(f".last.pth.{os.getpid()}.") and first.name.endswith(".tmp")


def test_stale_temporaries_of_finished_processes_are_removed(tmp_path):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    path = tmp_path / "last.pth"
    path.write_bytes(b"checkpoint")
    stale = [tmp_path / f".last.pth.{finished.pid}.tmp", tmp_path / f".last.pth.{finished.pid}.0badc0de.tmp",
             utility.temporary_path(path)]  # this process's own: it is not writing now
    running = [tmp_path / f".last.pth.{os.getppid()}.12345678.tmp"]  # a live process may still be writing it
    stale.append(tmp_path / f".model_epoch003.pth.{finished.pid}.0badc0de.tmp")
    unrelated = [tmp_path / "last.pth.tmp", tmp_path / ".last.pth.x.tmp", tmp_path / ".hidden"]
    for temporary in stale + running + unrelated:
        temporary.write_bytes(b"partial")
    assert sorted(utility.remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [path, *running, *unrelated])


def test_tensor2rgb_is_the_original_batch_of_8bit_images():
    frames = torch.tensor([0.0, 0.5 / 255, 1.5 / 255, 1.2, -0.1, 0.5], dtype=torch.float64).view(1, 3, 1, 2)
    frames = torch.cat([frames, 1 - frames])
    images = utility.tensor2rgb(frames)
    assert images.dtype == np.uint8 and images.shape == (2, 1, 2, 3)
    # (B, H, W, C); clamped, then rounded half to even like the metrics
    np.testing.assert_array_equal(images[0, 0], [[0, 2, 0], [0, 255, 128]])
    np.testing.assert_array_equal(images[1, 0], [[255, 254, 255], [254, 0, 128]])  # 253.5 and 254.5 -> 254


def test_calc_lpips_is_the_metric_on_8bit_frames_with_the_original_shape(tmp_path, monkeypatch):
    from test_metrics import _fake_alexnet_checkpoint

    _fake_alexnet_checkpoint(tmp_path / "alexnet.pth")
    monkeypatch.setenv("LPIPS_ALEXNET_WEIGHTS", str(tmp_path / "alexnet.pth"))
    generator = torch.Generator().manual_seed(0)
    gt, out = torch.rand(2, 3, 32, 32, generator=generator), torch.rand(2, 3, 32, 32, generator=generator)
    distance = utility.calc_lpips(gt, out)
    assert distance.shape == (2, 1, 1, 1)
    with torch.no_grad():
        expected = LPIPS(tmp_path / "alexnet.pth")(gt, out)
    assert torch.equal(distance.flatten(), expected)
    assert torch.all(utility.calc_lpips(gt, gt) == 0)


def test_fold_unfold_keeps_the_original_geometry_and_averages_overlaps():
    frame = torch.rand(1, 3, 64, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    folder = utility.FoldUnfold(64, 48, patch_size=32, overlap=8)
    # stride 24: 64 // 24 + 1 = 3 rows, padded by (72 + 8 - 64) // 2 = 8; 48 // 24 + 1 = 3 columns, padded by 16
    assert (folder.pad_h, folder.pad_w, folder.height_pad, folder.width_pad) == (8, 16, 80, 80)
    patches, again = folder.fold_to_patches(frame, frame)
    assert patches.shape == (9, 3, 32, 32) and torch.equal(patches, again)
    padded = torch.nn.functional.pad(frame, (16, 16, 8, 8), mode="reflect")
    assert torch.equal(patches[4], padded[0, :, 24:56, 24:56])  # row 1, column 1
    assert torch.allclose(folder.unfold_to_frame(patches), frame, rtol=0, atol=1e-15)
    # patch k filled with k: a pixel covered by patches 0 and 1 (padded column 24..31 of row 0) gets their mean
    labelled = torch.arange(9, dtype=torch.float64).view(9, 1, 1, 1).expand(9, 3, 32, 32)
    merged = folder.unfold_to_frame(labelled)
    assert merged.shape == (1, 3, 64, 48)
    assert merged[0, 0, 0, 0].item() == 0.0 and merged[0, 0, 0, 24 - 16].item() == 0.5
    with pytest.raises(ValueError, match="even"):
        utility.FoldUnfold(63, 48, 32, 8)


@pytest.mark.parametrize("pix_fmt, bit_depth", [("420", 8), ("420", 10), ("444", 8), ("444", 16)])
def test_read_frame_yuv2rgb_reads_the_asked_frame_of_a_stream(tmp_path, pix_fmt, bit_depth):
    layout = YUVFormat(8, 6, pix_fmt, bit_depth)
    generator = np.random.default_rng(0)
    high = 2 ** bit_depth
    frames = [generator.integers(0, high, layout.bytes_per_frame // layout.sample_dtype.itemsize)
              .astype(layout.sample_dtype).tobytes() for _ in range(3)]
    (tmp_path / "clip.yuv").write_bytes(b"".join(frames))
    with open(tmp_path / "clip.yuv", "rb") as stream:
        rgb = utility.read_frame_yuv2rgb(stream, 8, 6, 2, bit_depth, pix_fmt)
        with pytest.raises(ValueError, match="beyond its end"):
            utility.read_frame_yuv2rgb(stream, 8, 6, 3, bit_depth, pix_fmt)
    assert rgb.shape == (6, 8, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, yuv_to_rgb(*split_planes(frames[2], layout), bit_depth=bit_depth))


def test_read_frame_yuv2rgb_of_8bit_420_is_within_one_level_of_opencv(tmp_path):
    import cv2

    width, height = 16, 8
    generator = np.random.default_rng(1)
    planes = np.concatenate([generator.integers(16, 236, width * height),
                             generator.integers(16, 241, width * height // 2)]).astype(np.uint8)
    (tmp_path / "clip.yuv").write_bytes(planes.tobytes())
    with open(tmp_path / "clip.yuv", "rb") as stream:
        rgb = utility.read_frame_yuv2rgb(stream, width, height, 0, 8)
    expected = cv2.cvtColor(planes.reshape(height * 3 // 2, width), cv2.COLOR_YUV2RGB_I420)
    assert np.abs(rgb.astype(int) - expected.astype(int)).max() <= 1
