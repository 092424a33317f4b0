"""Distributed training (torchrun + DistributedDataParallel) on the CPU with Gloo: two processes against one.

Every run is forked off the test: two workers that set the variables torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT), or one plain worker without them, each calling the script's main() on one thread. Each
worker records what the test needs (its weights before and after, its share of the validation scores, every file
it opened for writing) in a results file outside the run's folder.

For the comparison with one process, batch normalisation is held in eval mode (running statistics, so an item's
output does not depend on the rest of its batch); then 2 processes x batch 1 must train like 1 process x batch 2:
same items per step, DDP's gradient average, the Laplacian loss's batch sum restored by its doubled weight.
"""
import copy
import multiprocessing
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing
from torch import nn

import distill
import pipeline.validation
import train
from conftest import restored_root_logging
from losses import DistillationLoss, Loss
from models import get_model_class
from pipeline import distributed
from pipeline.checkpoints import last_checkpoint_path
from pipeline.teacher import FrozenTeacher
from pipeline.training import TrainingLoop
from tiny_dataset import PATCH, write_tiny_dataset

WORLD_SIZE = 2
TIMEOUT_S = 300
SCRIPTS = {"train": train, "distill": distill}


def batchnorm_train_in_eval_mode(self: nn.Module, mode: bool = True) -> nn.Module:
    """Replaces BatchNorm's ``train()``: the layer stays in eval mode and normalises with its running statistics."""
    return nn.Module.train(self, False)


def _record_writes_under(folder: Path, written: list[str]) -> None:
    """Audit hook: every file or folder under ``folder`` this process opens for writing, renames into place or creates."""
    folder = os.fspath(folder)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & write_flags)
        elif event == "os.rename":  # also os.replace; the destination is what a reader sees
            path, writes = args[1], True
        elif event == "os.mkdir":
            path, writes = args[0], True
        else:
            return
        if writes and isinstance(path, (str, os.PathLike)) and os.fspath(path).startswith(folder):
            written.append(os.fspath(path))

    sys.addaudithook(hook)


def _run_rank(
    rank: int, processes: int, script: str, argv: list[str], port: int, results_dir: Path, eval_batchnorm: bool
) -> None:
    if processes > 1:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(processes),
                          LOCAL_WORLD_SIZE=str(processes), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # as torchrun does with several processes per node
    if eval_batchnorm:
        nn.modules.batchnorm._BatchNorm.train = batchnorm_train_in_eval_mode
    out_dir = Path(argv[argv.index("--out_dir") + 1])
    record = {"written": [], "local_scores": []}
    _record_writes_under(out_dir, record["written"])

    def snapshot(module):
        return {name: value.detach().clone() for name, value in module.state_dict().items() if torch.is_tensor(value)}

    def recording_run(loop):
        record["before"] = snapshot(loop.model)
        run(loop)
        record.update(after=snapshot(loop.model), optimizer=loop.optimizer.state_dict(),
                      loss_state=snapshot(loop.loss),
                      loss_weights=[list(module.weights) for module in loop.loss.modules() if isinstance(module, Loss)])

    def recording_score(*args, **kwargs):
        scores = score(*args, **kwargs)
        record["local_scores"].append(scores)
        return scores

    def recording_teacher(teacher, *frames):
        target = call_teacher(teacher, *frames)
        record["teacher_calls"].append(([frame.clone() for frame in frames], target.clone()))
        record["teacher_buffers"] = {name: value.clone() for name, value in teacher.model.named_buffers()}
        return target

    run, score = TrainingLoop.run, pipeline.validation.score_interpolator
    call_teacher, record["teacher_calls"] = FrozenTeacher.__call__, []
    TrainingLoop.run = recording_run
    pipeline.validation.score_interpolator = recording_score
    FrozenTeacher.__call__ = recording_teacher
    record["exit_code"] = SCRIPTS[script].main(argv)
    torch.save(record, results_dir / f"rank{rank}.pth")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_script(
    script: str, argv: list[str], results_dir: Path, processes: int = WORLD_SIZE, eval_batchnorm: bool = False
) -> list[dict]:
    """Run ``script.main(argv)`` in ``processes`` processes (one process group if several, none for one); return
    each rank's record."""
    results_dir.mkdir(parents=True, exist_ok=True)
    # Forked workers start in a fraction of a second; spawned ones import torch and the project again.
    start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = torch.multiprocessing.start_processes(
        _run_rank, args=(processes, script, argv, _free_port(), results_dir, eval_batchnorm), nprocs=processes,
        join=False, start_method=start_method,
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=5):  # raises if a worker failed (and ends the others)
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"{script}.py on {processes} process(es) did not finish within {TIMEOUT_S} s")
    return [torch.load(results_dir / f"rank{rank}.pth", weights_only=False) for rank in range(processes)]


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def max_difference(got: dict, expected: dict) -> float:
    assert got.keys() == expected.keys()
    return max(float((got[key].double() - expected[key].double()).abs().max()) for key in expected)


def parameter_names(model_name: str) -> list[str]:
    return [name for name, _ in get_model_class(model_name)().named_parameters()]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The tiny dataset with three validation items (so that two ranks score two and one)."""
    root = write_tiny_dataset(tmp_path_factory.mktemp("tiny_data"))
    test_list = root / "vimeo_septuplet" / "sep_testlist.txt"
    test_list.write_text(test_list.read_text() + "00001/0001\n00001/0002\n")
    return root


def train_argv(data_dir: Path, out_dir: Path, batch_size: int, *extra: str) -> list[str]:
    # 4 items per epoch: 2 steps of 2 items, on 2 ranks x 1 or on 1 x 2. OBProxSG with --epochs 10 takes
    # Prox-SG steps for one epoch (Np = epochs / 10), so the third step is the first orthant step.
    return ["--net", "student_STMFNet", "--data_dir", str(data_dir), "--out_dir", str(out_dir), "--patch_size",
            str(PATCH), "--batch_size", str(batch_size), "--samples_per_epoch", "4", "--seed", "3", "--optimizer",
            "OBProxSG", "--epochs", "10", "--lr", "1e-6", "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def two_ranks(data_dir, tmp_path_factory):
    """train.py, 2 processes x batch 1, three steps (one and a half epochs)."""
    root = tmp_path_factory.mktemp("two_ranks")
    records = run_script("train", train_argv(data_dir, root / "out", 1, "--max_steps", "3"), root / "records",
                         eval_batchnorm=True)
    return root / "out", records


@pytest.fixture(scope="module")
def one_process(data_dir, tmp_path_factory):
    """The same run in 1 process x batch 2."""
    root = tmp_path_factory.mktemp("one_process")
    (record,) = run_script("train", train_argv(data_dir, root / "out", 2, "--max_steps", "3"), root / "records",
                           processes=1, eval_batchnorm=True)
    assert record["exit_code"] == 0
    return root / "out"


@pytest.mark.slow
def test_ranks_hold_identical_parameters(two_ranks):
    _, (rank0, rank1) = two_ranks
    assert rank0["exit_code"] == rank1["exit_code"] == 0
    for name in parameter_names("student_STMFNet"):
        assert torch.equal(rank0["after"][name], rank1["after"][name]), name
    assert max_difference(rank0["after"], rank0["before"]) > 0


@pytest.mark.slow
def test_two_processes_match_one_process_with_twice_the_batch(two_ranks, one_process):
    out_dir, (rank0, _) = two_ranks
    distributed_last, single_last = _load(last_checkpoint_path(out_dir)), _load(last_checkpoint_path(one_process))
    update = max_difference(rank0["after"], rank0["before"])
    difference = max_difference(distributed_last["model"], single_last["model"])
    print(f"largest weight change {update:.3e}, largest difference 2x1 vs 1x2 {difference:.3e}")
    assert difference < 1e-6 and difference < 1e-3 * update

    # Same schedule: OBProxSG's epoch is 2 steps of the per-process loader on both.
    distributed_progress, single_progress = distributed_last["progress"], single_last["progress"]
    for key in ("steps_per_epoch", "epoch", "step", "epoch_step", "psnr_count"):
        assert distributed_progress[key] == single_progress[key]
    assert (single_progress["world_size"], distributed_progress["world_size"]) == (1, 2)
    assert distributed_last["optimizer"]["phase_counters"] == single_last["optimizer"]["phase_counters"] == {
        "epochs_done": 1, "steps_in_epoch": 1, "last_step_kind": "orthant"}
    for got, expected in zip(distributed_progress["history"], single_progress["history"], strict=True):
        for key in ("train_loss", "train_psnr", "valid_psnr", "valid_ssim", "density"):
            assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key


@pytest.mark.slow
def test_validation_sums_and_counts_are_added_over_ranks(two_ranks, one_process):
    out_dir, (rank0, rank1) = two_ranks
    # Two validations (epoch end, --max_steps stop); items 0 and 2 on rank 0, item 1 on rank 1.
    assert [scores.count for scores in rank0["local_scores"]] == [2, 2]
    assert [scores.count for scores in rank1["local_scores"]] == [1, 1]
    history = _load(last_checkpoint_path(out_dir))["progress"]["history"]
    single_history = _load(last_checkpoint_path(one_process))["progress"]["history"]
    for record, single, first, second in zip(history, single_history, rank0["local_scores"], rank1["local_scores"]):
        assert record["valid_psnr"] == pytest.approx((first.psnr_sum + second.psnr_sum) / 3, rel=1e-12)
        assert record["valid_ssim"] == pytest.approx((first.ssim_sum + second.ssim_sum) / 3, rel=1e-12)
        assert record["valid_psnr"] == pytest.approx(single["valid_psnr"], abs=1e-4)
        assert record["valid_ssim"] == pytest.approx(single["valid_ssim"], abs=1e-6)


@pytest.mark.slow
def test_obproxsg_switches_phase_after_an_epoch_of_the_per_process_loader(two_ranks):
    out_dir, records = two_ranks
    log = (out_dir / "log.txt").read_text()
    assert "4 training items (2 steps per epoch)" in log
    assert "OBProxSG: prox_sg steps from step 1 (epoch 1)" in log
    assert "OBProxSG: orthant steps from step 3 (epoch 2)" in log
    for record in records:
        assert record["optimizer"]["phase_counters"] == {
            "epochs_done": 1, "steps_in_epoch": 1, "last_step_kind": "orthant"}
        # Laplacian loss weight x2: the sum over the 2-item step is the sum over both ranks' items.
        assert record["loss_weights"] == [[2.0]]


@pytest.mark.slow
def test_only_rank_zero_writes(two_ranks):
    out_dir, (rank0, rank1) = two_ranks
    assert rank1["written"] == []
    written = {Path(path).name for path in rank0["written"]}
    assert {"log.txt", "config.txt", "curves.png", "sparsity.json", "density results.txt"} <= written
    log = (out_dir / "log.txt").read_text()
    assert log.count("STARTING FROM EPOCH 0") == 1 and log.count("Saved ") == 2
    assert "Process group of 2 processes (gloo), 2 items per step (--batch_size 1 each)" in log


@pytest.mark.slow
def test_checkpoints_have_no_ddp_prefix_and_resume_across_process_counts(
    two_ranks, one_process, data_dir, tmp_path
):
    two_rank_dir, _ = two_ranks
    keys = set(get_model_class("student_STMFNet")().state_dict())
    assert set(_load(last_checkpoint_path(two_rank_dir))["model"]) == keys
    assert set(_load(two_rank_dir / "checkpoint" / "model_epoch001.pth")["state_dict"]) == keys

    # 2 x 1 for three steps, then 1 x 2 for the fourth; and 1 x 2, then 2 x 1.
    resumed_single = tmp_path / "resumed_single"
    shutil.copytree(two_rank_dir, resumed_single)
    run_script("train", train_argv(data_dir, resumed_single, 2, "--max_steps", "4", "--resume"),
               tmp_path / "single_records", processes=1, eval_batchnorm=True)
    resumed_two = tmp_path / "resumed_two"
    shutil.copytree(one_process, resumed_two)
    records = run_script("train", train_argv(data_dir, resumed_two, 1, "--max_steps", "4", "--resume"),
                         tmp_path / "records", eval_batchnorm=True)

    assert "Resuming a run of 2 process(es) x --batch_size 1 with 1 x 2" in (resumed_single / "log.txt").read_text()
    assert "Resuming a run of 1 process(es) x --batch_size 2 with 2 x 1" in (resumed_two / "log.txt").read_text()
    single, two = _load(last_checkpoint_path(resumed_single)), _load(last_checkpoint_path(resumed_two))
    assert max_difference(records[0]["before"], _load(last_checkpoint_path(one_process))["model"]) == 0
    difference = max_difference(single["model"], two["model"])
    update = max_difference(single["model"], _load(last_checkpoint_path(one_process))["model"])
    print(f"largest weight change of step 4 {update:.3e}, largest difference of the two continuations "
          f"{difference:.3e}")
    assert difference < 1e-6 and difference < 1e-3 * update
    for progress in (single["progress"], two["progress"]):
        assert (progress["step"], progress["epoch"], progress["epoch_step"]) == (4, 2, 0)
    assert single["optimizer"]["phase_counters"] == two["optimizer"]["phase_counters"] == {
        "epochs_done": 2, "steps_in_epoch": 0, "last_step_kind": "orthant"}


@pytest.mark.slow
def test_resume_with_other_items_per_step_is_a_clear_error(two_ranks, data_dir, tmp_path, capsys):
    out_dir = tmp_path / "resumed"
    shutil.copytree(two_ranks[0], out_dir)
    argv = train_argv(data_dir, out_dir, 1, "--max_steps", "4", "--resume")
    with restored_root_logging():
        status = train.main(argv)
    assert status == 2
    assert "took 2 items per step (2 process(es) x --batch_size 1), this one would take 1 (1 x 1)" in (
        capsys.readouterr().err.strip().splitlines()[-1])


@pytest.mark.slow
def test_distillation_on_two_ranks(data_dir, tmp_path):
    """Two distillation steps with the default GAN distillation term: the student (DDP) and the discriminator
    (gradient hook) stay identical on both ranks; every rank has the frozen teacher, which in the default training
    mode normalises with the statistics of that rank's own batch and keeps its stored statistics."""
    torch.manual_seed(0)
    teacher_path = tmp_path / "stmfnet.pth"
    torch.save({"epoch": 70, "state_dict": get_model_class("STMFNet")().state_dict()}, teacher_path)
    out_dir = tmp_path / "out"
    argv = ["--teacher_dir", str(teacher_path), "--data_dir", str(data_dir), "--out_dir", str(out_dir),
            "--patch_size", str(PATCH), "--batch_size", "1", "--samples_per_epoch", "4", "--seed", "0",
            "--device", "cpu", "--max_steps", "2"]
    rank0, rank1 = run_script("distill", argv, tmp_path / "records")

    assert rank0["exit_code"] == rank1["exit_code"] == 0
    for name in parameter_names("student_STMFNet"):
        assert torch.equal(rank0["after"][name], rank1["after"][name]), name
    assert max_difference(rank0["after"], rank0["before"]) > 0
    discriminator = [name for name in rank0["loss_state"] if name.endswith(("weight", "bias"))]
    assert discriminator and all(torch.equal(rank0["loss_state"][name], rank1["loss_state"][name])
                                 for name in discriminator)
    assert rank0["loss_weights"] == rank1["loss_weights"] == [[2.0], [1.0]]  # Lap x2, GAN (a batch mean) x1
    assert rank1["written"] == []
    last = _load(last_checkpoint_path(out_dir))
    assert last["progress"]["step"] == 2 and last["progress"]["world_size"] == 2
    assert set(last["loss"]) == set(DistillationLoss("1*Lap", "1*GAN", 0.1).state_dict())

    saved = _load(teacher_path)["state_dict"]
    teacher = get_model_class("STMFNet")()
    teacher.load_state_dict(saved)
    for record in (rank0, rank1):
        assert len(record["teacher_calls"]) == 2
        assert all(torch.equal(value, saved[name]) for name, value in record["teacher_buffers"].items())
        frames, target = record["teacher_calls"][0]
        assert frames[0].shape[0] == 1  # the rank's own batch of --batch_size 1
        with torch.no_grad():
            expected = copy.deepcopy(teacher).train()(*frames)["frame1"]
        # the worker ran on one thread, this process may use several: equal up to the order of float sums, which
        # the batch-statistics norms of train mode amplify (the fused inference route: up to 1.3e-5 seen)
        assert (target - expected).abs().max() < 5e-5
    # Not the statistics of the step's two items together (what SyncBatchNorm or one process with batch 2 would use).
    both = [torch.cat(pair) for pair in zip(rank0["teacher_calls"][0][0], rank1["teacher_calls"][0][0])]
    with torch.no_grad():
        together = copy.deepcopy(teacher).train()(*both)["frame1"]
    assert (together[:1] - rank0["teacher_calls"][0][1]).abs().max() > 1e-3


def test_torchrun_environment():
    assert distributed.torchrun_launch({}) is None
    full = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "MASTER_ADDR": "node0", "MASTER_PORT": "29500"}
    assert distributed.torchrun_launch(full) == distributed.Launch(rank=3, local_rank=1, world_size=4)
    with pytest.raises(ValueError, match="sets RANK, WORLD_SIZE but not LOCAL_RANK, MASTER_ADDR, MASTER_PORT"):
        distributed.torchrun_launch({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="inconsistent torchrun environment: RANK=4"):
        distributed.torchrun_launch({**full, "RANK": "4"})
    with pytest.raises(ValueError, match="must be integers"):
        distributed.torchrun_launch({**full, "WORLD_SIZE": "two"})


def test_single_process_is_unchanged():
    """Without torchrun: no process group, and every helper leaves things as they are."""
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (0, 1, True)
    assert distributed.all_reduce_sum([1.5, torch.tensor(2.0), 3], torch.device("cpu")) == [1.5, 2.0, 3.0]
    model = nn.Linear(2, 2)
    assert distributed.wrap_model(model, torch.device("cpu")) is model
    assert distributed.unwrap_model(model) is model
    loss = DistillationLoss("1*Lap", "1*GAN", 0.1)
    distributed.replicate_loss(loss)
    assert (loss.student_loss.weights, loss.distill_loss.weights) == ([1.0], [1.0])


def test_sync_bn_needs_cuda(data_dir, tmp_path):
    argv = ["--data_dir", str(data_dir), "--out_dir", str(tmp_path / "out"), "--device", "cpu", "--sync_bn"]
    with restored_root_logging(), pytest.raises(ValueError, match="--sync_bn needs CUDA devices"):
        train.main(argv)
