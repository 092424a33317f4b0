"""common/failures.py: the one way every script turns an expected failure into one line and an exit status."""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import re
from pathlib import Path

import pytest

from common.failures import Interrupted, ScriptError, Terminated, run_script

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = [
    "interpolate", "evaluate", "train", "distill", "export_onnx", "benchmark", "data.make_demo_data",
    "data.make_sample", "tools.export_checkpoint", "tools.quickstart", "tools.scene_cuts", "tools.static_speedup",
    "tools.rate_conversions", "tools.dedup_score", "tools.precision_check", "tools.measure_ops",
]


def parser_with_debug() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="demo.py")
    parser.add_argument("--debug", action="store_true")
    return parser


def failing(error: BaseException):
    def body(args: argparse.Namespace) -> None:
        raise error

    return body


@pytest.mark.parametrize("error, status, line", [
    (ScriptError("--input x.mp4 not found"), 2, "demo.py: error: --input x.mp4 not found"),
    (ScriptError("the network failed on frame 3", 1), 1, "demo.py: error: the network failed on frame 3"),
    (OSError(errno.ENOSPC, "No space left on device", "out/results.json"), 1,
     "demo.py: error: no space left on out/results.json; free some space and run again (files written before are "
     "intact)"),
    (Interrupted("interrupted; out.mp4 was not written"), 130, "demo.py: interrupted; out.mp4 was not written"),
    (KeyboardInterrupt(), 130, "demo.py: interrupted"),
    (Terminated(143), 143, "demo.py: terminated"),
])
def test_an_expected_failure_is_one_line_and_its_status(capsys, error, status, line):
    assert run_script(parser_with_debug(), [], failing(error)) == status
    assert capsys.readouterr().err == line + "\n"


def test_a_bug_keeps_its_traceback_and_debug_shows_expected_ones_too():
    with pytest.raises(ZeroDivisionError):
        run_script(parser_with_debug(), [], failing(ZeroDivisionError("bug")))
    with pytest.raises(OSError):  # not a refused write: a bug
        run_script(parser_with_debug(), [], failing(OSError(errno.EIO, "I/O error")))
    with pytest.raises(ScriptError):
        run_script(parser_with_debug(), ["--debug"], failing(ScriptError("bad")))


def test_usage_errors_and_help_return_argparse_s_status(capsys):
    assert run_script(parser_with_debug(), ["--nope"], failing(AssertionError("never run"))) == 2
    assert run_script(parser_with_debug(), ["--help"], failing(AssertionError("never run"))) == 0
    assert run_script(parser_with_debug(), [], lambda args: None) == 0


def test_the_traceback_goes_to_the_log_file_set_up_by_the_run(tmp_path, capsys):
    log = tmp_path / "log.txt"
    handler = logging.FileHandler(log)

    def body(args: argparse.Namespace) -> None:
        logging.getLogger().addHandler(handler)  # as cli.setup_logging does once the output folder is known
        raise ScriptError("--data_dir: nothing to read")

    try:
        assert run_script(parser_with_debug(), [], body) == 2
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    text = log.read_text()
    assert "--data_dir: nothing to read" in text and "Traceback" in text and "ScriptError" in text
    assert capsys.readouterr().err == "demo.py: error: --data_dir: nothing to read\n"


@pytest.mark.parametrize("module", SCRIPTS)
def test_every_script_s_main_returns_its_exit_status(module, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "tools"))
    script = importlib.import_module(module)
    assert script.main(["--help"]) == 0
    assert script.main(["--no_such_flag"]) == 2
    assert "error:" in capsys.readouterr().err  # argparse's usage message (a missing flag or the unknown one)


def test_no_script_or_library_exits_by_itself():
    """Only ``if __name__ == "__main__": sys.exit(main())`` ends a process; everything else raises ScriptError
    (or returns a status) for run_script to report."""
    offenders = []
    for path in sorted(REPO.rglob("*.py")):
        relative = path.relative_to(REPO)
        if relative.parts[0] in ("tests", ".git") or relative == Path("common/failures.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bsys\.exit\(|raise SystemExit|parser\.error\(|\.exit\(", line) and \
                    line.strip() != "sys.exit(main())":
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []


def test_nothing_imports_a_script():
    """The repository root's modules (the scripts, and utility.py for code written against the original) are
    entry points: library code and tools call the library (pipeline/conversion.py for interpolate.py's run)."""
    scripts = {path.stem for path in REPO.glob("*.py")}
    offenders = []
    for path in sorted(REPO.rglob("*.py")):
        relative = path.relative_to(REPO)
        if relative.parts[0] in ("tests", ".git") or len(relative.parts) == 1:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.match(r"\s*(?:from|import) (\w+)", line)
            if match and match.group(1) in scripts:
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []
