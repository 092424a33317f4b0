"""OBProxSG against the original's trajectory, its resumable phase schedule, and the optimizer/scheduler factories."""
from argparse import Namespace

import pytest
import torch
from torch import nn

from optim import ORTHANT, PROX_SG, OBProxSG, PhaseSwitches
from utility import make_optimizer, make_scheduler


def _golden_optimizer(case, dtype=torch.float64):
    hyper = case["inputs"]["hyper"]
    params = [p.clone().to(dtype).requires_grad_(True) for p in case["inputs"]["params_init"]]
    optimizer = OBProxSG(
        params,
        lr=hyper["lr"],
        lambda_=hyper["lambda_"],
        epochSize=hyper["epochSize"],
        Np=hyper["Np"],
        No=hyper["No"],
        eps=hyper["eps"],
        weight_decay=0.5,  # accepted and ignored, as in the original
    )
    return params, optimizer


def _run_steps(params, optimizer, grads):
    kinds, trajectory = [], []
    for step_grads in grads:
        for param, grad in zip(params, step_grads):
            param.grad = grad.clone().to(param.dtype)
        optimizer.step()
        kinds.append(optimizer.last_step_kind)
        trajectory.append([param.detach().clone() for param in params])
    return kinds, trajectory


def _original_step(params, grads, kind, lr, lambda_, eps):
    """OBProxSG's update as the original wrote it (masked assignments into zero tensors), to compare bit for bit."""
    for param, grad in zip(params, grads):
        x = param.detach()
        if kind == PROX_SG:
            trial = torch.zeros_like(x)
            shrunk_down = x - lr * grad - lr * lambda_
            shrunk_up = x - lr * grad + lr * lambda_
            trial[shrunk_down > 0] = shrunk_down[shrunk_down > 0]
            trial[shrunk_up < 0] = shrunk_up[shrunk_up < 0]
            x.add_(trial - x)
        else:
            orthant = torch.zeros_like(x)
            orthant[x > 0] = 1
            orthant[x < 0] = -1
            direction = torch.zeros_like(grad)
            direction[orthant > 0] = grad[orthant > 0] + lambda_
            direction[orthant < 0] = grad[orthant < 0] - lambda_
            trial = x - lr * direction
            projected = torch.zeros_like(trial)
            kept = trial * orthant > eps
            projected[kept] = trial[kept]
            x.copy_(projected)


def test_original_arithmetic_transcription_reproduces_the_golden(module_goldens):
    case = module_goldens["obproxsg"]
    hyper = case["inputs"]["hyper"]
    params = [p.clone() for p in case["inputs"]["params_init"]]
    for grads, kind, expected in zip(
        case["inputs"]["grads"], case["outputs"]["step_kind"], case["outputs"]["params_after_step"]
    ):
        _original_step(params, grads, kind, hyper["lr"], hyper["lambda_"], hyper["eps"])
        assert all(torch.equal(got, want) for got, want in zip(params, expected))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_obproxsg_matches_golden_trajectory_bit_for_bit(module_goldens, capsys, dtype):
    case = module_goldens["obproxsg"]
    hyper = case["inputs"]["hyper"]
    params, optimizer = _golden_optimizer(case, dtype)
    kinds, trajectory = _run_steps(params, optimizer, case["inputs"]["grads"])

    assert kinds == case["outputs"]["step_kind"] == [PROX_SG] * 2 + [ORTHANT] * 4
    reference = [p.clone().to(dtype) for p in case["inputs"]["params_init"]]
    for step, (got, grads, kind) in enumerate(zip(trajectory, case["inputs"]["grads"], kinds)):
        _original_step(reference, [g.to(dtype) for g in grads], kind, hyper["lr"], hyper["lambda_"], hyper["eps"])
        for got_param, expected_param in zip(got, reference):
            assert torch.equal(got_param, expected_param), f"step {step}"
        if dtype == torch.float64:
            for got_param, golden_param in zip(got, case["outputs"]["params_after_step"][step]):
                assert torch.equal(got_param, golden_param), f"step {step}"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_obproxsg_uses_the_original_arithmetic_on_many_weights(dtype):
    # Enough weights that x + (trial - x) != trial somewhere (about 1 % of the entries per Prox-SG step).
    generator = torch.Generator().manual_seed(3)
    initial = torch.randn(4000, generator=generator, dtype=torch.float64).to(dtype) * 0.05
    grads = [torch.randn(4000, generator=generator, dtype=torch.float64).to(dtype) for _ in range(6)]
    lr, lambda_, eps = 0.01, 0.3, 1e-3
    param = initial.clone().requires_grad_(True)
    optimizer = OBProxSG([param], lr=lr, lambda_=lambda_, epochSize=3, Np=1, eps=eps)
    reference = [initial.clone()]
    for grad in grads:
        kind = optimizer.current_step_kind()
        param.grad = grad.clone()
        optimizer.step()
        _original_step(reference, [grad], kind, lr, lambda_, eps)
        assert torch.equal(param.detach(), reference[0]), kind
    assert optimizer.last_step_kind == ORTHANT and 0 < int((param == 0).sum()) < param.numel()


@pytest.mark.parametrize("saved_after", [1, 3])
def test_obproxsg_resumes_from_state_dict(module_goldens, saved_after):
    case = module_goldens["obproxsg"]
    grads = case["inputs"]["grads"]
    params, optimizer = _golden_optimizer(case)
    _, uninterrupted = _run_steps(params, optimizer, grads)

    params, optimizer = _golden_optimizer(case)
    _run_steps(params, optimizer, grads[:saved_after])
    saved_params = [param.detach().clone() for param in params]
    saved_state = optimizer.state_dict()

    # A fresh run: same hyper-parameters, parameters restored from the checkpoint.
    resumed_params, resumed = _golden_optimizer(case)
    with torch.no_grad():
        for param, saved in zip(resumed_params, saved_params):
            param.copy_(saved)
    assert resumed.current_step_kind() == PROX_SG
    resumed.load_state_dict(saved_state)
    assert resumed.current_step_kind() == optimizer.current_step_kind()
    assert resumed.last_step_kind == optimizer.last_step_kind
    _, continued = _run_steps(resumed_params, resumed, grads[saved_after:])
    for got, expected in zip(continued, uninterrupted[saved_after:]):
        for got_param, expected_param in zip(got, expected):
            assert torch.equal(got_param, expected_param)


def test_obproxsg_drives_small_weights_to_exact_zero_on_an_l1_toy_problem():
    # minimise 0.5 * ||x - target||^2 + lambda_ * ||x||_1: the solution soft-thresholds the target.
    target = torch.tensor([2.0, -1.5, 0.3, -0.2, 0.05, 0.0, 1.0, -0.45], dtype=torch.float64)
    lambda_ = 0.5
    x = torch.ones_like(target).mul(0.7).requires_grad_(True)
    optimizer = OBProxSG([x], lr=0.1, lambda_=lambda_, epochSize=10, Np=3, eps=1e-6)
    kinds = []
    for _ in range(300):
        optimizer.zero_grad()
        (0.5 * (x - target).pow(2).sum()).backward()
        optimizer.step()
        kinds.append(optimizer.last_step_kind)

    solution = torch.sign(target) * (target.abs() - lambda_).clamp_min(0)
    small = target.abs() <= lambda_
    assert torch.all(x.detach()[small] == 0)  # exactly zero, not merely small
    assert torch.allclose(x.detach()[~small], solution[~small], atol=1e-9)
    assert kinds[:30] == [PROX_SG] * 30 and set(kinds[30:]) == {ORTHANT}


def test_obproxsg_with_finite_orthant_phase_cycles():
    x = torch.zeros(3, requires_grad=True)
    optimizer = OBProxSG([x], lr=0.1, lambda_=0.0, epochSize=2, Np=1, No=2)
    kinds = []
    for _ in range(12):
        x.grad = torch.ones(3)
        optimizer.step()
        kinds.append(optimizer.last_step_kind)
    assert kinds == ([PROX_SG] * 2 + [ORTHANT] * 4) * 2


def test_obproxsg_rejects_bad_hyper_parameters():
    param = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match="learning rate"):
        OBProxSG(param, lr=-1.0, lambda_=0.1, epochSize=1)
    with pytest.raises(ValueError, match="epochSize"):
        OBProxSG(param, lr=0.1, lambda_=0.1, epochSize=0)
    with pytest.raises(ValueError, match="not both zero"):
        OBProxSG(param, lr=0.1, lambda_=0.1, epochSize=1, Np=0, No=0)


def _args(**overrides):
    defaults = dict(
        optimizer="ADAMax", lr=0.001, weight_decay=0.0, epochs=70,
        decay_type="step", lr_decay=20, gamma=0.5, patience=None,
    )
    return Namespace(**{**defaults, **overrides})


def _model_with_a_frozen_parameter():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].bias.requires_grad_(False)
    return model


@pytest.mark.parametrize(
    "name, cls",
    [("SGD", torch.optim.SGD), ("ADAM", torch.optim.Adam), ("ADAMax", torch.optim.Adamax),
     ("RMSprop", torch.optim.RMSprop), ("OBProxSG", OBProxSG)],
)
def test_make_optimizer_builds_the_named_optimizer_over_trainable_parameters(name, cls):
    model = _model_with_a_frozen_parameter()
    optimizer = make_optimizer(_args(optimizer=name, lr=0.01), model, 50)
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.01
    assert len(group["params"]) == 3 and all(p.requires_grad for p in group["params"])


def test_make_optimizer_uses_the_original_hyper_parameters():
    model = _model_with_a_frozen_parameter()
    sgd = make_optimizer(_args(optimizer="SGD"), model)
    assert sgd.param_groups[0]["momentum"] == 0.9
    adamax = make_optimizer(_args(optimizer="ADAMax", weight_decay=1e-4), model)
    assert adamax.param_groups[0]["betas"] == (0.9, 0.999) and adamax.param_groups[0]["weight_decay"] == 1e-4
    obproxsg = make_optimizer(_args(optimizer="OBProxSG", epochs=70), model, 123)
    assert (obproxsg.Np, obproxsg.No, obproxsg.epochSize) == (7, "inf", 123)
    assert obproxsg.param_groups[0]["lambda_"] == 1e-4 and obproxsg.param_groups[0]["eps"] == 1e-4


def test_make_optimizer_takes_the_training_loader_as_the_original_did():
    loader = torch.utils.data.DataLoader(list(range(10)), batch_size=4)  # 3 batches
    optimizer = make_optimizer(_args(optimizer="OBProxSG", epochs=20), _model_with_a_frozen_parameter(), loader)
    assert optimizer.epochSize == 3


def test_make_optimizer_rejects_unknown_names_and_obproxsg_without_epoch_size():
    model = _model_with_a_frozen_parameter()
    with pytest.raises(ValueError, match="unknown optimizer 'LBFGS'"):
        make_optimizer(_args(optimizer="LBFGS"), model)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        make_optimizer(_args(optimizer="OBProxSG"), model)


def test_make_scheduler_options():
    optimizer = torch.optim.SGD(_model_with_a_frozen_parameter().parameters(), lr=1.0)
    step = make_scheduler(_args(decay_type="step", lr_decay=20, gamma=0.5), optimizer)
    assert isinstance(step, torch.optim.lr_scheduler.StepLR) and (step.step_size, step.gamma) == (20, 0.5)

    multi = make_scheduler(_args(decay_type="step_10_30", gamma=0.1), optimizer)
    assert isinstance(multi, torch.optim.lr_scheduler.MultiStepLR)
    assert sorted(multi.milestones.elements()) == [10, 30] and multi.gamma == 0.1

    plateau = make_scheduler(_args(decay_type="plateau", patience=3, gamma=0.5), optimizer)
    assert isinstance(plateau, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert (plateau.mode, plateau.patience, plateau.factor) == ("max", 3, 0.5)
    assert (plateau.threshold, plateau.threshold_mode) == (0.01, "abs")


def test_make_scheduler_rejects_bad_options():
    optimizer = torch.optim.SGD(_model_with_a_frozen_parameter().parameters(), lr=1.0)
    with pytest.raises(ValueError, match="patience"):
        make_scheduler(_args(decay_type="plateau"), optimizer)
    with pytest.raises(ValueError, match="unknown --decay_type"):
        make_scheduler(_args(decay_type="cosine"), optimizer)
    with pytest.raises(ValueError, match="step_A_B"):
        make_scheduler(_args(decay_type="step_x"), optimizer)
    with pytest.raises(ValueError, match="step_A_B"):
        make_scheduler(_args(decay_type="multistep"), optimizer)


@pytest.mark.parametrize(
    "decay_type, milestones", [("multistep_5_10", [5, 10]), ("mstep_3", [3]), ("step_2_4_8", [2, 4, 8])]
)
def test_make_scheduler_reads_milestones_from_any_name_containing_step(decay_type, milestones):
    optimizer = torch.optim.SGD(_model_with_a_frozen_parameter().parameters(), lr=1.0)
    scheduler = make_scheduler(_args(decay_type=decay_type, gamma=0.1), optimizer)
    assert isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR)
    assert sorted(scheduler.milestones.elements()) == milestones


def test_phase_switches_report_each_change_of_step_kind_once():
    param = nn.Parameter(torch.tensor([0.5, -0.5]))
    optimizer = OBProxSG([param], lr=0.1, lambda_=0.0, epochSize=2, Np=1)
    switches = PhaseSwitches(optimizer)
    seen = []
    for _ in range(5):
        param.grad = torch.ones_like(param)
        optimizer.step()
        seen.append(switches.new_phase())
    assert seen == [PROX_SG, None, ORTHANT, None, None]
    plain = torch.optim.SGD([param], lr=0.1)
    assert PhaseSwitches(plain).new_phase() is None
