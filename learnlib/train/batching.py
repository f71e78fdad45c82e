"""Batch samplers of the training loader: fixed-size micro-batches, or batches filled up to a budget.

Both yield one rank's lists of dataset indices for one epoch, are deterministic for a
(seed, epoch), give every rank the same number of batches, and can start mid-epoch:
`set_epoch(epoch, start=k)` skips this rank's first k batches. `len()` is the number of
batches in a whole epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from learnlib.train.sampler import ResumableDistributedSampler


def pack_greedy(order: Sequence[int], sizes: Sequence[int], budget: int, max_items: int | None = None) -> list[list[int]]:
    """Items in `order` packed into consecutive batches whose `sizes` sum to at most `budget`
    (and that hold at most `max_items`): a new batch starts when the next item would not fit."""
    batches, current, filled = [], [], 0
    for index in order:
        size = sizes[index]
        full = max_items is not None and len(current) == max_items
        if current and (filled + size > budget or full):
            batches.append(current)
            current, filled = [], 0
        current.append(index)
        filled += size
    if current:
        batches.append(current)
    return batches


class FixedBatchSampler(Sampler[list[int]]):
    """Micro-batches of `batch_size` consecutive indices of a ResumableDistributedSampler."""

    def __init__(self, sampler: ResumableDistributedSampler, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.sampler, self.batch_size = sampler, batch_size

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch and how many of this rank's batches to skip at its start."""
        self.sampler.set_epoch(epoch, start=start * self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        indices = list(self.sampler)
        for begin in range(0, len(indices), self.batch_size):
            yield indices[begin : begin + self.batch_size]

    def __len__(self) -> int:
        return -(-self.sampler.per_epoch // self.batch_size)


class BudgetBatchSampler(Sampler[list[int]]):
    """Batches filled up to `budget` (voxels, tokens, pixels) for items of different `sizes`.

    Each epoch shuffles the items with seed + epoch (the same order on every rank) and packs
    them greedily, in that order, into batches whose sizes sum to at most `budget` (and hold
    at most `max_items`, if given). With `groups` (one id per item, e.g. the resolution bucket
    of an image) a batch never mixes groups: each group's items, in the shuffled order, are
    packed on their own, and the batches are put in the order of their first item, so the
    groups interleave. Batch i goes to rank i % world_size; the batches are cut
    (`drop_last`) or padded with the epoch's first batches to a multiple of
    world_size * `multiple_of` (the accumulation steps), so every rank steps the same number
    of times. An item larger than the budget is an error.
    """

    def __init__(self, sizes: Sequence[int] | torch.Tensor, budget: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, shuffle: bool = True, drop_last: bool = True, max_items: int | None = None,
                 multiple_of: int = 1, groups: Sequence[int] | torch.Tensor | None = None):
        sizes = torch.as_tensor(sizes, dtype=torch.long).flatten()  # (num_items,)
        if len(sizes) == 0:
            raise ValueError("the dataset is empty: nothing to batch")
        if budget < 1:
            raise ValueError(f"budget must be >= 1, got {budget}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
        if (sizes < 1).any():
            bad = int(torch.nonzero(sizes < 1)[0])
            raise ValueError(f"item {bad} has size {int(sizes[bad])}; every item needs size >= 1 (an empty object?)")
        too_big = torch.nonzero(sizes > budget).flatten()
        if len(too_big):
            first = int(too_big[0])
            raise ValueError(f"item {first} has size {int(sizes[first])}, more than the batch budget {budget} "
                             f"({len(too_big)} item(s) exceed it): raise the budget or drop such items")
        if max_items is not None and max_items < 1:
            raise ValueError(f"max_items must be >= 1 or None, got {max_items}")
        if multiple_of < 1:
            raise ValueError(f"multiple_of must be >= 1, got {multiple_of}")
        if groups is not None:
            groups = torch.as_tensor(groups, dtype=torch.long).flatten()  # (num_items,)
            if groups.shape != sizes.shape:
                raise ValueError(f"groups must hold one id per item: expected ({len(sizes)},), got {tuple(groups.shape)}")
        self.groups = groups
        self.sizes, self.budget, self.max_items = sizes, int(budget), max_items
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.shuffle, self.drop_last, self.multiple_of = shuffle, drop_last, multiple_of
        self.epoch, self.start = 0, 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch and how many of this rank's batches to skip at its start."""
        self.epoch, self.start = epoch, start

    def _pack(self) -> list[list[int]]:
        """Every rank's batches of the current epoch, in global order."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        if self.shuffle:
            order = torch.randperm(len(self.sizes), generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(len(self.sizes))
        batches = self._pack_order(order.tolist())
        round_size = self.world_size * self.multiple_of
        if self.drop_last:
            batches = batches[: len(batches) // round_size * round_size]
            if not batches:
                raise ValueError(f"one epoch packs into fewer batches than world_size * multiple_of "
                                 f"({self.world_size} * {self.multiple_of}); lower the budget or pass drop_last=False")
        else:
            missing = -len(batches) % round_size
            batches = batches + [batches[i % len(batches)] for i in range(missing)]
        self._cache = (self.epoch, batches)
        return batches

    def _pack_order(self, order: list[int]) -> list[list[int]]:
        """`order` packed greedily, within each group if there are groups."""
        sizes = self.sizes.tolist()
        if self.groups is None:
            return pack_greedy(order, sizes, self.budget, self.max_items)
        group_of = self.groups.tolist()
        orders: dict[int, list[int]] = {}
        for index in order:
            orders.setdefault(group_of[index], []).append(index)
        position = {index: k for k, index in enumerate(order)}
        batches = [batch for group_order in orders.values()
                   for batch in pack_greedy(group_order, sizes, self.budget, self.max_items)]
        return sorted(batches, key=lambda batch: position[batch[0]])

    def __iter__(self) -> Iterator[list[int]]:
        mine = self._pack()[self.rank :: self.world_size]
        return iter(mine[self.start :])

    def __len__(self) -> int:
        return len(self._pack()) // self.world_size
