"""pipeline/output_folder.py: --overwrite replaces only what the program wrote, one run at a time per folder, and an
output never overlaps an input."""
import json
import subprocess
import sys

import pytest

from common.failures import ScriptError
from pipeline.output_folder import LOCK, MANIFEST, OutputFolder, check_output_location
from pipeline.run_paths import refuse_aliased_paths

PLANNED = ["a/output.png", "results.json"]


def write_run(folder_path, planned=PLANNED, content="run 1"):
    with OutputFolder(folder_path, "evaluate.py", "--out_dir", planned).claim(overwrite=True) as folder:
        for name in planned:
            (folder_path / name).parent.mkdir(parents=True, exist_ok=True)
            (folder_path / name).write_text(content)
        folder.finish()


def test_new_and_empty_folders_are_claimed_and_the_manifest_lists_what_was_written(tmp_path):
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "new" / "deep", tmp_path / "empty"):
        write_run(path)
        manifest = json.loads((path / MANIFEST).read_text())
        assert manifest == {"program": "evaluate.py", "files": PLANNED}


def test_a_folder_the_program_did_not_write_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    folder = OutputFolder(tmp_path, "evaluate.py", "--out_dir", PLANNED)
    with pytest.raises(ScriptError, match="not written by evaluate.py"):
        folder.claim(overwrite=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]  # no lock, no manifest put there


def test_a_folder_of_another_program_is_refused(tmp_path):
    with OutputFolder(tmp_path, "interpolate.py", "--output", ["000001.png"]).claim(overwrite=False) as folder:
        (tmp_path / "000001.png").write_text("frame")
        folder.finish()
    with pytest.raises(ScriptError, match="not written by evaluate.py"):
        OutputFolder(tmp_path, "evaluate.py", "--out_dir", PLANNED).check(overwrite=True)


def test_earlier_results_need_overwrite_which_replaces_only_listed_files(tmp_path):
    write_run(tmp_path, ["a/output.png", "b/output.png", "results.json"])
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ScriptError, match="pass --overwrite"):
        OutputFolder(tmp_path, "evaluate.py", "--out_dir", PLANNED).check(overwrite=False)
    write_run(tmp_path, PLANNED, content="run 2")
    assert (tmp_path / "a/output.png").read_text() == "run 2"
    assert not (tmp_path / "b/output.png").exists()  # the earlier run's, not rewritten: removed
    assert (tmp_path / "notes.txt").read_text() == "mine"  # never listed: kept
    assert json.loads((tmp_path / MANIFEST).read_text())["files"] == PLANNED


def test_overwrite_never_replaces_an_unlisted_file_at_a_planned_path(tmp_path):
    write_run(tmp_path, ["results.json"])
    (tmp_path / "a").mkdir()
    (tmp_path / "a/output.png").write_text("put there by hand")
    with pytest.raises(ScriptError, match="a/output.png was not written by evaluate.py"):
        OutputFolder(tmp_path, "evaluate.py", "--out_dir", PLANNED).claim(overwrite=True)
    assert (tmp_path / "a/output.png").read_text() == "put there by hand"


def test_a_second_run_is_refused_while_another_process_holds_the_folder(tmp_path):
    write_run(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(tmp_path / LOCK)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        for overwrite in (False, True):
            with pytest.raises(ScriptError, match="another evaluate.py run is writing to"):
                OutputFolder(tmp_path, "evaluate.py", "--out_dir", PLANNED).claim(overwrite=overwrite)
    finally:
        holder.kill()
        holder.wait()
    write_run(tmp_path, content="after")  # the kernel dropped the lock with the process
    assert (tmp_path / "results.json").read_text() == "after"


def test_the_lock_is_exclusive_within_one_process_too(tmp_path):
    with OutputFolder(tmp_path, "evaluate.py", "--out_dir", PLANNED).claim(overwrite=False):
        with pytest.raises(ScriptError, match="another evaluate.py run"):
            OutputFolder(tmp_path, "evaluate.py", "--out_dir", PLANNED).claim(overwrite=True)
    OutputFolder(tmp_path, "evaluate.py", "--out_dir", PLANNED).claim(overwrite=True).release()


@pytest.mark.parametrize("spelling", ["{data}", "{data}/../data", "{data}/sub/..", "link", "{data}/sub", "{parent}"])
def test_outputs_overlapping_an_input_are_refused_however_spelled(tmp_path, monkeypatch, spelling):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(data, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    output = spelling.format(data=data, parent=tmp_path)
    with pytest.raises(ScriptError, match="--out_dir .* --data_dir"):
        refuse_aliased_paths({"out_dir": output, "data_dir": data})


def test_outputs_beside_the_input_are_accepted(tmp_path):
    (tmp_path / "data").mkdir()
    refuse_aliased_paths({"out_dir": tmp_path / "results", "data_dir": tmp_path / "data"})
    refuse_aliased_paths({"out_dir": tmp_path / "data" / ".." / "results", "data_dir": tmp_path / "data"})


def test_an_output_location_that_is_a_file_or_under_one_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ScriptError, match="--out_dir .*file is a file"):
        check_output_location(tmp_path / "file", "--out_dir")
    with pytest.raises(ScriptError, match="lies under the file"):
        check_output_location(tmp_path / "file" / "results", "--out_dir")
    check_output_location(tmp_path / "new" / "results", "--out_dir")
