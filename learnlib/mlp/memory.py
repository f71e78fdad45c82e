"""The MLP classifier's memory workload: cross-entropy on random feature vectors (learnlib.memory)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from learnlib.mlp.model import MLPClassifier
from learnlib.workloads import ConfigExtras, FamilyWorkload, register_workload, task_options


@register_workload("mlp")
class MLPWorkload(FamilyWorkload):
    """One classification step of an MLPClassifier on `batch` random feature vectors."""

    def model_class(self) -> type:
        return MLPClassifier

    def training_step(self, model, batch, generator=None, label_smoothing: float = 0.0):
        device = next(model.parameters()).device
        features = torch.randn(batch, model.in_features, device=device, generator=generator)  # (B, F)
        classes = model.net[-1].out_features
        labels = torch.randint(0, max(classes, 1), (batch,), device=device, generator=generator)

        def step():
            return F.cross_entropy(model(features).float(), labels, label_smoothing=label_smoothing)
        return step

    def from_config(self, cfg) -> ConfigExtras:
        return ConfigExtras(task_options(cfg, ("label_smoothing",)))
