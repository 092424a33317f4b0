"""Helpers shared by the scripts: checkpoint loading, and the original ``utility`` names.

The original kept metrics, optimizer factories and frame helpers in one ``utility.py``; they now live in
``metrics/``, ``optim/``, ``losses/``, ``models/`` and ``video/`` and are re-exported here, or wrapped with the
original's signatures at the end of this file (``tensor2rgb``, ``calc_lpips``, ``read_frame_yuv2rgb``), so code
written against the original names keeps working.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import re
import secrets
import sys
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional, Union

import numpy as np
import torch
from PIL import Image
from torch import nn

from losses import CharbonnierFunc
from metrics import LPIPS, calc_psnr, calc_ssim, find_alexnet_weights, quantize
from models.scales import gaussian_kernel
from models.stmfnet import ModelConfig
from models.scales import normalize_frame as moduleNormalize
from optim import make_optimizer, make_scheduler
from video.fold_unfold import FoldUnfold
from video.yuv import YUVFormat, split_planes, yuv_to_rgb

__all__ = [
    "CharbonnierFunc", "FoldUnfold", "add_model_arguments", "atomic_save", "atomic_save_image", "atomic_write_text",
    "calc_lpips", "calc_psnr", "calc_ssim", "file_sha256", "gaussian_kernel", "load_checkpoint", "make_optimizer",
    "make_scheduler", "moduleNormalize", "non_finite_tensors", "positive_float", "positive_int", "quantize",
    "read_frame_yuv2rgb", "remove_stale_temporaries", "select_device", "setup_logging", "tensor2rgb",
]

PathType = Union[str, PathLike]
# DataParallel / DistributedDataParallel wrap the model as ``module``, which prefixes every key.
DATA_PARALLEL_PREFIX = "module."
_MAX_LISTED_KEYS = 10
TEMPORARY_SUFFIX = ".tmp"


def _listing(label: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    more = f", ... ({len(keys) - _MAX_LISTED_KEYS} more)" if len(keys) > _MAX_LISTED_KEYS else ""
    return f"{label} ({len(keys)}): {shown}{more}"


def _strip_data_parallel_prefix(state_dict: dict[str, Any]) -> dict[str, Any]:
    if state_dict and all(key.startswith(DATA_PARALLEL_PREFIX) for key in state_dict):
        return {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in state_dict.items()}
    return state_dict


def _shape(value: Any) -> Any:
    return tuple(value.shape) if torch.is_tensor(value) else type(value).__name__


def non_finite_tensors(state_dict: dict[str, Any]) -> list[str]:
    """Keys of the floating-point tensors in ``state_dict`` holding a NaN or an infinity."""
    return [
        key for key, value in state_dict.items()
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]


def load_checkpoint(model: nn.Module, path: PathType, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint into ``model`` strictly and return the whole checkpoint (e.g. to read ``"epoch"``).

    Accepts the original training format ``{"epoch": ..., "state_dict": ...}`` or a bare state dict, with or
    without DataParallel's ``module.`` prefix. Keys and shapes are checked before anything is copied, so on a
    mismatch the model is left untouched and a ``ValueError`` lists the missing, unexpected and misshaped keys;
    so it is, with the tensors named, when a weight is NaN or infinite.
    """
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as error:  # a damaged file surfaces as RuntimeError, EOFError, UnpicklingError, KeyError, ...
        raise ValueError(f"{path} is not a readable PyTorch checkpoint: {error}") from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, expected a state dict")
    state_dict = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path}: 'state_dict' is a {type(state_dict).__name__}, expected a dict")
    state_dict = _strip_data_parallel_prefix(state_dict)

    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    misshaped = [
        f"{key} {_shape(state_dict[key])} vs model {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state_dict and _shape(state_dict[key]) != tuple(value.shape)
    ]
    if missing or unexpected or misshaped:
        problems = [
            _listing(label, keys)
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("misshaped", misshaped))
            if keys
        ]
        raise ValueError(
            f"checkpoint {path} does not match {type(model).__name__}; nothing was loaded. " + "; ".join(problems)
        )
    # A diverged run's weights would give black frames and NaN scores without any error: refuse them here.
    non_finite = non_finite_tensors(state_dict)
    if non_finite:
        raise ValueError(
            f"checkpoint {path} holds NaN or infinite weights; nothing was loaded. " + _listing("tensors", non_finite)
        )
    model.load_state_dict(state_dict, strict=True)
    return checkpoint


def select_device(device: str = "auto", gpu_id: int = 0) -> torch.device:
    """The scripts' ``--device auto|cpu|cuda`` (with the original ``--gpu_id``); auto takes the GPU if there is one."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu or auto")
    if not 0 <= gpu_id < torch.cuda.device_count():
        raise ValueError(f"--gpu_id {gpu_id} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    return torch.device("cuda", gpu_id)


def setup_logging(out_dir: PathType, filename: str = "log.txt") -> logging.Logger:
    """Log INFO and above to the console and to ``out_dir/filename`` (appending, so a resumed run keeps its history).

    Call once from a script's ``main()``; library code only uses ``logging.getLogger(__name__)``.
    """
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    root = logging.getLogger()
    for handler in list(root.handlers):  # a second call (e.g. in tests) must not duplicate every line
        root.removeHandler(handler)
        handler.close()
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(Path(out_dir) / filename)):
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    return logging.getLogger("stmfnet")


class _WriteErrorRecorder:
    """A binary file wrapper that remembers the OSError of a failed write.

    ``torch.save`` turns a failed write into ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``;
    the recorded error (e.g. ENOSPC) is what the caller should see.
    """

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.error: Optional[OSError] = None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = error
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


def temporary_path(path: PathType) -> Path:
    """``.<name>.<pid>.<random>.tmp`` beside ``path``: unique per process and call, so that concurrent writers of one
    file never share a temporary, and a stale one names the process that left it."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")


def _atomic_write(path: PathType, write: Callable[[BinaryIO], None]) -> None:
    """Write through ``write`` into a temporary file beside ``path``, then rename it to ``path``.

    Readers (and a crash) never see a half-written file, and a failed write leaves the previous ``path`` as it was.
    An OSError (a full disk, a read-only folder) names ``path``. A plain ``open`` rather than
    ``tempfile.mkstemp``, which would create the file with mode 0600.
    """
    path = Path(path)
    temporary = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as raw_file:
            file = _WriteErrorRecorder(raw_file)
            try:
                write(file)  # type: ignore[arg-type]
            except RuntimeError:
                if file.error is None:
                    raise
                raise file.error from None
            raw_file.flush()
            os.fsync(raw_file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.filename is None or Path(error.filename) == temporary:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: PathType) -> None:
    """``torch.save`` that never leaves a half-written checkpoint (temporary file + rename)."""
    _atomic_write(path, lambda file: torch.save(obj, file))


def atomic_write_text(path: PathType, text: str) -> None:
    """Write a text file (UTF-8) that never appears half-written (temporary file + rename)."""
    _atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def atomic_save_image(image: Image.Image, path: PathType, format: str = "PNG") -> None:
    """Save a PIL image that never appears half-written (temporary file + rename)."""
    _atomic_write(path, lambda file: image.save(file, format=format))


def remove_stale_temporaries(folder: PathType) -> list[Path]:
    """Delete the temporaries of atomic writes in ``folder`` (see :func:`temporary_path`) that a killed process left
    behind: those whose process no longer runs, or is this one (which is not writing now). Returns them."""
    folder = Path(folder)
    # .<name>.<pid>.<8 hex digits>.tmp (or .<name>.<pid>.tmp, the form without the random part)
    pattern = re.compile(rf"\..+?\.(\d+)(\.[0-9a-f]{{8}})?{re.escape(TEMPORARY_SUFFIX)}")
    removed = []
    for candidate in sorted(folder.glob(f".*{TEMPORARY_SUFFIX}")) if folder.is_dir() else ():
        match = pattern.fullmatch(candidate.name)
        if match and candidate.is_file() and not _other_process_running(int(match[1])):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _other_process_running(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def file_sha256(path: PathType) -> str:
    """Hex SHA-256 of a file (identifies the checkpoint behind a results file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (argparse names the flag in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0, e.g. a frame rate."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser, finetune_pwc: bool, finetune_pwc_help: str) -> None:
    """The original model flags (``--featc --featnet --featnorm --kernel_size --dilation --finetune_pwc``), defaults
    from :class:`models.stmfnet.ModelConfig`. ``--finetune_pwc`` is a ``store_true`` flag whose default differs
    between the original scripts (True in train/distill, so always on there; False in evaluate)."""
    defaults = ModelConfig()
    group = parser.add_argument_group("model options")
    group.add_argument("--featc", nargs="+", type=int, default=list(defaults.featc),
                       help="feature extractor widths of the student (the teacher's are fixed)")
    group.add_argument("--featnet", type=str, default=defaults.featnet, help="feature extractor")
    group.add_argument("--featnorm", type=str, default=defaults.featnorm, help="feature extractor normalisation")
    group.add_argument("--kernel_size", type=positive_int, default=defaults.kernel_size, help="AdaCoF kernel size")
    group.add_argument("--dilation", type=positive_int, default=defaults.dilation, help="AdaCoF dilation")
    group.add_argument("--finetune_pwc", dest="finetune_pwc", default=finetune_pwc, action="store_true",
                       help=finetune_pwc_help)


def tensor2rgb(tensor: torch.Tensor) -> np.ndarray:
    """The original ``utility.tensor2rgb``: (B, 3, H, W) frames in [0, 1] -> (B, H, W, 3) uint8, rounded as the
    metrics round (``quantize``)."""
    return quantize(tensor.detach()).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


_lpips_metrics: dict[tuple[str, str], LPIPS] = {}


def calc_lpips(gt: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The original ``utility.calc_lpips``: LPIPS (AlexNet, v0.1) of the 8-bit rounded frames, shape (B, 1, 1, 1).

    The metric is built once per device and weights file (the original rebuilt it on every call); the AlexNet
    weights are looked up as :func:`metrics.find_alexnet_weights` describes.
    """
    key = (str(gt.device), str(find_alexnet_weights()))
    if key not in _lpips_metrics:
        _lpips_metrics[key] = LPIPS(key[1]).to(gt.device)
    with torch.no_grad():
        return _lpips_metrics[key](gt, out).view(-1, 1, 1, 1)


def read_frame_yuv2rgb(
    stream: BinaryIO, width: int, height: int, iFrame: int, bit_depth: int, pix_fmt: str = "420"
) -> np.ndarray:
    """The original ``utility.read_frame_yuv2rgb``: frame ``iFrame`` of an open raw planar YUV file as an (H, W, 3)
    uint8 RGB image.

    Decoded by :func:`video.yuv.yuv_to_rgb` (limited-range BT.601 for both chroma formats; the original converted
    4:4:4 with OpenCV's full-range formula and truncated high bit depths). Bit depths 8, 10 and 16.
    """
    layout = YUVFormat(width, height, str(pix_fmt), bit_depth)
    stream.seek(iFrame * layout.bytes_per_frame)
    buffer = stream.read(layout.bytes_per_frame)
    if len(buffer) != layout.bytes_per_frame:
        raise ValueError(f"frame {iFrame} of a {layout} stream is beyond its end")
    return yuv_to_rgb(*split_planes(buffer, layout), bit_depth=bit_depth)
