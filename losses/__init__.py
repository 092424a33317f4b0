"""Training losses: the loss-spec parser of the original and the distillation loss.

A loss spec is a '+'-separated list of WEIGHT*NAME terms, e.g. "1*Lap" (the default of
train.py) or "1*Lap+0.01*FI_GAN"; the loss is the weighted sum of the named terms. Names:
MSE, L1 (mean reductions), Charb (Charbonnier), Lap (Laplacian pyramid) and the original's
adversarial terms GAN, WGAN, WGAN_GP, T_WGAN_GP, FI_GAN, FI_Cond_GAN, STGAN
(losses/adversarial.py), each with its own discriminator and optimizer. The distillation
specs (distill.py's --student_loss_fn and --distill_loss_fn) also take the original's
KLDivergence and CrossEntropy (losses/divergence.py); train.py's --loss does not, as in the
original, whose training loss did not know them.

How the training scripts use it (the discriminators are trained inside the call):

    loss = Loss(args.loss, DiscriminatorConfig(args.patch_size, args.optimizer, args.lr,
                                               args.weight_decay)).to(device)
    value = loss(output["frame1"], gt, inputs=(frame0, frame1, frame2, frame3))
    value.backward(); optimizer.step()

`inputs` (the four input frames, or just the two around the target) are needed by
T_WGAN_GP, FI_GAN, FI_Cond_GAN and STGAN and ignored by the other terms. For an exact
resume save `loss.state_dict()` (discriminator weights, batch-norm statistics and the
discriminator optimizers' states) and restore it with `loss.load_state_dict(...)` after
moving the loss to its device; for specs without adversarial terms it is empty.
"""
from collections.abc import Sequence
from typing import Optional

from torch import Tensor, nn

from losses.adversarial import ADVERSARIAL_TERMS, Adversarial, DiscriminatorConfig
from losses.charbonnier import Charbonnier, CharbonnierFunc
from losses.divergence import CrossEntropy, KLDivergence
from losses.laplacian import LaplacianLoss

LOSS_TERMS = {"MSE": nn.MSELoss, "L1": nn.L1Loss, "Charb": Charbonnier, "Lap": LaplacianLoss}
DISTILLATION_ONLY_TERMS = {"KLDivergence": KLDivergence, "CrossEntropy": CrossEntropy}
LOSS_NAMES = (*LOSS_TERMS, *ADVERSARIAL_TERMS)
DISTILLATION_LOSS_NAMES = (*LOSS_NAMES, *DISTILLATION_ONLY_TERMS)


def parse_loss_spec(spec: str, names: Sequence[str] = LOSS_NAMES) -> list[tuple[float, str]]:
    """Split "1*Lap+0.5*L1" into [(1.0, "Lap"), (0.5, "L1")], checking every name against ``names``."""
    terms = []
    for term in spec.split("+"):
        weight, star, name = (part.strip() for part in term.partition("*"))
        try:
            weight_value = float(weight)
        except ValueError:
            weight_value = None
        if not star or weight_value is None:
            raise ValueError(f"loss term {term!r} of {spec!r} is not of the form WEIGHT*NAME, e.g. 1*Lap")
        if name not in names:
            hint = " (a distillation term: distill.py only)" if name in DISTILLATION_ONLY_TERMS else ""
            raise ValueError(f"unknown loss {name!r}{hint} in {spec!r}; valid names: {', '.join(names)}")
        terms.append((weight_value, name))
    return terms


def _build_term(name: str, discriminator: DiscriminatorConfig) -> nn.Module:
    if name in ADVERSARIAL_TERMS:
        return Adversarial(name, discriminator)
    return {**LOSS_TERMS, **DISTILLATION_ONLY_TERMS}[name]()


class Loss(nn.Module):
    """Weighted sum of the terms of a loss spec, called as loss(output_frame, gt, inputs=frames).

    `discriminator` sizes and configures the discriminators of adversarial terms (unused
    otherwise); `inputs` are the input frames, needed only by the adversarial terms that
    condition on them. Calling the loss in training mode trains the discriminators one step.
    `names` are the term names accepted (DISTILLATION_LOSS_NAMES for distillation specs).
    """

    def __init__(
        self, spec: str, discriminator: DiscriminatorConfig = DiscriminatorConfig(), names: Sequence[str] = LOSS_NAMES
    ) -> None:
        super().__init__()
        terms = parse_loss_spec(spec, names)
        self.names = [name for _, name in terms]
        self.weights = [weight for weight, _ in terms]
        # The original kept its term modules in `loss_module`; only adversarial terms hold state.
        self.loss_module = nn.ModuleList(_build_term(name, discriminator) for name in self.names)

    def forward(self, output: Tensor, gt: Tensor, inputs: Optional[Sequence[Tensor]] = None) -> Tensor:
        total = 0
        for weight, term in zip(self.weights, self.loss_module):
            value = term(output, gt, inputs) if isinstance(term, Adversarial) else term(output, gt)
            total = total + weight * value
        return total

    def adversarial_terms(self) -> list[Adversarial]:
        """The adversarial terms, e.g. to log their `discriminator_loss`."""
        return [term for term in self.loss_module if isinstance(term, Adversarial)]

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

    def __init__(
        self,
        student_spec: str,
        distill_spec: str,
        alpha: float,
        discriminator: DiscriminatorConfig = DiscriminatorConfig(),
    ) -> None:
        super().__init__()
        self.alpha = alpha
        self.student_loss = Loss(student_spec, discriminator, DISTILLATION_LOSS_NAMES)
        self.distill_loss = Loss(distill_spec, discriminator, DISTILLATION_LOSS_NAMES)

    def forward(
        self,
        student_output: Tensor,
        teacher_output: Tensor,
        gt: Tensor,
        inputs: Optional[Sequence[Tensor]] = None,
    ) -> Tensor:
        # The teacher is a fixed target: no gradient is sent back into it. An adversarial
        # distill term treats the teacher's frame as the real one, as in the original.
        teacher_output = teacher_output.detach()
        return self.alpha * self.student_loss(student_output, gt, inputs) + self.distill_loss(
            student_output, teacher_output, inputs
        )

    def extra_repr(self) -> str:
        return f"{self.alpha:g} * ({self.student_loss.extra_repr()}) + ({self.distill_loss.extra_repr()})"


__all__ = [
    "ADVERSARIAL_TERMS",
    "Adversarial",
    "Charbonnier",
    "CharbonnierFunc",
    "CrossEntropy",
    "DISTILLATION_LOSS_NAMES",
    "DISTILLATION_ONLY_TERMS",
    "DiscriminatorConfig",
    "DistillationLoss",
    "KLDivergence",
    "LOSS_NAMES",
    "LOSS_TERMS",
    "LaplacianLoss",
    "Loss",
    "parse_loss_spec",
]
