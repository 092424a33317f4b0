"""Shared fixtures: the golden reference data made from the original code (../shared/reference), and logging
isolation for tests that run the scripts' main().

Without the reference data the golden tests are skipped on a developer's machine but fail under CI (``CI=true``),
so a CI run can never pass without having compared against the original code."""
import contextlib
import logging
import os
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

REFERENCE_DIR = Path(os.environ.get("STMFNET_REFERENCE", REPO_ROOT.parent / "shared" / "reference"))


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
