"""A distributed, resumable sampler: per-epoch shuffles, sharded by rank, able to start mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableDistributedSampler(Sampler[int]):
    """Indices of one epoch for one rank.

    Epoch e shuffles with seed + e (the same on every rank); rank r takes every
    world_size-th index of the permutation, so the ranks' batches together are exactly
    the batches a single process would see. `start` skips the first indices of the
    epoch (resuming in the middle of an epoch). Trailing indices that do not fill a
    full global batch are dropped when `drop_last`.
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 seed: int = 0, global_batch: int | None = None, drop_last: bool = True):
        if length <= 0:
            raise ValueError("the dataset is empty: nothing to sample")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
        self.length, self.rank, self.world_size = length, rank, world_size
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.global_batch = global_batch or world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch, and how many of this rank's indices to skip at its start."""
        self.epoch, self.start = epoch, start

    def _epoch_indices(self) -> torch.Tensor:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=generator)
        else:
            order = torch.arange(self.length)
        if self.drop_last:
            order = order[: self.length // self.global_batch * self.global_batch]
        return order[self.rank :: self.world_size]

    @property
    def per_epoch(self) -> int:
        """How many indices this rank gets in a whole epoch."""
        kept = self.length // self.global_batch * self.global_batch if self.drop_last else self.length
        return max(0, -(-(kept - self.rank) // self.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self._epoch_indices()[self.start :].tolist())

    def __len__(self) -> int:
        return max(0, self.per_epoch - self.start)
