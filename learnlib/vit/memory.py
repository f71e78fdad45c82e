"""The Vision Transformer's memory workload: cross-entropy on random images (learnlib.memory)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from learnlib.vit import VisionTransformer
from learnlib.workloads import ConfigExtras, FamilyWorkload, register_workload, task_options


@register_workload("vit")
class ViTWorkload(FamilyWorkload):
    """One classification step of a VisionTransformer on `batch` random images of its input size."""

    def model_class(self) -> type:
        return VisionTransformer

    def training_step(self, model, batch, generator=None, label_smoothing: float = 0.0):
        device = next(model.parameters()).device
        pe = model.patch_embed
        images = torch.randn(batch, pe.in_chans, pe.img_size, pe.img_size, device=device,
                             generator=generator)  # (B, C, H, W)
        labels = torch.randint(0, max(model.num_classes, 1), (batch,), device=device, generator=generator)

        def step():
            return F.cross_entropy(model(images).float(), labels, label_smoothing=label_smoothing)
        return step

    def from_config(self, cfg) -> ConfigExtras:
        return ConfigExtras(task_options(cfg, ("label_smoothing",)))
