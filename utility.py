"""The original ``utility`` names, for code written against the original repository.

The original kept metrics, optimizer factories and frame helpers in one ``utility.py``; they now live in
``metrics/``, ``optim/``, ``losses/`` and ``models/``, and this module only re-exports them under their original
names.
"""
from losses import CharbonnierFunc
from metrics import calc_psnr, calc_ssim, quantize
from models.scales import gaussian_kernel
from models.scales import normalize_frame as moduleNormalize
from optim import make_optimizer, make_scheduler

__all__ = [
    "CharbonnierFunc", "calc_psnr", "calc_ssim", "gaussian_kernel", "make_optimizer", "make_scheduler",
    "moduleNormalize", "quantize",
]
