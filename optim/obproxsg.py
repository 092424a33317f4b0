"""OBProxSG: orthant-based proximal stochastic gradient for L1-regularised training.

Chen et al., "Orthant Based Proximal Stochastic Gradient Method for l1-Regularized
Optimization" (ECML-PKDD 2020), as used by ST-MFNet Mini to sparsify the student.
It minimises f(x) + lambda_ * ||x||_1 in two phases, switched at epoch boundaries:

* Prox-SG steps while ``epochs_done % (Np + No) < Np``: soft-thresholding of
  ``x - lr * grad`` by ``lr * lambda_``, which sets small weights to exactly zero;
* orthant steps otherwise: within the orthant given by the current signs, a gradient
  step on ``f + lambda_ * sign(x) . x``; weights already at zero stay there, and every
  weight that would leave its orthant (or land within ``eps`` of zero) becomes exactly 0.

With the default ``No = "inf"`` this is Np epochs of Prox-SG followed by orthant steps
for the rest of training. An "epoch" is ``epochSize`` calls to ``step()``.

Data-parallel training (DistributedDataParallel): every process holds its own OBProxSG and
calls ``step()`` once per batch of its own share of the data, after DDP has averaged the
gradients, so all processes apply the same update and switch phase on the same step;
``epochSize`` is therefore the length of the per-process loader, not of the whole dataset.
"""
import math
from typing import Any, Callable, Iterable, Optional, Union

import torch
from torch import Tensor
from torch.optim import Optimizer

PROX_SG = "prox_sg"
ORTHANT = "orthant"


class OBProxSG(Optimizer):
    """OBProxSG with the original's arguments; ``weight_decay`` is accepted and ignored (as there).

    The phase counters travel with ``state_dict()``, so a resumed run continues the schedule.
    ``last_step_kind`` is ``"prox_sg"`` or ``"orthant"`` after a step (None before the first),
    letting a training script log the switch between the phases.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float,
        lambda_: float,
        epochSize: int,
        Np: int = 2,
        No: Union[int, float, str] = "inf",
        eps: float = 1e-4,
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0:
            raise ValueError(f"invalid learning rate: {lr}")
        if lambda_ < 0:
            raise ValueError(f"invalid lambda_: {lambda_}")
        if epochSize < 1:
            raise ValueError(f"epochSize must be a positive number of steps, got {epochSize}")
        orthant_epochs = math.inf if No == "inf" else float(No)
        if Np < 0 or orthant_epochs < 0 or Np + orthant_epochs == 0:
            raise ValueError(f"Np and No must be non-negative and not both zero, got Np={Np}, No={No}")
        super().__init__(params, dict(lr=lr, lambda_=lambda_, eps=eps))
        self.Np = Np
        self.No = No
        self.epochSize = epochSize
        self._orthant_epochs = orthant_epochs
        self.epochs_done = 0
        self.steps_in_epoch = 0
        self.last_step_kind: Optional[str] = None

    def current_step_kind(self) -> str:
        """The kind of step the next call to ``step()`` will take."""
        in_prox_phase = self.epochs_done % (self.Np + self._orthant_epochs) < self.Np
        return PROX_SG if in_prox_phase else ORTHANT

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Tensor]] = None) -> Optional[Tensor]:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        kind = self.current_step_kind()
        for group in self.param_groups:
            lr, lambda_, eps = group["lr"], group["lambda_"], group["eps"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if kind == PROX_SG:
                    # Added as a difference rather than copied: x + (trial - x) can differ from trial in the
                    # last bit, and this is the original's arithmetic.
                    param.add_(self._prox_sg_trial(param, param.grad, lr, lambda_) - param)
                else:
                    param.copy_(self._orthant_step(param, param.grad, lr, lambda_, eps))

        self.last_step_kind = kind
        self.steps_in_epoch += 1
        if self.steps_in_epoch >= self.epochSize:
            self.epochs_done += 1
            self.steps_in_epoch = 0
        return loss

    @staticmethod
    def _prox_sg_trial(param: Tensor, grad: Tensor, lr: float, lambda_: float) -> Tensor:
        # Soft-thresholding of x - lr * grad by lr * lambda_ (the proximal operator of lr * lambda_ * ||x||_1),
        # formed as the original formed it: (x - lr * grad) - lr * lambda_ where that is positive,
        # (x - lr * grad) + lr * lambda_ where that is negative, 0 elsewhere.
        step = param - lr * grad
        shrunk_down = step - lr * lambda_
        shrunk_up = step + lr * lambda_
        zero = torch.zeros_like(param)
        return torch.where(shrunk_down > 0, shrunk_down, torch.where(shrunk_up < 0, shrunk_up, zero))

    @staticmethod
    def _orthant_step(param: Tensor, grad: Tensor, lr: float, lambda_: float, eps: float) -> Tensor:
        orthant = torch.sign(param)
        # On a fixed orthant |x| = sign(x) . x, so the L1 gradient is lambda_ * sign(x);
        # zero weights get no gradient at all and therefore stay zero.
        direction = torch.where(orthant != 0, grad + lambda_ * orthant, torch.zeros_like(grad))
        trial = param - lr * direction
        # Project back onto the orthant: anything that crossed zero, or is within eps of it, is cut.
        return torch.where(trial * orthant > eps, trial, torch.zeros_like(trial))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["phase_counters"] = {
            "epochs_done": self.epochs_done,
            "steps_in_epoch": self.steps_in_epoch,
            "last_step_kind": self.last_step_kind,
        }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        counters = state_dict.pop("phase_counters", None)
        super().load_state_dict(state_dict)
        if counters is not None:
            self.epochs_done = counters["epochs_done"]
            self.steps_in_epoch = counters["steps_in_epoch"]
            self.last_step_kind = counters["last_step_kind"]


class PhaseSwitches:
    """Reports the step after which an optimizer's kind of step changed: OBProxSG's switches between its Prox-SG
    and orthant phases (other optimizers have no phases and never switch)."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.kind: Optional[str] = getattr(optimizer, "last_step_kind", None)

    def new_phase(self) -> Optional[str]:
        """The kind of the step just taken when it differs from the step before (else None)."""
        kind = getattr(self.optimizer, "last_step_kind", None)
        if kind == self.kind:
            return None
        self.kind = kind
        return kind
