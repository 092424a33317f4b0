"""YUV4MPEG2 in and out (video/y4m.py): header validation, known sample values, 8- and 10-bit round trips, and
interpolate.py in a real pipe (PyAV writes YUV4MPEG2 into the process, its output is read back), with the logs on
standard error and a broken pipe ending in one line and status 1."""
from __future__ import annotations

import io
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import interpolate
from video.y4m import Y4MHeader, Y4MSource, Y4MWriter, parse_header, rgb_to_yuv
from test_interpolate import converted

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = [sys.executable, str(REPO_ROOT / "interpolate.py"), "--baseline", "average", "--input", "-", "--output", "-"]


def smooth_frame(height: int, width: int, phase: float = 0.0) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = [np.sin(x / 9 + phase) + np.cos(y / 7), np.cos(x / 11 - y / 13 + phase), np.sin(y / 8 - phase)]
    return np.stack([np.rint(120 + 50 * c) for c in channels], axis=-1).astype(np.uint8)


def y4m_bytes(frames: list[np.ndarray], pix_fmt: str = "yuv420p", rate: int = 25, full_range: bool = False) -> bytes:
    """A YUV4MPEG2 stream written by FFmpeg's muxer (through PyAV)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="yuv4mpegpipe", options={"strict": "-1"}) as container:
        stream = container.add_stream("wrapped_avframe", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        stream.codec_context.color_range = 2 if full_range else 1  # the muxer writes it as XCOLORRANGE
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
                format=pix_fmt, dst_color_range=2 if full_range else 1)
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def read_y4m(data: bytes) -> tuple[list[np.ndarray], Fraction, str]:
    with av.open(io.BytesIO(data), format="yuv4mpegpipe") as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, Fraction(stream.average_rate), stream.codec_context.pix_fmt


def test_header_fields_are_read():
    header = parse_header(b"YUV4MPEG2 W64 H48 F30000:1001 Ip A1:1 C420p10 XYSCSS=420P10 XCOLORRANGE=FULL", "in")
    assert header == Y4MHeader(64, 48, Fraction(30000, 1001), (1, 1), "420", 10, True)
    assert parse_header(b"YUV4MPEG2 W3 H2", "in") == Y4MHeader(3, 2, None, (0, 0), "420", 8, False)
    assert parse_header(header.to_bytes()[:-1], "in") == header


@pytest.mark.parametrize("line, message", [
    (b"YUV4MPEG W64 H48 F25:1", "not a YUV4MPEG2 stream"),
    (b"YUV4MPEG2 H48 F25:1", "no W"),
    (b"YUV4MPEG2 W0 H48 F25:1", "W0 is not a size"),
    (b"YUV4MPEG2 W64 H99999 F25:1", "H99999 is not a size"),
    (b"YUV4MPEG2 W6x H48 F25:1", "W6x is not a size"),
    (b"YUV4MPEG2 W64 W64 H48 F25:1", "gives W twice"),
    (b"YUV4MPEG2 W64 H48 F25", "not of the form n:d"),
    (b"YUV4MPEG2 W64 H48 F25:0", "two positive numbers"),
    (b"YUV4MPEG2 W64 H48 F25:1 A-1:1", "not of the form n:d"),
    (b"YUV4MPEG2 W64 H48 F25:1 It", "interlaced"),
    (b"YUV4MPEG2 W64 H48 F25:1 C422", "C422 is not supported"),
    (b"YUV4MPEG2 W64 H48 F25:1 XCOLORRANGE=HALF", "XCOLORRANGE=HALF"),
    (b"YUV4MPEG2 W64 H48 F25:1 Z1", "unknown YUV4MPEG2 header field"),
    (b"YUV4MPEG2 W64  H48", "empty field"),
    (b"YUV4MPEG2 W64 H48 \xff", "not ASCII"),
])
def test_bad_headers_name_the_field(line, message):
    with pytest.raises(ValueError, match=message) as raised:
        parse_header(line, "clip.y4m")
    assert str(raised.value).startswith("clip.y4m")


@pytest.mark.parametrize("bit_depth, full_range, white, black", [
    (8, False, (235, 128), (16, 128)), (8, True, (255, 128), (0, 128)),
    (10, False, (940, 512), (64, 512)), (10, True, (1023, 512), (0, 512)),
])
def test_known_samples_of_white_and_black(bit_depth, full_range, white, black):
    header = Y4MHeader(2, 2, Fraction(25), chroma="420", bit_depth=bit_depth, full_range=full_range)
    dtype = np.uint8 if bit_depth == 8 else np.dtype("<u2")
    for level, (luma, chroma) in ((255, white), (0, black)):
        samples = np.frombuffer(rgb_to_yuv(np.full((2, 2, 3), level, np.uint8), header), dtype)
        assert samples.tolist() == [luma] * 4 + [chroma] * 2


@pytest.mark.parametrize("chroma, bit_depth, full_range", [("420", 8, False), ("444", 10, True), ("420", 10, False)])
def test_writer_and_reader_round_trip(tmp_path, chroma, bit_depth, full_range):
    frames = [smooth_frame(18, 30, phase) for phase in (0.0, 0.7, 1.4)]
    header = Y4MHeader(30, 18, Fraction(24000, 1001), (1, 1), chroma, bit_depth, full_range)
    with Y4MWriter(str(tmp_path / "clip.y4m"), header) as writer:
        for frame in frames:
            writer.write(frame)
    source = Y4MSource(str(tmp_path / "clip.y4m"))
    assert source.header == header and source.info.frame_count == 3
    read = list(source.timed_frames())
    assert [time for _, time in read] == [Fraction(index * 1001, 24000) for index in range(3)]
    tolerance = 2 if chroma == "444" else 12  # 4:2:0 averages chroma over 2x2 blocks
    for (frame, _), original in zip(read, frames):
        assert frame.dtype == (np.uint8 if bit_depth == 8 else np.uint16)  # read at the stream's own depth
        in_8_bit = frame.astype(float) / np.iinfo(frame.dtype).max * 255
        assert np.abs(in_8_bit - original).max() <= tolerance
    ffmpeg_frames, rate, _ = read_y4m((tmp_path / "clip.y4m").read_bytes())  # FFmpeg reads what we wrote
    assert len(ffmpeg_frames) == 3 and rate == Fraction(24000, 1001)


def test_y4m_file_in_and_out_keeps_format_and_doubles_the_rate(tmp_path):
    (tmp_path / "in.y4m").write_bytes(y4m_bytes([smooth_frame(16, 24, p) for p in (0, 0.3, 0.6)], "yuv420p10le"))
    summary = converted(["--baseline", "average", "--input", str(tmp_path / "in.y4m"),
                                "--output", str(tmp_path / "out.y4m")])
    frames, rate, pix_fmt = read_y4m((tmp_path / "out.y4m").read_bytes())
    assert (len(frames), summary["frames_out"], rate, pix_fmt) == (5, 5, 50, "yuv420p10le")
    assert (tmp_path / "out.y4m").read_bytes().startswith(b"YUV4MPEG2 W24 H16 F50:1 Ip A0:0 C420p10 ")


def test_truncated_y4m_is_an_error_unless_allowed(tmp_path, capsys):
    data = y4m_bytes([smooth_frame(16, 24, p) for p in (0, 0.3, 0.6)])
    (tmp_path / "cut.y4m").write_bytes(data[:-100])
    run = ["--baseline", "average", "--input", str(tmp_path / "cut.y4m"), "--output", str(tmp_path / "out.y4m")]
    status = interpolate.main(run)
    assert status == 1 and "ends inside frame 2" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cut.y4m"]
    assert converted([*run, "--allow_truncated"])["frames_out"] == 3


@pytest.mark.slow  # each starts a Python process that imports torch
@pytest.mark.parametrize("pix_fmt, full_range", [("yuv420p", False), ("yuv420p10le", True)])
def test_pipe_in_and_out(pix_fmt, full_range):
    frames = [smooth_frame(16, 32, phase) for phase in (0.0, 0.2, 0.4, 0.6)]
    process = subprocess.Popen([*SCRIPT, "--fps", "60"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=REPO_ROOT)
    output, errors = process.communicate(y4m_bytes(frames, pix_fmt, rate=25, full_range=full_range), timeout=120)
    assert process.returncode == 0, errors.decode()
    header = output.split(b"\n", 1)[0].decode()
    assert header.startswith("YUV4MPEG2 W32 H16 F60:1 ")
    assert f"C{'420p10' if pix_fmt.endswith('10le') else '420jpeg'}" in header
    assert f"XCOLORRANGE={'FULL' if full_range else 'LIMITED'}" in header
    read, rate, _ = read_y4m(output)
    assert (len(read), rate) == (8, 60)  # 3 intervals of 1/25 s hold 7.2 frames at 60 fps: times 0 .. 7/60
    assert np.abs(read[0].astype(int) - frames[0]).max() <= 12
    log = errors.decode()
    assert "summary: 4 frames in, 8 out" in log and "carries no audio" in log


@pytest.mark.slow
def test_broken_pipe_ends_in_one_line_and_status_1():
    data = y4m_bytes([smooth_frame(96, 128, 0.05 * index) for index in range(40)])
    process = subprocess.Popen(SCRIPT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=REPO_ROOT)

    def feed() -> None:
        try:
            process.stdin.write(data)
            process.stdin.close()
        except BrokenPipeError:
            pass

    feeder = threading.Thread(target=feed)
    feeder.start()
    assert process.stdout.read(9) == b"YUV4MPEG2"
    process.stdout.close()  # the consumer goes away
    errors = process.stderr.read().decode()
    feeder.join()
    assert process.wait(timeout=120) == 1
    assert "Traceback" not in errors
    last = errors.strip().splitlines()[-1]
    assert last.startswith("interpolate.py: error: --output -:") and "broken pipe" in last
