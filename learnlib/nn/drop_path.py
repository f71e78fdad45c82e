"""Stochastic depth: drop a whole residual branch per sample during training."""

from __future__ import annotations

import torch
from torch import nn


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """Zero the branch `x` (B, ...) for a random drop_prob fraction of samples, rescale the rest."""
    if drop_prob == 0.0 or not training:
        return x
    if not 0.0 <= drop_prob < 1.0:
        raise ValueError(f"drop_prob must lie in [0, 1), got {drop_prob}")
    keep = 1.0 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)  # (B, 1, ..., 1)
    mask = x.new_empty(shape).bernoulli_(keep).div_(keep)  # 0 or 1 / keep per sample
    return x * mask


class DropPath(nn.Module):
    """Module form of `drop_path`; identity in eval mode or with drop_prob 0."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"
