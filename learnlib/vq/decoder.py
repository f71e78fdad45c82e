"""Convolutional decoder of the VQ-VAE: features (B, z, h, w) -> image (B, 3, h*2^(n-1), w*2^(n-1))."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from learnlib.vq.blocks import AttnBlock, MidBlock, ResnetBlock, Upsample2x, group_norm


class DecoderLevel(nn.Module):
    """One resolution of the decoder: residual blocks, optional attention after each, then upsampling."""

    def __init__(self, in_ch: int, out_ch: int, num_blocks: int, dropout: float, use_attn: bool,
                 upsample: bool, norm_groups: int):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()
        for i in range(num_blocks):
            self.block.append(ResnetBlock(in_ch if i == 0 else out_ch, out_ch, dropout, norm_groups))
            if use_attn:
                self.attn.append(AttnBlock(out_ch, norm_groups))
        if upsample:
            self.upsample = Upsample2x(out_ch)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn) > 0:
                h = self.attn[i](h)
        if hasattr(self, "upsample"):
            h = self.upsample(h)
        return h


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
            levels.insert(0, DecoderLevel(
                block_in, block_out, num_res_blocks + 1, dropout,
                use_attn=using_sa and level == last, upsample=level != 0, norm_groups=norm_groups,
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
