"""Validation of train.py and distill.py: PSNR and SSIM on the Vimeo-90K test list after every epoch.

As in the original, the validation items are ``vimeo_septuplet/sep_testlist.txt`` cropped to ``--patch_size``
without flips or time reversal, in batches of ``--batch_size``. Unlike the original, whose crops were drawn anew
at every validation, each item's crop is fixed (seeded by its index), so epochs are scored on the same pixels and
validating never touches the training run's random generators. Scores are the metrics' 8-bit rounded PSNR and SSIM
(``metrics/quality.py``), averaged over items. In a distributed run every process scores every N-th item (no
padding, so no item counts twice) and the sums and counts are added up over the processes: the mean is the one a
single process gets on the same items.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from data import Vimeo90k_quintuplet
from metrics import calc_psnr, calc_ssim
from pipeline import distributed
from common.files import PathType
from common.interpolator import Interpolator

# Seed of the fixed validation crops (any value works; it only has to stay the same between epochs).
VALIDATION_CROP_SEED = 0



@dataclass(frozen=True)
class ValidationScores:
    """Mean PSNR (dB) and SSIM over ``count`` items.

    Kept as sums and a count so that partial results (e.g. of several processes) add up exactly.
    """

    psnr_sum: float
    ssim_sum: float
    count: int

    @property
    def psnr(self) -> float:
        return self.psnr_sum / self.count

    @property
    def ssim(self) -> float:
        return self.ssim_sum / self.count


def build_validation_loader(
    data_dir: PathType, patch_size: int, batch_size: int, num_workers: int = 0, num_replicas: int = 1, rank: int = 0
) -> DataLoader:
    """Batches of the Vimeo-90K test list (``data_dir/vimeo_septuplet``), cropped as described above; with
    ``num_replicas`` N, only items ``rank, rank + N, ...``."""
    dataset = Vimeo90k_quintuplet(
        Path(data_dir) / "vimeo_septuplet",
        train=False,
        crop_sz=(patch_size, patch_size),
        augment_s=False,
        augment_t=False,
        seed=VALIDATION_CROP_SEED,
    )
    if len(dataset) == 0:
        raise ValueError(f"the Vimeo-90K test list under {data_dir} is empty; validation needs at least one item")
    # An own generator: creating the loader's iterator then draws nothing from torch's global generator.
    return DataLoader(
        dataset, batch_size=batch_size, sampler=range(rank, len(dataset), num_replicas), num_workers=num_workers,
        generator=torch.Generator(),
    )


@torch.no_grad()
def score_interpolator(interpolate: Interpolator, loader: DataLoader, device: torch.device) -> ValidationScores:
    """Scores of ``interpolate(frame1, frame3, frame5, frame7) -> frame4`` on every batch of ``loader``."""
    psnr_sum = ssim_sum = 0.0
    count = 0
    for frames in loader:
        frame1, frame3, frame4, frame5, frame7 = (frame.to(device) for frame in frames)
        prediction = interpolate(frame1, frame3, frame5, frame7)
        psnr_sum += float(calc_psnr(frame4, prediction).sum())
        ssim_sum += float(calc_ssim(frame4, prediction).sum())
        count += frame4.shape[0]
    return ValidationScores(psnr_sum, ssim_sum, count)


def validate_model(model: nn.Module, loader: DataLoader, device: torch.device) -> ValidationScores:
    """Scores of ``model`` in eval mode (its previous mode is restored afterwards), summed over the processes of a
    distributed run (each with its share of the items in ``loader``)."""
    was_training = model.training
    model.eval()
    try:
        scores = score_interpolator(model, loader, device)
    finally:
        model.train(was_training)
    return sum_over_processes(scores, device)


def sum_over_processes(scores: ValidationScores, device: torch.device) -> ValidationScores:
    """The sums and counts of every process added up (``scores`` itself outside a distributed run)."""
    psnr_sum, ssim_sum, count = distributed.all_reduce_sum([scores.psnr_sum, scores.ssim_sum, scores.count], device)
    return ValidationScores(psnr_sum, ssim_sum, round(count))
