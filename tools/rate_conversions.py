"""Convert the shipped clip to 60 fps with --fps and time it against --factor 4 and 8, checking the timestamps.

    python tools/rate_conversions.py                                            # frame averaging, whole clip
    python tools/rate_conversions.py --checkpoint assets/demo_student.pth --max_frames 9 --rows "25 -> 60" "--factor 4"

Rows: 24 -> 60 (the clip read as 24 fps with --input_fps 24), 25 -> 60, --factor 4 and --factor 8. Each writes an
MP4 in a temporary folder; its packet times are read back and compared with the exact multiples of
1/60 s (or the factor run's own times). Prints frames out, whether every time is exact, the worst time error
(of the grid, in ms and as a fraction of an input interval), frames synthesised and the wall time of the run.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.failures import run_script  # noqa: E402
from pipeline.conversion import Conversion, convert  # noqa: E402

CLIP = Path(__file__).resolve().parents[1] / "assets" / "bbb_448x256.mp4"
CLIP_RATE = Fraction(25)
ROWS: dict[str, dict[str, Any]] = {
    "24 -> 60": {"fps": Fraction(60), "input_fps": 24.0}, "25 -> 60": {"fps": Fraction(60)},
    "--factor 4": {"factor": 4}, "--factor 8": {"factor": 8},
}


def packet_times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(Fraction(packet.pts) * packet.time_base for packet in container.demux(stream)
                      if packet.pts is not None)


def expected_times(row: dict[str, Any], input_count: int) -> list[Fraction]:
    """The exact output times: multiples of 1 / rate over the input's span, or every 1 / (25 * factor) s."""
    if "fps" in row:
        rate, input_rate = row["fps"], Fraction(row.get("input_fps", CLIP_RATE))
        span = Fraction(input_count - 1) / input_rate
        return [index / rate for index in range(int(span * rate) + 1)]
    factor = row["factor"]
    return [Fraction(index) / (CLIP_RATE * factor) for index in range(factor * (input_count - 1) + 1)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rate_conversions.py", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None, help="student weights (default: frame averaging)")
    parser.add_argument("--max_frames", type=int, default=None, help="use only the first N frames of the clip")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), help="the conversions to run")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    return run_script(build_parser(), argv, compare)


def compare(args: argparse.Namespace) -> None:
    model = ({"net": "student_STMFNet", "checkpoint": args.checkpoint, "device": "cpu"} if args.checkpoint
             else {"baseline": "average"})
    with tempfile.TemporaryDirectory() as folder:
        for index, name in enumerate(args.rows):
            row = ROWS[name]
            output = Path(folder) / f"out_{index}.mp4"  # MP4 keeps exact times (Matroska: 1 ms)
            with contextlib.redirect_stderr(io.StringIO()):
                summary = convert(Conversion(input=str(CLIP), output=str(output), preset="ultrafast",
                                             max_frames=args.max_frames, **model, **row))
            times = packet_times(output)
            exact = times == expected_times(row, summary["frames_in"])
            error = (f"{1000 * summary['worst_time_error_seconds']:.2f} ms "
                     f"({Fraction(summary['worst_time_error_of_interval']).limit_denominator(1000)} of an interval)"
                     if "worst_time_error_seconds" in summary else "0")
            print(f"{name}: {summary['frames_in']} frames in, {summary['frames_out']} out, times exact: {exact}, "
                  f"worst time error {error}, {summary['frames_synthesised']} synthesised, "
                  f"{summary['seconds']:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
