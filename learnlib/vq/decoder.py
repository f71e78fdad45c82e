"""Convolutional decoder of the VQ-VAE: features (B, z, h, w) -> image (B, 3, h*2^(n-1), w*2^(n-1))."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from learnlib.vq.blocks import MidBlock, ResolutionLevel, group_norm


class Decoder(nn.Module):
    """conv_in, mid block, levels from coarse to fine (num_res_blocks + 1 blocks each), conv_out.

    `up[i]` is the level at resolution i (0 = finest), matching the encoder's `down[i]`;
    the levels run from the last to the first.
    """

    def __init__(self, *, ch: int = 128, ch_mult: tuple[int, ...] = (1, 2, 4, 8), num_res_blocks: int = 2,
                 dropout: float = 0.0, in_channels: int = 3, z_channels: int = 32,
                 using_sa: bool = True, using_mid_sa: bool = True, norm_groups: int = 32):
        super().__init__()
        self.ch, self.in_channels, self.z_channels = ch, in_channels, z_channels
        self.num_resolutions = len(ch_mult)
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, kernel_size=3, stride=1, padding=1)
        self.mid = MidBlock(block_in, dropout, using_mid_sa, norm_groups)
        last = self.num_resolutions - 1
        levels: list[nn.Module] = []
        for level in reversed(range(self.num_resolutions)):
            block_out = ch * ch_mult[level]
            levels.insert(0, ResolutionLevel(
                block_in, block_out, num_res_blocks + 1, dropout,
                use_attn=using_sa and level == last, norm_groups=norm_groups,
                resample="upsample" if level != 0 else None,
            ))
            block_in = block_out
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(block_in, norm_groups)
        self.conv_out = nn.Conv2d(block_in, in_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 4 or z.shape[1] != self.z_channels:
            raise ValueError(f"Decoder expects latents (B, {self.z_channels}, h, w), got {tuple(z.shape)}")
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))
