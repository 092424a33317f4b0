"""Shared fixtures: the golden reference data made from the original code (../shared/reference), and logging
isolation for tests that run the scripts' main().

Without the reference data the golden tests are skipped on a developer's machine but fail under CI (``CI=true``),
so a CI run can never pass without having compared against the original code."""
import contextlib
import errno
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

REFERENCE_DIR = Path(os.environ.get("STMFNET_REFERENCE", REPO_ROOT.parent / "shared" / "reference"))
# The state-dict manifests of both published networks (keys, shapes, dtypes, parameter counts), copied from the
# reference folder into the repository so that every clone checks the checkpoint contract.
MANIFEST_DIR = Path(__file__).resolve().parent / "reference"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_reference(path: Path) -> Path:
    """``path`` of the golden reference data; skips the test when it is missing, or fails it under CI."""
    if not path.exists():
        message = f"golden reference {path} not found (set STMFNET_REFERENCE)"
        if running_in_ci():
            pytest.fail(message + ": CI must compare against the original code's goldens")
        pytest.skip(message)
    return path


def _load_reference(name: str):
    return torch.load(require_reference(REFERENCE_DIR / name), weights_only=True)


@pytest.fixture(scope="session")
def kernel_goldens():
    return _load_reference("kernels.pt")


@pytest.fixture(scope="session")
def module_goldens():
    return _load_reference("modules.pt")


@pytest.fixture(scope="session")
def model_goldens():
    return _load_reference("models.pt")


@pytest.fixture(scope="session")
def golden_weights():
    """The reference ``golden_weights`` module (deterministic weights from parameter names)."""
    require_reference(REFERENCE_DIR / "golden_weights.py")
    sys.path.insert(0, str(REFERENCE_DIR))
    import golden_weights

    return golden_weights


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """max |got - expected| / max |expected| (the reference README's measure)."""
    scale = expected.abs().max().clamp_min(1e-300)
    return float((got.detach().to(expected.dtype) - expected).abs().max() / scale)


@contextlib.contextmanager
def restored_root_logging():
    """Undo a script's logging set-up (main() points the root logger at its out_dir and the console)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


@pytest.fixture(autouse=True)
def restore_logging():
    """Every test leaves the logging set-up as it found it."""
    with restored_root_logging():
        yield


class _FillingFile:
    """A binary file that accepts ``budget[0]`` more bytes, then fails as a full disk does."""

    def __init__(self, file, budget):
        self.file, self.budget = file, budget

    def write(self, data):
        if len(data) > self.budget[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.budget[0] -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.file.close()


@contextlib.contextmanager
def disk_filling_after(monkeypatch, budget_bytes: int):
    """Every file the atomic writes of common/safe_write.py open accepts ``budget_bytes`` in all, then raises
    OSError(ENOSPC)."""
    from common import safe_write

    budget = [budget_bytes]
    monkeypatch.setattr(safe_write, "open", lambda path, mode: _FillingFile(open(path, mode), budget), raising=False)
    yield
    monkeypatch.delattr(safe_write, "open")


@contextlib.contextmanager
def small_tmpfs(path: Path, size_kib: int):
    """A tmpfs of ``size_kib`` KiB mounted at ``path`` (needs root on Linux); yields False where that is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
                             capture_output=True).returncode == 0 if shutil.which("mount") else False
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=True)
