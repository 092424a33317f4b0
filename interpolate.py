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
The conversion itself is ``pipeline/conversion.py``; from Python: ``convert(Conversion(input=..., output=...))``.
"""
from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from typing import Any, Optional

import models
from common.failures import run_script
from common.memory import allow_heap_reuse
from deploy.backends import add_backend_arguments
from pipeline import cli
from pipeline.conversion import Conversion, convert
from pipeline.evaluation import BASELINES
from video.interpolation import BOUNDARY_MODES, FACTORS
from video.rate_plan import parse_rate
from video.y4m import STDIO
from video.yuv import BIT_DEPTHS, CHROMA_FORMATS, MATRICES

DEFAULTS = Conversion(input="")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interpolate.py", description="Frame-rate up-conversion of a video",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--net", type=str, default=DEFAULTS.net, choices=list(models.MODELS), help="network to run")
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
    parser.add_argument("--out_dir", type=str, default=DEFAULTS.out_dir,
                        help="folder for the output when --output is not given")

    cli.add_model_arguments(parser, finetune_pwc=False, finetune_pwc_help="no effect here")

    new_options = parser.add_argument_group("options added by this reimplementation")
    cli.add_device_arguments(parser, new_options)
    cli.add_checkpoint_arguments(parser, new_options, DEFAULTS.checkpoint,
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
                             help="drop held frames (duplicates of the last frame kept, by the --static_threshold "
                                  "test) and fill their times from the distinct frames around the hold; with "
                                  "--dedup, --fps may equal the input rate")
    new_options.add_argument("--keep_duration", type=cli.parse_bool, default=DEFAULTS.keep_duration,
                             help="true: output rate = input rate x factor; false: input rate (slow motion, "
                                  "no audio)")
    new_options.add_argument("--boundary", choices=BOUNDARY_MODES, default=DEFAULTS.boundary,
                             help="pad: repeat the end frames to complete the first and last windows; duplicate: "
                                  "copy the end frames into the first and last gaps, as interpolate_yuv.py did")
    new_options.add_argument("--baseline", choices=BASELINES, default=None,
                             help="no network: 'average' of the two centre frames or 'repeat' of the earlier one")
    add_backend_arguments(new_options)
    new_options.add_argument("--pix_fmt", choices=CHROMA_FORMATS, default=None,
                             help="chroma format of a .yuv input; default 444 if the name has '444', else 420")
    new_options.add_argument("--bit_depth", type=int, choices=BIT_DEPTHS, default=None,
                             help="bit depth of a .yuv input; default from '10bit'/'16bit' in the name, else 8")
    new_options.add_argument("--yuv_matrix", choices=sorted(MATRICES), default=DEFAULTS.yuv_matrix,
                             help="colour matrix of a .yuv input (limited range); also written into a video output")
    new_options.add_argument("--input_fps", type=cli.positive_float, default=None,
                             help="frame rate of the input; overrides the container's or the YUV name's")
    new_options.add_argument("--max_frames", type=cli.positive_int, default=None,
                             help="use only the first N input frames (previews, timing; no audio)")
    new_options.add_argument("--codec", type=str, default=DEFAULTS.codec, help="FFmpeg video encoder")
    new_options.add_argument("--crf", type=int, default=DEFAULTS.crf,
                             help="constant rate factor for x264/x265/VP9/AV1 (0: lossless YUV)")
    new_options.add_argument("--preset", type=str, default=DEFAULTS.preset, help="x264/x265 preset")
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
    new_options.add_argument("--scene_threshold", type=cli.threshold_or_off, default=DEFAULTS.scene_threshold,
                             help="scene-cut score above which a gap is a cut: its frames are copies of the "
                                  "nearest original and no window crosses it (see docs/video.md); 'off' disables")
    new_options.add_argument("--static_threshold", type=cli.threshold_or_off, default=DEFAULTS.static_threshold,
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


def main(argv: Optional[list[str]] = None) -> int:
    """Run the conversion; returns the exit status (expected failures end in one line on stderr)."""
    return run_script(build_parser(), argv, run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The conversion of the parsed flags; returns its summary (pipeline/conversion.py)."""
    cli.setup_logging(stream=sys.stderr if args.output == STDIO else None)  # standard output carries the stream
    return convert(Conversion.from_args(args))


if __name__ == "__main__":
    allow_heap_reuse()
    sys.exit(main())
