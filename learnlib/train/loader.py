"""The training loader: dataset, collate function, batch sampler and position, resumable mid-epoch.

`ResumableLoader` hands out micro-batches one after another across epochs and knows where
it stands (epoch, batches consumed in it); `state_dict()` / `load_state_dict()` carry that
position through a checkpoint, so a resumed run sees exactly the batches it would have seen.
A dataset may bring its own `collate_fn` (variable-size samples such as sparse voxel
objects); a dataset with `sizes` (voxels, tokens, pixels per item) can be batched up to a
budget with `trainer.batching=budget`, and one with `groups` as well (an id per item, e.g.
the resolution bucket of an image: a batch never mixes groups).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from learnlib.train.batching import BudgetBatchSampler, FixedBatchSampler
from learnlib.train.sampler import ResumableDistributedSampler


def dataset_collate(dataset: Dataset) -> Callable:
    """The dataset's own `collate_fn` if it has one, else torch's default collate."""
    return getattr(dataset, "collate_fn", None) or default_collate


class ResumableLoader:
    """Micro-batches from `dataset` in the order `batch_sampler` gives, epoch after epoch."""

    def __init__(self, dataset: Dataset, batch_sampler, collate_fn: Callable | None = None, num_workers: int = 0,
                 pin_memory: bool = False, seed: int = 0):
        if len(batch_sampler) == 0:
            raise ValueError("the batch sampler yields no batch in an epoch: the dataset is smaller than one batch")
        self.dataset, self.batch_sampler = dataset, batch_sampler
        self.collate_fn = collate_fn or dataset_collate(dataset)
        self._loader = DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=self.collate_fn,
                                  num_workers=num_workers, pin_memory=pin_memory,
                                  generator=torch.Generator().manual_seed(seed),  # keeps the global RNG untouched
                                  persistent_workers=False)
        self.epoch, self.batch_in_epoch = 0, 0
        self._iterator = None

    @property
    def batches_per_epoch(self) -> int:
        """Micro-batches this rank takes in one epoch (the same on every rank)."""
        return len(self.batch_sampler)

    def __iter__(self) -> ResumableLoader:
        return self

    def __next__(self):
        """The next micro-batch; the position moves to the next epoch after an epoch's last batch."""
        if self._iterator is None:
            self.batch_sampler.set_epoch(self.epoch, start=self.batch_in_epoch)
            self._iterator = iter(self._loader)
        batch = next(self._iterator)
        self.batch_in_epoch += 1
        if self.batch_in_epoch >= self.batches_per_epoch:
            self.epoch, self.batch_in_epoch, self._iterator = self.epoch + 1, 0, None
        return batch

    def state_dict(self) -> dict[str, int]:
        """The position: the epoch and how many of its batches were consumed."""
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a position saved by `state_dict`."""
        epoch, done = int(state["epoch"]), int(state["batch_in_epoch"])
        if epoch < 0 or not 0 <= done < self.batches_per_epoch:
            raise ValueError(f"loader position {state} is out of range for {self.batches_per_epoch} batches per epoch")
        self.epoch, self.batch_in_epoch, self._iterator = epoch, done, None


def train_batch_sampler(dataset: Dataset, trainer_cfg, rank: int, world_size: int, seed: int):
    """The training batch sampler that `trainer.batching` names: fixed-size or budgeted micro-batches."""
    t = trainer_cfg
    batching = t.get("batching", "fixed")
    groups = getattr(dataset, "groups", None)
    if batching == "fixed":
        if groups is not None and len(set(groups)) > 1:
            raise ValueError(f"{type(dataset).__name__} sorts its items into {len(set(groups))} groups (`groups`, "
                             f"e.g. image shapes) that fixed-size batches would mix: use trainer.batching=budget trainer.batch_budget=N")
        micro_batch = t.batch_size // (world_size * t.grad_accum)
        sampler = ResumableDistributedSampler(len(dataset), rank, world_size, shuffle=True, seed=seed,
                                              global_batch=t.batch_size)
        return FixedBatchSampler(sampler, micro_batch)
    if batching == "budget":
        sizes = getattr(dataset, "sizes", None)
        if sizes is None:
            raise ValueError(f"trainer.batching=budget needs a dataset with `sizes` (items' voxels, tokens or "
                             f"pixels); {type(dataset).__name__} has none: use trainer.batching=fixed")
        return BudgetBatchSampler(sizes, t.batch_budget, rank, world_size, seed=seed,
                                  max_items=t.get("batch_max_items"), multiple_of=t.grad_accum, groups=groups)
    raise ValueError(f"trainer.batching must be 'fixed' or 'budget', got {batching!r}")


def eval_batches(dataset: Dataset, batch_size: int, rank: int, world_size: int, num_workers: int = 0,
                 seed: int = 0) -> DataLoader:
    """One pass over this rank's share of a held-out set, in order, the last batch possibly short."""
    sampler = ResumableDistributedSampler(len(dataset), rank, world_size, shuffle=False, drop_last=False)
    return DataLoader(dataset, batch_sampler=FixedBatchSampler(sampler, batch_size),
                      collate_fn=dataset_collate(dataset), num_workers=num_workers,
                      generator=torch.Generator().manual_seed(seed))


def move_to(batch, device: torch.device):
    """A batch (tensor, tuple, list or dict of them) on `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: move_to(value, device) for key, value in batch.items()}
    return batch
