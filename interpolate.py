"""Raise the frame rate of a video 2x, 4x or 8x with ST-MFNet (teacher), ST-MFNet Mini (student) or a baseline.

    python interpolate.py --net student_STMFNet --checkpoint stmfnet_mini.pth \
        --input assets/bbb_448x256.mp4 --output bbb_50fps.mp4
    python interpolate.py --net STMFNet --checkpoint model.pth --yuv_path Seq_1920x1080_60fps_10bit_420.yuv \
        --tile 512 --overlap 64 --out_dir results
    python interpolate.py --baseline average --input frames_in/ --output frames_out/ --factor 4 --input_fps 30
    ffmpeg -i in.mkv -f yuv4mpegpipe - | python interpolate.py --input - --output - --fps 60 | ffmpeg -i - out.mkv

Input: a video PyAV decodes, a raw ``.yuv`` file or a folder of numbered frames; output: a video (container from
the suffix) or, for a path without a suffix, a folder of PNG frames (without --output: the teacher script's name
``<seq>_<W>x<H>_<fps>fps_<net>.mp4`` in --out_dir). N input frames give factor * (N - 1) + 1 output frames, the
originals untouched; scene cuts and duplicate pairs are copied instead of interpolated (video/scenes.py); the
input's timestamps, audio and display rotation are kept when the duration is, its colour tags and bit depth always
(HDR metadata with libx265; docs/video_io.md). Every check runs before anything is written and the output appears
only once complete (video/output.py); expected failures end in one line on stderr with exit status 2 (start-up) or
1 (during the run, a closed pipe included), --debug shows the traceback.
--fps RATE places frames at multiples of 1/RATE, each the nearest frame of the 1/8 midpoint grid
(video/rate_plan.py); --dedup replaces held frames (video/dedup.py); ``-`` as --input or --output is a
YUV4MPEG2 pipe, as is a ``.y4m`` file (video/y4m.py), and the logs then go to stderr. Details: docs/video.md.
"""
from __future__ import annotations

import argparse
import errno
import logging
import math
import sys
import time
from collections import deque
from dataclasses import replace
from fractions import Fraction
from itertools import chain, islice
from pathlib import Path
from typing import Iterable, Iterator, Optional

import av
import numpy as np
import torch
from tqdm import tqdm

import models
from common.interpolator import Interpolator
from common.memory import allow_heap_reuse, heap_reuse_by_frame_size
from common.safe_write import Terminated, terminate_as_exit
from deploy.backends import add_backend_arguments, check_backend_arguments, onnx_interpolator, pytorch_interpolator
from pipeline import cli
from pipeline.evaluation import BASELINES, baseline_predictor
from pipeline.failures import ScriptError
from pipeline.run_paths import refuse_aliased_paths
from video.interpolation import (
    BOUNDARY_MODES,
    FACTORS,
    frame_to_tensor,
    output_frame_count,
    output_time,
    raise_planned_frame_rate,
    tensor_to_frame,
)
from video.dedup import drop_held_frames
from video.output import check_output
from video.pixel_format import Planes, default_output_format, png_bit_depth
from video.rate_plan import GridStats, factor_clock, frames_at_times, parse_rate, rate_clock
from video.readers import CodedFrame, FrameSource, SourceInfo, open_source
from video.scenes import DEFAULT_SCENE_THRESHOLD, DEFAULT_STATIC_THRESHOLD, GapCounts, plan_gaps
from video.summary import check_report_path, run_summary, summary_line, write_report
from video.tiling import check_tiling, tiled_interpolator
from video.writers import DEFAULT_CODEC, PNGFolderWriter, VideoWriter, check_encoder_options
from video.y4m import STDIO, Y4MHeader, Y4MSource, Y4MWriter, is_y4m_path
from video.yuv import BIT_DEPTHS, CHROMA_FORMATS, MATRICES

DEFAULT_CHECKPOINT = "train_results/checkpoint/model_epoch070.pth"  # the teacher script's default
# The teacher script wrote its mp4 at --out_fps 30 whatever the input; we keep it for inputs without a rate.
FALLBACK_FRAME_RATE = Fraction(30)
INTERRUPTED_STATUS = 130  # the shell's status for a process ended by Ctrl-C (128 + SIGINT)

logger = logging.getLogger("interpolate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interpolate.py", description="Frame-rate up-conversion of a video",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--net", type=str, default="STMFNet", choices=list(models.MODELS), help="network to run")
    parser.add_argument("--input", "--yuv_path", dest="input", type=str, required=True,
                        help="video file, raw .yuv file, .y4m file, folder of numbered PNG/JPEG frames, or - for "
                             "YUV4MPEG2 on standard input (--yuv_path is the teacher script's name)")
    parser.add_argument("--size", type=str, default=None,
                        help="WxH of a .yuv input; default from the file name, else 1920x1080")
    parser.add_argument("--tile", "--patch_size", dest="tile", type=cli.positive_int, default=None,
                        help="interpolate in tiles of this size (bounds memory); default whole frames")
    parser.add_argument("--overlap", type=int, default=None,
                        help="pixels shared by neighbouring tiles, blended with cosine ramps; default tile/4")
    parser.add_argument("--batch_size", type=cli.positive_int, default=None, help="tiles per network call; default 1")
    parser.add_argument("--out_fps", type=cli.positive_float, default=None,
                        help="output frame rate; default input rate x factor (see --keep_duration)")
    parser.add_argument("--out_dir", type=str, default=".",
                        help="folder for the output when --output is not given")

    cli.add_model_arguments(parser, finetune_pwc=False, finetune_pwc_help="no effect here")

    new_options = parser.add_argument_group("options added by this reimplementation")
    cli.add_device_arguments(parser, new_options)
    cli.add_checkpoint_arguments(parser, new_options, DEFAULT_CHECKPOINT,
                                 random_use="the frames are meaningless: timing only")
    new_options.add_argument("--output", type=str, default=None,
                             help="output video (container from the suffix; .y4m: YUV4MPEG2), without a suffix a PNG "
                                  "folder, or - for YUV4MPEG2 on standard output (the logs then go to stderr)")
    new_options.add_argument("--factor", type=int, default=None, choices=FACTORS,
                             help="frame-rate multiplier (default 2)")
    new_options.add_argument("--fps", type=rate_argument, default=None, metavar="RATE",
                             help="output frame rate in frames per second, above the input's: a number or a fraction "
                                  "(60, 60000/1001; 59.94, 29.97, 23.976 mean 60000/1001, 30000/1001, 24000/1001). "
                                  "Frames at multiples of 1/RATE s, each the nearest frame of the 1/8 midpoint grid "
                                  "(off by at most 1/16 of an input interval); not with --factor")
    new_options.add_argument("--dedup", action="store_true",
                             help="drop held frames (duplicates of the last frame kept, by the --static_threshold test) "
                                  "and fill their times from the distinct frames around the hold; with --dedup, "
                                  "--fps may equal the input rate")
    new_options.add_argument("--keep_duration", type=cli.parse_bool, default=True,
                             help="true: output rate = input rate x factor; false: input rate (slow motion, "
                                  "no audio)")
    new_options.add_argument("--boundary", choices=BOUNDARY_MODES, default="pad",
                             help="pad: repeat the end frames to complete the first and last windows; duplicate: "
                                  "copy the end frames into the first and last gaps, as interpolate_yuv.py did")
    new_options.add_argument("--baseline", choices=BASELINES, default=None,
                             help="no network: 'average' of the two centre frames or 'repeat' of the earlier one")
    add_backend_arguments(new_options)
    new_options.add_argument("--pix_fmt", choices=CHROMA_FORMATS, default=None,
                             help="chroma format of a .yuv input; default 444 if the name has '444', else 420")
    new_options.add_argument("--bit_depth", type=int, choices=BIT_DEPTHS, default=None,
                             help="bit depth of a .yuv input; default from '10bit'/'16bit' in the name, else 8")
    new_options.add_argument("--yuv_matrix", choices=sorted(MATRICES), default="bt601",
                             help="colour matrix of a .yuv input (limited range); also written into a video output")
    new_options.add_argument("--input_fps", type=cli.positive_float, default=None,
                             help="frame rate of the input; overrides the container's or the YUV name's")
    new_options.add_argument("--max_frames", type=cli.positive_int, default=None,
                             help="use only the first N input frames (previews, timing; no audio)")
    new_options.add_argument("--codec", type=str, default=DEFAULT_CODEC, help="FFmpeg video encoder")
    new_options.add_argument("--crf", type=int, default=0,
                             help="constant rate factor for x264/x265/VP9/AV1 (0: lossless YUV)")
    new_options.add_argument("--preset", type=str, default="veryslow", help="x264/x265 preset")
    new_options.add_argument("--out_pix_fmt", type=str, default=None,
                             help="output pixel format; default the input's own where the encoder takes it, else "
                                  "one of the same bit depth (8-bit RGB inputs: yuv420p; odd sizes switch 4:2:0 to "
                                  "4:4:4); PNG output: rgb24 (8-bit) or rgb48be (16-bit), default the input's depth")
    new_options.add_argument("--lossless", action="store_true",
                             help="bit-exact RGB video: libx264rgb at crf 0 (not every player shows it)")
    new_options.add_argument("--no_audio", action="store_true", help="do not copy the input's audio")
    new_options.add_argument("--overwrite", action="store_true",
                             help="replace an existing output file, or a folder that is an earlier output of this "
                                  "program (nothing else)")
    new_options.add_argument("--allow_truncated", action="store_true",
                             help="on a decoding error part-way through a video, use the frames before it instead "
                                  "of stopping")
    new_options.add_argument("--debug", action="store_true", help="show the traceback of an error")
    new_options.add_argument("--scene_threshold", type=cli.threshold_or_off, default=DEFAULT_SCENE_THRESHOLD,
                             help="scene-cut score above which a gap is a cut: its frames are copies of the "
                                  "nearest original and no window crosses it (see docs/video.md); 'off' disables")
    new_options.add_argument("--static_threshold", type=cli.threshold_or_off, default=DEFAULT_STATIC_THRESHOLD,
                             help="pairs whose 16x16 blocks change by at most this percentage of the frame's "
                                  "contrast are duplicates: copied, the network skipped; 'off' disables")
    new_options.add_argument("--report", type=str, default=None,
                             help="also write the end summary (frames, cuts, skipped pairs, time) to this JSON file")
    return parser


def rate_argument(text: str) -> Fraction:
    """argparse type of --fps."""
    try:
        return parse_rate(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def format_rate(rate: Fraction) -> str:
    return str(int(rate)) if rate.denominator == 1 else f"{float(rate):.3f}".rstrip("0")


def output_rate(args: argparse.Namespace, input_rate: Optional[Fraction]) -> Fraction:
    if args.fps is not None:
        return args.fps
    if args.out_fps is not None:
        return cli.exact_frame_rate(args.out_fps, "--out_fps")
    if input_rate is None:
        logger.info("the input has no frame rate and --input_fps is not set: writing %s fps", FALLBACK_FRAME_RATE)
        return FALLBACK_FRAME_RATE
    return input_rate * args.factor if args.keep_duration else input_rate


def model_name(args: argparse.Namespace) -> str:
    """What made the frames, for the default output name: a baseline, the ONNX file, or --net."""
    if args.baseline:
        return f"baseline_{args.baseline}"
    return f"onnx-{Path(args.onnx).stem}" if args.backend == "onnxruntime" else args.net


def non_finite_message(index: int, args: argparse.Namespace) -> str:
    """Why a run stops at a NaN or infinite output frame: black frames would be written without a word."""
    weights = f"--onnx {args.onnx}" if args.backend == "onnxruntime" else f"--checkpoint {args.checkpoint}"
    return (f"output frame {index} came out of the network with NaN or infinite values; the weights ({weights}) "
            "are damaged or overflow on this input, and no output was written")


def resolve_output(args: argparse.Namespace, source: FrameSource, rate: Fraction) -> Path:
    """--output, or the teacher script's ``<seq>_<W>x<H>_<fps>fps_<net>.mp4`` in --out_dir."""
    if args.output is not None:
        return Path(args.output)
    info = source.info
    sequence = info.path.stem.split("-")[0]
    return Path(args.out_dir) / f"{sequence}_{info.width}x{info.height}_{format_rate(rate)}fps_{model_name(args)}.mp4"


def build_interpolator(args: argparse.Namespace, device: torch.device) -> Interpolator:
    """The baseline or the network with its weights, wrapped for tiles when --tile is given."""
    if args.baseline is not None:
        interpolate = baseline_predictor(args.baseline)
    elif args.backend == "onnxruntime":
        interpolate = onnx_interpolator(args, device)
        logger.info("running %s with ONNX Runtime", args.onnx)
    else:
        loaded = cli.load_model(args, device, DEFAULT_CHECKPOINT)
        if loaded.checkpoint is None:
            logger.warning("%s has RANDOM weights (--allow_random): the frames are meaningless", args.net)
        else:
            logger.info("loaded %s weights from %s", args.net, loaded.checkpoint)
        interpolate = pytorch_interpolator(loaded.model, args.precision, args.compile)
    interpolate = heap_reuse_by_frame_size(interpolate)
    if args.tile is not None:
        interpolate = tiled_interpolator(interpolate, args.tile, args.overlap, args.batch_size or 1)
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


def output_pixel_format(args: argparse.Namespace, info: SourceInfo) -> str:
    """The video output's pixel format: --lossless's RGB, --out_pix_fmt, or one keeping the input's bit depth."""
    if args.lossless:
        if info.bit_depth > 8:
            raise ValueError(f"--lossless writes 8-bit RGB, but {info.path} is {info.bit_depth}-bit; drop "
                             f"--lossless (the default --crf 0 is lossless in the input's own format)")
        return "rgb24"
    if args.out_pix_fmt is not None:
        try:
            av.VideoFormat(args.out_pix_fmt)
        except ValueError as error:
            raise ValueError(f"--out_pix_fmt {args.out_pix_fmt!r} is not a pixel format FFmpeg knows") from error
        return args.out_pix_fmt
    try:
        return default_output_format(args.codec, info.pix_fmt, info.bit_depth, info.width, info.height)
    except av.codec.codec.UnknownCodecError as error:
        raise ValueError(f"--codec {args.codec} is not an FFmpeg video encoder") from error


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


def expected_output_count(args: argparse.Namespace, input_count: Optional[int], input_rate: Optional[Fraction]
                          ) -> Optional[int]:
    """Output frames of a constant-rate input of ``input_count`` frames (the progress bar's total); None if unknown."""
    if input_count is None:
        return None
    if args.fps is None:
        return output_frame_count(input_count, args.factor)
    return math.floor((input_count - 1) / input_rate * args.fps) + 1 if input_rate else None


def timed_output(args: argparse.Namespace, tensors: Iterable[torch.Tensor], input_times: list[Optional[Fraction]],
                 interpolate: Interpolator, gaps: GapCounts, grid: GridStats, kept_indices: list[int],
                 keep_times: bool) -> Iterator[tuple[torch.Tensor, Optional[Fraction]]]:
    """The output frames with their times (None: the writer's constant rate). ``--factor`` alone chains 2x passes
    (video/interpolation.py); ``--fps`` and ``--dedup`` take each output time from the midpoint grid
    (video/rate_plan.py), built with ``--dedup`` from the distinct frames only (video/dedup.py)."""
    if args.fps is None and not args.dedup:
        planned = plan_gaps(tensors, args.scene_threshold, args.static_threshold, gaps, input_times)
        frames = raise_planned_frame_rate(planned, interpolate, args.factor, args.boundary)
        return ((frame, output_time(input_times, index, args.factor) if keep_times else None)
                for index, frame in enumerate(frames))
    grid_times = input_times
    if args.dedup:
        grid_times = []
        tensors = drop_held_frames(tensors, input_times, args.static_threshold, kept_indices, grid_times)
    planned = plan_gaps(tensors, args.scene_threshold, args.static_threshold, gaps, grid_times)
    clock = rate_clock(args.fps) if args.fps is not None else factor_clock(args.factor)
    frames = frames_at_times(planned, grid_times, input_times, clock, interpolate, args.boundary, grid)
    write_times = args.fps is not None or keep_times
    return ((frame, seconds if write_times else None) for frame, seconds in frames)


def check_arguments(args: argparse.Namespace) -> None:
    """Raise ValueError naming the flag for settings that cannot work together."""
    if args.tile is not None:
        args.overlap = args.tile // 4 if args.overlap is None else args.overlap
        check_tiling(args.tile, args.overlap)
    if args.max_frames is not None and args.max_frames < 2:
        raise ValueError(f"--max_frames must be at least 2, got {args.max_frames}")
    check_encoder_options(args.codec, args.crf, args.preset, args.lossless)
    if args.fps is not None:
        for flag, given in (("--factor", args.factor is not None), ("--out_fps", args.out_fps is not None),
                            ("--keep_duration false", not args.keep_duration)):
            if given:
                raise ValueError(f"--fps and {flag} cannot be used together: --fps sets the output rate")
    if args.dedup and args.static_threshold is None:
        raise ValueError("--dedup finds held frames with the static-pair test: give --static_threshold a number")
    if args.dedup and not args.keep_duration:
        raise ValueError("--dedup keeps the timing: it cannot be used with --keep_duration false")
    if args.output == STDIO and sys.stdout.isatty():
        raise ValueError("--output -: standard output is a terminal; pipe it into a program or a file")
    args.factor = args.factor or 2


def check_rate(args: argparse.Namespace, input_rate: Optional[Fraction]) -> None:
    """Refuse an --fps that is not interpolation (at or below the input rate; equal is allowed with --dedup)."""
    if args.fps is None:
        return
    if input_rate is None:
        raise ValueError("--fps needs the input's frame rate, which it does not give: pass --input_fps")
    if args.fps < input_rate or (args.fps == input_rate and not args.dedup):
        raise ValueError(f"--fps {format_rate(args.fps)} is not above the input's {format_rate(input_rate)} fps: "
                         "that is not interpolation")


class RunFailure(Exception):
    """An expected failure after the output was opened (the input, the disk); its message is one line."""


def error_message(error: BaseException, output: Optional[Path] = None) -> str:
    """One line for an expected failure: the file or flag, and what went wrong."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = output.resolve().parent if output else (Path(error.filename).parent if error.filename else "the disk")
        what = f"; {output} was not written and earlier files are untouched" if output else ""
        return f"no space left on {where}{what}"
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during the run; the partial output has been removed."""

    def __init__(self, output: Optional[Path], status: int) -> None:
        super().__init__(f"interrupted; {output if output else 'the output'} was not written")
        self.status = status


def main(argv: Optional[list[str]] = None) -> dict[str, object]:
    """Run the conversion; returns the summary that is logged. Expected failures exit with a one-line message."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    cli.setup_logging(stream=sys.stderr if args.output == STDIO else None)  # standard output carries the stream
    terminate_as_exit()
    try:
        return convert(args, parser)
    except RunFailure as failure:
        if args.debug:
            raise failure.__cause__ from None
        print(f"{parser.prog}: error: {failure}", file=sys.stderr)
        sys.exit(1)
    except Interrupted as interruption:
        print(f"{parser.prog}: {interruption}", file=sys.stderr)
        sys.exit(interruption.status)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; nothing was written", file=sys.stderr)
        sys.exit(INTERRUPTED_STATUS)
    except Terminated as terminated:
        print(f"{parser.prog}: terminated; nothing was written", file=sys.stderr)
        sys.exit(terminated.code)


def start_up_error(parser: argparse.ArgumentParser, args: argparse.Namespace, error: BaseException) -> None:
    if args.debug:
        raise error
    parser.error(error_message(error))


def convert(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, object]:
    """The run behind ``main``: start-up errors go through ``parser.error``, later ones raise ``RunFailure``."""
    # Everything that can fail is checked before the output is opened: arguments, device, input, output, model.
    try:
        # --out_dir only places the default output name (checked once it is known, below) unless it is a file.
        out_dir_file = None if args.output is not None or Path(args.out_dir).is_dir() else args.out_dir
        refuse_aliased_paths(args, written={"--out_dir": out_dir_file})
        check_arguments(args)
        device = cli.select_device(args.device, args.gpu_id)
        check_backend_arguments(args, device)
        input_rate = cli.exact_frame_rate(args.input_fps, "--input_fps") if args.input_fps else None
        if is_y4m_path(args.input):
            source: FrameSource = Y4MSource(args.input, input_rate, args.yuv_matrix, args.allow_truncated)
        else:
            source = open_source(args.input, args.size, args.pix_fmt, args.bit_depth, input_rate, args.yuv_matrix,
                                 args.allow_truncated)
        check_rate(args, source.info.frame_rate)
        rate = output_rate(args, source.info.frame_rate)
        output = resolve_output(args, source, rate)
        is_video = output.suffix != ""
        is_y4m = is_y4m_path(str(output))
        to_stdout = args.output == STDIO
        refuse_aliased_paths(args, written={"--output": output, "--out_dir": None}, read={"--input": source.info.path})
        target = output if to_stdout else check_output(output, source.info.path, is_video, args.overwrite)
        if args.report is not None:
            check_report_path(Path(args.report), output, args.overwrite)
        if is_video:
            output_format = output_pixel_format(args, source.info)
        else:
            png_bits = png_bit_depth(args.out_pix_fmt, source.info.bit_depth)
            output_format = "rgb24" if png_bits == 8 else "rgb48be"
        log_colour(source.info, output_format)
        input_times: list[Optional[Fraction]] = []
        input_planes: deque[Optional[Planes]] = deque()
        coded = source.coded_frames()
        slotted = bool(args.fps or args.dedup) and bool(args.input_fps or source.info.frame_rate is None)
        if slotted:  # the grid counts in seconds: without times of its own (or with --input_fps) frame k is at k / rate
            coded = slot_times(coded, source.info.frame_rate or Fraction(1))
        frames = recorded(coded, input_times, input_planes)
        if args.max_frames is not None:
            frames = islice(frames, args.max_frames)
        head = list(islice(frames, 2))
        if len(head) < 2:
            raise ValueError(f"{source.info.path} has {len(head)} frame(s); interpolation needs at least 2")
        interpolate = build_interpolator(args, device)
    except (OSError, ValueError, ScriptError, av.error.FFmpegError) as error:  # missing/unreadable files: OSError
        start_up_error(parser, args, error)

    info = source.info
    # The input's own times are kept unless a constant rate is asked for (or the input has no times).
    keep_times = (
        args.keep_duration and args.out_fps is None and args.input_fps is None and None not in input_times
        and not slotted
    )
    is_container = is_video and not is_y4m
    copy_audio = is_container and info.has_audio and not args.no_audio and args.max_frames is None and keep_times
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
    if args.fps is not None:
        time_base = 1 / args.fps
    elif keep_times:
        time_base = (info.time_base or 1 / info.frame_rate) / args.factor
    known_counts = [count for count in (info.frame_count, args.max_frames) if count is not None]
    input_count = min(known_counts) if known_counts else None
    logger.info(
        "%s: %dx%d, %s frames at %s fps -> %s -> %s at %s fps (%s on %s%s)",
        info.path, info.width, info.height, input_count or "?",
        format_rate(info.frame_rate) if info.frame_rate else "?",
        f"{args.factor}x" if args.fps is None else "the 1/8 midpoint grid", "standard output" if to_stdout else output,
        format_rate(rate), model_name(args), device, f", tiles {args.tile} overlap {args.overlap}" if args.tile else "",
    )
    tensors = (frame_to_tensor(frame, device) for frame in chain(head, frames))
    synthesised, gaps, grid, kept_indices = [0], GapCounts(), GridStats(), []
    try:
        if is_y4m:
            width, height = (info.height, info.width) if turns % 2 else (info.width, info.height)
            header = source.header if isinstance(source, Y4MSource) else Y4MHeader(width, height)
            writer = Y4MWriter(str(target), replace(header, width=width, height=height, frame_rate=rate),
                               args.yuv_matrix, replace=args.overwrite)
        elif is_video:
            writer = VideoWriter(
                target, info.width, info.height, rate, codec=args.codec, crf=args.crf, preset=args.preset,
                pix_fmt=output_format, lossless=args.lossless, audio_from=info.path if copy_audio else None,
                rotation=info.rotation, time_base=time_base, replace=args.overwrite, colour=info.colour,
                hdr=info.hdr,
            )
        else:
            writer = PNGFolderWriter(target, info.path, replace=args.overwrite, bit_depth=png_bits)
    except (av.error.FFmpegError, ValueError) as error:
        hint = " (the audio is copied as it is: try --no_audio or another container)" if copy_audio else ""
        start_up_error(parser, args, ValueError(
            f"the {args.codec} encoder cannot write {output} with its settings ({format_rate(rate)} fps from "
            f"--fps/--out_fps/--input_fps/--factor, --preset {args.preset}, --crf {args.crf}, --out_pix_fmt "
            f"{output_format}): {getattr(error, 'strerror', None) or error}{hint}"
        ))
    except OSError as error:
        start_up_error(parser, args, ValueError(f"cannot write {output}: {error.strerror or error}"))
    except (KeyboardInterrupt, Terminated) as error:  # the writer removed what it had begun
        raise Interrupted(output, getattr(error, "code", INTERRUPTED_STATUS)) from error

    started = time.perf_counter()
    try:
        with writer, tqdm(total=expected_output_count(args, input_count, info.frame_rate),
                          unit="frame", desc="interpolating", dynamic_ncols=True) as progress:
            frames_out = timed_output(args, tensors, input_times, counting(interpolate, synthesised), gaps, grid,
                                      kept_indices, keep_times)
            # Originals pass through as coded when the output keeps their format (the --factor chain only: there
            # every factor-th output frame is the next input frame).
            pass_through = (isinstance(writer, VideoWriter) and writer.pix_fmt == info.pix_fmt and args.fps is None
                            and not args.dedup)
            for index, (frame, seconds) in enumerate(frames_out):
                if not torch.isfinite(frame).all():
                    raise ValueError(non_finite_message(index, args))
                planes = input_planes.popleft() if index % args.factor == 0 and pass_through else None
                pixels = tensor_to_frame(frame, writer.sample_dtype)
                writer.write(np.rot90(pixels, turns) if turns else pixels, seconds, planes)
                progress.update()
    except (OSError, ValueError, av.error.FFmpegError) as error:  # the writer has removed its partial output
        raise RunFailure(error_message(error, output)) from error
    except (KeyboardInterrupt, Terminated) as error:
        writer.abort()  # the writer's own exit has done so, unless the signal came just before it
        raise Interrupted(output, getattr(error, "code", INTERRUPTED_STATUS)) from error
    elapsed = time.perf_counter() - started

    if args.dedup:  # the planner numbered the distinct frames; the summary names input frames
        gaps.cuts = [kept_indices[index + 1] - 1 for index in gaps.cuts]
    summary = run_summary(info.path, output, input_times, writer.frames_written, rate,
                          args.factor if args.fps is None else None, gaps, synthesised[0], elapsed)
    if args.fps is not None or args.dedup:
        summary.update(worst_time_error_seconds=float(grid.worst_error_seconds),
                       worst_time_error_of_interval=float(grid.worst_error_of_interval),
                       held_frames_dropped=len(input_times) - len(kept_indices) if args.dedup else 0)
        logger.info("every output frame within %.2f ms (%s of an input interval) of its time; %d held frame(s) "
                    "dropped", 1000 * summary["worst_time_error_seconds"], grid.worst_error_of_interval,
                    summary["held_frames_dropped"])
    logger.info(
        "%d frames in, %d frames out at %s fps in %.1f s (%.2f output frames/s); wrote %s",
        summary["frames_in"], summary["frames_out"], format_rate(rate), elapsed, summary["frames_per_second"],
        "standard output" if args.output == STDIO else output,
    )
    print(summary_line(summary), file=sys.stderr)
    if args.report is not None:
        try:
            write_report(Path(args.report), summary, args.overwrite)
        except OSError as error:
            raise RunFailure(f"{output} was written, but not the report: {error_message(error)}") from error
        logger.info("wrote the summary to %s", args.report)
    return summary


if __name__ == "__main__":
    allow_heap_reuse()
    main()
