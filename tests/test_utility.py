"""The scripts' shared helpers in utility.py: device choice, logging, atomic saving, file hashing."""
import hashlib
import logging
import os

import pytest
import torch

import utility


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
