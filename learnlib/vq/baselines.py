"""A classical codec to compare tokenizers with: downsample, quantize the pixels, upsample back."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def token_bits_per_image(patch_nums: Sequence[int], vocab_size: int) -> float:
    """Bits that a multi-scale token pyramid spends on one image: sum(pn^2) * log2(vocab_size)."""
    if vocab_size < 2 or not patch_nums or min(patch_nums) < 1:
        raise ValueError(f"need vocab_size >= 2 and positive patch_nums, got {vocab_size} and {tuple(patch_nums)}")
    return sum(pn * pn for pn in patch_nums) * math.log2(vocab_size)


def downsample_bits_per_image(size: int, bits: int, channels: int = 1) -> int:
    """Bits of one image stored as channels x size x size pixels of `bits` bits each."""
    if size < 1 or bits < 1 or channels < 1:
        raise ValueError(f"size, bits and channels must be >= 1, got {size}, {bits}, {channels}")
    return channels * size * size * bits


def quantize_uniform(x: torch.Tensor, bits: int, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Round x to the nearest of 2**bits evenly spaced levels spanning `value_range` (ends included)."""
    low, high = value_range
    if bits < 1 or not high > low:
        raise ValueError(f"need bits >= 1 and value_range (low, high) with high > low, got {bits}, {value_range}")
    levels = 2 ** bits - 1
    steps = ((x.clamp(low, high) - low) / (high - low) * levels).round()
    return steps / levels * (high - low) + low


def downsample_upsample(images: torch.Tensor, size: int, bits: int,
                        value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Images (B, C, H, W) -> area-downsampled to size x size, pixels quantized to `bits` bits, bilinear back.

    The codec costs `downsample_bits_per_image(size, bits, C)` bits per image, with no learned parameter.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    if not 1 <= size <= min(images.shape[-2:]):
        raise ValueError(f"size must lie in [1, {min(images.shape[-2:])}], got {size}")
    small = F.interpolate(images.float(), size=(size, size), mode="area")  # (B, C, size, size)
    small = quantize_uniform(small, bits, value_range)  # (B, C, size, size)
    if small.shape[-2:] == images.shape[-2:]:
        return small
    return F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)  # (B, C, H, W)
