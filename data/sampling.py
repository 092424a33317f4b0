"""Seeded, resumable, shardable sampling of the training set for train.py and distill.py.

One epoch is one pass over the training set in an order drawn from (seed, epoch), in batches of ``--batch_size``;
the random crop, flips and time reversal of every item are drawn from (seed, epoch, item), never from a generator
shared with the rest of the run. The data an optimizer step sees therefore does not depend on where a run was
interrupted or on ``--num_workers``, and a run stopped after any step and continued with ``--resume`` takes the
same steps as one that never stopped (bit-exactly on the CPU).

Distributed runs: each of the N processes takes every N-th item of the epoch's seeded order
(:class:`EpochSampler`), ``--batch_size`` at a time, so one step of the N processes covers the same
N x ``--batch_size`` items as one step of a single process with a batch N times larger. That is why the sampler
is not ``torch.utils.data.DistributedSampler``: the sharding is the same (order padded to a multiple of N by
repeating its start, then ``order[rank::N]``), but the order is the single-process one and an epoch can start at
any step, which keeps exact resume. A run therefore resumes with any number of processes as long as
N x ``--batch_size`` stays the same.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

# Independent random streams derived from the run's seed.
_ORDER_STREAM, _ITEM_STREAM = 0, 1


def _mixed_seed(*numbers: int) -> int:
    return int(np.random.SeedSequence(list(numbers)).generate_state(1, dtype=np.uint64)[0])


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, index)`` keys: a fresh permutation of ``range(length)`` per epoch, from (seed, epoch).

    With ``num_replicas`` N > 1 it yields the share of process ``rank``, as ``DistributedSampler`` does: the order
    padded to a multiple of N by repeating its start, then every N-th position from ``rank``. Every process gets
    ``ceil(length / N)`` keys, and positions ``k*b*N ... (k+1)*b*N - 1`` of the order form step k of the N
    processes at batch size b.

    ``set_epoch(epoch, start)`` selects the epoch and skips the first ``start`` keys of this process's share (a
    resumed epoch).
    """

    def __init__(self, length: int, seed: int, shuffle: bool = True, num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not one of {num_replicas} replicas")
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.share_length = math.ceil(length / num_replicas)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        if not 0 <= start <= self.share_length:
            raise ValueError(f"cannot start epoch {epoch} at position {start} of {self.share_length}")
        self.epoch, self.start = epoch, start

    def order(self, epoch: int) -> list[int]:
        """The epoch's order of all items (every process computes the same)."""
        if not self.shuffle:
            return list(range(self.length))
        generator = torch.Generator().manual_seed(_mixed_seed(self.seed, _ORDER_STREAM, epoch))
        return torch.randperm(self.length, generator=generator).tolist()

    def share(self, epoch: int) -> list[int]:
        """This process's items of the epoch, in order."""
        order = self.order(epoch)
        if self.num_replicas == 1:
            return order
        padded_length = self.share_length * self.num_replicas
        padded = (order * math.ceil(padded_length / self.length))[:padded_length]
        return padded[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return iter([(epoch, index) for index in self.share(epoch)[self.start:]])

    def __len__(self) -> int:
        return self.share_length - self.start


class SeededItems(Dataset):
    """Wraps a dataset that draws its augmentation from torch's global generator: item ``(epoch, index)`` is made
    with that generator seeded by (seed, epoch, index), and the generator's state is restored afterwards."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(_mixed_seed(self.seed, _ITEM_STREAM, epoch, index))
            return self.dataset[index]


def build_training_loader(
    dataset: Dataset, batch_size: int, seed: int, num_workers: int = 0, num_replicas: int = 1, rank: int = 0
) -> tuple[DataLoader, EpochSampler]:
    """A loader over ``dataset`` (or process ``rank``'s share of it) in seeded order with seeded items; step its
    sampler's ``set_epoch`` every epoch."""
    if len(dataset) == 0:
        raise ValueError("the training set is empty")
    sampler = EpochSampler(len(dataset), seed, num_replicas=num_replicas, rank=rank)
    # The loader's own generator keeps iterator creation from drawing on torch's global generator.
    loader = DataLoader(
        SeededItems(dataset, seed), batch_size=batch_size, sampler=sampler, num_workers=num_workers,
        generator=torch.Generator(),
    )
    return loader, sampler
