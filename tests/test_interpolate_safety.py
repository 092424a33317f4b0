"""interpolate.py never loses or mixes what is on disk, and keeps a video's timing and orientation: --overwrite
replaces only its own earlier outputs, two runs into one output never mix, a full disk leaves earlier files intact,
rotated, variable-frame-rate and truncated videos are handled as a video user expects. All runs use the model-free
``--baseline average`` on tiny frames."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import interpolate
from test_interpolate import FAST, converted, leftovers, random_frames, read_folder, read_video, write_folder, write_video
from video.output import MARKER_NAME
from video.writers import PNGFolderWriter, VideoWriter


def run(*argv: str) -> dict:
    """The summary of a run that must succeed."""
    return converted([*FAST, *argv])


def refused(capsys, *argv: str) -> str:
    """The one-line error of a run that must fail; its exit status is not 0."""
    status = interpolate.main([*FAST, *argv])
    assert status not in (0, None)
    error = capsys.readouterr().err
    assert "Traceback" not in error
    return error.strip().splitlines()[-1]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def write_timed_video(path: Path, frames: list[np.ndarray], times: list[float], rotation: int = 0,
                      faststart: bool = False, codec: str = "libx264rgb") -> Path:
    """A clip whose frames are shown at ``times`` seconds (millisecond time base), optionally rotated for display."""
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream(codec, rate=25, options={"crf": "0" if codec == "libx264rgb" else "20",
                                                               "preset": "ultrafast"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "rgb24" if codec == "libx264rgb" else "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for frame, time in zip(frames, times):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts, video_frame.time_base = round(time * 1000), Fraction(1, 1000)
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [round(float(frame.time), 6) for frame in container.decode(video=0)]


# --- --overwrite replaces only what this program wrote --------------------------------------------------------


def test_overwrite_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    frames = write_folder(tmp_path / "frames", random_frames(3, 8, 12))
    output = tmp_path / "mine"
    output.mkdir()
    (output / "notes.txt").write_text("precious")
    Image.fromarray(random_frames(1, 8, 12)[0]).save(output / "000000.png")
    before = tree(tmp_path)
    message = refused(capsys, "--input", str(frames), "--output", str(output), "--overwrite")
    assert str(output) in message and "did not write" in message
    assert tree(tmp_path) == before


def test_overwrite_replaces_an_earlier_output_but_not_files_added_to_it(tmp_path, capsys):
    frames = write_folder(tmp_path / "frames", random_frames(3, 8, 12))
    output = tmp_path / "out"
    run("--input", str(frames), "--output", str(output))
    assert json.loads((output / MARKER_NAME).read_text())["frames"] == 5
    message = refused(capsys, "--input", str(frames), "--output", str(output))
    assert "exists; pass --overwrite" in message

    run("--input", str(frames), "--output", str(output), "--overwrite", "--factor", "4")
    assert sorted(os.listdir(output)) == [MARKER_NAME] + [f"{index:06d}.png" for index in range(9)]
    assert json.loads((output / MARKER_NAME).read_text())["frames"] == 9
    assert leftovers(tmp_path) == [] and sorted(os.listdir(tmp_path)) == ["frames", "out"]

    (output / "notes.txt").write_text("added by the user")
    before = tree(tmp_path)
    message = refused(capsys, "--input", str(frames), "--output", str(output), "--overwrite")
    assert "notes.txt" in message and "did not write" in message
    assert tree(tmp_path) == before


def test_empty_folder_is_a_valid_output(tmp_path):
    frames = write_folder(tmp_path / "frames", random_frames(2, 8, 12))
    (tmp_path / "empty").mkdir()
    run("--input", str(frames), "--output", str(tmp_path / "empty"))
    assert len(read_folder(tmp_path / "empty")) == 3


@pytest.mark.parametrize("output_name", ["out.mp4", "out"])
def test_a_killed_run_s_partial_output_is_deleted_by_the_next_run(tmp_path, output_name):
    """kill -9 leaves the hidden partial output; the next run into the same target deletes it once its process is
    gone, and keeps those of running processes and every other file."""
    frames = write_folder(tmp_path / "frames", random_frames(2, 8, 12))
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    target = Path(output_name)
    dead = tmp_path / f".{target.stem}.{finished.pid}-0123abcd.partial{target.suffix}"
    alive = tmp_path / f".{target.stem}.{os.getppid()}-89abcdef.partial{target.suffix}"
    for partial in (dead, alive):
        if target.suffix:
            partial.write_bytes(b"half a video")
        else:
            partial.mkdir()
            (partial / "000000.png").write_bytes(b"half a frame")
    (tmp_path / f".{target.stem}.notes").write_text("the user's")
    run("--input", str(frames), "--output", str(tmp_path / output_name))
    assert not dead.exists() and alive.exists() and (tmp_path / f".{target.stem}.notes").exists()
    assert (tmp_path / output_name).exists()


@pytest.mark.parametrize("spelling", ["frames", "frames/", "frames/../frames", "link", ".", "inner/..", "./"])
def test_output_that_is_or_contains_the_input_is_refused(tmp_path, monkeypatch, capsys, spelling):
    monkeypatch.chdir(tmp_path)
    write_folder(tmp_path / "frames", random_frames(3, 8, 12))
    (tmp_path / "link").symlink_to(tmp_path / "frames", target_is_directory=True)
    (tmp_path / "unrelated.txt").write_text("keep me")
    before = tree(tmp_path)
    message = refused(capsys, "--input", "frames", "--output", spelling, "--overwrite")
    assert f"--output {Path(spelling)} " in message and "--input frames" in message
    assert tree(tmp_path) == before and leftovers(tmp_path) == []


def test_video_input_inside_the_output_folder_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_video(tmp_path / "clip.mp4", random_frames(3, 8, 12))
    before = tree(tmp_path)
    assert "holds --input clip.mp4" in refused(capsys, "--input", "clip.mp4", "--output", "sub/..", "--overwrite")
    assert tree(tmp_path) == before


# --- two runs into one output never mix; only whole files are published ----------------------------------------


def test_two_video_writers_into_one_output_never_mix(tmp_path):
    output = tmp_path / "clip.mp4"
    first_frames, second_frames = random_frames(3, 16, 24, seed=1), random_frames(4, 16, 24, seed=9)
    first = VideoWriter(output, 24, 16, Fraction(10), codec="libx264rgb", preset="ultrafast", pix_fmt="rgb24")
    second = VideoWriter(output, 24, 16, Fraction(10), codec="libx264rgb", preset="ultrafast", pix_fmt="rgb24")
    assert first.temporary != second.temporary
    for frame in first_frames:
        first.write(frame)
    for frame in second_frames:
        second.write(frame)
    first.close()
    with pytest.raises(FileExistsError, match="appeared while this run was writing"):
        second.close()  # without --overwrite the second run must not replace the first one's output
    frames, _, _ = read_video(output)
    assert len(frames) == 3 and all(np.array_equal(a, b) for a, b in zip(frames, first_frames))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("replace", [False, True])
def test_two_folder_writers_into_one_output_never_mix(tmp_path, replace):
    output = tmp_path / "out"
    first, second = PNGFolderWriter(output, "a", replace), PNGFolderWriter(output, "b", replace)
    first_frames, second_frames = random_frames(5, 6, 8, seed=3), random_frames(3, 6, 8, seed=7)
    for frame in first_frames:
        first.write(frame)
    for frame in second_frames:
        second.write(frame)
    first.close()
    if replace:
        second.close()  # --overwrite: the second run's whole output replaces the first one's
        expected = second_frames
    else:
        with pytest.raises(FileExistsError, match="filled while this run was writing"):
            second.close()
        expected = first_frames
    frames = read_folder(output)
    assert len(frames) == len(expected) and all(np.array_equal(a, b) for a, b in zip(frames, expected))
    assert json.loads((output / MARKER_NAME).read_text())["frames"] == len(expected)
    assert leftovers(tmp_path) == [] and os.listdir(tmp_path) == ["out"]


# --- a full disk ---------------------------------------------------------------------------------------------


def fill_the_disk_after(monkeypatch, writes: int) -> None:
    """Every PNG save and video mux after the first ``writes`` fails as a full disk does."""
    count = [0]

    def full(filename):
        count[0] += 1
        if count[0] > writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filename))

    save = Image.Image.save

    def failing_save(image, fp, *args, **kwargs):
        full(fp)
        return save(image, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    open_container = av.open

    class FullContainer:
        def __init__(self, container):
            self._container = container

        def mux(self, packet):
            full(self._container.name)
            return self._container.mux(packet)

        def __getattr__(self, name):
            return getattr(self._container, name)

    def failing_open(file, mode="r", **kwargs):
        container = open_container(file, mode, **kwargs)
        return FullContainer(container) if mode == "w" else container

    monkeypatch.setattr(av, "open", failing_open)


@pytest.mark.parametrize("name", ["out.mp4", "out"])
def test_full_disk_says_so_and_keeps_the_earlier_output(tmp_path, monkeypatch, capsys, name):
    clip = write_video(tmp_path / "in.mp4", random_frames(6, 16, 24))
    output = tmp_path / name
    run("--input", str(clip), "--output", str(output), "--max_frames", "3")
    before = tree(tmp_path)
    fill_the_disk_after(monkeypatch, 2)
    message = refused(capsys, "--input", str(clip), "--output", str(output), "--overwrite")
    assert message == f"interpolate.py: error: no space left on {tmp_path}; {output} was not written and earlier " \
                      "files are untouched".replace("interpolate.py", interpolate.build_parser().prog)
    assert tree(tmp_path) == before and leftovers(tmp_path) == []


# --- timing, rotation and damaged videos -----------------------------------------------------------------------


def test_variable_frame_rate_keeps_the_real_timestamps(tmp_path, capsys):
    clip = write_timed_video(tmp_path / "vfr.mp4", random_frames(5, 16, 24), [0, 0.1, 0.5, 0.6, 1.2])
    run("--input", str(clip), "--output", str(tmp_path / "out.mp4"))
    assert frame_times(tmp_path / "out.mp4") == [0, 0.05, 0.1, 0.3, 0.5, 0.55, 0.6, 0.9, 1.2]
    assert "variable frame rate: frame 1 comes 100.0 ms after the one before" in capsys.readouterr().out
    run("--input", str(clip), "--output", str(tmp_path / "out4.mkv"), "--factor", "4")
    assert frame_times(tmp_path / "out4.mkv")[:6] == [0, 0.025, 0.05, 0.075, 0.1, 0.2]
    # A constant rate asked for: the frames follow it (and the log says the timestamps are not kept).
    run("--input", str(clip), "--output", str(tmp_path / "constant.mp4"), "--out_fps", "10")
    assert frame_times(tmp_path / "constant.mp4") == pytest.approx([index / 10 for index in range(9)])


def test_rotation_is_carried_into_a_video_and_applied_to_png_frames(tmp_path):
    originals = random_frames(3, 16, 24, seed=4)
    clip = write_timed_video(tmp_path / "portrait.mp4", originals, [0, 0.1, 0.2], rotation=-90)
    run("--input", str(clip), "--output", str(tmp_path / "out.mkv"), "--lossless")
    with av.open(str(tmp_path / "out.mkv")) as container:
        decoded = list(container.decode(video=0))
    assert [frame.rotation for frame in decoded] == [-90] * 5
    assert np.array_equal(decoded[2].to_ndarray(format="rgb24"), originals[1])  # stored as the input stores it
    run("--input", str(clip), "--output", str(tmp_path / "frames"))
    frames = read_folder(tmp_path / "frames")
    assert frames[0].shape == (24, 16, 3)  # upright: -90 degrees counter-clockwise is a quarter turn clockwise
    assert np.array_equal(frames[2], np.rot90(originals[1], -1))


def truncated_clip(tmp_path: Path) -> Path:
    """20 frames declared in the header (moov first), the file cut in half."""
    full = write_timed_video(tmp_path / "full.mp4", random_frames(20, 32, 32), [i / 10 for i in range(20)],
                             faststart=True, codec="libx264")
    content = full.read_bytes()
    full.unlink()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(content[: len(content) // 2])
    return truncated


def test_truncated_video_is_an_error_unless_allowed_and_then_a_loud_warning(tmp_path, capsys):
    clip = truncated_clip(tmp_path)
    output = tmp_path / "out.mp4"
    message = refused(capsys, "--input", str(clip), "--output", str(output))
    assert str(clip) in message and "--allow_truncated" in message
    assert not output.exists() and leftovers(tmp_path) == []
    summary = run("--input", str(clip), "--output", str(output), "--allow_truncated")
    decoded = summary["frames_in"]
    assert 2 <= decoded < 20 and summary["frames_out"] == len(read_video(output)[0]) == 2 * decoded - 1
    assert f"WARNING {clip} declares 20 frames but only {decoded} decoded" in capsys.readouterr().out
