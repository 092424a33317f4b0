"""Adversarial loss terms of the original: GAN, WGAN, WGAN_GP, T_WGAN_GP, FI_GAN, FI_Cond_GAN, STGAN.

Each term owns a discriminator and that discriminator's optimizer. One call
`term(fake, real, inputs)` does what the original's `Adversarial.forward` did:

1. one discriminator step on the detached `fake` (the interpolated frame) and `real`
   (the ground truth, or the teacher's frame in distillation);
2. returns the generator's loss, a scalar whose gradient reaches `fake` only.

`inputs` are the frames around the interpolated one: (I1, I2), or all four (I0, I1, I2, I3)
of which the middle two are used, as in the original. Only T_WGAN_GP, FI_GAN, FI_Cond_GAN
and STGAN read them.

    term        discriminator          discriminator loss                  generator loss
    GAN         Discriminator          BCE(D(fake), 0) + BCE(D(real), 1)   BCE(D(fake), 1)
    WGAN        Discriminator          mean(D(fake) - D(real)),            -mean(D(fake))
                                       weights clipped to [-1, 1]
    WGAN_GP     Discriminator, no BN   WGAN + 10 * gradient penalty        -mean(D(fake))
    T_WGAN_GP   TemporalDiscriminator  as WGAN_GP, D sees (I1, x, I2)      -mean(D(I1, fake, I2))
    FI_GAN      FIDiscriminator        BCE(D(I1, fake), 0)                 mean(sum over both pairs
                                       + BCE(D(fake, I2), 1)               of p * log p), p = sigmoid(D)
    FI_Cond_GAN FICondDiscriminator    as GAN, D sees (I1, x, I2)          BCE(D(I1, fake, I2), 1)
    STGAN       STDiscriminator        as GAN, D sees (I1, x, I2)          BCE(D(I1, fake, I2), 1)

Kept quirks of the original: the gradient penalty draws one interpolation weight per pixel,
not per sample; FI_GAN's discriminator never sees `real` (it learns which side of the
interpolated frame a neighbour is on). The discriminator's optimizer is the generator's
(--optimizer, --lr, --weight_decay), except for the WGAN_GP family, which uses Adam(betas
(0, 0.9), lr 1e-5); the original also built an lr scheduler for it but never stepped it,
so the rate stays constant and no scheduler is kept here.

Fixed rather than kept: T_WGAN_GP called its three-frame discriminator with one frame in
the penalty and generator terms, and `Loss` never passed it the input frames, so it could
not run; here its discriminator sees (I1, x, I2) throughout. With --optimizer OBProxSG the
original crashed building the discriminator's optimizer (OBProxSG needs the epoch size);
a sparsity optimizer has no purpose for a discriminator, so ADAMax is used instead.
"""
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.discriminator import (
    Discriminator,
    FICondDiscriminator,
    FIDiscriminator,
    STDiscriminator,
    TemporalDiscriminator,
)
from optim import make_optimizer

ADVERSARIAL_TERMS = ("GAN", "WGAN", "WGAN_GP", "T_WGAN_GP", "FI_GAN", "FI_Cond_GAN", "STGAN")
TERMS_WITH_INPUTS = ("T_WGAN_GP", "FI_GAN", "FI_Cond_GAN", "STGAN")
_GRADIENT_PENALTY_TERMS = ("WGAN_GP", "T_WGAN_GP")
_BINARY_TERMS = ("GAN", "FI_Cond_GAN", "STGAN")
_GRADIENT_PENALTY_WEIGHT = 10.0
_WGAN_CLIP = 1.0
_LOG_EPSILON = 1e-12  # FI_GAN's p * log(p + eps) stays finite at p = 0


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Size and optimizer of the discriminators (the original took them from the script's args).

    patch_size: the training crop side (--patch_size), the only input size the discriminators take.
    optimizer, lr, weight_decay: the script's --optimizer, --lr, --weight_decay.
    """

    patch_size: int = 256
    optimizer: str = "ADAMax"
    lr: float = 1e-3
    weight_decay: float = 0.0


def build_discriminator(gan_type: str, patch_size: int) -> nn.Module:
    if gan_type == "T_WGAN_GP":
        return TemporalDiscriminator(patch_size)
    if gan_type == "FI_GAN":
        return FIDiscriminator(patch_size)
    if gan_type == "FI_Cond_GAN":
        return FICondDiscriminator(patch_size)
    if gan_type == "STGAN":
        return STDiscriminator(patch_size)
    if gan_type in ("GAN", "WGAN", "WGAN_GP"):
        return Discriminator(patch_size, batch_norm=gan_type != "WGAN_GP")
    raise ValueError(f"unknown adversarial loss {gan_type!r}; valid: {', '.join(ADVERSARIAL_TERMS)}")


def build_discriminator_optimizer(
    gan_type: str, discriminator: nn.Module, config: DiscriminatorConfig
) -> torch.optim.Optimizer:
    if gan_type in _GRADIENT_PENALTY_TERMS:
        return torch.optim.Adam(discriminator.parameters(), lr=1e-5, betas=(0.0, 0.9), eps=1e-8)
    name = "ADAMax" if config.optimizer == "OBProxSG" else config.optimizer
    return make_optimizer(discriminator, name, config.lr, config.weight_decay)


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Keep the generator's backward pass out of the discriminator's weights."""
    flags = [param.requires_grad for param in module.parameters()]
    for param in module.parameters():
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in zip(module.parameters(), flags):
            param.requires_grad_(flag)


class Adversarial(nn.Module):
    """One adversarial term: trains its discriminator one step per call, returns the generator loss.

    The discriminator is trained only in training mode with autograd enabled; in eval mode
    or under torch.no_grad() (validation) the call just scores `fake`.
    The optimizer's state is part of `state_dict()` (as this module's extra state), so
    saving and loading the enclosing `Loss` restores the discriminator exactly.
    """

    def __init__(self, gan_type: str, config: DiscriminatorConfig = DiscriminatorConfig()) -> None:
        super().__init__()
        self.gan_type = gan_type
        self.discriminator = build_discriminator(gan_type, config.patch_size)
        self.optimizer = build_discriminator_optimizer(gan_type, self.discriminator, config)
        self.discriminator_loss: Optional[Tensor] = None  # last discriminator loss, for logging

    @property
    def needs_inputs(self) -> bool:
        return self.gan_type in TERMS_WITH_INPUTS

    def forward(self, fake: Tensor, real: Tensor, inputs: Optional[Sequence[Tensor]] = None) -> Tensor:
        neighbours = self._neighbours(inputs, fake)
        if self.training and torch.is_grad_enabled():
            self._train_discriminator(fake.detach(), real.detach(), neighbours)
        with _frozen(self.discriminator):
            return self._generator_loss(fake, neighbours)

    def _neighbours(self, inputs: Optional[Sequence[Tensor]], fake: Tensor) -> tuple[Tensor, ...]:
        if not self.needs_inputs:
            return ()
        if inputs is None:
            raise ValueError(
                f"loss term {self.gan_type} needs the input frames: call loss(output, gt, inputs=(I1, I2)) "
                "or inputs=(I0, I1, I2, I3)"
            )
        if len(inputs) not in (2, 4):
            raise ValueError(f"loss term {self.gan_type}: inputs must be 2 or 4 frames, got {len(inputs)}")
        neighbours = tuple(inputs) if len(inputs) == 2 else tuple(inputs[1:3])
        for frame in neighbours:
            if frame.shape != fake.shape:
                raise ValueError(
                    f"loss term {self.gan_type}: input frame of shape {tuple(frame.shape)} does not match "
                    f"the output's {tuple(fake.shape)}"
                )
        return neighbours

    def _score(self, frame: Tensor, neighbours: tuple[Tensor, ...]) -> Tensor:
        """Logit of the discriminator for `frame` in the middle of its neighbours (if it uses them)."""
        if neighbours:
            return self.discriminator(neighbours[0], frame, neighbours[1])
        return self.discriminator(frame)

    def _train_discriminator(self, fake: Tensor, real: Tensor, neighbours: tuple[Tensor, ...]) -> None:
        self.optimizer.zero_grad()
        if self.gan_type == "FI_GAN":
            previous, following = neighbours
            logits_before = self.discriminator(previous, fake)
            logits_after = self.discriminator(fake, following)
            loss = F.binary_cross_entropy_with_logits(
                logits_before, torch.zeros_like(logits_before)
            ) + F.binary_cross_entropy_with_logits(logits_after, torch.ones_like(logits_after))
        else:
            logits_fake = self._score(fake, neighbours)
            logits_real = self._score(real, neighbours)
            if self.gan_type in _BINARY_TERMS:
                loss = F.binary_cross_entropy_with_logits(
                    logits_fake, torch.zeros_like(logits_fake)
                ) + F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
            else:
                loss = (logits_fake - logits_real).mean()
                if self.gan_type in _GRADIENT_PENALTY_TERMS:
                    loss = loss + self._gradient_penalty(fake, real, neighbours)
        loss.backward()
        self.optimizer.step()
        if self.gan_type == "WGAN":
            with torch.no_grad():
                for param in self.discriminator.parameters():
                    param.clamp_(-_WGAN_CLIP, _WGAN_CLIP)
        self.discriminator_loss = loss.detach()

    def _gradient_penalty(self, fake: Tensor, real: Tensor, neighbours: tuple[Tensor, ...]) -> Tensor:
        """10 * mean((||dD/dx|| - 1)^2) at random mixtures x of fake and real (Gulrajani et al. 2017)."""
        mix = torch.rand_like(fake)  # per pixel, as in the original
        mixed = (fake * (1 - mix) + real * mix).requires_grad_(True)
        (gradient,) = torch.autograd.grad(self._score(mixed, neighbours).sum(), mixed, create_graph=True)
        gradient_norm = gradient.flatten(1).norm(2, dim=1)
        return _GRADIENT_PENALTY_WEIGHT * (gradient_norm - 1).pow(2).mean()

    def _generator_loss(self, fake: Tensor, neighbours: tuple[Tensor, ...]) -> Tensor:
        if self.gan_type == "FI_GAN":
            previous, following = neighbours
            p_before = torch.sigmoid(self.discriminator(previous, fake))
            p_after = torch.sigmoid(self.discriminator(fake, following))
            return (
                p_before * torch.log(p_before + _LOG_EPSILON) + p_after * torch.log(p_after + _LOG_EPSILON)
            ).mean()
        logits = self._score(fake, neighbours)
        if self.gan_type in _BINARY_TERMS:
            return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        return -logits.mean()

    def get_extra_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])

    def extra_repr(self) -> str:
        return f"{self.gan_type}, optimizer={type(self.optimizer).__name__}"
