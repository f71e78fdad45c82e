"""Parameter count of VAR's transformer blocks: the reproduction notes' d^2 figure and the d^3 truth.

VAR-d has width w = 64 d and d blocks. One block holds qkv (3 w^2) and proj (w^2) of attention,
the MLP (8 w^2) - 12 w^2 - plus the AdaLN projection D -> 6C (6 w^2): 18 w^2 = 73,728 d^2 weights
per block. The notes call 73,728 d^2 the blocks' parameter count, but that is ONE block; all d
blocks hold d times as much, 73,728 d^3, so the count grows as the cube of the depth.
"""

from __future__ import annotations

from torch import nn


def _check_depth(depth: int) -> None:
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive int, got {depth!r}")


def var_block_params_notes(depth: int) -> int:
    """The reproduction notes' figure for all blocks of VAR-`depth`: 73,728 d^2 (one block's weights)."""
    _check_depth(depth)
    return 73_728 * depth**2


def var_one_block_params(depth: int, adaln: bool = True) -> int:
    """Exact parameters of one block of VAR-`depth` (width 64 d, d heads, MLP ratio 4, per-block AdaLN).

    Weights 12 w^2 (+ 6 w^2 of AdaLN) and the vectors: q and v biases, proj and MLP biases, the
    per-head attention scale, the AdaLN bias.
    """
    _check_depth(depth)
    w = 64 * depth
    attention = 3 * w * w + 2 * w + w * w + w + depth  # qkv (no k bias), q/v biases, proj, scale per head
    mlp = w * 4 * w + 4 * w + 4 * w * w + w
    ada = 6 * w * w + 6 * w if adaln else 0
    return attention + mlp + ada


def var_block_params(depth: int, adaln: bool = True) -> int:
    """Exact parameters of all `depth` blocks of VAR-`depth`: about 73,728 d^3 (49,152 d^3 without AdaLN)."""
    return depth * var_one_block_params(depth, adaln)


def measured_block_params(model: nn.Module) -> int:
    """Parameters of `model.blocks`, counted from the model."""
    return sum(p.numel() for p in model.blocks.parameters())
