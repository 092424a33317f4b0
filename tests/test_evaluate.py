"""evaluate.py end to end on the sample data built from the shipped clip, plus the averaging and format rules of
pipeline/evaluation.py.

One student run (random weights saved in the original checkpoint format, two of the sample's 256x256 UCF101
items, with --save_grid) is shared by the tests that check the files it writes; the baselines run on DAVIS and UCF101 in
well under a second each.
"""
import hashlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import common.memory
from common.failures import ScriptError
import data
import evaluate
from conftest import disk_filling_after, restored_root_logging
from image_kinds import KINDS, expected_rgb, write_kind
from data.make_sample import DEFAULT_VIDEO, build_sample
from metrics import calc_psnr
from models import student_STMFNet
from pipeline import cli
from pipeline.evaluation import ItemResult, save_image_pixels, summarize
from pipeline.output_folder import LOCK
from pipeline.results_file import results_text

UCF = "Ucf101_quintuplet"
DAVIS = "Davis90_quintuplet"
STUDENT_ITEMS = ("0", "1")
RESULT_LINE = re.compile(r"^(?P<label>.{15,}) -- \{'PSNR': (?P<psnr>[0-9.]+), 'SSIM': (?P<ssim>[0-9.]+)\}$")


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    build_sample(DEFAULT_VIDEO, root)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoint") / "student.pth"
    torch.save({"epoch": 7, "state_dict": student_STMFNet().state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def student_data_dir(sample_dir, tmp_path_factory):
    """UCF101 of the sample cut to its first two items (the student takes seconds per frame on a CPU)."""
    root = tmp_path_factory.mktemp("student_data")
    (root / "ucf101").mkdir()
    for item in STUDENT_ITEMS:
        (root / "ucf101" / item).symlink_to(sample_dir / "ucf101" / item, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def student_run(student_data_dir, checkpoint, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("eval")
    predictors = []
    build_predictor = evaluate.build_predictor

    def recording_build_predictor(*args):
        predictor, record = build_predictor(*args)
        predictors.append(predictor)
        return predictor, record

    heap_sizes = []
    with restored_root_logging(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluate, "build_predictor", recording_build_predictor)
        patch.setattr(common.memory, "heap_reuse_for", lambda *size: heap_sizes.append(size))
        assert evaluate.main([
            "--net", "student_STMFNet", "--checkpoint", str(checkpoint), "--data_dir", str(student_data_dir),
            "--dataset", UCF, "--out_dir", str(out_dir), "--device", "cpu", "--save_grid",
        ]) == 0
    return results_of(out_dir, UCF), out_dir / UCF, predictors[0], heap_sizes


def run_baseline(kind, dataset, sample_dir, out_dir, *extra):
    """evaluate.py's exit status for a baseline run."""
    return evaluate.main([
        "--baseline", kind, "--data_dir", str(sample_dir), "--dataset", dataset, "--out_dir", str(out_dir),
        "--device", "cpu", "--metrics", "PSNR", *extra,
    ])


def results_of(out_dir, dataset):
    """The results.json a finished run wrote."""
    return json.loads((Path(out_dir) / dataset / "results.json").read_text())


def baseline_record(kind, dataset, sample_dir, out_dir, *extra):
    """What a baseline run that must succeed wrote to results.json."""
    assert run_baseline(kind, dataset, sample_dir, out_dir, *extra) == 0
    return results_of(out_dir, dataset)


def load_rgb(path):
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


def exit_message(capsys, status):
    assert status == 2  # bad input, as argparse's usage error
    return capsys.readouterr().err


@pytest.mark.slow
def test_student_is_evaluated_in_eval_mode_with_the_checkpoint_weights(student_run, checkpoint):
    _, _, model, _ = student_run
    assert isinstance(model, student_STMFNet) and not any(module.training for module in model.modules())
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())


@pytest.mark.slow
def test_default_route_asks_for_heap_reuse_at_each_frame_size(student_run, student_data_dir):
    """evaluate.py sets the allocator for each item's frame size, on the default route (the network itself) too."""
    record, _, _, heap_sizes = student_run
    test_set = data.build_test_set(UCF, student_data_dir)
    assert len(heap_sizes) == len(record["items"]) == len(test_set.items)
    assert set(heap_sizes) == {tuple(test_set[0][0][2].shape[-2:])}


def test_student_run_writes_one_png_per_item(student_run, student_data_dir):
    record, result_dir, _, _ = student_run
    test_set = data.build_test_set(UCF, student_data_dir)
    outputs = sorted(path.relative_to(result_dir).as_posix() for path in result_dir.glob("*/output.png"))
    assert outputs == [item.output_file for item in test_set.items] == ["0/output.png", "1/output.png"]
    for name in outputs:
        assert load_rgb(result_dir / name).shape == (256, 256, 3)


@pytest.mark.slow
def test_saved_outputs_are_what_was_scored(student_run, student_data_dir):
    record, result_dir, _, _ = student_run
    test_set = data.build_test_set(UCF, student_data_dir)
    for index, item in enumerate(record["items"]):
        frames, name = test_set[index]
        assert name == item["name"]
        saved = torch.from_numpy(load_rgb(result_dir / item["output_file"]).copy()).permute(2, 0, 1).float() / 255
        rescored = calc_psnr(frames[2][None], saved[None]).item()
        assert rescored == pytest.approx(item["scores"]["PSNR"], abs=1e-4)


@pytest.mark.slow
def test_student_results_txt_has_the_original_format(student_run):
    record, result_dir, _, _ = student_run
    text = (result_dir / "results.txt").read_text()
    assert text.endswith("\n\n")  # UCF101: the original ended the file with a blank line
    matches = [RESULT_LINE.match(line) for line in text.splitlines()[:-1]]
    assert all(matches), text
    assert [m["label"].strip() for m in matches] == [*STUDENT_ITEMS, "Average"]
    for match, item in zip(matches, record["items"]):
        assert float(match["psnr"]) == round(item["scores"]["PSNR"], 3)
        assert float(match["ssim"]) == round(item["scores"]["SSIM"], 3)
    assert float(matches[-1]["psnr"]) == round(record["mean"]["PSNR"], 3)


@pytest.mark.slow
def test_student_results_json_records_scores_model_and_provenance(student_run, checkpoint):
    record, result_dir, _, _ = student_run
    on_disk = json.loads((result_dir / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert on_disk["dataset"] == UCF and on_disk["model"] == "student_STMFNet"
    assert on_disk["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert on_disk["checkpoint_epoch"] == 7
    assert on_disk["device"].startswith("cpu") and on_disk["torch_version"] == torch.__version__
    assert on_disk["metrics"] == ["PSNR", "SSIM"] and on_disk["num_items"] == len(STUDENT_ITEMS)
    assert on_disk["averaging"] == "mean over items" and on_disk["mean"] == on_disk["mean_over_items"]
    for item in on_disk["items"]:
        psnr, ssim = item["scores"]["PSNR"], item["scores"]["SSIM"]
        assert math.isfinite(psnr) and 0 < psnr < 80 and math.isfinite(ssim) and -1 <= ssim <= 1
        assert item["runtime_s"] > 0
    assert on_disk["mean"]["PSNR"] == pytest.approx(np.mean([item["scores"]["PSNR"] for item in on_disk["items"]]))
    assert on_disk["runtime_per_frame_s"] > 0
    assert (result_dir / "log.txt").read_text().count("Average") >= 1


@pytest.mark.slow
def test_save_grid_writes_five_panels_per_item(student_run):
    _, result_dir, _, _ = student_run
    grids = sorted(path.name for path in (result_dir / "grids").iterdir())
    assert grids == [f"{item}.png" for item in STUDENT_ITEMS]
    for name in grids:
        assert load_rgb(result_dir / "grids" / name).shape == (256, 5 * 256, 3)


def test_repeat_baseline_outputs_frame_i1_and_averages_per_sequence(sample_dir, tmp_path):
    record = baseline_record("repeat", DAVIS, sample_dir, tmp_path)
    test_set = data.build_test_set(DAVIS, sample_dir)
    assert record["model"] == "baseline_repeat" and record["checkpoint"] is None
    assert len(record["items"]) == len(test_set) == 4  # two 9-frame sequences, windows at t = 0 and 2
    for item, eval_item in zip(record["items"], test_set.items):
        saved = load_rgb(tmp_path / DAVIS / item["output_file"])
        np.testing.assert_array_equal(saved, load_rgb(eval_item.frame_paths[1]))  # I1, the decoded JPEG
    assert list(record["sequences"]) == ["bbb-meadow", "bbb-squirrel"]
    assert record["averaging"] == "mean over sequences of per-sequence means"
    lines = (tmp_path / DAVIS / "results.txt").read_text().split("\n")
    assert [line.split(" -- ")[0].strip() for line in lines[:3]] == ["bbb-meadow", "bbb-squirrel", "Average"]
    items = record["items"]
    meadow_seconds = sum(item["runtime_s"] + item["load_s"] for item in items[:2])
    assert lines[0].endswith("\tAverage time: {}".format(meadow_seconds / 2))
    assert lines[3] == "Average average time: {}".format(
        np.mean([meadow_seconds, sum(item["runtime_s"] + item["load_s"] for item in items[2:])])
    )
    assert lines[4:] == ["", ""]
    assert sorted(p.relative_to(tmp_path / DAVIS).as_posix() for p in (tmp_path / DAVIS).rglob("*.png")) == [
        "bbb-meadow/frame3.png", "bbb-meadow/frame5.png", "bbb-squirrel/frame3.png", "bbb-squirrel/frame5.png",
    ]


def test_average_baseline_outputs_the_mean_of_the_centre_inputs(sample_dir, tmp_path):
    record = baseline_record("average", UCF, sample_dir, tmp_path)
    test_set = data.build_test_set(UCF, sample_dir)
    for index, (item, eval_item) in enumerate(zip(record["items"], test_set.items)):
        frames, _ = test_set[index]
        average = (frames[1] + frames[3]) / 2
        saved = load_rgb(tmp_path / UCF / item["output_file"])
        # saved as save_image does (half levels round up), scored on the metrics' 8-bit rounding (half to even)
        np.testing.assert_array_equal(saved, save_image_pixels(average))
        assert item["scores"]["PSNR"] == calc_psnr(frames[2][None], average[None]).item()


@pytest.mark.parametrize("kind", KINDS)
def test_every_png_kind_is_scored_as_its_8_bit_rgb(tmp_path, kind):
    """16-bit grey once scored 27 dB where 9 dB was right (clipped to white); every kind must score its RGB."""
    rng = np.random.default_rng(2)
    item = tmp_path / "data" / "ucf101" / "0"
    item.mkdir(parents=True)
    frames = {}
    for name in ("frame0", "frame1", "framet", "frame2", "frame3"):
        frames[name] = rng.integers(0, 60, (16, 16, 3)).astype(np.uint8) * 4 + 15  # few colours: palettes hold them
        write_kind(item / f"{name}.png", frames[name], kind)
    record = baseline_record("repeat", UCF, tmp_path / "data", tmp_path / "out")
    prediction, target = (expected_rgb(frames[name], kind).astype(np.float64) for name in ("frame1", "framet"))
    np.testing.assert_array_equal(load_rgb(tmp_path / "out" / UCF / "0" / "output.png"), prediction)
    expected_psnr = 10 * np.log10(255**2 / np.mean((prediction - target) ** 2))
    assert record["items"][0]["scores"]["PSNR"] == pytest.approx(expected_psnr, abs=1e-3)


def test_refuses_to_replace_earlier_results_without_overwrite(sample_dir, tmp_path, capsys):
    run_baseline("repeat", DAVIS, sample_dir, tmp_path)
    results_json = tmp_path / DAVIS / "results.json"
    before = results_json.read_text()
    status = run_baseline("average", DAVIS, sample_dir, tmp_path)
    assert "--overwrite" in exit_message(capsys, status)
    assert results_json.read_text() == before
    record = baseline_record("average", DAVIS, sample_dir, tmp_path, "--overwrite")
    assert json.loads(results_json.read_text())["model"] == record["model"] == "baseline_average"


def test_refuses_random_weights_without_allow_random(sample_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no ./models/stmfnet_mini.pth here: the default checkpoint is missing
    status = evaluate.main(["--data_dir", str(sample_dir), "--dataset", UCF, "--out_dir", "out", "--device", "cpu"])
    message = exit_message(capsys, status)
    assert "stmfnet_mini.pth not found" in message and "--allow_random" in message
    assert not (tmp_path / "out").exists()

    args = evaluate.build_parser().parse_args(["--data_dir", str(sample_dir), "--allow_random"])
    assert cli.resolve_checkpoint(args.checkpoint, evaluate.DEFAULT_CHECKPOINT, args.allow_random) is None
    typo = evaluate.build_parser().parse_args(["--data_dir", ".", "--allow_random", "--checkpoint", "typo.pth"])
    with pytest.raises(FileNotFoundError, match="typo.pth not found"):
        cli.resolve_checkpoint(typo.checkpoint, evaluate.DEFAULT_CHECKPOINT, typo.allow_random)


def test_lpips_without_weights_fails_before_any_frame(sample_dir, tmp_path, monkeypatch, capsys):
    empty_hub = tmp_path / "hub"
    monkeypatch.delenv("LPIPS_ALEXNET_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(empty_hub))
    status = run_baseline("average", UCF, sample_dir, tmp_path / "out", "--metrics", "PSNR", "LPIPS")
    message = exit_message(capsys, status)
    assert "alexnet-owt-7be5be79.pth" in message and str(empty_hub) in message
    assert not (tmp_path / "out").exists()


def test_unknown_dataset_lists_the_valid_names(sample_dir, tmp_path, capsys):
    status = run_baseline("average", "Vimeo90k_septuplet", sample_dir, tmp_path)
    message = exit_message(capsys, status)
    assert "Vimeo90k_septuplet" in message
    assert all(name in message for name in data.TEST_SETS)


def test_missing_dataset_folder_names_the_path(tmp_path, capsys):
    status = run_baseline("average", UCF, tmp_path / "no_data", tmp_path / "out")
    assert str(tmp_path / "no_data" / "ucf101") in exit_message(capsys, status)


def test_summary_averages_per_sequence_first():
    items = [
        ItemResult("a/frame3", "a", "a/frame3.png", {"PSNR": 30.0}, 0.1),
        ItemResult("a/frame5", "a", "a/frame5.png", {"PSNR": 20.0}, 0.1),
        ItemResult("b/frame3", "b", "b/frame3.png", {"PSNR": 40.0}, 0.1),
    ]
    summary = summarize(items, ["PSNR"])
    assert summary.sequences == {"a": {"PSNR": 25.0}, "b": {"PSNR": 40.0}}
    assert summary.mean == {"PSNR": 32.5}
    assert summary.mean_over_items == {"PSNR": 30.0}
    assert results_text(summary, "VFITex_quintuplet") == (
        "a               -- {'PSNR': 25.0}\n"
        "b               -- {'PSNR': 40.0}\n"
        "Average         -- {'PSNR': 32.5}\n"
    )


def write_tiny_ucf(root, items=2, size=(16, 16)):
    """ucf101/<k>/ with five random frames of ``size`` (W, H) each: fast runs of the baselines."""
    generator = np.random.default_rng(0)
    for item in range(items):
        folder = root / "ucf101" / str(item)
        folder.mkdir(parents=True)
        for name in ("frame0", "frame1", "framet", "frame2", "frame3"):
            pixels = generator.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}.png")
    return root


def tree(root):
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_non_finite_outputs_give_strict_json_and_a_grid(tmp_path, monkeypatch):
    write_tiny_ucf(tmp_path / "data", size=(48, 48))

    def nan_predictor(args, device):
        return (lambda frame0, frame1, frame2, frame3: torch.full_like(frame1, float("nan"))), {
            "model": "broken", "checkpoint": None, "checkpoint_sha256": None, "checkpoint_epoch": None}

    monkeypatch.setattr(evaluate, "build_predictor", nan_predictor)
    evaluate.main(["--data_dir", str(tmp_path / "data"), "--dataset", UCF, "--out_dir", str(tmp_path / "out"),
                   "--device", "cpu", "--save_grid"])
    text = (tmp_path / "out" / UCF / "results.json").read_text()
    record = json.loads(text, parse_constant=lambda token: pytest.fail(f"bare {token} in results.json"))
    assert record["mean"] == {"PSNR": None, "SSIM": None}
    assert record["items"][0]["scores"] == {"PSNR": None, "SSIM": None}
    assert record["non_finite_values"]["mean.PSNR"] == "nan"
    assert record["non_finite_values"]["items[1].scores.SSIM"] == "nan"
    assert "0: the output holds 6912 NaN or infinite values" in (tmp_path / "out" / UCF / "log.txt").read_text()
    grid = load_rgb(tmp_path / "out" / UCF / "grids" / "0.png")
    assert grid.shape == (48, 5 * 48, 3)
    assert (grid[24:, 4 * 48:] == [252, 255, 164]).all()  # a NaN output is full-scale error (below the label)


def test_a_second_run_into_a_folder_in_use_is_refused_and_changes_nothing(tmp_path, capsys):
    write_tiny_ucf(tmp_path / "data")
    run_baseline("repeat", UCF, tmp_path / "data", tmp_path / "out")
    before = tree(tmp_path / "out")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(tmp_path / "out" / UCF / LOCK)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        status = run_baseline("average", UCF, tmp_path / "data", tmp_path / "out", "--overwrite")
    finally:
        holder.kill()
        holder.wait()
    message = exit_message(capsys, status)
    assert "another evaluate.py run is writing to" in message and str(tmp_path / "out" / UCF) in message
    assert tree(tmp_path / "out") == before


def test_overwrite_leaves_a_folder_evaluate_did_not_write_alone(tmp_path, capsys):
    write_tiny_ucf(tmp_path / "data")
    mine = tmp_path / "out" / UCF
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("my notes")
    status = run_baseline("average", UCF, tmp_path / "data", tmp_path / "out", "--overwrite")
    assert "not written by evaluate.py" in exit_message(capsys, status)
    assert tree(tmp_path / "out") == {f"{UCF}/notes.txt": b"my notes"}


def test_overwrite_replaces_only_the_earlier_run_s_files(tmp_path):
    write_tiny_ucf(tmp_path / "data")
    run_baseline("repeat", UCF, tmp_path / "data", tmp_path / "out", "--save_grid")
    (tmp_path / "out" / UCF / "notes.txt").write_text("my notes")
    run_baseline("average", UCF, tmp_path / "data", tmp_path / "out", "--overwrite")
    files = set(tree(tmp_path / "out" / UCF))
    assert "grids/0.png" not in files  # the earlier run's grid would not match the new results
    assert {"0/output.png", "1/output.png", "results.json", "results.txt", "log.txt", "notes.txt"} <= files


def test_a_full_disk_mid_run_names_the_file_and_keeps_earlier_files(tmp_path, monkeypatch, capsys):
    write_tiny_ucf(tmp_path / "data")
    run_baseline("repeat", UCF, tmp_path / "data", tmp_path / "out")
    first = tree(tmp_path / "out" / UCF)
    with disk_filling_after(monkeypatch, 2000):  # room for the first 16x16 PNG (~850 bytes), not the second
        status = run_baseline("average", UCF, tmp_path / "data", tmp_path / "out", "--overwrite")
    assert status == 1
    stderr = capsys.readouterr().err
    message = stderr.strip().splitlines()[-1]  # after the progress bar
    assert message.startswith(f"evaluate.py: error: no space left on {tmp_path / 'out' / UCF}/")
    assert "Traceback" not in stderr
    after = tree(tmp_path / "out" / UCF)
    assert after["results.json"] == first["results.json"]  # the earlier results are intact
    assert not [name for name in after if name.endswith(".tmp")]
    assert "no space left on" in after["log.txt"].decode() and "Traceback" in after["log.txt"].decode()


@pytest.mark.parametrize("layout, expected", [
    ("mixed", "item 1: its frames differ in size"),
    ("tiny", "item 0: frames of 1x1 are too small for SSIM"),
])
def test_frames_are_checked_before_anything_is_written(tmp_path, capsys, layout, expected):
    write_tiny_ucf(tmp_path / "data", size=(1, 1) if layout == "tiny" else (16, 16))
    if layout == "mixed":
        Image.new("RGB", (20, 16)).save(tmp_path / "data" / "ucf101" / "1" / "frame2.png")
    status = run_baseline("average", UCF, tmp_path / "data", tmp_path / "out", "--metrics", "PSNR", "SSIM")
    assert expected in exit_message(capsys, status)
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_error_with_its_traceback(tmp_path):
    with pytest.raises(ScriptError, match="no_data"):
        run_baseline("average", UCF, tmp_path / "no_data", tmp_path / "out", "--debug")
