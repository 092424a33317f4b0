"""Time interpolate.py on a clip with still frames, with and without skipping the static (duplicate) pairs.

    python tools/static_speedup.py                         # the student with random weights on the CPU
    python tools/static_speedup.py --net student_STMFNet --checkpoint stmfnet_mini.pth --device cuda

The clip: the first --moving frames of the shipped clip, then its next frame held for --still frames, encoded
with x264 at crf 18 (4:2:0), so the held frames decode as near, not exact, repeats as in a real video. Each run
converts it 2x to a lossless video in a temporary folder; the script prints both summaries (model calls,
static pairs, seconds) and the speed-up. The time depends only on how many frames the network makes, so random
weights time the same as trained ones.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path
from typing import Optional

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.failures import run_script  # noqa: E402
from pipeline.conversion import Conversion, convert  # noqa: E402
from video.readers import read_video_frames  # noqa: E402

CLIP = Path(__file__).resolve().parents[1] / "assets" / "bbb_448x256.mp4"


def write_still_clip(path: Path, moving: int, still: int) -> None:
    frames = read_video_frames(CLIP, moving + 1)
    frames = frames[:moving] + [frames[moving]] * still
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "18", "preset": "medium"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="static_speedup.py", description=__doc__.split("\n")[0])
    parser.add_argument("--moving", type=int, default=6, help="frames of motion at the start")
    parser.add_argument("--still", type=int, default=12, help="then one frame held this many times")
    parser.add_argument("--net", default="student_STMFNet")
    parser.add_argument("--checkpoint", default=None, help="weights (default: random, timing only)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    return run_script(build_parser(), argv, compare)


def compare(args: argparse.Namespace) -> None:
    model = {"net": args.net, "device": args.device}
    model.update(checkpoint=args.checkpoint) if args.checkpoint else model.update(allow_random=True)
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "still.mp4"
        write_still_clip(clip, args.moving, args.still)
        summaries = {}
        for name, static in (("skipping static pairs", {}), ("no skipping", {"static_threshold": None})):
            output = Path(folder) / f"out_{len(summaries)}.mkv"
            with contextlib.redirect_stderr(io.StringIO()):
                summaries[name] = convert(Conversion(input=str(clip), output=str(output), lossless=True, **model,
                                                     **static))
        for name, summary in summaries.items():
            print(f"{name}: {summary['frames_in']} frames in, {summary['static_pairs_skipped']} static pairs, "
                  f"{summary['frames_synthesised']} frames synthesised, {summary['seconds']:.1f} s")
        skipped, full = (summaries[name]["seconds"] for name in summaries)
        print(f"speed-up {full / skipped:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
