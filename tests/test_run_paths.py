"""No run writes over, into or around a path it reads: pipeline/run_paths.py, checked through every script's parser.

Every flag of every script that looks like a path must be classified in the helper's table, and every pair of a
writing flag and a reading flag of one script, both naming one file, must be refused at start-up with one line and
the file left as it was.
"""
import importlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.failures import ScriptError
from pipeline.run_paths import OTHER_FLAGS, READ_FLAGS, WRITE_FLAGS, refuse_aliased_paths

# script module -> the flags it needs whatever the pair: (flag,) a switch, (flag, value), (flag, None) a path from
# ``base_arguments``
SCRIPTS = {
    "interpolate": [("--input", None), ("--baseline", "average")],
    "evaluate": [("--data_dir", None), ("--dataset", "Ucf101_quintuplet")],
    "train": [("--data_dir", None)],
    "distill": [("--data_dir", None)],
    "export_onnx": [("--out", None), ("--allow_random",)],
    "benchmark": [],
    "tools.export_checkpoint": [("--run", None), ("--out", None), ("--data", "x")],
    "tools.quickstart": [],
    "data.make_sample": [("--out", None)],
    "data.make_demo_data": [("--out", None)],
}
# Words of an argument name that suggest a path.
PATH_WORDS = {"dir", "path", "file", "out", "output", "input", "checkpoint", "onnx", "load", "report", "json", "video",
              "run", "weights"}
VICTIM = b"a file the user made"


def parser_of(script: str):
    return importlib.import_module(script).build_parser()


def path_flags(script: str) -> tuple[list[str], list[str], list[str]]:
    """(reading, writing, unclassified) option strings of a script's parser."""
    reading, writing, unclassified = [], [], []
    for action in parser_of(script)._actions:
        if not action.option_strings or action.dest == "help":
            continue
        option = action.option_strings[0]
        if action.dest in READ_FLAGS:
            reading.append(option)
        elif action.dest in WRITE_FLAGS:
            writing.append(option)
        elif action.dest not in OTHER_FLAGS and (PATH_WORDS & set(action.dest.split("_")) or action.type is Path):
            unclassified.append(option)
    return reading, writing, unclassified


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_path_flag_is_in_the_table(script):
    assert path_flags(script)[2] == []


def test_the_scripts_read_and_write_what_the_table_says():
    reading, writing, _ = path_flags("interpolate")
    assert {"--input", "--checkpoint", "--onnx"} <= set(reading) and {"--output", "--report"} <= set(writing)
    assert "--out_fps" not in reading + writing


def base_arguments(script: str, tmp: Path, pair: tuple[str, str]) -> list[str]:
    """The script's needed flags with harmless values, leaving out those of the pair."""
    frames = tmp / "frames"
    if not frames.exists():
        frames.mkdir()
        for index in range(3):
            Image.fromarray(np.full((16, 16, 3), 40 * index, np.uint8)).save(frames / f"{index:03d}.png")
    values = {"--input": str(frames), "--data_dir": str(tmp / "data"), "--out": str(tmp / "fresh_out"),
              "--run": str(tmp / "run")}
    arguments = []
    for flag, *value in SCRIPTS[script]:
        if flag in pair:
            continue
        arguments += [flag, *(values[flag] if item is None else item for item in value)]
    return arguments


def alias_cases():
    for script in SCRIPTS:
        reading, writing, _ = path_flags(script)
        for written in writing:
            for read in reading:
                yield pytest.param(script, written, read, id=f"{script} {written}={read}")


@pytest.mark.parametrize("script, written, read", list(alias_cases()))
def test_a_written_flag_naming_a_read_file_is_refused(tmp_path, monkeypatch, capsys, script, written, read):
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim.bin"
    victim.write_bytes(VICTIM)
    argv = [*base_arguments(script, tmp_path, (written, read)), written, str(victim), read, str(victim)]
    status = importlib.import_module(script).main(argv)
    assert status not in (0, None)
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert written in message and "Traceback" not in capsys.readouterr().err
    assert victim.read_bytes() == VICTIM


@pytest.mark.parametrize("spelling", ["same", "dots", "symlink", "hardlink"])
def test_aliases_are_found_however_the_path_is_spelled(tmp_path, spelling):
    (tmp_path / "sub").mkdir()
    weights = tmp_path / "weights.pth"
    weights.write_bytes(VICTIM)
    report = {
        "same": weights,
        "dots": tmp_path / "sub" / ".." / "weights.pth",
        "symlink": tmp_path / "link.pth",
        "hardlink": tmp_path / "hard.pth",
    }[spelling]
    if spelling == "symlink":
        report.symlink_to(weights)
    if spelling == "hardlink":
        os.link(weights, report)
    with pytest.raises(ScriptError, match=r"^--report .* is the same file as --checkpoint .*weights.pth"):
        refuse_aliased_paths({"report": report, "checkpoint": weights})


def test_folders_around_or_inside_inputs_are_refused_and_neighbours_accepted(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "001.png").write_bytes(b"frame")
    with pytest.raises(ScriptError, match="holds --input"):
        refuse_aliased_paths({"output": tmp_path, "input": frames / "001.png"})
    with pytest.raises(ScriptError, match="lies inside --input"):
        refuse_aliased_paths({"report": frames / "report.json", "input": frames})
    refuse_aliased_paths({"output": tmp_path / "out", "report": tmp_path / "r.json", "input": frames})
    refuse_aliased_paths({"output": "-", "input": "-"})  # standard output and input are no files
