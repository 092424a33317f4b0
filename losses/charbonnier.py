"""Charbonnier loss, a differentiable L1: mean(sqrt(diff**2 + eps**2)).

`Charbonnier` is the `Charb` term of a loss spec; `CharbonnierFunc` is the original
`utility.CharbonnierFunc`, the same penalty applied to an already formed difference.
"""
import torch
from torch import Tensor, nn


def CharbonnierFunc(data: Tensor, epsilon: float = 0.001) -> Tensor:
    """Mean Charbonnier penalty of `data` (e.g. a difference or a flow gradient)."""
    return torch.mean(torch.sqrt(data**2 + epsilon**2))


class Charbonnier(nn.Module):
    """Mean Charbonnier distance between `output` and `gt`; eps 1e-3 as in the original."""

    def __init__(self, epsilon: float = 0.001) -> None:
        super().__init__()
        self.epsilon = epsilon

    def forward(self, output: Tensor, gt: Tensor) -> Tensor:
        return CharbonnierFunc(output - gt, self.epsilon)
