"""Structured-latent encoder: per-voxel features -> diagonal Gaussian posterior over an 8-channel latent."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from learnlib.slat.transformer import SparseSwinTransformer, check_voxels
from learnlib.sparse import SparseTensor


def diagonal_gaussian_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) averaged over every element (voxels and channels), as TRELLIS.

    0.5 * mean(mean^2 + exp(logvar) - logvar - 1); a scalar.
    """
    if mean.shape != logvar.shape:
        raise ValueError(f"mean and logvar must have the same shape, got {list(mean.shape)} and {list(logvar.shape)}")
    return 0.5 * torch.mean(mean.pow(2) + logvar.exp() - logvar - 1)


def reparameterize(mean: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A differentiable sample mean + exp(0.5 * logvar) * eps, eps ~ N(0, 1)."""
    std = torch.exp(0.5 * logvar)
    eps = torch.randn(std.shape, generator=generator, device=std.device, dtype=std.dtype)
    return mean + std * eps


class SLatEncoder(SparseSwinTransformer):
    """Voxel features (N, in_channels) -> latent mean and log-variance (N, latent_channels) per voxel.

    Args:
        resolution: side of the voxel grid (coordinates in [0, resolution)).
        in_channels: input feature width per voxel (1024 for TRELLIS's DINOv2 features).
        model_channels, num_blocks, num_heads, mlp_ratio, window_size: the Swin trunk.
        latent_channels: width of the structured latent (8 in TRELLIS).
        use_checkpoint: recompute blocks in the backward pass.
        backend: sparse attention backend ("auto").

    `forward(x)` returns (z, mean, logvar): z a SparseTensor on x's voxels (a posterior sample, or the
    mean with `sample_posterior=False`), mean and logvar tensors (N, latent_channels).
    """

    def __init__(self, resolution: int = 64, in_channels: int = 1024, model_channels: int = 768,
                 latent_channels: int = 8, num_blocks: int = 12, num_heads: int | None = 12,
                 num_head_channels: int = 64, mlp_ratio: float = 4.0, window_size: int = 8,
                 use_checkpoint: bool = False, backend: str = "auto") -> None:
        super().__init__(resolution, in_channels, model_channels, num_blocks, num_heads, num_head_channels,
                         mlp_ratio, window_size, use_checkpoint, backend)
        self.latent_channels = latent_channels
        self.out_layer = nn.Linear(model_channels, 2 * latent_channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier trunk; zero output layer (the posterior starts at N(0, 1))."""
        super().initialize_weights()
        nn.init.zeros_(self.out_layer.weight)
        nn.init.zeros_(self.out_layer.bias)

    def forward(self, x: SparseTensor, sample_posterior: bool = True,
                generator: torch.Generator | None = None) -> tuple[SparseTensor, Tensor, Tensor]:
        x = check_voxels(x, self.resolution, self.in_channels, "SLatEncoder")
        h = self.trunk(x)
        mean, logvar = self.out_layer(h.feats).chunk(2, dim=-1)  # 2 x (N, latent)
        z = reparameterize(mean, logvar, generator) if sample_posterior else mean
        return x.replace(z), mean, logvar
