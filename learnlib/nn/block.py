"""Pre-norm transformer encoder block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

from __future__ import annotations

import torch
from torch import nn

from learnlib.nn.attention import Attention
from learnlib.nn.drop_path import DropPath
from learnlib.nn.mlp import Mlp


class Block(nn.Module):
    """One ViT encoder layer with timm's parameter names (norm1, attn, norm2, mlp)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 proj_drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 norm_eps: float = 1e-6, attn_backend: str = "auto"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                              proj_drop=proj_drop, backend=attn_backend)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                return_attention: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, dim) -> (B, N, dim); with return_attention also (B, heads, N, N) weights."""
        if return_attention:
            y, attn = self.attn(self.norm1(x), mask=mask, return_attention=True)
        else:
            y, attn = self.attn(self.norm1(x), mask=mask), None
        x = x + self.drop_path1(y)
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return (x, attn) if return_attention else x
