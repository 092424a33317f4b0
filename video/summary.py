"""What a run of ``interpolate.py`` did: the summary it logs, prints on stderr and writes with ``--report``."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Sequence

from common.failures import ScriptError
from common.safe_write import atomic_write_text, check_new_file
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


def check_report_path(report: Path, output: Path, overwrite: bool) -> None:
    """Refuse, before the run, a ``--report`` path that cannot be written whole (``check_new_file``) or that is the
    output or lies in the output folder. (Aliases of the inputs are refused by ``pipeline.run_paths``.)"""
    resolved, target = report.resolve(), output.resolve()
    if resolved == target or target in resolved.parents:
        relation = "is" if resolved == target else "lies inside"
        raise ScriptError(f"--report {report} {relation} the output {output}; write the report beside it")
    check_new_file(report, "--report", overwrite)


def write_report(report: Path, summary: dict[str, Any], overwrite: bool) -> None:
    """The summary as JSON, never half-written (``common.safe_write``)."""
    atomic_write_text(report, json.dumps(summary, indent=2) + "\n", replace=overwrite)
