"""Block-causal attention over a pyramid of token maps: a token sees its own scale and all coarser ones."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _check_patch_nums(patch_nums: Sequence[int]) -> None:
    if len(patch_nums) == 0 or any(int(p) < 1 for p in patch_nums):
        raise ValueError(f"patch_nums must be a non-empty sequence of positive ints, got {tuple(patch_nums)}")


def scale_ids(patch_nums: Sequence[int]) -> torch.Tensor:
    """Scale index of every token of the flattened pyramid, shape (L,) with L = sum(pn^2)."""
    _check_patch_nums(patch_nums)
    return torch.cat([torch.full((pn * pn,), si, dtype=torch.long) for si, pn in enumerate(patch_nums)])  # (L,)


def scale_ranges(patch_nums: Sequence[int]) -> list[tuple[int, int]]:
    """(begin, end) of every scale inside the flattened token sequence."""
    _check_patch_nums(patch_nums)
    ranges, cur = [], 0
    for pn in patch_nums:
        ranges.append((cur, cur + pn * pn))
        cur += pn * pn
    return ranges


def block_causal_mask(patch_nums: Sequence[int]) -> torch.Tensor:
    """Boolean (L, L) mask, True where query i may attend to key j (scale(j) <= scale(i))."""
    ids = scale_ids(patch_nums)  # (L,)
    return ids[:, None] >= ids[None, :]  # (L, L)


def block_causal_bias(patch_nums: Sequence[int]) -> torch.Tensor:
    """Additive attention bias (1, 1, L, L): 0 where allowed, -inf elsewhere."""
    allowed = block_causal_mask(patch_nums)  # (L, L)
    bias = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))  # (L, L)
    return bias[None, None]  # (1, 1, L, L)
