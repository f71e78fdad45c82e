"""Tasks: how a model turns a batch into a loss and evaluation sums.

A task has `training_loss(model, batch) -> (loss, scalars)` and
`eval_sums(model, batch) -> {metric: (sum, count)}`; the trainer averages the sums
over the held-out set (and over ranks). Chapters register their tasks here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

_TASKS: dict[str, Callable[..., Task]] = {}


def register_task(name: str):
    """Decorator registering a Task class under `name`."""

    def decorator(cls):
        _TASKS[name] = cls
        return cls

    return decorator


def build_task(cfg) -> Task:
    """The task named by `cfg.name`, built with the other keys of `cfg`."""
    kwargs = {k: v for k, v in dict(cfg).items() if k != "name"}
    name = cfg.get("name")
    if name not in _TASKS:
        raise KeyError(f"unknown task {name!r}; available tasks: {', '.join(sorted(_TASKS))}")
    accepted = [p for p in inspect.signature(_TASKS[name].__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"task {name!r} has no option(s) {unknown}; its options are {accepted}")
    return _TASKS[name](**kwargs)


class Task:
    """Base class of tasks."""

    def training_loss(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def eval_sums(self, model: nn.Module, batch) -> dict[str, tuple[torch.Tensor, int]]:
        raise NotImplementedError


def move_to(batch, device: torch.device):
    """A batch (tensor, tuple, list or dict of them) on `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: move_to(value, device) for key, value in batch.items()}
    return batch


@register_task("classification")
class Classification(Task):
    """Cross-entropy on (images, labels) batches; accuracy on the held-out set."""

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def training_loss(self, model, batch):
        images, labels = batch
        logits = model(images)  # (B, num_classes)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        accuracy = (logits.argmax(-1) == labels).float().mean()
        return loss, {"accuracy": accuracy.item()}

    def eval_sums(self, model, batch):
        images, labels = batch
        logits = model(images).float()  # (B, num_classes)
        loss = F.cross_entropy(logits, labels, reduction="sum")
        correct = (logits.argmax(-1) == labels).sum()
        return {"loss": (loss, len(labels)), "accuracy": (correct.float(), len(labels))}
