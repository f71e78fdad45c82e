"""The task registry, the base `Task` and the classification task.

A task says how a model turns a batch into a loss and evaluation sums:
`training_loss(model, batch) -> (loss, scalars)` and `eval_sums(model, batch) -> {metric: (sum, count)}`;
the trainer averages the sums over the held-out set (and over ranks). A family registers its task
in its own room (`learnlib/vq/task.py`, `learnlib/var/task.py`, `learnlib/slat/task.py`) with
`@register_task("name")` and lists the module in TASK_MODULES.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from learnlib.registry import Registry

# Modules whose import registers tasks. Each chapter adds its module here.
TASK_MODULES = ("learnlib.tasks", "learnlib.vq.task", "learnlib.var.task", "learnlib.slat.task")
TASKS = Registry("task", TASK_MODULES)
register_task = TASKS.register


def build_task(cfg) -> Task:
    """The task named by `cfg.name`, built with the other keys of `cfg`."""
    kwargs = {k: v for k, v in dict(cfg).items() if k != "name"}
    return TASKS.build(cfg.get("name"), **kwargs)


class Task:
    """Base class of tasks. `metric_names` lists the held-out metrics `eval_sums` reports."""

    metric_names: tuple[str, ...] = ()

    def training_loss(self, model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def eval_sums(self, model: nn.Module, batch) -> dict[str, tuple[torch.Tensor, int]]:
        raise NotImplementedError


@register_task("classification")
class Classification(Task):
    """Cross-entropy on (images, labels) batches; accuracy on the held-out set."""

    metric_names = ("loss", "accuracy")

    def __init__(self, label_smoothing: float = 0.0, mixup: float = 0.0):
        if mixup < 0:
            raise ValueError(f"task.mixup is the Beta(alpha, alpha) parameter and must be >= 0, got {mixup}")
        self.label_smoothing, self.mixup = label_smoothing, mixup

    def training_loss(self, model, batch):
        images, labels = batch
        if self.mixup:
            weight = float(torch.distributions.Beta(self.mixup, self.mixup).sample())
            partner = torch.randperm(len(labels), device=labels.device)
            images = weight * images + (1 - weight) * images[partner]
        logits = model(images)  # (B, num_classes)
        scores = logits.float()
        loss = F.cross_entropy(scores, labels, label_smoothing=self.label_smoothing)
        if self.mixup:
            loss = weight * loss + (1 - weight) * F.cross_entropy(scores, labels[partner],
                                                                  label_smoothing=self.label_smoothing)
        accuracy = (logits.argmax(-1) == labels).float().mean()
        return loss, {"accuracy": accuracy.item()}

    def eval_sums(self, model, batch):
        images, labels = batch
        logits = model(images).float()  # (B, num_classes)
        loss = F.cross_entropy(logits, labels, reduction="sum")
        correct = (logits.argmax(-1) == labels).sum()
        return {"loss": (loss, len(labels)), "accuracy": (correct.float(), len(labels))}
