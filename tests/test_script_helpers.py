"""The scripts' shared helpers: device choice and logging (pipeline/cli.py), atomic saving, temporaries and file
hashing (common/safe_write.py, common/files.py)."""
import errno
import hashlib
import logging
import os
import subprocess
import sys

import pytest
import torch

from common import files, safe_write
from conftest import disk_filling_after, small_tmpfs
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
    safe_write.atomic_save({"epoch": 1}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}

    def failing_save(obj, file):
        file.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        safe_write.atomic_save({"epoch": 2}, path)
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


def test_a_full_disk_is_reported_as_enospc_naming_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint" / "last.pth"
    safe_write.atomic_save({"epoch": 1, "weights": torch.zeros(10)}, path)
    with disk_filling_after(monkeypatch, 600):
        # torch.save alone would say "RuntimeError: [enforce fail at inline_container.cc] unexpected pos".
        with pytest.raises(OSError) as excinfo:
            safe_write.atomic_save({"epoch": 2, "weights": torch.zeros(100_000)}, path)
    assert excinfo.value.errno == errno.ENOSPC and excinfo.value.filename == str(path)
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pth"]


def test_a_real_full_disk_is_reported_as_enospc(tmp_path):
    with small_tmpfs(tmp_path / "disk", 64) as mounted:
        if not mounted:
            pytest.skip("mounting a tmpfs needs root on Linux; the injected full disk above covers the logic")
        path = tmp_path / "disk" / "last.pth"
        safe_write.atomic_save({"epoch": 1}, path)
        with pytest.raises(OSError) as excinfo:
            safe_write.atomic_save({"epoch": 2, "weights": torch.zeros(100_000)}, path)
        assert excinfo.value.errno == errno.ENOSPC and excinfo.value.filename == str(path)
        assert torch.load(path, weights_only=True) == {"epoch": 1}
        assert [p.name for p in path.parent.iterdir()] == ["last.pth"]


def test_temporary_names_are_unique_per_call_and_name_the_process(tmp_path):
    first, second = safe_write.partial_path(tmp_path / "clip.mp4"), safe_write.partial_path(tmp_path / "clip.mp4")
    assert first != second and first.parent == tmp_path
    # Hidden, the process named, the suffix kept (an encoder picks the container from it).
    assert first.name.startswith(f".clip.{os.getpid()}-") and first.name.endswith(".partial.mp4")


def test_stale_temporaries_of_finished_processes_are_removed(tmp_path):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    path = tmp_path / "last.pth"
    path.write_bytes(b"checkpoint")
    stale = [tmp_path / f".last.{finished.pid}-0badc0de.partial.pth",
             tmp_path / f".model_epoch003.{finished.pid}-0badc0de.partial.pth"]
    running = [tmp_path / f".last.{os.getppid()}-12345678.partial.pth",  # a live process may still be writing
               safe_write.partial_path(path)]  # so may this one
    moved_aside = [tmp_path / f".out.{finished.pid}-0badc0de.replaced"]  # a user's earlier output: never deleted
    unrelated = [tmp_path / "last.pth.partial", tmp_path / ".last.x-0badc0de.partial.pth", tmp_path / ".hidden"]
    for temporary in stale + running + moved_aside + unrelated:
        temporary.write_bytes(b"partial")
    assert sorted(safe_write.remove_stale_partials(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in [path, *running, *moved_aside, *unrelated])
    kept = tmp_path / f".last.{finished.pid}-0badc0de.partial.pth"
    kept.write_bytes(b"partial")
    assert safe_write.remove_stale_partials(tmp_path, target=tmp_path / "other.pth") == []  # only the target's
    assert safe_write.remove_stale_partials(tmp_path, target=path) == [kept]


def test_setup_logging_without_a_folder_logs_to_the_console_only(tmp_path, capsys):
    cli.setup_logging().info("console only")
    assert "console only" in capsys.readouterr().out
    assert not any(isinstance(handler, logging.FileHandler) for handler in logging.getLogger().handlers)


def test_a_new_file_path_is_checked_before_the_run(tmp_path):
    from common.failures import ScriptError

    (tmp_path / "kept.json").write_text("mine")
    safe_write.check_new_file(tmp_path / "new.json", "--json", replace=False)
    safe_write.check_new_file(tmp_path / "kept.json", "--json", replace=True)
    for path, replace, message in [
        (tmp_path, False, "is a folder"),
        (tmp_path / "kept.json", False, "exists; pass --overwrite"),
        (tmp_path / "missing" / "new.json", False, "does not exist"),
    ]:
        with pytest.raises(ScriptError, match=message):
            safe_write.check_new_file(path, "--json", replace)
    assert (tmp_path / "kept.json").read_text() == "mine"
