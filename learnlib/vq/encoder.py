"""Convolutional encoder of the VQ-VAE: image (B, 3, H, W) -> features (B, z, H/2^(n-1), W/2^(n-1))."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from learnlib.vq.blocks import MidBlock, ResolutionLevel, group_norm


class Encoder(nn.Module):
    """conv_in, one level per entry of `ch_mult` (all but the last downsample by 2), mid block, conv_out.

    Attention runs inside the last (lowest-resolution) level when `using_sa`, and in the
    mid block when `using_mid_sa`, as in the VQGAN f16 configuration.
    """

    def __init__(self, *, ch: int = 128, ch_mult: tuple[int, ...] = (1, 2, 4, 8), num_res_blocks: int = 2,
                 dropout: float = 0.0, in_channels: int = 3, z_channels: int = 32, double_z: bool = False,
                 using_sa: bool = True, using_mid_sa: bool = True, norm_groups: int = 32):
        super().__init__()
        self.ch, self.in_channels, self.num_res_blocks = ch, in_channels, num_res_blocks
        self.num_resolutions = len(ch_mult)
        self.downsample_ratio = 2 ** (self.num_resolutions - 1)
        self.conv_in = nn.Conv2d(in_channels, ch, kernel_size=3, stride=1, padding=1)
        in_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        last = self.num_resolutions - 1
        for level, mult in enumerate(ch_mult):
            self.down.append(ResolutionLevel(
                ch * in_mult[level], ch * mult, num_res_blocks, dropout,
                use_attn=using_sa and level == last, norm_groups=norm_groups,
                resample="downsample" if level != last else None,
            ))
        block_in = ch * ch_mult[-1]
        self.mid = MidBlock(block_in, dropout, using_mid_sa, norm_groups)
        self.norm_out = group_norm(block_in, norm_groups)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, 3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Encoder expects images (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % self.downsample_ratio or x.shape[-2] % self.downsample_ratio:
            raise ValueError(f"image size {tuple(x.shape[-2:])} must be divisible by {self.downsample_ratio}")
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))
