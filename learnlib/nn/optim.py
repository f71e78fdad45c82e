"""The optimizers of the course: AdamW with weight decay on matrices only, or SGD with momentum."""

from __future__ import annotations

import torch
from torch import nn

OPTIMIZERS = ("adamw", "sgd")


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, betas=(0.9, 0.999),
                    device: torch.device | str | None = None, kind: str = "adamw",
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """AdamW (`kind="adamw"`; biases, norms and 1-D embeddings are not decayed) or SGD with `momentum`
    (`kind="sgd"`) over the trainable parameters of `model`. `device` (default: the parameters') picks
    AdamW's fused kernel on CPU and CUDA (speed: benchmarks/RESULTS.md)."""
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r}; valid values: {', '.join(OPTIMIZERS)}")
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    if kind == "sgd":
        return torch.optim.SGD([*decay, *no_decay], lr=lr, momentum=momentum, weight_decay=weight_decay)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=device.type in ("cpu", "cuda"))
