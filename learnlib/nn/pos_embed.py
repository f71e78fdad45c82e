"""Learned absolute position embeddings resampled to another patch grid (timm's `resample_abs_pos_embed`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def resample_pos_embed(pos_embed: torch.Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int],
                       num_prefix_tokens: int = 1, mode: str = "bicubic", antialias: bool = True) -> torch.Tensor:
    """Position embeddings (1, prefix + h*w, D) of an (h, w) patch grid -> (1, prefix + H*W, D) of an
    (H, W) grid, interpolated over the grid; the prefix (class, register) tokens are kept as they are.

    Returned unchanged when the grids are equal, so a model at its configured size is untouched.
    """
    old_h, old_w = old_grid
    new_h, new_w = new_grid
    expected = num_prefix_tokens + old_h * old_w
    if pos_embed.dim() != 3 or pos_embed.shape[:2] != (1, expected):
        raise ValueError(f"resample_pos_embed expects position embeddings (1, {expected}, D) for a {old_h}x{old_w} "
                         f"grid and {num_prefix_tokens} prefix token(s), got {tuple(pos_embed.shape)}")
    if new_h < 1 or new_w < 1:
        raise ValueError(f"new_grid must be at least (1, 1), got {tuple(new_grid)}")
    if (new_h, new_w) == (old_h, old_w):
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]  # (1, n, D), (1, h*w, D)
    grid = rearrange(grid.float(), "1 (h w) d -> 1 d h w", h=old_h, w=old_w)  # (1, D, h, w): interpolate wants float32
    grid = F.interpolate(grid, size=(new_h, new_w), mode=mode, antialias=antialias)  # (1, D, H, W)
    grid = rearrange(grid, "1 d h w -> 1 (h w) d").to(pos_embed.dtype)  # (1, H*W, D)
    return torch.cat([prefix, grid], dim=1)  # (1, n + H*W, D)
