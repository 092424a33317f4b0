"""Training losses: the loss-spec parser of the original and the distillation loss.

A loss spec is a '+'-separated list of WEIGHT*NAME terms, e.g. "1*Lap" (the default of
train.py) or "1*Lap+0.5*L1"; the loss is the weighted sum of the named terms, each called
as term(output, gt). Names: MSE, L1 (mean reductions), Charb (Charbonnier) and Lap
(Laplacian pyramid). The original's adversarial terms (GAN, WGAN, WGAN_GP, T_WGAN_GP,
FI_GAN, FI_Cond_GAN, STGAN) are not implemented yet and are rejected with a ValueError.
"""
from torch import Tensor, nn

from losses.charbonnier import Charbonnier, CharbonnierFunc
from losses.laplacian import LaplacianLoss

LOSS_TERMS = {"MSE": nn.MSELoss, "L1": nn.L1Loss, "Charb": Charbonnier, "Lap": LaplacianLoss}
ADVERSARIAL_TERMS = ("GAN", "WGAN", "WGAN_GP", "T_WGAN_GP", "FI_GAN", "FI_Cond_GAN", "STGAN")


def parse_loss_spec(spec: str) -> list[tuple[float, str]]:
    """Split "1*Lap+0.5*L1" into [(1.0, "Lap"), (0.5, "L1")], checking every name."""
    terms = []
    for term in spec.split("+"):
        weight, star, name = (part.strip() for part in term.partition("*"))
        try:
            weight_value = float(weight)
        except ValueError:
            weight_value = None
        if not star or weight_value is None:
            raise ValueError(f"loss term {term!r} of {spec!r} is not of the form WEIGHT*NAME, e.g. 1*Lap")
        if name in ADVERSARIAL_TERMS:
            raise ValueError(
                f"loss term {name!r} of {spec!r}: the adversarial losses "
                f"({', '.join(ADVERSARIAL_TERMS)}) are not supported yet; "
                f"use {', '.join(LOSS_TERMS)}"
            )
        if name not in LOSS_TERMS:
            raise ValueError(f"unknown loss {name!r} in {spec!r}; valid names: {', '.join(LOSS_TERMS)}")
        terms.append((weight_value, name))
    return terms


class Loss(nn.Module):
    """Weighted sum of the terms of a loss spec, called as loss(output_frame, gt)."""

    def __init__(self, spec: str) -> None:
        super().__init__()
        terms = parse_loss_spec(spec)
        self.names = [name for _, name in terms]
        self.weights = [weight for weight, _ in terms]
        # The original kept its term modules in `loss_module`; the terms have no parameters.
        self.loss_module = nn.ModuleList(LOSS_TERMS[name]() for name in self.names)

    def forward(self, output: Tensor, gt: Tensor) -> Tensor:
        return sum(weight * term(output, gt) for weight, term in zip(self.weights, self.loss_module))

    def extra_repr(self) -> str:
        return " + ".join(f"{weight:g}*{name}" for weight, name in zip(self.weights, self.names))


class DistillationLoss(nn.Module):
    """alpha * student_loss(student_out, gt) + distill_loss(student_out, teacher_out).

    Both sides are loss specs (distill.py's --student_loss_fn and --distill_loss_fn) and
    are weighted sums of their terms. The original paired every student term with the
    last distill term and dropped all the weights, so it differs from this for specs with
    several terms or weights other than 1; for single-term, weight-1 specs (the defaults)
    the two agree. Note that --alpha's help text ("1-alpha to distill_loss_fn") does not
    describe the original code either: the distillation side is not scaled by 1 - alpha.
    """

    def __init__(self, student_spec: str, distill_spec: str, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha
        self.student_loss = Loss(student_spec)
        self.distill_loss = Loss(distill_spec)

    def forward(self, student_output: Tensor, teacher_output: Tensor, gt: Tensor) -> Tensor:
        # The teacher is a fixed target: no gradient is sent back into it.
        teacher_output = teacher_output.detach()
        return self.alpha * self.student_loss(student_output, gt) + self.distill_loss(
            student_output, teacher_output
        )


__all__ = [
    "ADVERSARIAL_TERMS",
    "Charbonnier",
    "CharbonnierFunc",
    "DistillationLoss",
    "LOSS_TERMS",
    "LaplacianLoss",
    "Loss",
    "parse_loss_spec",
]
