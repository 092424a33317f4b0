"""Training and validation sets of ST-MFNet: Vimeo-90K septuplets, BVI-DVC quintuplets, a mixing Sampler, and the
training set of the scripts built from them.

Every item is the tuple ``(frame1, frame3, frame4, frame5, frame7)`` of (3, H, W) float32 RGB tensors in
[0, 1], in temporal order: the model's inputs are frames 1, 3, 5, 7 and the target is frame 4, the middle
of the tuple (time reversal keeps it there). The training loop unpacks a batch exactly like that.

Randomness (``seed``): None draws from torch's global RNG, which ``torch.manual_seed`` makes reproducible,
DataLoader workers included (torch seeds each worker from it every epoch). An integer seed gives item i
the same draws on every call (``transforms.item_generator``): meant for validation sets and tests, since
in training it would repeat the same crops every epoch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from common.files import PathType
from data.frames import load_frame, natural_key
from data.transforms import Augmentation, item_generator

VIMEO_LAYOUT = (
    "vimeo_septuplet/sep_trainlist.txt and sep_testlist.txt (one 'NNNNN/NNNN' per line) and "
    "vimeo_septuplet/sequences/NNNNN/NNNN/im1.png ... im7.png"
)
BVIDVC_LAYOUT = (
    "bvidvc/quintuplets/NNNNN/quintuplet.png, five square tiles side by side in the frame order 1, 3, 5, 7, 4"
)
# Vimeo-90K septuplet frames used, in temporal order; im4 is the target.
VIMEO_FRAMES = ("im1.png", "im3.png", "im4.png", "im5.png", "im7.png")
# Position of each tile of a BVI-DVC quintuplet.png in temporal order 1, 3, 4, 5, 7: the target is the last tile.
BVIDVC_TILE_OF_FRAME = (0, 1, 4, 2, 3)
# The training sets of train.py and distill.py (--train_sets), by the folder under --data_dir they read.
TRAINING_SETS = ("vimeo", "bvidvc")

Quintuplet = tuple[Tensor, Tensor, Tensor, Tensor, Tensor]


def _require(path: Path, what: str, layout: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} not found; expected layout: {layout}")
    return path


class _AugmentedQuintuplets(Dataset):
    """Shared constructor arguments and augmentation of the two training sets."""

    def __init__(
        self,
        crop_sz: Optional[Sequence[int]],
        augment_s: bool,
        augment_t: bool,
        seed: Optional[int],
        augmentation: Optional[Augmentation],
    ) -> None:
        self.augmentation = augmentation or Augmentation.from_flags(crop_sz, augment_s, augment_t)
        self.seed = seed

    def _augment(self, frames: list[Tensor], index: int) -> Quintuplet:
        return tuple(self.augmentation(frames, item_generator(self.seed, index)))


class Vimeo90k_quintuplet(_AugmentedQuintuplets):
    """Vimeo-90K septuplets reduced to quintuplets: inputs im1, im3, im5, im7 and target im4.

    Args:
        db_dir: the ``vimeo_septuplet`` folder.
        train: read ``sep_trainlist.txt`` (True) or ``sep_testlist.txt`` (False).
        crop_sz: (height, width) of the random crop, or None (the original crops validation sets too).
        augment_s: random horizontal and vertical flips; augment_t: random time reversal.
        seed: see the module docstring.
        augmentation: full control of each augmentation; replaces crop_sz, augment_s and augment_t.
    """

    def __init__(
        self,
        db_dir: PathType,
        train: bool = True,
        crop_sz: Optional[Sequence[int]] = (256, 256),
        augment_s: bool = True,
        augment_t: bool = True,
        seed: Optional[int] = None,
        augmentation: Optional[Augmentation] = None,
    ) -> None:
        super().__init__(crop_sz, augment_s, augment_t, seed, augmentation)
        root = _require(Path(db_dir), "Vimeo-90K folder", VIMEO_LAYOUT)
        list_file = _require(root / ("sep_trainlist.txt" if train else "sep_testlist.txt"), "list", VIMEO_LAYOUT)
        sequences = _require(root / "sequences", "folder", VIMEO_LAYOUT)
        names = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
        self.sequence_dirs = [sequences.joinpath(*name.split("/")) for name in names]

    def __len__(self) -> int:
        return len(self.sequence_dirs)

    def __getitem__(self, index: int) -> Quintuplet:
        frames = [load_frame(self.sequence_dirs[index] / name) for name in VIMEO_FRAMES]
        return self._augment(frames, index)


class BVIDVC_quintuplet(_AugmentedQuintuplets):
    """BVI-DVC quintuplets: one PNG per item with five square tiles, frames 1, 3, 5, 7, 4 from left to right.

    Args as for Vimeo90k_quintuplet; ``db_dir`` is the ``bvidvc`` folder. ``res`` is the original's unused
    second parameter, kept so that positional calls ``(db_dir, res, crop_sz, augment_s, augment_t)`` work.
    Unlike the original, which ignored crop_sz here, the crop is applied: with the default 256 on 256x256
    tiles it is the identity, and any smaller patch size keeps the BVI-DVC and Vimeo samples batchable together.
    """

    def __init__(
        self,
        db_dir: PathType,
        res: object = None,
        crop_sz: Optional[Sequence[int]] = (256, 256),
        augment_s: bool = True,
        augment_t: bool = True,
        seed: Optional[int] = None,
        augmentation: Optional[Augmentation] = None,
    ) -> None:
        super().__init__(crop_sz, augment_s, augment_t, seed, augmentation)
        quintuplets = _require(Path(db_dir) / "quintuplets", "folder", BVIDVC_LAYOUT)
        folders = sorted((p for p in quintuplets.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
        self.quintuplet_files = [folder / "quintuplet.png" for folder in folders]

    def __len__(self) -> int:
        return len(self.quintuplet_files)

    def __getitem__(self, index: int) -> Quintuplet:
        path = self.quintuplet_files[index]
        strip = load_frame(_require(path, "file", BVIDVC_LAYOUT))
        tile = strip.shape[1]
        if strip.shape[2] != 5 * tile:
            raise ValueError(f"{path} is {strip.shape[2]}x{tile}; expected five {tile}x{tile} tiles side by side")
        frames = [strip[:, :, t * tile:(t + 1) * tile] for t in BVIDVC_TILE_OF_FRAME]
        return self._augment(frames, index)


class Sampler(Dataset):
    """Draws items from several datasets.

    Args:
        datasets: the datasets to mix.
        p_datasets: probability of drawing from each dataset in random mode (default: proportional to size).
        iter: True concatenates the datasets (item i of the first, then of the second, ...), which is what
            train.py and distill.py use; False draws ``samples_per_epoch`` random items (a dataset by
            p_datasets, then a uniform index), ignoring the index asked for unless ``seed`` is set.
        samples_per_epoch: length in random mode.
        seed: None draws from torch's global RNG; an integer makes the draw of item i depend on (seed, i) only.
    """

    def __init__(
        self,
        datasets: Sequence[Dataset],
        p_datasets: Optional[Sequence[float]] = None,
        iter: bool = False,
        samples_per_epoch: int = 1000,
        seed: Optional[int] = None,
    ) -> None:
        if not datasets:
            raise ValueError("Sampler needs at least one dataset")
        self.datasets = list(datasets)
        self.lengths = [len(dataset) for dataset in self.datasets]
        if p_datasets is None:
            p_datasets = self.lengths
        if len(p_datasets) != len(self.datasets):
            raise ValueError(f"{len(p_datasets)} probabilities for {len(self.datasets)} datasets")
        self.p_datasets = torch.tensor(p_datasets, dtype=torch.float64)
        self.p_datasets /= self.p_datasets.sum()
        self.iterate = iter
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed

    def __len__(self) -> int:
        return sum(self.lengths) if self.iterate else self.samples_per_epoch

    def locate(self, index: int) -> tuple[int, int]:
        """(dataset number, index in that dataset) of item ``index``."""
        if self.iterate:
            if not 0 <= index < len(self):
                raise IndexError(f"index {index} out of range for {len(self)} items")
            for dataset_number, length in enumerate(self.lengths):
                if index < length:
                    return dataset_number, index
                index -= length
        generator = item_generator(self.seed, index)
        dataset_number = int(torch.multinomial(self.p_datasets, 1, generator=generator))
        item = int(torch.randint(0, self.lengths[dataset_number], (1,), generator=generator))
        return dataset_number, item

    def __getitem__(self, index: int):
        dataset_number, item = self.locate(index)
        return self.datasets[dataset_number][item]


def build_training_set(
    data_dir: PathType, patch_size: int, train_sets: Sequence[str], samples_per_epoch: Optional[int] = None
) -> Sampler:
    """The training sets under ``data_dir`` in the given order, concatenated (or drawn at random when
    ``samples_per_epoch`` is given), with random crops of ``patch_size``, flips and time reversal."""
    if not train_sets:
        raise ValueError(f"no training set chosen; valid: {', '.join(TRAINING_SETS)}")
    crop = (patch_size, patch_size)
    builders = {
        "vimeo": lambda: Vimeo90k_quintuplet(Path(data_dir) / "vimeo_septuplet", train=True, crop_sz=crop),
        "bvidvc": lambda: BVIDVC_quintuplet(Path(data_dir) / "bvidvc", crop_sz=crop),
    }
    datasets = []
    for name in dict.fromkeys(train_sets):
        try:
            datasets.append(builders[name]())
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error}. Train without it by leaving it out of --train_sets.") from error
    if samples_per_epoch is None:
        return Sampler(datasets, iter=True)
    return Sampler(datasets, iter=False, samples_per_epoch=samples_per_epoch)
