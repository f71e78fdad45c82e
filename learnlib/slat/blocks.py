"""Sparse Swin transformer block: pre-LayerNorm, shifted-window self-attention, tanh-GELU MLP.

The attention is chapter 06's `learnlib.sparse.SparseMultiHeadAttention`. Module and parameter names
follow TRELLIS's SparseTransformerBlock (`norm1`, `attn.to_qkv`, `attn.to_out`, `norm2`, `mlp.mlp.0`,
`mlp.mlp.2`), so its released state dicts load strictly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from learnlib.sparse import SparseMultiHeadAttention, SparseTensor, swin_shift

LN_EPS = 1e-6


def layer_norm_fp32(x: Tensor, eps: float = LN_EPS) -> Tensor:
    """LayerNorm over the last dim without affine parameters, computed in float32, cast back."""
    return F.layer_norm(x.float(), x.shape[-1:], eps=eps).type(x.dtype)


def swin_block_shifts(num_blocks: int, window_size: int) -> list[tuple[int, int, int]]:
    """Window shift of every block of a Swin stack: (0, 0, 0) on even blocks, window_size // 2 on odd ones."""
    return [swin_shift(window_size, i) for i in range(num_blocks)]


class SparseFeedForward(nn.Module):
    """Linear -> tanh-GELU -> Linear on the voxel features (`mlp.0`, `mlp.2` as in TRELLIS)."""

    def __init__(self, channels: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, channels))

    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.replace(self.mlp(x.feats))


class SparseSwinBlock(nn.Module):
    """x + attn(norm1(x)), then x + mlp(norm2(x)); norms are affine-free LayerNorms (eps 1e-6) in float32.

    `use_checkpoint` recomputes the block in the backward pass (non-reentrant activation checkpointing).
    """

    def __init__(self, channels: int, num_heads: int, window_size: int = 8, shift_window: Sequence[int] = (0, 0, 0),
                 mlp_ratio: float = 4.0, use_checkpoint: bool = False, backend: str = "auto") -> None:
        super().__init__()
        self.use_checkpoint = use_checkpoint
        self.attn = SparseMultiHeadAttention(channels, num_heads, window_size, shift_window, backend=backend)
        self.mlp = SparseFeedForward(channels, mlp_ratio)

    def _forward(self, x: SparseTensor) -> SparseTensor:
        x = x + self.attn(x.replace(layer_norm_fp32(x.feats)))
        return x + self.mlp(x.replace(layer_norm_fp32(x.feats)))

    def forward(self, x: SparseTensor) -> SparseTensor:
        if self.use_checkpoint and torch.is_grad_enabled():
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)
