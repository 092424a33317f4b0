"""What a run of ``interpolate.py`` did: the summary it logs, prints on stderr and writes with ``--report``."""
from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Sequence

from video.scenes import GapCounts


def run_summary(
    input_path: Path,
    output: Path,
    input_times: Sequence[Optional[Fraction]],
    frames_out: int,
    rate: Fraction,
    factor: int,
    gaps: GapCounts,
    synthesised: int,
    seconds: float,
) -> dict[str, Any]:
    """The summary of a run; a scene cut's ``seconds`` is the time of the first frame after it (None if unknown)."""
    return {
        "input": str(input_path), "output": str(output), "frames_in": len(input_times),
        "frames_out": frames_out, "fps_out": float(rate), "factor": factor,
        "scene_cuts": [{"after_frame": index, "seconds": _seconds(input_times[index + 1])} for index in gaps.cuts],
        "static_pairs_skipped": gaps.static_pairs, "frames_synthesised": synthesised, "seconds": seconds,
        "frames_per_second": frames_out / seconds if seconds > 0 else float("inf"),
    }


def _seconds(time: Optional[Fraction]) -> Optional[float]:
    return None if time is None else float(time)


def summary_line(summary: dict[str, Any]) -> str:
    """The one line printed on stderr at the end of a run."""
    cuts = [cut["after_frame"] for cut in summary["scene_cuts"]]
    return (
        f"summary: {summary['frames_in']} frames in, {summary['frames_out']} out; {len(cuts)} scene cut(s)"
        f"{' after frame(s) ' + ', '.join(map(str, cuts)) if cuts else ''}, {summary['static_pairs_skipped']} static "
        f"pair(s) copied, {summary['frames_synthesised']} frame(s) synthesised; {summary['seconds']:.1f} s, "
        f"{summary['frames_per_second']:.2f} output frames/s"
    )


def check_report_path(report: Path, output: Path, input_path: Path, overwrite: bool) -> None:
    """Refuse a ``--report`` path that is the output or the input, exists without ``--overwrite``, or has no
    folder to go to."""
    if report.resolve() in (output.resolve(), input_path.resolve()):
        raise ValueError(f"--report {report} is the {'output' if report.resolve() == output.resolve() else 'input'}")
    if report.exists() and not overwrite:
        raise FileExistsError(f"{report} exists; pass --overwrite to replace it")
    if report.is_dir() or not report.parent.is_dir():
        raise ValueError(f"--report {report}: not a file in an existing folder")


def write_report(report: Path, summary: dict[str, Any]) -> None:
    """The summary as JSON, written beside the target and renamed into place (never half-written)."""
    partial = report.with_name(f".{report.name}.partial")
    partial.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(partial, report)
