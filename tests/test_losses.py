"""Losses: Laplacian pyramid and Charbonnier against the original's goldens, the loss-spec parser, distillation."""
import math

import pytest
import torch
from torch import nn

from conftest import relative_error
from losses import (
    DISTILLATION_LOSS_NAMES,
    Charbonnier,
    CharbonnierFunc,
    CrossEntropy,
    DistillationLoss,
    KLDivergence,
    LaplacianLoss,
    Loss,
    parse_loss_spec,
)


def _value_and_grad(loss_fn, pred, gt):
    pred = pred.clone().requires_grad_(True)
    value = loss_fn(pred, gt)
    value.backward()
    return value.detach(), pred.grad


def test_laplacian_loss_matches_golden_float64(module_goldens):
    case = module_goldens["laplacian_loss"]
    value, grad = _value_and_grad(LaplacianLoss(), case["inputs"]["pred"], case["inputs"]["gt"])
    assert value.dtype == torch.float64
    assert relative_error(value, case["outputs"]["value"]) <= 1e-9
    assert relative_error(grad, case["outputs"]["grad_pred"]) <= 1e-7


def test_laplacian_loss_matches_golden_float32(module_goldens):
    case = module_goldens["laplacian_loss"]
    value, grad = _value_and_grad(LaplacianLoss(), case["inputs"]["pred"].float(), case["inputs"]["gt"].float())
    assert value.dtype == torch.float32 and grad.dtype == torch.float32
    assert relative_error(value, case["outputs"]["value"]) <= 1e-5
    assert relative_error(grad, case["outputs"]["grad_pred"]) <= 1e-4


def test_laplacian_loss_is_zero_for_equal_frames_and_positive_otherwise():
    frames = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    assert LaplacianLoss()(frames, frames).item() == 0.0
    assert LaplacianLoss()(frames, frames.flip(-1)).item() > 0.0


@pytest.mark.parametrize("height, width", [(32, 40), (40, 32), (16, 16), (8, 64)])
def test_laplacian_loss_rejects_sizes_the_pyramid_cannot_represent(height, width):
    frames = torch.rand(1, 3, height, width)
    with pytest.raises(ValueError, match="multiples of 16"):
        LaplacianLoss()(frames, frames)


def test_charbonnier_matches_golden(module_goldens):
    case = module_goldens["charbonnier"]
    pred, gt = case["inputs"]["pred"], case["inputs"]["gt"]
    value, grad = _value_and_grad(Charbonnier(), pred, gt)
    assert relative_error(value, case["outputs"]["value"]) <= 1e-9
    assert relative_error(grad, case["outputs"]["grad_pred"]) <= 1e-7
    assert relative_error(CharbonnierFunc(pred - gt), case["outputs"]["utility_CharbonnierFunc_of_diff"]) <= 1e-9

    value32, grad32 = _value_and_grad(Charbonnier(), pred.float(), gt.float())
    assert relative_error(value32, case["outputs"]["value"]) <= 1e-5
    # Rounding the inputs to float32 costs ~5e-5 where pred - gt is as small as eps (measured 4.95e-5).
    assert relative_error(grad32, case["outputs"]["grad_pred"]) <= 1e-4


def test_charbonnier_of_zero_difference_is_epsilon():
    assert CharbonnierFunc(torch.zeros(4, dtype=torch.float64)).item() == pytest.approx(1e-3, rel=1e-12)


def test_parse_loss_spec():
    assert parse_loss_spec("1*Lap") == [(1.0, "Lap")]
    assert parse_loss_spec("1*Lap+0.5*L1") == [(1.0, "Lap"), (0.5, "L1")]
    assert parse_loss_spec("2*MSE + 1e-2*Charb") == [(2.0, "MSE"), (0.01, "Charb")]


def test_parse_loss_spec_rejects_unknown_and_malformed_terms():
    with pytest.raises(ValueError, match="valid names: MSE, L1, Charb, Lap"):
        parse_loss_spec("1*Lap+1*SSIM")
    with pytest.raises(ValueError, match="WEIGHT\\*NAME"):
        parse_loss_spec("Lap")
    with pytest.raises(ValueError, match="WEIGHT\\*NAME"):
        parse_loss_spec("x*Lap")


def test_loss_spec_is_the_weighted_sum_of_its_terms():
    torch.manual_seed(0)
    output = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    gt = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    expected = LaplacianLoss()(output, gt) + 0.5 * (output - gt).abs().mean()
    assert Loss("1*Lap+0.5*L1")(output, gt).item() == pytest.approx(expected.item(), rel=1e-12)
    expected = 3 * (output - gt).pow(2).mean() + 0.25 * Charbonnier()(output, gt)
    assert Loss("3*MSE+0.25*Charb")(output, gt).item() == pytest.approx(expected.item(), rel=1e-12)


def test_distillation_loss_is_alpha_student_plus_distill():
    gt = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    teacher = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float64, requires_grad=True)
    student = torch.tensor([[[[1.0, 0.0], [0.0, -1.0]]]], dtype=torch.float64, requires_grad=True)
    loss = DistillationLoss("1*L1+2*MSE", "4*L1", alpha=0.1)(student, teacher, gt)
    # student side: L1 = 2/4, MSE = 2/4 -> 0.5 + 2*0.5 = 1.5; distill side: 4 * mean(0.5, 0.5, 0.5, 1.5) = 3.0
    assert loss.item() == pytest.approx(0.1 * 1.5 + 3.0, rel=1e-12)
    loss.backward()
    assert student.grad is not None and teacher.grad is None


def test_loss_modules_have_no_state():
    assert len(Loss("1*Lap+1*Charb+1*L1+1*MSE").state_dict()) == 0
    assert isinstance(Loss("1*MSE").loss_module[0], nn.MSELoss)


def test_kl_divergence_matches_hand_computed_value():
    target = torch.tensor([0.5, 0.0, 1.0, 0.25], dtype=torch.float64).view(1, 1, 2, 2)
    output = torch.tensor([0.1, 5.0, -2.0, 0.0], dtype=torch.float64).view(1, 1, 2, 2)
    # target * (log(target) - output) per element, 0 * log(0) = 0, averaged over all four elements
    terms = [0.5 * math.log(0.5) - 0.5 * 0.1, 0.0, 2.0, 0.25 * math.log(0.25)]
    assert KLDivergence()(output, target).item() == pytest.approx(sum(terms) / 4, rel=1e-14)


def test_cross_entropy_matches_hand_computed_value():
    # Two pixels, the three colour channels as classes; the target is used as it is (not normalised).
    output = torch.tensor([[0.0, 0.0], [math.log(2), 0.0], [math.log(3), 0.0]], dtype=torch.float64).view(1, 3, 1, 2)
    target = torch.tensor([[0.5, 1.0], [0.25, 0.0], [1.0, 0.0]], dtype=torch.float64).view(1, 3, 1, 2)
    # pixel 1: softmax (1/6, 2/6, 3/6) -> 0.5 ln 6 + 0.25 ln 3 + ln 2; pixel 2: softmax 1/3 each -> ln 3
    expected = (0.5 * math.log(6) + 0.25 * math.log(3) + math.log(2) + math.log(3)) / 2
    assert CrossEntropy()(output, target).item() == pytest.approx(expected, rel=1e-14)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_divergence_terms_equal_the_torch_losses_the_original_built(dtype):
    torch.manual_seed(0)
    student = torch.randn(2, 3, 8, 8, dtype=dtype)
    teacher = torch.rand(2, 3, 8, 8, dtype=dtype)
    teacher[0, 0, 0, :4] = 0  # 0 * log(0) = 0
    tolerance = 1e-14 if dtype == torch.float64 else 1e-6
    expected = nn.KLDivLoss(reduction="mean")(student, teacher)
    assert relative_error(KLDivergence()(student, teacher), expected) <= tolerance
    expected = nn.CrossEntropyLoss()(student, teacher)
    assert relative_error(CrossEntropy()(student, teacher), expected) <= tolerance


def test_divergence_terms_are_distillation_only():
    assert parse_loss_spec("1*KLDivergence+0.5*CrossEntropy", DISTILLATION_LOSS_NAMES) == [
        (1.0, "KLDivergence"), (0.5, "CrossEntropy")
    ]
    with pytest.raises(ValueError, match="distill.py only"):
        Loss("1*Lap+1*KLDivergence")
    torch.manual_seed(1)
    student, teacher, gt = (torch.rand(1, 3, 16, 16, dtype=torch.float64) for _ in range(3))
    loss = DistillationLoss("1*CrossEntropy", "2*KLDivergence", alpha=0.1)(student, teacher, gt)
    expected = 0.1 * CrossEntropy()(student, gt) + 2 * KLDivergence()(student, teacher)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-14)


def test_distillation_loss_describes_its_weighted_sides():
    assert DistillationLoss("1*Lap", "0.5*L1+1*Charb", 0.1).extra_repr() == "0.1 * (1*Lap) + (0.5*L1 + 1*Charb)"
