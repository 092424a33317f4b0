"""The distillation terms `KLDivergence` and `CrossEntropy` of the original's loss specs.

The original built them as ``nn.KLDivLoss(reduction="mean")`` and ``nn.CrossEntropyLoss()`` and called them on the
raw frames, ``term(student_frame, target_frame)`` with (B, 3, H, W) tensors: no temperature, no softmax applied
to the target, no log applied to the student frame. So, elementwise over the frame:

* KLDivergence: ``target * (log(target) - output)`` with ``0 * log(0) = 0``, averaged over every element
  (B * 3 * H * W). The student frame plays the part of log-probabilities, the target of probabilities.
* CrossEntropy: the frame's three colour channels are the classes and the target frame gives per-class
  "probabilities" as they are (not normalised): ``-sum_c target_c * log_softmax(output)_c`` at every pixel,
  averaged over the B * H * W pixels.

Neither is a divergence between distributions for frames in [0, 1]; they are kept because the original offered
them. A negative target value makes KLDivergence NaN, as in the original.
"""
import torch
from torch import Tensor, nn

# The colour channels are CrossEntropyLoss's class axis for (B, C, H, W) frames.
CLASS_AXIS = 1


class KLDivergence(nn.Module):
    """``nn.KLDivLoss(reduction="mean")(output, target)``: mean of target * (log(target) - output)."""

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        return (torch.xlogy(target, target) - target * output).mean()


class CrossEntropy(nn.Module):
    """``nn.CrossEntropyLoss()(output, target)`` with the target as class probabilities over the colour channels."""

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        log_probabilities = torch.log_softmax(output, dim=CLASS_AXIS)
        return -(target * log_probabilities).sum(dim=CLASS_AXIS).mean()
