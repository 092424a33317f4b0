"""A frame-rate conversion, as ``interpolate.py`` runs it: :class:`Conversion` holds what to convert and how (one
field per flag; ``interpolate.py --help`` describes each) and :func:`convert` runs it.

Input: a video PyAV decodes, a raw ``.yuv`` file, a ``.y4m`` file or pipe, or a folder of numbered frames
(video/readers.py, video/y4m.py); output: a video, a YUV4MPEG2 stream or a folder of PNG frames
(video/writers.py), never seen half-written (video/output.py). N input frames give factor * (N - 1) + 1 output
frames, the originals untouched; scene cuts and duplicate pairs are copied instead of interpolated
(video/scenes.py); ``fps`` and ``dedup`` place frames on the midpoint grid (video/rate_plan.py, video/dedup.py).
Every check runs before anything is written.
"""
from __future__ import annotations

import errno
import logging
import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from itertools import chain, islice
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import av
import numpy as np
import torch
from tqdm import tqdm

from common.failures import INTERRUPTED_STATUS, RUN_FAILURE_STATUS, Interrupted, ScriptError, Terminated
from common.interpolator import Interpolator
from common.memory import heap_reuse_by_frame_size
from deploy.backends import Runtime, onnx_interpolator, pytorch_interpolator
from models.stmfnet import ModelConfig
from pipeline import cli
from pipeline.evaluation import baseline_predictor
from pipeline.run_paths import refuse_aliased_paths
from video.dedup import drop_held_frames
from video.interpolation import (
    frame_to_tensor,
    output_frame_count,
    output_time,
    raise_planned_frame_rate,
    tensor_to_frame,
)
from video.output import check_output
from video.pixel_format import Planes, default_output_format, png_bit_depth
from video.rate_plan import GridStats, factor_clock, frames_at_times, rate_clock
from video.readers import CodedFrame, FrameSource, SourceInfo, open_source
from video.scenes import DEFAULT_SCENE_THRESHOLD, DEFAULT_STATIC_THRESHOLD, GapCounts, plan_gaps
from video.summary import check_report_path, run_summary, summary_line, write_report
from video.tiling import check_tiling, tiled_interpolator
from video.writers import DEFAULT_CODEC, PNGFolderWriter, VideoWriter, check_encoder_options
from video.y4m import STDIO, Y4MHeader, Y4MSource, Y4MWriter, is_y4m_path

DEFAULT_CHECKPOINT = "train_results/checkpoint/model_epoch070.pth"  # the teacher script's default
# The teacher script wrote its mp4 at --out_fps 30 whatever the input; we keep it for inputs without a rate.
FALLBACK_FRAME_RATE = Fraction(30)

logger = logging.getLogger("interpolate")


@dataclass(frozen=True)
class Conversion:
    """What to convert and how; each field is the ``interpolate.py`` flag of its name, with its default."""

    input: str
    output: Optional[str] = None
    out_dir: str = "."
    net: str = "STMFNet"
    checkpoint: str = DEFAULT_CHECKPOINT
    allow_random: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    runtime: Runtime = field(default_factory=Runtime)
    baseline: Optional[str] = None
    device: str = "auto"
    gpu_id: int = 0
    factor: Optional[int] = None
    fps: Optional[Fraction] = None
    out_fps: Optional[float] = None
    input_fps: Optional[float] = None
    keep_duration: bool = True
    dedup: bool = False
    boundary: str = "pad"
    scene_threshold: Optional[float] = DEFAULT_SCENE_THRESHOLD
    static_threshold: Optional[float] = DEFAULT_STATIC_THRESHOLD
    tile: Optional[int] = None
    overlap: Optional[int] = None
    batch_size: Optional[int] = None
    size: Optional[str] = None
    pix_fmt: Optional[str] = None
    bit_depth: Optional[int] = None
    yuv_matrix: str = "bt601"
    max_frames: Optional[int] = None
    allow_truncated: bool = False
    codec: str = DEFAULT_CODEC
    crf: int = 0
    preset: str = "veryslow"
    out_pix_fmt: Optional[str] = None
    lossless: bool = False
    no_audio: bool = False
    overwrite: bool = False
    report: Optional[str] = None

    @classmethod
    def from_args(cls, args: Any) -> Conversion:
        """The conversion of ``interpolate.py``'s parsed flags (any object with the attributes)."""
        values = {item.name: getattr(args, item.name) for item in fields(cls) if item.name not in ("model", "runtime")}
        return cls(**values, model=ModelConfig.from_args(args), runtime=Runtime.from_args(args))

    def flags(self) -> dict[str, Any]:
        """Every setting by flag name (the runtime's among them), for ``pipeline.run_paths``."""
        flat = {item.name: getattr(self, item.name) for item in fields(self)}
        flat.update((item.name, getattr(self.runtime, item.name)) for item in fields(self.runtime))
        return flat


def convert(settings: Conversion) -> dict[str, object]:
    """Raise the frame rate of ``settings.input`` into ``settings.output`` and return the run's summary (also
    logged, and written to ``settings.report``). Bad settings or input raise :class:`ScriptError` before anything
    is written; a failure during the run raises it with exit status 1 once the partial output is removed; Ctrl-C
    and SIGTERM raise :class:`Interrupted`."""
    # Everything that can fail is checked before the output is opened: arguments, device, input, output, model.
    try:
        flags = settings.flags()
        # --out_dir only places the default output name (checked once it is known, below) unless it is a file.
        out_dir_file = None if settings.output is not None or Path(settings.out_dir).is_dir() else settings.out_dir
        refuse_aliased_paths(flags, written={"--out_dir": out_dir_file})
        settings = checked(settings)
        device = cli.select_device(settings.device, settings.gpu_id)
        settings.runtime.check(device)
        input_rate = cli.exact_frame_rate(settings.input_fps, "--input_fps") if settings.input_fps else None
        if is_y4m_path(settings.input):
            source: FrameSource = Y4MSource(settings.input, input_rate, settings.yuv_matrix, settings.allow_truncated)
        else:
            source = open_source(settings.input, settings.size, settings.pix_fmt, settings.bit_depth, input_rate,
                                 settings.yuv_matrix, settings.allow_truncated)
        check_rate(settings, source.info.frame_rate)
        rate = output_rate(settings, source.info.frame_rate)
        output = resolve_output(settings, source, rate)
        is_video = output.suffix != ""
        is_y4m = is_y4m_path(str(output))
        to_stdout = settings.output == STDIO
        refuse_aliased_paths(flags, written={"--output": output, "--out_dir": None}, read={"--input": source.info.path})
        target = output if to_stdout else check_output(output, source.info.path, is_video, settings.overwrite)
        if settings.report is not None:
            check_report_path(Path(settings.report), output, settings.overwrite)
        if is_video:
            output_format = output_pixel_format(settings, source.info)
        else:
            png_bits = png_bit_depth(settings.out_pix_fmt, source.info.bit_depth)
            output_format = "rgb24" if png_bits == 8 else "rgb48be"
        log_colour(source.info, output_format)
        input_times: list[Optional[Fraction]] = []
        input_planes: deque[Optional[Planes]] = deque()
        coded = source.coded_frames()
        slotted = bool(settings.fps or settings.dedup) and bool(settings.input_fps or source.info.frame_rate is None)
        if slotted:  # the grid counts in seconds: without times of its own (or with --input_fps) frame k is at k / rate
            coded = slot_times(coded, source.info.frame_rate or Fraction(1))
        frames = recorded(coded, input_times, input_planes)
        if settings.max_frames is not None:
            frames = islice(frames, settings.max_frames)
        head = list(islice(frames, 2))
        if len(head) < 2:
            raise ValueError(f"{source.info.path} has {len(head)} frame(s); interpolation needs at least 2")
        interpolate = build_interpolator(settings, device)
    except ScriptError:
        raise
    except (OSError, ValueError, av.error.FFmpegError) as error:  # missing/unreadable files: OSError
        raise ScriptError(error_message(error)) from error

    info = source.info
    # The input's own times are kept unless a constant rate is asked for (or the input has no times).
    keep_times = (
        settings.keep_duration and settings.out_fps is None and settings.input_fps is None and None not in input_times
        and not slotted
    )
    is_container = is_video and not is_y4m
    copy_audio = (is_container and info.has_audio and not settings.no_audio and settings.max_frames is None
                  and keep_times)
    if info.has_audio and not copy_audio:
        logger.info("audio is not copied (only with the duration kept, a video output that is not YUV4MPEG2, no "
                    "--max_frames/--no_audio)")
    if info.kind == "y4m":
        logger.info("the input is YUV4MPEG2, which carries no audio: the output has none")
    if info.kind == "video":
        logger.info("output times: %s", "the input's timestamps, new frames in between" if keep_times else
                    f"a constant {format_rate(rate)} fps (the input's timestamps are not kept)")
    turns = 0
    if info.rotation and is_container:
        logger.info("the input's display rotation (%d degrees) is carried into the output", info.rotation)
    elif info.rotation and info.rotation % 90 == 0:
        turns = info.rotation // 90
        logger.info("the frames are turned upright: PNG frames keep no rotation, so the input's display rotation "
                    "(%d degrees) is applied to them", info.rotation)
    elif info.rotation:
        logger.warning("the input's display rotation (%d degrees) is not a multiple of 90 and is not applied to the "
                       "PNG frames", info.rotation)
    time_base = None
    if settings.fps is not None:
        time_base = 1 / settings.fps
    elif keep_times:
        time_base = (info.time_base or 1 / info.frame_rate) / settings.factor
    known_counts = [count for count in (info.frame_count, settings.max_frames) if count is not None]
    input_count = min(known_counts) if known_counts else None
    logger.info(
        "%s: %dx%d, %s frames at %s fps -> %s -> %s at %s fps (%s on %s%s)",
        info.path, info.width, info.height, input_count or "?",
        format_rate(info.frame_rate) if info.frame_rate else "?",
        f"{settings.factor}x" if settings.fps is None else "the 1/8 midpoint grid",
        "standard output" if to_stdout else output, format_rate(rate), model_name(settings), device,
        f", tiles {settings.tile} overlap {settings.overlap}" if settings.tile else "",
    )
    tensors = (frame_to_tensor(frame, device) for frame in chain(head, frames))
    synthesised, gaps, grid, kept_indices = [0], GapCounts(), GridStats(), []
    try:
        if is_y4m:
            width, height = (info.height, info.width) if turns % 2 else (info.width, info.height)
            header = source.header if isinstance(source, Y4MSource) else Y4MHeader(width, height)
            writer = Y4MWriter(str(target), replace(header, width=width, height=height, frame_rate=rate),
                               settings.yuv_matrix, replace=settings.overwrite)
        elif is_video:
            writer = VideoWriter(
                target, info.width, info.height, rate, codec=settings.codec, crf=settings.crf, preset=settings.preset,
                pix_fmt=output_format, lossless=settings.lossless, audio_from=info.path if copy_audio else None,
                rotation=info.rotation, time_base=time_base, replace=settings.overwrite, colour=info.colour,
                hdr=info.hdr,
            )
        else:
            writer = PNGFolderWriter(target, info.path, replace=settings.overwrite, bit_depth=png_bits)
    except (av.error.FFmpegError, ValueError) as error:
        hint = " (the audio is copied as it is: try --no_audio or another container)" if copy_audio else ""
        raise ScriptError(
            f"the {settings.codec} encoder cannot write {output} with its settings ({format_rate(rate)} fps from "
            f"--fps/--out_fps/--input_fps/--factor, --preset {settings.preset}, --crf {settings.crf}, --out_pix_fmt "
            f"{output_format}): {getattr(error, 'strerror', None) or error}{hint}"
        ) from error
    except OSError as error:
        raise ScriptError(f"cannot write {output}: {error.strerror or error}") from error
    except (KeyboardInterrupt, Terminated) as error:  # the writer removed what it had begun
        raise interrupted(output, error) from error

    started = time.perf_counter()
    try:
        with writer, tqdm(total=expected_output_count(settings, input_count, info.frame_rate),
                          unit="frame", desc="interpolating", dynamic_ncols=True) as progress:
            frames_out = timed_output(settings, tensors, input_times, counting(interpolate, synthesised), gaps, grid,
                                      kept_indices, keep_times)
            # Originals pass through as coded when the output keeps their format (the --factor chain only: there
            # every factor-th output frame is the next input frame).
            pass_through = (isinstance(writer, VideoWriter) and writer.pix_fmt == info.pix_fmt and settings.fps is None
                            and not settings.dedup)
            for index, (frame, seconds) in enumerate(frames_out):
                if not torch.isfinite(frame).all():
                    raise ValueError(non_finite_message(index, settings))
                planes = input_planes.popleft() if index % settings.factor == 0 and pass_through else None
                pixels = tensor_to_frame(frame, writer.sample_dtype)
                writer.write(np.rot90(pixels, turns) if turns else pixels, seconds, planes)
                progress.update()
    except (OSError, ValueError, av.error.FFmpegError) as error:  # the writer has removed its partial output
        raise ScriptError(error_message(error, output), RUN_FAILURE_STATUS) from error
    except (KeyboardInterrupt, Terminated) as error:
        writer.abort()  # the writer's own exit has done so, unless the signal came just before it
        raise interrupted(output, error) from error
    elapsed = time.perf_counter() - started

    if settings.dedup:  # the planner numbered the distinct frames; the summary names input frames
        gaps.cuts = [kept_indices[index + 1] - 1 for index in gaps.cuts]
    summary = run_summary(info.path, output, input_times, writer.frames_written, rate,
                          settings.factor if settings.fps is None else None, gaps, synthesised[0], elapsed)
    if settings.fps is not None or settings.dedup:
        summary.update(worst_time_error_seconds=float(grid.worst_error_seconds),
                       worst_time_error_of_interval=float(grid.worst_error_of_interval),
                       held_frames_dropped=len(input_times) - len(kept_indices) if settings.dedup else 0)
        logger.info("every output frame within %.2f ms (%s of an input interval) of its time; %d held frame(s) "
                    "dropped", 1000 * summary["worst_time_error_seconds"], grid.worst_error_of_interval,
                    summary["held_frames_dropped"])
    logger.info(
        "%d frames in, %d frames out at %s fps in %.1f s (%.2f output frames/s); wrote %s",
        summary["frames_in"], summary["frames_out"], format_rate(rate), elapsed, summary["frames_per_second"],
        "standard output" if settings.output == STDIO else output,
    )
    print(summary_line(summary), file=sys.stderr)
    if settings.report is not None:
        try:
            write_report(Path(settings.report), summary, settings.overwrite)
        except OSError as error:
            raise ScriptError(f"{output} was written, but not the report: {error_message(error)}",
                              RUN_FAILURE_STATUS) from error
        logger.info("wrote the summary to %s", settings.report)
    return summary


def interrupted(output: Optional[Path], signal: BaseException) -> Interrupted:
    """Ctrl-C or SIGTERM during the run, once the partial output has been removed."""
    return Interrupted(f"interrupted; {output if output else 'the output'} was not written",
                       getattr(signal, "code", INTERRUPTED_STATUS))


def format_rate(rate: Fraction) -> str:
    return str(int(rate)) if rate.denominator == 1 else f"{float(rate):.3f}".rstrip("0")


def output_rate(settings: Conversion, input_rate: Optional[Fraction]) -> Fraction:
    if settings.fps is not None:
        return settings.fps
    if settings.out_fps is not None:
        return cli.exact_frame_rate(settings.out_fps, "--out_fps")
    if input_rate is None:
        logger.info("the input has no frame rate and --input_fps is not set: writing %s fps", FALLBACK_FRAME_RATE)
        return FALLBACK_FRAME_RATE
    return input_rate * settings.factor if settings.keep_duration else input_rate


def model_name(settings: Conversion) -> str:
    """What made the frames, for the default output name: a baseline, the ONNX file, or --net."""
    if settings.baseline:
        return f"baseline_{settings.baseline}"
    runtime = settings.runtime
    return f"onnx-{Path(runtime.onnx).stem}" if runtime.backend == "onnxruntime" else settings.net


def non_finite_message(index: int, settings: Conversion) -> str:
    """Why a run stops at a NaN or infinite output frame: black frames would be written without a word."""
    runtime = settings.runtime
    weights = f"--onnx {runtime.onnx}" if runtime.backend == "onnxruntime" else f"--checkpoint {settings.checkpoint}"
    return (f"output frame {index} came out of the network with NaN or infinite values; the weights ({weights}) "
            "are damaged or overflow on this input, and no output was written")


def resolve_output(settings: Conversion, source: FrameSource, rate: Fraction) -> Path:
    """--output, or the teacher script's ``<seq>_<W>x<H>_<fps>fps_<net>.mp4`` in --out_dir."""
    if settings.output is not None:
        return Path(settings.output)
    info = source.info
    sequence = info.path.stem.split("-")[0]
    name = f"{sequence}_{info.width}x{info.height}_{format_rate(rate)}fps_{model_name(settings)}.mp4"
    return Path(settings.out_dir) / name


def build_interpolator(settings: Conversion, device: torch.device) -> Interpolator:
    """The baseline or the network with its weights, wrapped for tiles when --tile is given."""
    runtime = settings.runtime
    if settings.baseline is not None:
        interpolate = baseline_predictor(settings.baseline)
    elif runtime.backend == "onnxruntime":
        interpolate = onnx_interpolator(runtime.onnx, device)
        logger.info("running %s with ONNX Runtime", runtime.onnx)
    else:
        checkpoint = cli.resolve_checkpoint(settings.checkpoint, DEFAULT_CHECKPOINT, settings.allow_random)
        loaded = cli.load_model(settings.net, checkpoint, settings.model, device)
        if loaded.checkpoint is None:
            logger.warning("%s has RANDOM weights (--allow_random): the frames are meaningless", settings.net)
        else:
            logger.info("loaded %s weights from %s", settings.net, loaded.checkpoint)
        interpolate = pytorch_interpolator(loaded.model, runtime.precision, runtime.compile)
    interpolate = heap_reuse_by_frame_size(interpolate)
    if settings.tile is not None:
        interpolate = tiled_interpolator(interpolate, settings.tile, settings.overlap, settings.batch_size or 1)
    return interpolate


def counting(interpolate: Interpolator, counter: list[int]) -> Interpolator:
    """``interpolate``, adding one to ``counter[0]`` per call (the summary's synthesised frames)."""
    def run(*frames: torch.Tensor) -> torch.Tensor:
        counter[0] += 1
        return interpolate(*frames)

    return run


def recorded(coded_frames: Iterable[CodedFrame], times: list[Optional[Fraction]],
             planes: deque[Optional[Planes]]) -> Iterator[np.ndarray]:
    """The frames of (frame, time, planes), appending each time to ``times`` and its planes to ``planes`` (taken
    off again as the original is written) as the frame is read."""
    for frame, seconds, coded in coded_frames:
        times.append(seconds)
        planes.append(coded)
        yield frame


def output_pixel_format(settings: Conversion, info: SourceInfo) -> str:
    """The video output's pixel format: --lossless's RGB, --out_pix_fmt, or one keeping the input's bit depth."""
    if settings.lossless:
        if info.bit_depth > 8:
            raise ValueError(f"--lossless writes 8-bit RGB, but {info.path} is {info.bit_depth}-bit; drop "
                             f"--lossless (the default --crf 0 is lossless in the input's own format)")
        return "rgb24"
    if settings.out_pix_fmt is not None:
        try:
            av.VideoFormat(settings.out_pix_fmt)
        except ValueError as error:
            raise ValueError(f"--out_pix_fmt {settings.out_pix_fmt!r} is not a pixel format FFmpeg knows") from error
        return settings.out_pix_fmt
    try:
        return default_output_format(settings.codec, info.pix_fmt, info.bit_depth, info.width, info.height)
    except av.codec.codec.UnknownCodecError as error:
        raise ValueError(f"--codec {settings.codec} is not an FFmpeg video encoder") from error


def log_colour(info: SourceInfo, output_format: str) -> None:
    """Say how the input's colours were read and what the output keeps."""
    if info.colour is not None:
        logger.info("%s: %d-bit %s, %s", info.path, info.bit_depth, info.pix_fmt, info.colour.describe())
    else:
        logger.info("%s: %d-bit RGB (%s)", info.path, info.bit_depth, info.pix_fmt)
    if output_format == info.pix_fmt and info.colour is not None:
        logger.info("output %s: the original frames are passed through untouched", output_format)
    else:
        logger.info("output %s, converted from RGB", output_format)


def slot_times(coded_frames: Iterable[CodedFrame], rate: Fraction) -> Iterator[CodedFrame]:
    """The frames at constant-rate times, ``index / rate``, whatever their own."""
    for index, (frame, _, planes) in enumerate(coded_frames):
        yield frame, Fraction(index) / rate, planes


def expected_output_count(settings: Conversion, input_count: Optional[int], input_rate: Optional[Fraction]
                          ) -> Optional[int]:
    """Output frames of a constant-rate input of ``input_count`` frames (the progress bar's total); None if unknown."""
    if input_count is None:
        return None
    if settings.fps is None:
        return output_frame_count(input_count, settings.factor)
    return math.floor((input_count - 1) / input_rate * settings.fps) + 1 if input_rate else None


def timed_output(settings: Conversion, tensors: Iterable[torch.Tensor], input_times: list[Optional[Fraction]],
                 interpolate: Interpolator, gaps: GapCounts, grid: GridStats, kept_indices: list[int],
                 keep_times: bool) -> Iterator[tuple[torch.Tensor, Optional[Fraction]]]:
    """The output frames with their times (None: the writer's constant rate). ``--factor`` alone chains 2x passes
    (video/interpolation.py); ``--fps`` and ``--dedup`` take each output time from the midpoint grid
    (video/rate_plan.py), built with ``--dedup`` from the distinct frames only (video/dedup.py)."""
    if settings.fps is None and not settings.dedup:
        planned = plan_gaps(tensors, settings.scene_threshold, settings.static_threshold, gaps, input_times)
        frames = raise_planned_frame_rate(planned, interpolate, settings.factor, settings.boundary)
        return ((frame, output_time(input_times, index, settings.factor) if keep_times else None)
                for index, frame in enumerate(frames))
    grid_times = input_times
    if settings.dedup:
        grid_times = []
        tensors = drop_held_frames(tensors, input_times, settings.static_threshold, kept_indices, grid_times)
    planned = plan_gaps(tensors, settings.scene_threshold, settings.static_threshold, gaps, grid_times)
    clock = rate_clock(settings.fps) if settings.fps is not None else factor_clock(settings.factor)
    frames = frames_at_times(planned, grid_times, input_times, clock, interpolate, settings.boundary, grid)
    write_times = settings.fps is not None or keep_times
    return ((frame, seconds if write_times else None) for frame, seconds in frames)


def checked(settings: Conversion) -> Conversion:
    """``settings`` with the defaults that depend on other flags filled in (--overlap, --factor); ValueError naming
    the flag for settings that cannot work together."""
    if settings.tile is not None:
        settings = replace(settings, overlap=settings.tile // 4 if settings.overlap is None else settings.overlap)
        check_tiling(settings.tile, settings.overlap)
    if settings.max_frames is not None and settings.max_frames < 2:
        raise ValueError(f"--max_frames must be at least 2, got {settings.max_frames}")
    check_encoder_options(settings.codec, settings.crf, settings.preset, settings.lossless)
    if settings.fps is not None:
        for flag, given in (("--factor", settings.factor is not None), ("--out_fps", settings.out_fps is not None),
                            ("--keep_duration false", not settings.keep_duration)):
            if given:
                raise ValueError(f"--fps and {flag} cannot be used together: --fps sets the output rate")
    if settings.dedup and settings.static_threshold is None:
        raise ValueError("--dedup finds held frames with the static-pair test: give --static_threshold a number")
    if settings.dedup and not settings.keep_duration:
        raise ValueError("--dedup keeps the timing: it cannot be used with --keep_duration false")
    if settings.output == STDIO and sys.stdout.isatty():
        raise ValueError("--output -: standard output is a terminal; pipe it into a program or a file")
    return replace(settings, factor=settings.factor or 2)


def check_rate(settings: Conversion, input_rate: Optional[Fraction]) -> None:
    """Refuse an --fps that is not interpolation (at or below the input rate; equal is allowed with --dedup)."""
    if settings.fps is None:
        return
    if input_rate is None:
        raise ValueError("--fps needs the input's frame rate, which it does not give: pass --input_fps")
    if settings.fps < input_rate or (settings.fps == input_rate and not settings.dedup):
        raise ValueError(f"--fps {format_rate(settings.fps)} is not above the input's {format_rate(input_rate)} fps: "
                         "that is not interpolation")


def error_message(error: BaseException, output: Optional[Path] = None) -> str:
    """One line for an expected failure: the file or flag, and what went wrong."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = output.resolve().parent if output else (Path(error.filename).parent if error.filename else "the disk")
        what = f"; {output} was not written and earlier files are untouched" if output else ""
        return f"no space left on {where}{what}"
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)
