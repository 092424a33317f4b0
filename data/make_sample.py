"""Build a small sample of every dataset layout from one video, so each dataset class and script can run.

    python -m data.make_sample --video assets/bbb_448x256.mp4 --out sample_data

Frames are taken from the video (resized to Vimeo-90K's 448x256 if needed) and written as:
    vimeo_septuplet/  4 training + 2 test septuplets, with sep_trainlist.txt / sep_testlist.txt
    bvidvc/           3 quintuplets of 256x256 centre crops, tiles in the frame order 1, 3, 5, 7, 4
    ucf101/           3 items of 256x256 centre crops (frame0..3.png, framet.png)
    davis90/          2 sequences of 9 JPEG frames
    snufilm/          one 64-frame sequence and a list per mode: lines 2 and 3 usable, lines 1 and 4 with
                      outer frames outside the sequence (skipped by the test sets)
    vfitex/           a 9-frame "4K" sequence at twice the size (896x512, centre-cropped back to 448x256 by
                      the test set) and a 9-frame sequence at 448x256
Within an item, frame k of the layout is video frame start + k, so the sample has real motion.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import av
import numpy as np
from PIL import Image

from common.failures import ScriptError, run_script
from common.files import PathType
from data.testsets import SNUFILM_OFFSETS
from pipeline.run_paths import refuse_aliased_paths
from video.readers import read_video_frames

logger = logging.getLogger(__name__)

DEFAULT_VIDEO = Path(__file__).resolve().parents[1] / "assets" / "bbb_448x256.mp4"
FRAME_SIZE = (448, 256)  # (width, height) of Vimeo-90K frames
TILE = 256  # BVI-DVC and UCF101 frames are 256x256
SNUFILM_FRAMES = 64  # enough for the extreme mode: a quintuplet spans 3 * 16 frames
SNUFILM_SEQUENCE = "data/SNU-FILM/test/GOPRO_test/bbb_000"
MIN_FRAMES = 107  # the last video frame used is UCF101's item at 100, frame 6


def save_frame(frame: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(frame)
    if path.suffix == ".jpg":
        image.save(path, quality=95)
    else:
        image.save(path, compress_level=1)  # fast; the sample is throwaway


def _center_square(frame: np.ndarray, size: int = TILE) -> np.ndarray:
    height, width = frame.shape[:2]
    top, left = (height - size) // 2, (width - size) // 2
    return frame[top:top + size, left:left + size]


def _resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    if frame.shape[:2] == (height, width):
        return frame
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.BICUBIC))


def write_vimeo(frames: list[np.ndarray], root: Path) -> int:
    splits = {"sep_trainlist.txt": ["00001/0001", "00001/0002", "00002/0001", "00002/0002"],
              "sep_testlist.txt": ["00003/0001", "00003/0002"]}
    count = 0
    for list_name, names in splits.items():
        for name in names:
            start = 9 * count
            for k in range(7):
                save_frame(frames[start + k], root / "sequences" / name / f"im{k + 1}.png")
            count += 1
        (root / list_name).write_text("\n".join(names) + "\n")
    return count


def write_bvidvc(frames: list[np.ndarray], root: Path) -> int:
    starts = (2, 40, 80)
    for number, start in enumerate(starts):
        tiles = [_center_square(frames[start + k]) for k in (0, 2, 4, 6, 3)]  # frames 1, 3, 5, 7, then 4
        save_frame(np.concatenate(tiles, axis=1), root / "quintuplets" / f"{number:05d}" / "quintuplet.png")
    return len(starts)


def write_ucf101(frames: list[np.ndarray], root: Path) -> int:
    starts = (5, 50, 100)
    files = {"frame0.png": 0, "frame1.png": 2, "framet.png": 3, "frame2.png": 4, "frame3.png": 6}
    for number, start in enumerate(starts):
        for file, k in files.items():
            save_frame(_center_square(frames[start + k]), root / str(number) / file)
    return len(starts)


def write_davis90(frames: list[np.ndarray], root: Path) -> int:
    starts = {"bbb-meadow": 10, "bbb-squirrel": 60}
    for name, start in starts.items():
        for k in range(9):
            save_frame(frames[start + k], root / name / f"{k:05d}.jpg")
    return len(starts)


def write_snufilm(frames: list[np.ndarray], root: Path) -> int:
    last = SNUFILM_FRAMES - 1
    for k in range(SNUFILM_FRAMES):
        save_frame(frames[k], root / SNUFILM_SEQUENCE / f"{k:06d}.png")
    for mode, offset in SNUFILM_OFFSETS.items():
        # Lines 2 and 3 are usable (first frames at `offset` and `offset + 1`); line 1 (first frame 0, so
        # frame 1 would be negative) and line 4 (frame 7 one past the sequence's end) are skipped.
        firsts = (0, offset, offset + 1, last + 1 - 2 * offset)
        lines = [
            " ".join(f"{SNUFILM_SEQUENCE}/{first + step:06d}.png" for step in (0, offset // 2, offset))
            for first in firsts
        ]
        (root / f"test-{mode}.txt").write_text("\n".join(lines) + "\n")
    return len(SNUFILM_OFFSETS)


def write_vfitex(frames: list[np.ndarray], root: Path) -> int:
    sequences = {"bbb_4K_sample": (20, 2), "bbb_sample": (70, 1)}  # name: (first video frame, upscale)
    for name, (start, factor) in sequences.items():
        for k in range(9):
            frame = _resize(frames[start + k], FRAME_SIZE[0] * factor, FRAME_SIZE[1] * factor)
            save_frame(frame, root / name / f"{k + 1:03d}.png")
    return len(sequences)


# folder: (writer, what its count counts)
WRITERS = {
    "vimeo_septuplet": (write_vimeo, "septuplets"),
    "bvidvc": (write_bvidvc, "quintuplets"),
    "ucf101": (write_ucf101, "items"),
    "davis90": (write_davis90, "sequences"),
    "snufilm": (write_snufilm, "triplet lists"),
    "vfitex": (write_vfitex, "sequences"),
}
LAYOUT_FOLDERS = tuple(WRITERS)


def build_sample(video: PathType, out: PathType, force: bool = False) -> dict[str, int]:
    """Write every layout under ``out``; returns how many septuplets, items, sequences or lists each folder got."""
    out = Path(out)
    existing = [name for name in LAYOUT_FOLDERS if (out / name).exists()]
    if existing and not force:
        raise FileExistsError(f"{out} already holds {', '.join(existing)}; use force=True (--force) to write into them")
    frames = read_video_frames(video, max_frames=MIN_FRAMES)
    if len(frames) < MIN_FRAMES:
        raise ValueError(f"{video} has {len(frames)} frames; the sample needs at least {MIN_FRAMES}")
    frames = [_resize(frame, *FRAME_SIZE) for frame in frames]
    return {name: writer(frames, out / name) for name, (writer, _) in WRITERS.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make_sample.py",
                                     description="Cut a video into small samples of every dataset layout.")
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="video file to cut (read with PyAV)")
    parser.add_argument("--out", type=Path, default=Path("sample_data"), help="data directory to write")
    parser.add_argument("--force", action="store_true", help="write into existing layout folders (nothing is deleted)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_script(build_parser(), argv, make_sample)


def make_sample(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    refuse_aliased_paths(vars(args))
    if not args.video.is_file():
        raise ScriptError(f"--video {args.video} not found")
    try:
        counts = build_sample(args.video, args.out, force=args.force)
    except (FileExistsError, ValueError, av.error.FFmpegError) as error:
        raise ScriptError(str(error)) from error
    logger.info("Sample data from %s written to %s:", args.video, args.out)
    for name, count in counts.items():
        logger.info("  %-16s %d %s", name, count, WRITERS[name][1])


if __name__ == "__main__":
    sys.exit(main())
