"""3D absolute sinusoidal position embedding of voxel coordinates (TRELLIS's AbsolutePositionEmbedder)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AbsolutePositionEmbedder(nn.Module):
    """Sinusoidal embedding (N, channels) of integer positions (N, in_channels).

    Each axis gets `channels // in_channels // 2` frequencies 10000^(-k / F), k = 0..F-1, laid out
    per axis as [sin(p f_0..f_{F-1}), cos(p f_0..f_{F-1})]; axes follow each other and the channels
    left over (when `channels` is not a multiple of 2 * in_channels) are zeros. No parameters.
    """

    def __init__(self, channels: int, in_channels: int = 3) -> None:
        super().__init__()
        if channels < 2 * in_channels:
            raise ValueError(f"channels must be >= 2 * in_channels = {2 * in_channels}, got {channels}")
        self.channels = channels
        self.in_channels = in_channels
        self.freq_dim = channels // in_channels // 2

    def forward(self, positions: Tensor) -> Tensor:
        if positions.dim() != 2 or positions.shape[1] != self.in_channels:
            raise ValueError(f"positions must have shape (N, {self.in_channels}), got {tuple(positions.shape)}")
        n = positions.shape[0]
        exponents = torch.arange(self.freq_dim, dtype=torch.float32, device=positions.device) / self.freq_dim
        freqs = 1.0 / (10000.0 ** exponents)  # (F,)
        angles = positions.reshape(-1).float()[:, None] * freqs[None, :]  # (N*D, F)
        embed = torch.cat([angles.sin(), angles.cos()], dim=-1)  # (N*D, 2F)
        embed = embed.reshape(n, -1)  # (N, D*2F)
        pad = self.channels - embed.shape[1]
        if pad:
            embed = torch.cat([embed, embed.new_zeros(n, pad)], dim=-1)  # (N, channels)
        return embed
