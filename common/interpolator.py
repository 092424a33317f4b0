"""The one call every frame interpolator of the project answers: four consecutive frames in, the middle one out.

The networks (``models``), the baselines (``pipeline.evaluation.baseline_predictor``), ONNX Runtime
(``deploy.onnx_runtime``), the tiled wrapper (``video.tiling``) and the validation and evaluation loops all speak
it: (N, 3, H, W) tensors I0, I1, I2, I3 in [0, 1], in temporal order, give the (N, 3, H, W) frame halfway between
I1 and I2.
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor

Interpolator = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
