"""interpolate.py end to end on tagged, deep and HDR inputs: the original frames come out exactly as the input's
decoded Y'CbCr samples, the colour tags, bit depth and HDR metadata are kept, 16-bit PNGs stay 16-bit, and an
encoder that cannot keep the depth is refused. The clips are built here with PyAV, plane by plane."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import av
import numpy as np
import pytest

import interpolate

# Saturated R, G, B, yellow, cyan, magenta at 8 bits: the colours a chroma round trip through RGB damages most.
BLOCK_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]
LOSSLESS = ["--baseline", "average", "--crf", "0", "--preset", "ultrafast", "--scene_threshold", "off",
            "--static_threshold", "off"]
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"


def planes_of(frame: av.VideoFrame) -> list[np.ndarray]:
    dtype = np.dtype(np.uint8 if frame.format.components[0].bits == 8 else "<u2")
    return [np.frombuffer(memoryview(plane), dtype).reshape(plane.height, -1)[:, : plane.width].copy()
            for plane in frame.planes]


def frame_of(planes: list[np.ndarray], pix_fmt: str) -> av.VideoFrame:
    frame = av.VideoFrame(planes[0].shape[1], planes[0].shape[0], pix_fmt)
    for plane, samples in zip(frame.planes, planes):
        np.frombuffer(memoryview(plane), samples.dtype).reshape(plane.height, -1)[:, : plane.width] = samples
    return frame


def block_frames(count: int, height: int, width: int) -> list[np.ndarray]:
    """Vertical bars of the saturated colours, moving 3 pixels per frame."""
    frames = []
    for index in range(count):
        frame = np.zeros((height, width, 3), np.uint8)
        for bar, colour in enumerate(BLOCK_COLOURS):
            start = (bar * 11 + index * 3) % width
            frame[:, start : start + 10] = colour
        frames.append(frame)
    return frames


def gradient_planes(count: int, height: int, width: int) -> list[list[np.ndarray]]:
    """10-bit 4:2:0 planes of moving ramps that use all ten bits (mid-grey chroma ramps, no clipping in RGB)."""
    y, x = np.mgrid[0:height, 0:width]
    clips = []
    for index in range(count):
        luma = 200 + (x * 7 + y * 3 + index * 13) % 600
        chroma_y, chroma_x = y[::2, ::2] // 2, x[::2, ::2] // 2
        cb = 480 + (chroma_x * 5 + index * 3) % 64
        cr = 480 + (chroma_y * 7 + index * 5) % 64
        clips.append([plane.astype(np.uint16) for plane in (luma, cb, cr)])
    return clips


def write_clip(path: Path, frames: list[av.VideoFrame], pix_fmt: str, tags: tuple[int, int, int, int],
               codec: str = "libx264", x265_params: str = "") -> Path:
    """A lossless clip with the colour tags (primaries, transfer, matrix, range)."""
    options = ({"qp": "0", "preset": "ultrafast"} if codec == "libx264"
               else {"preset": "ultrafast", "x265-params": "lossless=1:log-level=error" + x265_params})
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10, options=options)
        stream.height, stream.width, stream.pix_fmt = frames[0].height, frames[0].width, pix_fmt
        context = stream.codec_context
        context.color_primaries, context.color_trc, context.colorspace, context.color_range = tags
        for frame in frames:
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_clip(path: Path) -> tuple[tuple, list[list[np.ndarray]], Optional[dict]]:
    """(primaries, transfer, matrix, range, pix_fmt), every frame's planes, the first frame's HDR side data."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        tags = (context.color_primaries, context.color_trc, context.colorspace, context.color_range, context.pix_fmt)
        decoded = list(container.decode(stream))
    kinds = av.sidedata.sidedata.Type
    side_data = {kind.name: bytes(decoded[0].side_data[kind]) for kind in (kinds.MASTERING_DISPLAY_METADATA,
                 kinds.CONTENT_LIGHT_LEVEL) if kind in decoded[0].side_data}
    return tags, [planes_of(frame) for frame in decoded], side_data


def assert_originals_equal(inputs: list[list[np.ndarray]], outputs: list[list[np.ndarray]], factor: int) -> None:
    assert len(outputs) == factor * (len(inputs) - 1) + 1
    for index, planes in enumerate(inputs):
        for plane, output_plane in zip(planes, outputs[index * factor]):
            assert output_plane.dtype == plane.dtype and np.array_equal(output_plane, plane), f"original {index}"


def bt709_blocks(count: int) -> list[av.VideoFrame]:
    return [av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
        format="yuv420p", dst_colorspace="itu709", dst_color_range=1) for frame in block_frames(count, 48, 64)]


def test_bt709_limited_range_originals_are_exact_and_tagged(tmp_path, capsys):
    clip = write_clip(tmp_path / "bt709.mp4", bt709_blocks(4), "yuv420p", (1, 1, 1, 1))
    output = tmp_path / "out.mp4"
    interpolate.main([*LOSSLESS, "--input", str(clip), "--output", str(output)])
    assert "BT.709 matrix (tagged), limited range (tagged)" in capsys.readouterr().out
    input_tags, inputs, _ = read_clip(clip)
    output_tags, outputs, _ = read_clip(output)
    assert input_tags == output_tags == (1, 1, 1, 1, "yuv420p")
    assert_originals_equal(inputs, outputs, 2)


def test_untagged_video_is_read_with_the_guessed_matrix_and_tagged_with_it(tmp_path, capsys):
    clip = write_clip(tmp_path / "plain.mp4", bt709_blocks(3), "yuv420p", (2, 2, 2, 0))
    output = tmp_path / "out.mp4"
    interpolate.main([*LOSSLESS, "--input", str(clip), "--output", str(output)])
    assert "BT.601 matrix (guessed from the size), limited range (from the pixel format)" in capsys.readouterr().out
    output_tags, outputs, _ = read_clip(output)
    assert output_tags == (2, 2, 6, 1, "yuv420p")  # 64x48: standard definition, BT.601
    assert_originals_equal(read_clip(clip)[1], outputs, 2)


@pytest.mark.parametrize("factor", [2, 4])
def test_10_bit_bt2020_hlg_stays_10_bit_tagged_and_exact(tmp_path, factor):
    planes = gradient_planes(4, 32, 48)
    hlg = (9, 18, 9, 1)  # BT.2020 primaries, HLG transfer, BT.2020 matrix, limited range
    clip = write_clip(tmp_path / "hlg.mp4", [frame_of(p, "yuv420p10le") for p in planes], "yuv420p10le", hlg)
    output = tmp_path / "out.mp4"
    interpolate.main([*LOSSLESS, "--factor", str(factor), "--input", str(clip), "--output", str(output)])
    output_tags, outputs, _ = read_clip(output)
    assert output_tags == (*hlg, "yuv420p10le")
    assert_originals_equal(read_clip(clip)[1], outputs, factor)
    # The new frames are made at 10 bits: the average of two ramps lands on every level, not only multiples of 4.
    middle = outputs[factor // 2][0].astype(int)
    assert np.count_nonzero(middle % 4) > middle.size // 2


def test_10_bit_yuv_file_gives_10_bit_video_with_exact_originals(tmp_path):
    planes = gradient_planes(3, 32, 48)
    yuv = tmp_path / "seq_48x32_25fps_10bit.yuv"
    yuv.write_bytes(b"".join(plane.astype("<u2").tobytes() for frame in planes for plane in frame))
    output = tmp_path / "out.mkv"
    interpolate.main([*LOSSLESS, "--input", str(yuv), "--output", str(output), "--yuv_matrix", "bt709"])
    output_tags, outputs, _ = read_clip(output)
    assert output_tags[2:] == (1, 1, "yuv420p10le")  # the matrix and range it was read with
    assert_originals_equal(planes, outputs, 2)


def write_png_16(path: Path, rgb: np.ndarray) -> None:
    encoder = av.CodecContext.create("png", "w")
    encoder.height, encoder.width, encoder.pix_fmt = *rgb.shape[:2], "rgb48be"
    image = av.VideoFrame.from_ndarray(rgb, format="rgb48le").reformat(format="rgb48be")
    path.write_bytes(b"".join(bytes(packet) for packet in encoder.encode(image) + encoder.encode(None)))


def read_png_16(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name in ("rgb48be", "rgb48le"), f"{path} is {frame.format.name}"
        return frame.to_ndarray(format="rgb48le")


def test_16_bit_png_folder_gives_16_bit_pngs(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    generator = np.random.default_rng(0)
    frames = [generator.integers(0, 65536, (12, 20, 3), dtype=np.uint16) for _ in range(3)]
    for index, frame in enumerate(frames):
        write_png_16(folder / f"{index:03d}.png", frame)
    output = tmp_path / "out"
    interpolate.main(["--baseline", "average", "--input", str(folder), "--output", str(output), "--input_fps", "10",
                      "--scene_threshold", "off", "--static_threshold", "off"])
    written = [read_png_16(output / f"{index:06d}.png") for index in range(5)]
    for index, frame in enumerate(frames):
        assert np.array_equal(written[2 * index], frame)
    expected_middle = (frames[0].astype(np.float64) + frames[1]) / 2
    assert np.abs(written[1] - expected_middle).max() <= 1.0  # averaged at 16 bits, not 8 (257 levels apart)


def test_hdr_metadata_is_carried_by_libx265(tmp_path, capsys):
    pq = (9, 16, 9, 1)  # BT.2020, PQ
    params = f":master-display={MASTER_DISPLAY}:max-cll=1000,400"
    clip = write_clip(tmp_path / "pq.mkv", [frame_of(p, "yuv420p10le") for p in gradient_planes(3, 32, 64)],
                      "yuv420p10le", pq, codec="libx265", x265_params=params)
    output = tmp_path / "out.mkv"
    interpolate.main([*LOSSLESS, "--codec", "libx265", "--input", str(clip), "--output", str(output)])
    input_tags, inputs, input_hdr = read_clip(clip)
    output_tags, outputs, output_hdr = read_clip(output)
    assert output_tags == input_tags == (*pq, "yuv420p10le")
    assert set(output_hdr) == {"MASTERING_DISPLAY_METADATA", "CONTENT_LIGHT_LEVEL"} and output_hdr == input_hdr
    assert_originals_equal(inputs, outputs, 2)
    capsys.readouterr()
    interpolate.main([*LOSSLESS, "--input", str(clip), "--output", str(tmp_path / "x264.mkv")])
    log = capsys.readouterr().out
    assert "HDR metadata (mastering display G(13250,34500)" in log and "is not carried" in log
    assert read_clip(tmp_path / "x264.mkv")[2] == {}


def test_encoder_that_cannot_keep_the_depth_is_refused(tmp_path, capsys):
    clip = write_clip(tmp_path / "deep.mp4", [frame_of(p, "yuv420p10le") for p in gradient_planes(2, 32, 48)],
                      "yuv420p10le", (9, 18, 9, 1))
    for flags, named in ((["--codec", "mpeg4"], "--codec mpeg4 cannot write 10-bit"), (["--lossless"], "--lossless")):
        output = tmp_path / "out.mp4"
        status = interpolate.main([*LOSSLESS, *flags, "--input", str(clip), "--output", str(output)])
        assert status == 2 and named in capsys.readouterr().err
        assert not output.exists()
    output = tmp_path / "eight.mp4"  # --out_pix_fmt overrides
    interpolate.main([*LOSSLESS, "--codec", "mpeg4", "--out_pix_fmt", "yuv420p", "--input", str(clip),
                      "--output", str(output)])
    assert read_clip(output)[0][4] == "yuv420p"
