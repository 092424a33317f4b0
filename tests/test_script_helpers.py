"""The scripts' shared helpers: device choice and logging (pipeline/cli.py), atomic saving and file hashing
(common/files.py); and utility.py, which only re-exports the original names."""
import hashlib
import logging
import os
from pathlib import Path

import pytest
import torch

import utility
from common import files
from pipeline import cli


def test_select_device():
    assert cli.select_device("cpu") == torch.device("cpu")
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert cli.select_device("auto") == expected
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        cli.select_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            cli.select_device("cuda")


def test_setup_logging_writes_console_and_file_once(tmp_path, capsys):
    logger = cli.setup_logging(tmp_path)
    cli.setup_logging(tmp_path)  # a second call must not duplicate lines
    logger.info("hello %d", 7)
    logging.getLogger("models.anything").info("from a library")
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert [line.split(" INFO ")[1] for line in lines] == ["hello 7", "from a library"]
    assert capsys.readouterr().out.count("hello 7") == 1


def test_atomic_save_roundtrip_and_failure_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint" / "last.pth"
    files.atomic_save({"epoch": 1}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}

    def failing_save(obj, file):
        file.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        files.atomic_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in path.parent.iterdir()] == ["last.pth"]  # no temporary left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # usual permissions, not mkstemp's private 0600


def test_file_sha256(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"st-mfnet" * 100_000)
    assert files.file_sha256(path) == hashlib.sha256(b"st-mfnet" * 100_000).hexdigest()


def test_utility_re_exports_only_the_original_names():
    original = {"CharbonnierFunc", "calc_psnr", "calc_ssim", "gaussian_kernel", "make_optimizer", "make_scheduler",
                "moduleNormalize", "quantize", "tensor2rgb", "calc_lpips", "FoldUnfold", "read_frame_yuv2rgb"}
    assert set(utility.__all__) <= original
    source = Path(utility.__file__).read_text()
    assert "pipeline" not in source and "def load_checkpoint" not in source


def test_setup_logging_without_a_folder_logs_to_the_console_only(tmp_path, capsys):
    cli.setup_logging().info("console only")
    assert "console only" in capsys.readouterr().out
    assert not any(isinstance(handler, logging.FileHandler) for handler in logging.getLogger().handlers)
