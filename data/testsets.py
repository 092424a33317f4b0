"""Test sets of the original (``data/testsets.py``) as one lazily loading dataset driven by a table of layouts.

The original had one class per test set with the evaluation loop inside, preloading every frame onto
the GPU. Here a test set only finds its items and loads each one on demand; evaluate.py runs the model.
The original class names remain the public entry points (``--dataset`` picks one from ``TEST_SETS``).

Item ``i`` is ``(frames, name)``: ``frames`` is the list [frame1, frame3, frame4, frame5, frame7] of
(3, H, W) float32 RGB tensors in [0, 1] in temporal order -- inputs frames[0], [1], [3], [4] and target
frames[2], as in the training sets -- and ``name`` is the item's stable name. ``test_set.items[i]`` holds
the rest: the sequence it belongs to (the original averaged per sequence for DAVIS and VFITex) and the
output file the original wrote the prediction to.

Layouts (folder names of the original README, under the data directory):
    ucf101/<id>/frame0.png ... frame3.png, framet.png       one item per folder, named <id>
    davis90/<seq>/00000.jpg, 00001.jpg, ...                  windows t, t+2, t+3, t+4, t+6 for t = 0, 2, ...
    vfitex/<seq>/001.png, 002.png, ...                       the same windows for t = 1, 3, ...; sequences
                                                             with "4K" in their name are centre-cropped to
                                                             half their height and width
    snufilm/test-<mode>.txt, snufilm/data/SNU-FILM/test/...  triplet lists; frames 1 and 7 sit `offset` frames
                                                             before the first / after the last listed frame
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional, Protocol

from torch import Tensor
from torch.utils.data import Dataset

from common.files import PathType
from data.frames import center_crop, load_frame, natural_key

logger = logging.getLogger(__name__)

# SNU-FILM modes and their frame gap between the two listed input frames (the original's `offset`).
SNUFILM_OFFSETS = {"easy": 2, "medium": 4, "hard": 8, "extreme": 16}


@dataclass(frozen=True)
class EvalItem:
    """One quintuplet of a test set.

    name: stable name, e.g. "12" (UCF101), "bear/frame3" (DAVIS, VFITex: sequence and target frame
        number), "extreme-007" (SNU-FILM: mode and 1-based line of the list, skipped lines included).
    sequence: the group the original averaged over before averaging the set (the name itself for UCF101
        and SNU-FILM).
    output_file: where the original saved the prediction, relative to the output folder.
    frame_paths: files of frames 1, 3, 4, 5, 7 (the target is the third).
    half_crop: centre-crop every frame to half its height and width (4K VFITex sequences).
    """

    name: str
    sequence: str
    output_file: str
    frame_paths: tuple[Path, ...]
    half_crop: bool = False


class Layout(Protocol):
    folder: str
    expected: str
    skip_incomplete: bool

    def find_items(self, root: Path) -> list[EvalItem]:
        """All candidate items under ``root``; their files are checked by the test set."""


def _subfolders(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))


@dataclass(frozen=True)
class ItemFolders:
    """One item per subfolder, each holding the five frames under fixed file names."""

    folder: str
    expected: str
    frame_files: tuple[str, ...]  # frames 1, 3, 4, 5, 7
    skip_incomplete: bool = False

    def find_items(self, root: Path) -> list[EvalItem]:
        return [
            EvalItem(
                name=item.name,
                sequence=item.name,
                output_file=f"{item.name}/output.png",
                frame_paths=tuple(item / file for file in self.frame_files),
            )
            for item in _subfolders(root)
        ]


@dataclass(frozen=True)
class SequenceWindows:
    """Sequence folders of numbered frames; a window (t, t+2, t+3, t+4, t+6) every two frames.

    With n frames numbered from ``first_number`` the original's loops ran t over
    range(first_number, first_number + n - 6, 2), so the last window may stop one frame short of the end.
    """

    folder: str
    expected: str
    first_number: int
    digits: int
    extension: str
    half_crop_marker: Optional[str] = None
    skip_incomplete: bool = False

    def frame_path(self, sequence: Path, number: int) -> Path:
        return sequence / f"{number:0{self.digits}d}{self.extension}"

    def find_items(self, root: Path) -> list[EvalItem]:
        items = []
        for sequence in _subfolders(root):
            num_frames = sum(1 for p in sequence.iterdir() if p.suffix == self.extension)
            half_crop = self.half_crop_marker is not None and self.half_crop_marker in sequence.name
            for t in range(self.first_number, self.first_number + num_frames - 6, 2):
                name = f"{sequence.name}/frame{t + 3}"
                items.append(
                    EvalItem(
                        name=name,
                        sequence=sequence.name,
                        output_file=f"{name}.png",
                        frame_paths=tuple(self.frame_path(sequence, t + step) for step in (0, 2, 3, 4, 6)),
                        half_crop=half_crop,
                    )
                )
        return items


def _shifted_frame(path: str, shift: int) -> str:
    """``path`` with its frame number moved by ``shift``, zero-padded to the same width.

    A number below 0 gives a name like "-00016.png" that never exists, so the item counts as incomplete.
    """
    directory, slash, filename = path.rpartition("/")
    stem, dot, extension = filename.rpartition(".")
    if not stem.isdigit():
        raise ValueError(f"SNU-FILM frame {path!r} is not named by its frame number")
    return f"{directory}{slash}{int(stem) + shift:0{len(stem)}d}{dot}{extension}"


@dataclass(frozen=True)
class SnufilmList:
    """SNU-FILM triplet list ``test-<mode>.txt``: lines 'first middle last' of paths relative to the folder.

    The quintuplet adds the frames ``offset`` before ``first`` and ``2 * offset`` after it (i.e. ``offset``
    after ``last``), with the same zero padding. Triplets lacking one of these frames (near a sequence's
    ends) are skipped, as in the original.
    """

    mode: str
    folder: str = "snufilm"
    skip_incomplete: bool = True

    @property
    def offset(self) -> int:
        return SNUFILM_OFFSETS[self.mode]

    @property
    def list_file(self) -> str:
        return f"test-{self.mode}.txt"

    @property
    def expected(self) -> str:
        return (
            f"snufilm/{self.list_file} with lines 'first middle last' of frame paths relative to snufilm/ "
            "(e.g. data/SNU-FILM/test/GOPRO_test/<seq>/000001.png), frames numbered so that the ones "
            f"{self.offset} before the first and after the last exist"
        )

    def find_items(self, root: Path) -> list[EvalItem]:
        list_path = root / self.list_file
        if not list_path.is_file():
            raise FileNotFoundError(f"SNU-FILM list {list_path} not found; expected layout: {self.expected}")
        lines = [line.split() for line in list_path.read_text().splitlines() if line.strip()]
        items = []
        for line_number, triplet in enumerate(lines, 1):
            if len(triplet) != 3:
                raise ValueError(f"line {line_number} of {list_path} has {len(triplet)} paths, expected 3")
            paths = [_shifted_frame(triplet[0], -self.offset), *triplet, _shifted_frame(triplet[0], 2 * self.offset)]
            name = f"{self.mode}-{line_number:03d}"
            items.append(
                EvalItem(
                    name=name,
                    sequence=name,
                    output_file=f"{name}/output.png",
                    frame_paths=tuple(root / path for path in paths),
                )
            )
        return items


UCF101 = ItemFolders(
    folder="ucf101",
    expected="ucf101/<id>/frame0.png, frame1.png, frame2.png, frame3.png (inputs) and framet.png (target)",
    frame_files=("frame0.png", "frame1.png", "framet.png", "frame2.png", "frame3.png"),
)
DAVIS90 = SequenceWindows(
    folder="davis90",
    expected="davis90/<seq>/00000.jpg, 00001.jpg, ... (at least 7 frames per sequence)",
    first_number=0,
    digits=5,
    extension=".jpg",
)
VFITEX = SequenceWindows(
    folder="vfitex",
    expected="vfitex/<seq>/001.png, 002.png, ... (at least 7 frames; '4K' in a name halves the frames)",
    first_number=1,
    digits=3,
    extension=".png",
    half_crop_marker="4K",
)


class QuintupletTestSet(Dataset):
    """A test set of quintuplets found by ``layout``, loaded lazily item by item (see the module docstring).

    Args:
        db_dir: the test set's own folder, e.g. <data_dir>/ucf101 (``build_test_set`` joins it for you).

    Missing folders or frames raise FileNotFoundError naming the path and the expected layout, except
    for layouts that skip incomplete items (SNU-FILM): those are logged and counted in ``num_skipped``.
    """

    layout: ClassVar[Layout]

    def __init__(self, db_dir: PathType) -> None:
        self.root = Path(db_dir)
        expected = f"expected layout: {self.layout.expected}"
        if not self.root.is_dir():
            raise FileNotFoundError(f"{type(self).__name__}: folder {self.root} not found; {expected}")
        self.items: list[EvalItem] = []
        self.num_skipped = 0
        for item in self.layout.find_items(self.root):
            missing = [path for path in item.frame_paths if not path.is_file()]
            if not missing:
                self.items.append(item)
            elif self.layout.skip_incomplete:
                self.num_skipped += 1
                logger.debug("%s: skipping %s, missing %s", type(self).__name__, item.name, missing[0])
            else:
                raise FileNotFoundError(f"{type(self).__name__}: frame {missing[0]} not found; {expected}")
        if self.num_skipped:
            logger.info(
                "%s: skipped %d of %d items with missing frames",
                type(self).__name__, self.num_skipped, self.num_skipped + len(self.items),
            )
        if not self.items:
            raise FileNotFoundError(f"{type(self).__name__}: no complete items in {self.root}; {expected}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[list[Tensor], str]:
        item = self.items[index]
        frames = [load_frame(path) for path in item.frame_paths]
        if item.half_crop:
            height, width = frames[0].shape[-2:]
            frames = [center_crop(frame, height // 2, width // 2) for frame in frames]
        return frames, item.name


class Ucf101_quintuplet(QuintupletTestSet):
    """UCF101 triplets of QVI extended to quintuplets (256x256 frames)."""

    layout = UCF101


class Davis90_quintuplet(QuintupletTestSet):
    """DAVIS sequences of QVI: every window of seven frames starting at an even frame."""

    layout = DAVIS90


class VFITex_quintuplet(QuintupletTestSet):
    """VFITex texture sequences; the 4K ones are centre-cropped to half size as in the original."""

    layout = VFITEX


class Snufilm_easy_quintuplet(QuintupletTestSet):
    """SNU-FILM easy: inputs 2 frames apart."""

    layout = SnufilmList("easy")


class Snufilm_medium_quintuplet(QuintupletTestSet):
    """SNU-FILM medium: inputs 4 frames apart."""

    layout = SnufilmList("medium")


class Snufilm_hard_quintuplet(QuintupletTestSet):
    """SNU-FILM hard: inputs 8 frames apart."""

    layout = SnufilmList("hard")


class Snufilm_extreme_quintuplet(QuintupletTestSet):
    """SNU-FILM extreme: inputs 16 frames apart."""

    layout = SnufilmList("extreme")


TEST_SETS: dict[str, type[QuintupletTestSet]] = {
    cls.__name__: cls
    for cls in (
        Ucf101_quintuplet,
        Davis90_quintuplet,
        VFITex_quintuplet,
        Snufilm_easy_quintuplet,
        Snufilm_medium_quintuplet,
        Snufilm_hard_quintuplet,
        Snufilm_extreme_quintuplet,
    )
}


def build_test_set(name: str, data_dir: PathType) -> QuintupletTestSet:
    """The test set called ``name`` (an original class name) from its folder under ``data_dir``."""
    if name not in TEST_SETS:
        raise ValueError(f"unknown test set {name!r}; choose one of {', '.join(TEST_SETS)}")
    test_set = TEST_SETS[name]
    return test_set(Path(data_dir) / test_set.layout.folder)
