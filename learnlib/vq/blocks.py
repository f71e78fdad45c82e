"""Convolutional building blocks of the VQ-VAE encoder and decoder.

Module and attribute names follow the taming-transformers / VAR layout so that the
published `vae_ch160v4096z32.pth` state dict loads without renaming.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with eps 1e-6; the group count falls back to gcd(groups, channels) so small widths work."""
    return nn.GroupNorm(num_groups=math.gcd(groups, channels), num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """Pre-activation residual block: (GroupNorm, SiLU, conv3x3) twice, dropout before the second conv."""

    def __init__(self, in_channels: int, out_channels: int | None = None, dropout: float = 0.0,
                 norm_groups: int = 32):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = group_norm(in_channels, norm_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = group_norm(out_channels, norm_groups)
        self.dropout = nn.Dropout(dropout) if dropout > 1e-6 else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        else:
            self.nin_shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.nin_shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels of a feature map, with a residual connection."""

    def __init__(self, in_channels: int, norm_groups: int = 32):
        super().__init__()
        self.C = in_channels
        self.norm = group_norm(in_channels, norm_groups)
        self.qkv = nn.Conv2d(in_channels, 3 * in_channels, kernel_size=1)
        self.proj_out = nn.Conv2d(in_channels, in_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        C, H, W = x.shape[1:]
        qkv = self.qkv(self.norm(x))  # (B, 3C, H, W)
        q, k, v = rearrange(qkv, "b (three c) h w -> three b (h w) c", three=3)  # each (B, HW, C)
        weights = torch.softmax(q @ k.transpose(1, 2) * C ** -0.5, dim=-1)  # (B, HW, HW)
        out = weights @ v  # (B, HW, C)
        out = rearrange(out, "b (h w) c -> b c h w", h=H, w=W)  # (B, C, H, W)
        return x + self.proj_out(out)


class Downsample2x(nn.Module):
    """Halve the resolution with a stride-2 3x3 conv after zero padding right and bottom by one."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample2x(nn.Module):
    """Double the resolution by nearest-neighbour interpolation followed by a 3x3 conv."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResolutionLevel(nn.Module):
    """One resolution of the encoder or decoder: residual blocks, optional attention after each, then an
    optional 2x resampling, stored as `downsample` (encoder) or `upsample` (decoder) like the released weights."""

    def __init__(self, in_ch: int, out_ch: int, num_blocks: int, dropout: float, use_attn: bool,
                 norm_groups: int, resample: str | None = None):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()
        for i in range(num_blocks):
            self.block.append(ResnetBlock(in_ch if i == 0 else out_ch, out_ch, dropout, norm_groups))
            if use_attn:
                self.attn.append(AttnBlock(out_ch, norm_groups))
        resamplers = {"downsample": Downsample2x, "upsample": Upsample2x}
        if resample is not None:
            if resample not in resamplers:
                raise ValueError(f"resample must be None, 'downsample' or 'upsample', got {resample!r}")
            self.add_module(resample, resamplers[resample](out_ch))
        self.resample = resample

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn) > 0:
                h = self.attn[i](h)
        if self.resample is not None:
            h = getattr(self, self.resample)(h)
        return h


class MidBlock(nn.Module):
    """ResnetBlock, AttnBlock (or identity), ResnetBlock at the lowest resolution."""

    def __init__(self, channels: int, dropout: float, use_attn: bool, norm_groups: int):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout, norm_groups)
        self.attn_1 = AttnBlock(channels, norm_groups) if use_attn else nn.Identity()
        self.block_2 = ResnetBlock(channels, channels, dropout, norm_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))
