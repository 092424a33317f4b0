"""Raise the frame rate of a video 2x, 4x or 8x with ST-MFNet (teacher), ST-MFNet Mini (student) or a baseline.

    python interpolate.py --net student_STMFNet --checkpoint stmfnet_mini.pth \
        --input assets/bbb_448x256.mp4 --output bbb_50fps.mp4
    python interpolate.py --net STMFNet --checkpoint model.pth --yuv_path Seq_1920x1080_60fps_10bit_420.yuv \
        --tile 512 --overlap 64 --out_dir results
    python interpolate.py --baseline average --input frames_in/ --output frames_out/ --factor 4 --input_fps 30

Input: a video PyAV decodes, a raw ``.yuv`` file or a folder of numbered frames; output: a video (container from
the suffix) or, for a path without a suffix, a folder of PNG frames (without --output: the teacher script's name
``<seq>_<W>x<H>_<fps>fps_<net>.mp4`` in --out_dir). N input frames give factor * (N - 1) + 1 output frames, the
originals untouched; scene cuts and duplicate pairs are copied instead of interpolated (video/scenes.py); the
input's timestamps, audio and display rotation are kept when the duration is. Every check runs before anything is
written and the output appears only once complete (video/output.py); expected failures end in one line on stderr
with exit status 2 (start-up) or 1 (during the run), --debug shows the traceback. Details: docs/video.md.
"""
from __future__ import annotations

import argparse
import errno
import logging
import sys
import time
from fractions import Fraction
from itertools import chain, islice
from pathlib import Path
from typing import Iterable, Iterator, Optional

import av
import numpy as np
import torch
from tqdm import tqdm

import models
from common.memory import allow_heap_reuse
from deploy.backends import add_backend_arguments, check_backend_arguments, onnx_interpolator, pytorch_interpolator
from pipeline import cli
from pipeline.evaluation import BASELINES, baseline_predictor
from video.interpolation import (
    BOUNDARY_MODES,
    FACTORS,
    Interpolator,
    frame_to_tensor,
    output_frame_count,
    output_time,
    raise_planned_frame_rate,
    tensor_to_frame,
)
from video.output import check_output
from video.readers import FrameSource, open_source
from video.scenes import DEFAULT_SCENE_THRESHOLD, DEFAULT_STATIC_THRESHOLD, GapCounts, plan_gaps
from video.summary import check_report_path, run_summary, summary_line, write_report
from video.tiling import check_tiling, tiled_interpolator
from video.writers import DEFAULT_CODEC, PNGFolderWriter, VideoWriter, check_encoder_options
from video.yuv import BIT_DEPTHS, CHROMA_FORMATS, MATRICES

DEFAULT_CHECKPOINT = "train_results/checkpoint/model_epoch070.pth"  # the teacher script's default
# The teacher script wrote its mp4 at --out_fps 30 whatever the input; we keep it for inputs without a rate.
FALLBACK_FRAME_RATE = Fraction(30)

logger = logging.getLogger("interpolate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Frame-rate up-conversion of a video", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--net", type=str, default="STMFNet", choices=list(models.MODELS), help="network to run")
    parser.add_argument("--input", "--yuv_path", dest="input", type=str, required=True,
                        help="video file, raw .yuv file or folder of numbered PNG/JPEG frames "
                             "(--yuv_path is the teacher script's name)")
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
                             help="output video (container from the suffix) or, without a suffix, PNG folder")
    new_options.add_argument("--factor", type=int, default=2, choices=FACTORS, help="frame-rate multiplier")
    new_options.add_argument("--keep_duration", type=cli.parse_bool, default=True,
                             help="true: output rate = input rate x factor; false: input rate (slow motion, "
                                  "no audio)")
    new_options.add_argument("--boundary", choices=BOUNDARY_MODES, default="pad",
                             help="pad: repeat the end frames to complete the first and last windows; duplicate: "
                                  "copy the end frames into the first and last gaps, as interpolate_yuv.py did")
    new_options.add_argument("--baseline", choices=BASELINES, default=None,
                             help="no network: 'average' of the two centre frames or 'repeat' of the earlier one")
    new_options.add_argument("--fp16", action="store_true", help="half-precision autocast (CUDA only)")
    add_backend_arguments(new_options)
    new_options.add_argument("--pix_fmt", choices=CHROMA_FORMATS, default=None,
                             help="chroma format of a .yuv input; default 444 if the name has '444', else 420")
    new_options.add_argument("--bit_depth", type=int, choices=BIT_DEPTHS, default=None,
                             help="bit depth of a .yuv input; default from '10bit'/'16bit' in the name, else 8")
    new_options.add_argument("--yuv_matrix", choices=sorted(MATRICES), default="bt601",
                             help="colour matrix of a .yuv input (limited range)")
    new_options.add_argument("--input_fps", type=cli.positive_float, default=None,
                             help="frame rate of the input; overrides the container's or the YUV name's")
    new_options.add_argument("--max_frames", type=cli.positive_int, default=None,
                             help="use only the first N input frames (previews, timing; no audio)")
    new_options.add_argument("--codec", type=str, default=DEFAULT_CODEC, help="FFmpeg video encoder")
    new_options.add_argument("--crf", type=int, default=0,
                             help="constant rate factor for x264/x265/VP9/AV1 (0: lossless YUV)")
    new_options.add_argument("--preset", type=str, default="veryslow", help="x264/x265 preset")
    new_options.add_argument("--out_pix_fmt", type=str, default="yuv420p",
                             help="encoder pixel format (odd sizes switch 4:2:0 to yuv444p)")
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


def format_rate(rate: Fraction) -> str:
    return str(int(rate)) if rate.denominator == 1 else f"{float(rate):.3f}".rstrip("0")


def output_rate(args: argparse.Namespace, input_rate: Optional[Fraction]) -> Fraction:
    if args.out_fps is not None:
        return Fraction(args.out_fps).limit_denominator(1001)
    if input_rate is None:
        logger.info("the input has no frame rate and --input_fps is not set: writing %s fps", FALLBACK_FRAME_RATE)
        return FALLBACK_FRAME_RATE
    return input_rate * args.factor if args.keep_duration else input_rate


def model_name(args: argparse.Namespace) -> str:
    return f"baseline_{args.baseline}" if args.baseline else args.net


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
        interpolate = pytorch_interpolator(loaded.model, args.precision, args.compile, args.fp16)
    if args.tile is not None:
        interpolate = tiled_interpolator(interpolate, args.tile, args.overlap, args.batch_size or 1)
    return interpolate


def counting(interpolate: Interpolator, counter: list[int]) -> Interpolator:
    """``interpolate``, adding one to ``counter[0]`` per call (the summary's synthesised frames)."""
    def run(*frames: torch.Tensor) -> torch.Tensor:
        counter[0] += 1
        return interpolate(*frames)

    return run


def recorded(timed_frames: Iterable[tuple[np.ndarray, Optional[Fraction]]], times: list[Optional[Fraction]]
             ) -> Iterator[np.ndarray]:
    """The frames of (frame, time) pairs, appending each time to ``times`` as its frame is read."""
    for frame, seconds in timed_frames:
        times.append(seconds)
        yield frame


def check_arguments(args: argparse.Namespace) -> None:
    """Raise ValueError naming the flag for settings that cannot work together."""
    if args.tile is not None:
        args.overlap = args.tile // 4 if args.overlap is None else args.overlap
        check_tiling(args.tile, args.overlap)
    if args.max_frames is not None and args.max_frames < 2:
        raise ValueError(f"--max_frames must be at least 2, got {args.max_frames}")
    check_encoder_options(args.codec, args.crf, args.preset, args.lossless)


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


def main(argv: Optional[list[str]] = None) -> dict[str, object]:
    """Run the conversion; returns the summary that is logged. Expected failures exit with a one-line message."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    cli.setup_logging()
    try:
        return convert(args, parser)
    except RunFailure as failure:
        if args.debug:
            raise failure.__cause__ from None
        print(f"{parser.prog}: error: {failure}", file=sys.stderr)
        sys.exit(1)


def start_up_error(parser: argparse.ArgumentParser, args: argparse.Namespace, error: BaseException) -> None:
    if args.debug:
        raise error
    parser.error(error_message(error))


def convert(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, object]:
    """The run behind ``main``: start-up errors go through ``parser.error``, later ones raise ``RunFailure``."""
    # Everything that can fail is checked before the output is opened: arguments, device, input, output, model.
    try:
        check_arguments(args)
        device = cli.select_device(args.device, args.gpu_id)
        if args.fp16 and device.type != "cuda":
            raise ValueError(f"--fp16 needs a CUDA device, but the device is {device}; drop --fp16 on the CPU")
        check_backend_arguments(args, device)
        input_rate = Fraction(args.input_fps).limit_denominator(1001) if args.input_fps else None
        source = open_source(args.input, args.size, args.pix_fmt, args.bit_depth, input_rate, args.yuv_matrix,
                             args.allow_truncated)
        rate = output_rate(args, source.info.frame_rate)
        output = resolve_output(args, source, rate)
        is_video = output.suffix != ""
        target = check_output(output, source.info.path, is_video, args.overwrite)
        if args.report is not None:
            check_report_path(Path(args.report), output, source.info.path, args.overwrite)
        input_times: list[Optional[Fraction]] = []
        frames = recorded(source.timed_frames(), input_times)
        if args.max_frames is not None:
            frames = islice(frames, args.max_frames)
        head = list(islice(frames, 2))
        if len(head) < 2:
            raise ValueError(f"{source.info.path} has {len(head)} frame(s); interpolation needs at least 2")
        interpolate = build_interpolator(args, device)
    except (OSError, ValueError, av.error.FFmpegError) as error:  # missing/unreadable files are OSErrors
        start_up_error(parser, args, error)

    info = source.info
    # The input's own times are kept unless a constant rate is asked for (or the input has no times).
    keep_times = (
        args.keep_duration and args.out_fps is None and args.input_fps is None and None not in input_times
    )
    copy_audio = is_video and info.has_audio and not args.no_audio and args.max_frames is None and keep_times
    if info.has_audio and not copy_audio:
        logger.info("audio is not copied (only with the duration kept, a video output, no --max_frames/--no_audio)")
    if info.kind == "video":
        logger.info("output times: %s", "the input's timestamps, new frames in between" if keep_times else
                    f"a constant {format_rate(rate)} fps (the input's timestamps are not kept)")
    turns = 0
    if info.rotation and is_video:
        logger.info("the input's display rotation (%d degrees) is carried into the output", info.rotation)
    elif info.rotation and info.rotation % 90 == 0:
        turns = info.rotation // 90
        logger.info("the frames are turned upright: PNG frames keep no rotation, so the input's display rotation "
                    "(%d degrees) is applied to them", info.rotation)
    elif info.rotation:
        logger.warning("the input's display rotation (%d degrees) is not a multiple of 90 and is not applied to the "
                       "PNG frames", info.rotation)
    time_base = None
    if keep_times:
        time_base = (info.time_base or 1 / info.frame_rate) / args.factor
    try:
        if is_video:
            writer = VideoWriter(
                target, info.width, info.height, rate, codec=args.codec, crf=args.crf, preset=args.preset,
                pix_fmt=args.out_pix_fmt, lossless=args.lossless, audio_from=info.path if copy_audio else None,
                rotation=info.rotation, time_base=time_base, replace=args.overwrite,
            )
        else:
            writer = PNGFolderWriter(target, info.path, replace=args.overwrite)
    except (av.error.FFmpegError, ValueError) as error:
        hint = " (the audio is copied as it is: try --no_audio or another container)" if copy_audio else ""
        start_up_error(parser, args, ValueError(
            f"the {args.codec} encoder cannot write {output} with its settings ({format_rate(rate)} fps from "
            f"--out_fps/--input_fps/--factor, --preset {args.preset}, --crf {args.crf}, --out_pix_fmt "
            f"{args.out_pix_fmt}): {getattr(error, 'strerror', None) or error}{hint}"
        ))
    except OSError as error:
        start_up_error(parser, args, ValueError(f"cannot write {output}: {error.strerror or error}"))

    known_counts = [count for count in (info.frame_count, args.max_frames) if count is not None]
    input_count = min(known_counts) if known_counts else None
    logger.info(
        "%s: %dx%d, %s frames at %s fps -> %dx -> %s at %s fps (%s on %s%s)",
        info.path, info.width, info.height, input_count or "?",
        format_rate(info.frame_rate) if info.frame_rate else "?",
        args.factor, output, format_rate(rate), model_name(args), device,
        f", tiles {args.tile} overlap {args.overlap}" if args.tile else "",
    )
    tensors = (frame_to_tensor(frame, device) for frame in chain(head, frames))
    synthesised, gaps = [0], GapCounts()
    planned = plan_gaps(tensors, args.scene_threshold, args.static_threshold, gaps, input_times)
    started = time.perf_counter()
    try:
        with writer, tqdm(total=output_frame_count(input_count, args.factor) if input_count else None,
                          unit="frame", desc="interpolating", dynamic_ncols=True) as progress:
            frames_out = raise_planned_frame_rate(planned, counting(interpolate, synthesised), args.factor,
                                                  args.boundary)
            for index, frame in enumerate(frames_out):
                pixels = np.rot90(tensor_to_frame(frame), turns) if turns else tensor_to_frame(frame)
                writer.write(pixels, output_time(input_times, index, args.factor) if keep_times else None)
                progress.update()
    except (OSError, ValueError, av.error.FFmpegError) as error:  # the writer has removed its partial output
        raise RunFailure(error_message(error, output)) from error
    elapsed = time.perf_counter() - started

    summary = run_summary(info.path, output, input_times, writer.frames_written, rate, args.factor, gaps,
                          synthesised[0], elapsed)
    logger.info(
        "%d frames in, %d frames out at %s fps in %.1f s (%.2f output frames/s); wrote %s",
        summary["frames_in"], summary["frames_out"], format_rate(rate), elapsed, summary["frames_per_second"], output,
    )
    print(summary_line(summary), file=sys.stderr)
    if args.report is not None:
        try:
            write_report(Path(args.report), summary)
        except OSError as error:
            raise RunFailure(f"the output was written, but not the report: {error_message(error)}") from error
        logger.info("wrote the summary to %s", args.report)
    return summary


if __name__ == "__main__":
    allow_heap_reuse()
    main()
