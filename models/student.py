"""ST-MFNet Mini, the distilled student (Morris, Danier, Zhang, Anantrasirichai and Bull, ICIP 2023,
arXiv 2302.08455).

Same pipeline as the teacher (:class:`models.stmfnet.STMFNetBase`) without the PWC-Net / softmax-splatting
branch, and with narrower sub-networks: feature widths ``featc`` (default 32, 64, 96, 128), 30 hidden channels in
the kernel estimation, a (16, 32, 46)-channel GridNet with a 6-channel full-scale row, and the smaller 3D U-Net.
"""
from __future__ import annotations

from typing import Any

from models.stmfnet import ModelConfig, STMFNetBase
from models.texture import student_UNet3d_18

KERNEL_CHANNELS = 30


class student_STMFNet(STMFNetBase):
    """ST-MFNet Mini. ``finetune_pwc`` and ``pwc_weights`` are accepted and ignored (there is no PWC-Net)."""

    def __init__(self, args: Any = None, **overrides: Any) -> None:
        config = ModelConfig.from_args(args, **overrides)
        super().__init__(
            config,
            feature_channels=config.featc,
            kernel_channels=KERNEL_CHANNELS,
            full_scale_channels=6,
            grid_channels=(16, 32, 46),
        )
        self.dyntex_generator = student_UNet3d_18(bn=config.featnorm)
