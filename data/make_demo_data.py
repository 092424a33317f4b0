"""Training and held-out data for the demo student, cut from one video with a clean split in time.

    python -m data.make_demo_data --out demo_data                       # from assets/bbb_448x256.mp4
    python -m data.make_demo_data --out heldout --video clip.mp4 --test_only --test_frames 0:40 --name clip

Writes
    vimeo_septuplet/  every 7-frame window of the training frames (--train_frames) at each temporal stride of
                      --strides (frames t, t+s, ..., t+6s: s times the clip's motion), listed in
                      sep_trainlist.txt; plus --synthetic septuplets of global motion (below); sep_testlist.txt
                      holds a few stride-1 windows of the training frames, for train.py's validation pass only
    vfitex/<name>/    the held-out frames (--test_frames) as 001.png, 002.png, ..., which evaluate.py reads as
                      VFITex_quintuplet (a window every two frames); with --test_synthetic N instead N synthetic
                      septuplets of held-out frames, vfitex/<name>-moved-01/ ... (one evaluation window each)

The two frame ranges may not overlap, so nothing evaluated on vfitex/ was seen in training.

Synthetic septuplets: a window of a training frame that moves by a whole number of pixels per frame, so
every frame, the middle one included, is an exact crop of the same picture (no resampling, exact midpoints).
They add motion larger and in more directions than the clip has; made from held-out frames, they test what a
model learnt about motion on pictures it never saw. Training septuplets may move faster (--max_speed) than fits
the frame's height: such a window is cut as a square of --synthetic_size pixels, whose vertical speed is limited by
the frame's height, and half of them are transposed (picture and motion), so fast moves go both ways.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import av
import numpy as np

from common.failures import ScriptError, run_script
from common.files import PathType
from data.make_sample import DEFAULT_VIDEO, save_frame
from pipeline.cli import positive_int
from pipeline.run_paths import refuse_aliased_paths
from video.readers import read_video_frames

logger = logging.getLogger(__name__)

SEPTUPLET = 7
SYNTHETIC_SIZE = (192, 384)  # (height, width) of a synthetic septuplet
MAX_SPEED = 10  # pixels per frame of a synthetic septuplet, each axis
VALIDATION_WINDOWS = 4
# The split of the shipped clip: the demo student trained on the first frames; the last ones are held out.
DEFAULT_TRAIN_FRAMES = range(0, 92)
DEFAULT_TEST_FRAMES = range(96, 132)
DEFAULT_TEST_NAME = "bbb_heldout"


def parse_range(text: str) -> range:
    """'A:B' as range(A, B)."""
    try:
        first, last = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"frame range {text!r} is not of the form FIRST:END (e.g. 0:92)") from None
    if not 0 <= first < last:
        raise argparse.ArgumentTypeError(f"frame range {text!r} must have 0 <= FIRST < END")
    return range(first, last)


def parse_strides(text: str) -> tuple[int, ...]:
    """'1,2,3' as (1, 2, 3): distinct temporal strides of at least 1."""
    try:
        strides = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"strides {text!r} are not comma-separated integers (e.g. 1,2,3)") from None
    if min(strides) < 1 or len(set(strides)) != len(strides):
        raise argparse.ArgumentTypeError(f"strides {text!r} must be distinct integers of at least 1")
    return strides


def synthetic_septuplet(frame: np.ndarray, speed: tuple[int, int], rng: np.random.Generator) -> list[np.ndarray]:
    """Seven crops of ``frame`` whose window moves by ``speed`` = (dy, dx) pixels per frame."""
    height, width = SYNTHETIC_SIZE
    span_y, span_x = abs(speed[0]) * (SEPTUPLET - 1), abs(speed[1]) * (SEPTUPLET - 1)
    top = int(rng.integers(0, frame.shape[0] - height - span_y + 1)) + (span_y if speed[0] < 0 else 0)
    left = int(rng.integers(0, frame.shape[1] - width - span_x + 1)) + (span_x if speed[1] < 0 else 0)
    return [
        frame[top + k * speed[0]:top + k * speed[0] + height, left + k * speed[1]:left + k * speed[1] + width]
        for k in range(SEPTUPLET)
    ]


def random_septuplet(frames: list[np.ndarray], among: range, rng: np.random.Generator) -> list[np.ndarray]:
    """A :func:`synthetic_septuplet` of a random frame of ``among``, at a random speed of up to MAX_SPEED."""
    frame = frames[int(rng.integers(among.start, among.stop))]
    speed = (int(rng.integers(-MAX_SPEED, MAX_SPEED + 1)), int(rng.integers(-MAX_SPEED, MAX_SPEED + 1)))
    return [np.ascontiguousarray(crop) for crop in synthetic_septuplet(frame, speed, rng)]


def fast_septuplet(
    frames: list[np.ndarray], among: range, max_speed: int, size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Seven size x size crops of a random frame of ``among`` moving up to ``max_speed`` pixels per frame along
    the width and as fast as the height allows along it; transposed (picture and motion) with probability 1/2."""
    frame = frames[int(rng.integers(among.start, among.stop))]
    speed_limits = [min(max_speed, (extent - size) // (SEPTUPLET - 1)) for extent in frame.shape[:2]]
    if min(speed_limits) < 0:
        raise ValueError(f"--synthetic_size {size} does not fit in frames of {frame.shape[0]}x{frame.shape[1]}")
    speed = tuple(int(rng.integers(-limit, limit + 1)) for limit in speed_limits)
    height, width = size, size
    span_y, span_x = abs(speed[0]) * (SEPTUPLET - 1), abs(speed[1]) * (SEPTUPLET - 1)
    top = int(rng.integers(0, frame.shape[0] - height - span_y + 1)) + (span_y if speed[0] < 0 else 0)
    left = int(rng.integers(0, frame.shape[1] - width - span_x + 1)) + (span_x if speed[1] < 0 else 0)
    crops = [frame[top + k * speed[0]:top + k * speed[0] + height, left + k * speed[1]:left + k * speed[1] + width]
             for k in range(SEPTUPLET)]
    transpose = bool(rng.integers(0, 2))
    return [np.ascontiguousarray(crop.transpose(1, 0, 2) if transpose else crop) for crop in crops]


def write_training(
    frames: list[np.ndarray],
    train: range,
    synthetic: int,
    seed: int,
    root: Path,
    strides: tuple[int, ...] = (1,),
    max_speed: int = MAX_SPEED,
    synthetic_size: Optional[int] = None,
) -> dict[str, int]:
    """Real windows at each of ``strides`` and ``synthetic`` moving ones (:func:`random_septuplet`, or
    :func:`fast_septuplet` when ``synthetic_size`` is given)."""
    sequences = root / "sequences"
    names = []
    for stride in strides:
        prefix = "real" if stride == 1 else f"real-stride{stride}"
        for start in range(train.start, train.stop - (SEPTUPLET - 1) * stride):
            name = f"{prefix}/{start:04d}"
            for k in range(SEPTUPLET):
                save_frame(frames[start + k * stride], sequences / name / f"im{k + 1}.png")
            names.append(name)
    if not names:
        raise ValueError(f"training frames {train.start}:{train.stop} hold no window of {SEPTUPLET} frames")
    rng = np.random.default_rng(seed)
    synthetic_names = []
    for number in range(synthetic):
        name = f"synthetic/{number:04d}"
        if synthetic_size is None:
            septuplet = random_septuplet(frames, train, rng)
        else:
            septuplet = fast_septuplet(frames, train, max_speed, synthetic_size, rng)
        for k, crop in enumerate(septuplet):
            save_frame(crop, sequences / name / f"im{k + 1}.png")
        synthetic_names.append(name)
    stride_one = [name for name in names if name.startswith("real/")] or names
    validation = stride_one[:: max(1, len(stride_one) // VALIDATION_WINDOWS)][:VALIDATION_WINDOWS]
    (root / "sep_trainlist.txt").write_text("\n".join(names + synthetic_names) + "\n")
    (root / "sep_testlist.txt").write_text("\n".join(validation) + "\n")
    return {"real": len(names), "synthetic": len(synthetic_names)}


def write_test_sequence(frames: list[np.ndarray], test: range, folder: Path) -> int:
    for number, index in enumerate(test, start=1):
        save_frame(frames[index], folder / f"{number:03d}.png")
    return len(test)


def moved_test_names(name: str, count: int) -> list[str]:
    """The sequence folders of ``count`` synthetic held-out septuplets: ``<name>-moved-01``, ..."""
    return [f"{name}-moved-{number:02d}" for number in range(1, count + 1)]


def write_moved_test(frames: list[np.ndarray], test: range, count: int, seed: int, root: Path, name: str) -> int:
    """``count`` synthetic septuplets of the held-out frames as sequences ``root/<name>-moved-NN/001.png`` ..."""
    rng = np.random.default_rng(seed)
    for sequence in moved_test_names(name, count):
        write_test_sequence(random_septuplet(frames, test, rng), range(SEPTUPLET), root / sequence)
    return count


def build(
    video: PathType,
    out: PathType,
    test: range,
    name: str,
    train: Optional[range] = None,
    synthetic: int = 0,
    seed: int = 0,
    test_synthetic: int = 0,
    strides: tuple[int, ...] = (1,),
    max_speed: int = MAX_SPEED,
    synthetic_size: Optional[int] = None,
) -> dict[str, int]:
    """Write the layouts (training ones only when ``train`` is given); returns what was written."""
    out = Path(out)
    tests = moved_test_names(name, test_synthetic) if test_synthetic else [name]
    targets = [out / "vfitex" / test_name for test_name in tests]
    targets += [out / "vimeo_septuplet"] if train is not None else []
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise FileExistsError(f"{', '.join(existing)} already exist; choose another --out or --name")
    if train is not None and train.start < test.stop and test.start < train.stop:
        raise ValueError(f"training frames {train.start}:{train.stop} overlap test frames {test.start}:{test.stop}")
    frames = read_video_frames(video)
    last_needed = max(test.stop, train.stop if train is not None else 0)
    if len(frames) < last_needed:
        raise ValueError(f"{video} has {len(frames)} frames; the ranges need {last_needed}")
    if test_synthetic:
        counts = {"moved test windows": write_moved_test(frames, test, test_synthetic, seed, out / "vfitex", name)}
    else:
        counts = {"test frames": write_test_sequence(frames, test, out / "vfitex" / name)}
    if train is not None:
        counts.update(write_training(frames, train, synthetic, seed, out / "vimeo_septuplet",
                                     strides, max_speed, synthetic_size))
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make_demo_data.py",
                                     description="Cut a video into training septuplets and a held-out test sequence.")
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="video file to cut (read with PyAV)")
    parser.add_argument("--out", type=Path, required=True, help="data directory to write")
    parser.add_argument("--train_frames", type=parse_range, default=DEFAULT_TRAIN_FRAMES,
                        help="FIRST:END of the training frames")
    parser.add_argument("--test_frames", type=parse_range, default=DEFAULT_TEST_FRAMES,
                        help="FIRST:END of the held-out frames")
    parser.add_argument("--test_only", action="store_true", help="write only the held-out sequence")
    parser.add_argument("--name", default=DEFAULT_TEST_NAME, help="folder name of the held-out sequence under vfitex/")
    parser.add_argument("--synthetic", type=int, default=0, help="number of synthetic global-motion septuplets")
    parser.add_argument("--test_synthetic", type=int, default=0,
                        help="write this many synthetic septuplets of the held-out frames instead of their sequence")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic septuplets")
    parser.add_argument("--strides", type=parse_strides, default=(1,),
                        help="comma-separated temporal strides of the real training windows, e.g. 1,2,3")
    parser.add_argument("--max_speed", type=positive_int, default=MAX_SPEED,
                        help="largest speed of a synthetic training septuplet, pixels per frame (with "
                             "--synthetic_size; held-out moved windows always use %(default)s)")
    parser.add_argument("--synthetic_size", type=positive_int, default=None,
                        help="side of square synthetic training septuplets that may move up to --max_speed "
                             f"(default: {SYNTHETIC_SIZE[0]}x{SYNTHETIC_SIZE[1]} windows up to {MAX_SPEED} "
                             "pixels per frame)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_script(build_parser(), argv, make_demo_data)


def make_demo_data(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    refuse_aliased_paths(vars(args))
    if not args.video.is_file():
        raise ScriptError(f"--video {args.video} not found")
    if args.test_synthetic < 0:
        raise ScriptError(f"--test_synthetic must be 0 or more, got {args.test_synthetic}")
    try:
        counts = build(args.video, args.out, args.test_frames, args.name,
                       None if args.test_only else args.train_frames, args.synthetic, args.seed, args.test_synthetic,
                       args.strides, args.max_speed, args.synthetic_size)
    except (FileExistsError, ValueError, av.error.FFmpegError) as error:
        raise ScriptError(str(error)) from error
    logger.info("Written to %s: %s", args.out, ", ".join(f"{count} {what}" for what, count in counts.items()))


if __name__ == "__main__":
    sys.exit(main())
