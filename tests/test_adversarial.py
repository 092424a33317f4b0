"""Adversarial loss terms: a discriminator step per call, generator gradients, specs, exact resume."""
import io

import pytest
import torch
from torch import nn

from losses import (
    ADVERSARIAL_TERMS,
    Adversarial,
    DiscriminatorConfig,
    DistillationLoss,
    LaplacianLoss,
    Loss,
    parse_loss_spec,
)
from losses.adversarial import TERMS_WITH_INPUTS
from losses.discriminator import (
    Discriminator,
    FICondDiscriminator,
    FIDiscriminator,
    STDiscriminator,
    TemporalDiscriminator,
)

PATCH = 32  # the smallest crop the Laplacian term accepts; the discriminators' features end at 2x2
CONFIG = DiscriminatorConfig(patch_size=PATCH)


def _frames(count, seed, batch=2, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, 3, PATCH, PATCH, generator=generator, dtype=dtype) for _ in range(count)]


@pytest.mark.parametrize("gan_type", ADVERSARIAL_TERMS)
def test_each_term_trains_its_discriminator_and_sends_a_gradient_to_the_output(gan_type):
    torch.manual_seed(0)
    term = Adversarial(gan_type, CONFIG)
    fake, real, previous, following = _frames(4, seed=1)
    fake.requires_grad_(True)
    before = {name: param.detach().clone() for name, param in term.discriminator.named_parameters()}

    value = term(fake, real, inputs=(previous, following))

    assert value.dim() == 0 and torch.isfinite(value)
    assert torch.isfinite(term.discriminator_loss)
    unchanged = [name for name, param in term.discriminator.named_parameters() if torch.equal(param, before[name])]
    # Every weight takes the step; a bias may get an exactly zero gradient (the output bias
    # cancels out of the Wasserstein losses).
    assert all(name.endswith("bias") for name in unchanged) and len(unchanged) <= 2
    assert len(term.optimizer.state) == len(before)
    if gan_type == "WGAN":
        assert max(param.abs().max().item() for param in term.discriminator.parameters()) <= 1.0

    step_grads = [param.grad.clone() for param in term.discriminator.parameters()]
    value.backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
    # The generator's backward pass leaves the discriminator's gradients as its own step left them.
    assert all(torch.equal(param.grad, grad) for param, grad in zip(term.discriminator.parameters(), step_grads))


@pytest.mark.parametrize(
    "gan_type, discriminator_type, optimizer_type",
    [
        ("GAN", Discriminator, torch.optim.Adamax),
        ("WGAN", Discriminator, torch.optim.Adamax),
        ("WGAN_GP", Discriminator, torch.optim.Adam),
        ("T_WGAN_GP", TemporalDiscriminator, torch.optim.Adam),
        ("FI_GAN", FIDiscriminator, torch.optim.Adamax),
        ("FI_Cond_GAN", FICondDiscriminator, torch.optim.Adamax),
        ("STGAN", STDiscriminator, torch.optim.Adamax),
    ],
)
def test_discriminator_and_optimizer_of_each_term(gan_type, discriminator_type, optimizer_type):
    term = Adversarial(gan_type, DiscriminatorConfig(patch_size=PATCH, optimizer="OBProxSG", lr=0.5))
    assert type(term.discriminator) is discriminator_type
    assert type(term.optimizer) is optimizer_type
    group = term.optimizer.param_groups[0]
    if gan_type in ("WGAN_GP", "T_WGAN_GP"):
        assert group["lr"] == 1e-5 and group["betas"] == (0.0, 0.9)
    else:
        assert group["lr"] == 0.5  # the generator's --lr; OBProxSG falls back to ADAMax
    has_batch_norm = any(isinstance(module, nn.BatchNorm2d) for module in term.discriminator.modules())
    assert has_batch_norm == (gan_type not in ("WGAN_GP", "T_WGAN_GP"))


def test_discriminator_state_dict_keys_follow_the_original():
    keys = list(STDiscriminator(PATCH).state_dict())
    assert keys[:3] == ["s_features.0.0.weight", "s_features.0.1.weight", "s_features.0.1.bias"]
    assert "t_features.7.0.weight" in keys and keys[-4:] == [
        "classifier.0.weight",
        "classifier.0.bias",
        "classifier.2.weight",
        "classifier.2.bias",
    ]
    temporal = TemporalDiscriminator(PATCH).state_dict()
    assert temporal["feature_3d.1.weight"].shape == (64, 64, 2, 3, 3)
    assert temporal["features.7.0.weight"].shape == (512, 512, 3, 3)
    assert temporal["classifier.0.weight"].shape == (1024, 512 * 2 * 2)
    assert "features.0.1.weight" not in temporal  # no batch norm
    assert Discriminator(64).state_dict()["classifier.0.weight"].shape == (1024, 512 * 4 * 4)


def test_terms_that_need_input_frames_refuse_to_run_without_them():
    fake, real = _frames(2, seed=2)
    for gan_type in ADVERSARIAL_TERMS:
        term = Adversarial(gan_type, CONFIG)
        if gan_type in TERMS_WITH_INPUTS:
            with pytest.raises(ValueError, match=f"{gan_type} needs the input frames"):
                term(fake, real)
            with pytest.raises(ValueError, match="2 or 4 frames, got 3"):
                term(fake, real, inputs=_frames(3, seed=3))
        else:
            assert torch.isfinite(term(fake, real))


def test_four_input_frames_use_the_middle_two():
    fake, real, *neighbours = _frames(4, seed=4)
    values = []
    for inputs in (neighbours, [torch.zeros_like(fake), *neighbours[:2], torch.zeros_like(fake)]):
        torch.manual_seed(0)
        values.append(Adversarial("STGAN", CONFIG)(fake, real, inputs=inputs))
    assert torch.equal(values[0], values[1])


def test_discriminator_rejects_other_crop_sizes():
    with pytest.raises(ValueError, match="multiple of 16"):
        Discriminator(40)
    small = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\).*\(2, 3, 16, 16\)"):
        Adversarial("GAN", CONFIG)(small, small)


def test_no_discriminator_step_in_eval_mode_or_without_grad():
    fake, real, previous, following = _frames(4, seed=5)
    loss = Loss("1*FI_Cond_GAN", CONFIG)
    before = [param.detach().clone() for param in loss.parameters()]
    with torch.no_grad():
        assert torch.isfinite(loss(fake, real, inputs=(previous, following)))
    loss.eval()
    assert torch.isfinite(loss(fake, real, inputs=(previous, following)))
    assert all(torch.equal(param, old) for param, old in zip(loss.parameters(), before))
    assert len(loss.adversarial_terms()[0].optimizer.state) == 0


def test_mixed_specs_parse_and_add_up():
    assert parse_loss_spec("1*Lap+0.01*FI_GAN") == [(1.0, "Lap"), (0.01, "FI_GAN")]
    assert [name for _, name in parse_loss_spec("1*L1+" + "+".join(f"1*{n}" for n in ADVERSARIAL_TERMS))] == [
        "L1",
        *ADVERSARIAL_TERMS,
    ]
    with pytest.raises(ValueError, match="valid names: MSE, L1, Charb, Lap, GAN, WGAN, WGAN_GP"):
        parse_loss_spec("1*Lap+0.01*FIGAN")

    output, gt, previous, following = _frames(4, seed=6)
    torch.manual_seed(0)
    mixed = Loss("1*Lap+0.01*FI_GAN", CONFIG)(output, gt, inputs=(previous, following))
    torch.manual_seed(0)
    adversarial_only = Loss("1*FI_GAN", CONFIG)(output, gt, inputs=(previous, following))
    expected = LaplacianLoss()(output, gt) + 0.01 * adversarial_only
    assert mixed.item() == pytest.approx(expected.item(), rel=1e-6)


def test_pure_specs_still_take_two_arguments_and_hold_no_state():
    output, gt = _frames(2, seed=7)
    assert torch.isfinite(Loss("1*Lap+1*L1")(output, gt))
    assert Loss("1*Lap")(output, gt, inputs=None) == LaplacianLoss()(output, gt)
    assert len(Loss("1*Lap+1*Charb").state_dict()) == 0 and Loss("1*Lap").adversarial_terms() == []


def test_distillation_with_an_adversarial_distill_term():
    torch.manual_seed(0)
    loss = DistillationLoss("1*L1", "1*Lap+0.01*STGAN", alpha=0.1, discriminator=CONFIG)
    student, teacher, gt, previous, following = _frames(5, seed=8)
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    value = loss(student, teacher, gt, inputs=(previous, following))
    value.backward()
    assert torch.isfinite(value) and student.grad.abs().sum() > 0 and teacher.grad is None
    assert any(key.startswith("distill_loss.loss_module.1.discriminator.") for key in loss.state_dict())
    assert "distill_loss.loss_module.1._extra_state" in loss.state_dict()


def test_float64_loss_follows_its_inputs():
    fake, real, previous, following = _frames(4, seed=9, dtype=torch.float64)
    fake.requires_grad_(True)
    loss = Loss("1*L1+0.1*FI_Cond_GAN", CONFIG).double()
    value = loss(fake, real, inputs=(previous, following))
    value.backward()
    assert value.dtype == torch.float64 and fake.grad.dtype == torch.float64
    assert next(iter(loss.loss_module[1].optimizer.state.values()))["exp_avg"].dtype == torch.float64


RESUME_SPEC = "1*L1+0.1*WGAN_GP+0.1*STGAN+0.1*FI_GAN"


def _training_setup(seed):
    torch.manual_seed(seed)
    generator = nn.Conv2d(6, 3, 3, padding=1)
    generator_optimizer = torch.optim.Adam(generator.parameters(), lr=1e-2)
    loss = Loss(RESUME_SPEC, CONFIG)
    return generator, generator_optimizer, loss


def _train_steps(generator, generator_optimizer, loss, first_step, count):
    values = []
    for step in range(first_step, first_step + count):
        previous, gt, following = _frames(3, seed=100 + step)
        generator_optimizer.zero_grad()
        value = loss(generator(torch.cat((previous, following), dim=1)), gt, inputs=(previous, following))
        value.backward()
        generator_optimizer.step()
        values.append(value.detach())
    return values


def _checkpoint(generator, generator_optimizer, loss):
    buffer = io.BytesIO()
    torch.save(
        {
            "model": generator.state_dict(),
            "optimizer": generator_optimizer.state_dict(),
            "loss": loss.state_dict(),
            "rng": torch.get_rng_state(),
        },
        buffer,
    )
    buffer.seek(0)
    return buffer


def test_resume_from_a_saved_loss_state_continues_identically():
    generator, generator_optimizer, loss = _training_setup(seed=0)
    _train_steps(generator, generator_optimizer, loss, first_step=0, count=2)
    checkpoint = _checkpoint(generator, generator_optimizer, loss)
    uninterrupted = _train_steps(generator, generator_optimizer, loss, first_step=2, count=2)

    # A fresh process: other initial weights, empty optimizer states, then the checkpoint.
    resumed_generator, resumed_optimizer, resumed_loss = _training_setup(seed=123)
    state = torch.load(checkpoint, weights_only=True)
    resumed_generator.load_state_dict(state["model"])
    resumed_optimizer.load_state_dict(state["optimizer"])
    resumed_loss.load_state_dict(state["loss"])
    torch.set_rng_state(state["rng"])
    resumed = _train_steps(resumed_generator, resumed_optimizer, resumed_loss, first_step=2, count=2)

    assert all(torch.equal(a, b) for a, b in zip(uninterrupted, resumed))
    for (key, expected), got in zip(loss.state_dict().items(), resumed_loss.state_dict().values()):
        if isinstance(expected, torch.Tensor):
            assert torch.equal(expected, got), key
    for expected, got in zip(generator.parameters(), resumed_generator.parameters()):
        assert torch.equal(expected, got)
