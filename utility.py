"""The original ``utility`` names, for code written against the original repository.

The original kept metrics, optimizer factories and frame helpers in one ``utility.py``; they now live in
``metrics/``, ``optim/``, ``losses/``, ``models/`` and ``video/``. This module re-exports them under their original
names, or wraps them with the original's signatures (``tensor2rgb``, ``calc_lpips``, ``read_frame_yuv2rgb``).
"""
from __future__ import annotations

from argparse import Namespace
from typing import BinaryIO, Sized, Union

import numpy as np
import torch

from losses import CharbonnierFunc
from metrics import LPIPS, calc_psnr, calc_ssim, find_alexnet_weights, quantize
from models.scales import gaussian_kernel
from models.scales import normalize_frame as moduleNormalize
import optim
from video.fold_unfold import FoldUnfold
from video.yuv import YUVFormat, split_planes, yuv_to_rgb

__all__ = [
    "CharbonnierFunc", "FoldUnfold", "calc_lpips", "calc_psnr", "calc_ssim", "gaussian_kernel", "make_optimizer",
    "make_scheduler", "moduleNormalize", "quantize", "read_frame_yuv2rgb", "tensor2rgb",
]


def make_optimizer(args: Namespace, model: torch.nn.Module, train_loader: Union[Sized, int, None] = None
                   ) -> torch.optim.Optimizer:
    """The original ``utility.make_optimizer``: ``args.optimizer`` with ``args.lr`` and ``args.weight_decay``
    (OBProxSG also reads ``args.epochs`` and ``len(train_loader)``)."""
    return optim.make_optimizer(model, args.optimizer, args.lr, args.weight_decay, getattr(args, "epochs", None),
                                train_loader)


def make_scheduler(args: Namespace, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """The original ``utility.make_scheduler``: ``args.decay_type`` decaying by ``args.gamma`` (``args.lr_decay``
    for "step", ``args.patience`` for "plateau")."""
    return optim.make_scheduler(optimizer, args.decay_type, args.gamma, getattr(args, "lr_decay", None),
                                getattr(args, "patience", None))


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
