"""Layer scale (Touvron et al., 2021, CaiT): a learned per-channel gain on each residual branch."""

from __future__ import annotations

import torch
from torch import nn

from learnlib.nn.block import Block


class LayerScale(nn.Module):
    """x (..., dim) * gamma with a learned per-channel gamma (dim,) (DINOv2's `ls1` / `ls2`)."""

    def __init__(self, dim: int, init_value: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class LayerScaleBlock(Block):
    """`learnlib.nn.Block` with layer scale on both residual branches: x + ls(f(norm(x)))."""

    def __init__(self, dim: int, num_heads: int, init_values: float = 1.0, **kwargs):
        super().__init__(dim, num_heads, **kwargs)
        self.ls1 = LayerScale(dim, init_values)
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, dim) -> (B, N, dim)."""
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
