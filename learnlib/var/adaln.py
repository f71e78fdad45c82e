"""Adaptive LayerNorm blocks of VAR: the class condition sets per-block scales, shifts and gates."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from learnlib.nn.drop_path import DropPath
from learnlib.nn.mlp import Mlp
from learnlib.var.attention import SelfAttention


def feed_forward(embed_dim: int, hidden_features: int, drop: float = 0.0) -> Mlp:
    """VAR's feed-forward block: fc1 -> GELU(tanh) -> fc2 -> dropout (no dropout after the activation)."""
    return Mlp(embed_dim, hidden_features, act_layer=partial(nn.GELU, approximate="tanh"), drop=(0.0, drop))


def modulate(x_norm: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """AdaLN modulation x * (1 + scale) + shift, scale and shift broadcast as (B, 1, C)."""
    return x_norm * (scale + 1) + shift


class SharedAdaLin(nn.Linear):
    """One Linear(D, 6C) shared by all blocks; output (B, 1, 6, C)."""

    def forward(self, cond_BD: torch.Tensor) -> torch.Tensor:
        C = self.weight.shape[0] // 6
        return super().forward(cond_BD).view(-1, 1, 6, C)  # (B, 1, 6, C)


class AdaLNSelfAttn(nn.Module):
    """Transformer block with AdaLN: SiLU -> Linear(D, 6C) gives gates g1, g2, scales s1, s2, shifts b1, b2.

    x = x + g1 * attn(LN(x) * (1 + s1) + b1);  x = x + g2 * ffn(LN(x) * (1 + s2) + b2),
    LN without affine parameters (eps 1e-6 in VAR).
    """

    def __init__(self, embed_dim: int, cond_dim: int, num_heads: int, mlp_ratio: float = 4.0,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0, norm_eps: float = 1e-6,
                 shared_aln: bool = False, attn_l2_norm: bool = False, attn_backend: str = "auto"):
        super().__init__()
        self.C, self.D = embed_dim, cond_dim
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.attn = SelfAttention(embed_dim, num_heads, attn_drop=attn_drop, proj_drop=drop,
                                  attn_l2_norm=attn_l2_norm, backend=attn_backend)
        self.ffn = feed_forward(embed_dim, round(embed_dim * mlp_ratio), drop=drop)
        self.ln_wo_grad = nn.LayerNorm(embed_dim, eps=norm_eps, elementwise_affine=False)
        self.shared_aln = shared_aln
        if shared_aln:
            self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, embed_dim) / embed_dim ** 0.5)
        else:
            self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * embed_dim))

    def forward(self, x: torch.Tensor, cond_BD: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
        """x (B, L, C), cond_BD (B, D) (or (B, 1, 6, C) from a shared AdaLin) -> (B, L, C)."""
        if self.shared_aln:
            params = self.ada_gss + cond_BD  # (B, 1, 6, C)
        else:
            params = self.ada_lin(cond_BD).view(-1, 1, 6, self.C)  # (B, 1, 6, C)
        gamma1, gamma2, scale1, scale2, shift1, shift2 = params.unbind(2)  # each (B, 1, C)
        h = self.attn(modulate(self.ln_wo_grad(x), scale1, shift1), attn_bias=attn_bias)
        x = x + self.drop_path(h * gamma1)
        h = self.ffn(modulate(self.ln_wo_grad(x), scale2, shift2))
        return x + self.drop_path(h * gamma2)


class AdaLNBeforeHead(nn.Module):
    """Final AdaLN before the classifier head: SiLU -> Linear(D, 2C) gives scale and shift."""

    def __init__(self, C: int, D: int, norm_eps: float = 1e-6):
        super().__init__()
        self.C, self.D = C, D
        self.ln_wo_grad = nn.LayerNorm(C, eps=norm_eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * C))

    def forward(self, x_BLC: torch.Tensor, cond_BD: torch.Tensor) -> torch.Tensor:
        scale, shift = self.ada_lin(cond_BD).view(-1, 1, 2, self.C).unbind(2)  # each (B, 1, C)
        return modulate(self.ln_wo_grad(x_BLC), scale, shift)
