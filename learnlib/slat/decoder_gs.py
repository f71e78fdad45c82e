"""Structured-latent Gaussian decoder: latent (N, 8) per voxel -> 32 3D Gaussians per voxel."""

from __future__ import annotations

from torch import nn

from learnlib.slat.gaussian_layout import (
    CHANNELS_PER_GAUSSIAN,
    TRELLIS_LR,
    gaussian_params,
    offset_perturbation,
)
from learnlib.slat.transformer import SparseSwinTransformer, check_voxels
from learnlib.sparse import SparseTensor
from learnlib.splat import Gaussians


class SLatGaussianDecoder(SparseSwinTransformer):
    """Latent SparseTensor (N, latent_channels) -> one `Gaussians` of N * num_gaussians per object.

    Args:
        resolution, model_channels, latent_channels, num_blocks, num_heads, mlp_ratio, window_size,
        use_checkpoint, backend: as for `SLatEncoder`.
        num_gaussians: Gaussians per voxel (32).
        voxel_size: width in voxels of the box a Gaussian may reach around its voxel centre (1.5).
        perturb_offset: start Gaussian g at the g-th Hammersley point of the box (True in TRELLIS).
        scaling_bias, opacity_bias, min_kernel_size: `Gaussians` activations (4e-3, 0.1, 9e-4: the
            scale at raw 0 is sqrt(0.004^2 + 0.0009^2), the opacity 0.1; the 3D filter keeps every
            scale above 0.0009).
        filter_2d_kernel_size: screen-space Mip-Splatting filter to render with (0.1; see `render_kwargs`).
        lr: per-attribute output multipliers (TRELLIS: 0.1 for rotations, 1 otherwise).

    The output layer starts at zero, so at initialisation every voxel holds grey Gaussians at the
    Hammersley points with scale ~0.004 and opacity 0.1. The buffer `offset_perturbation` is part
    of the state dict, as in TRELLIS's checkpoints.
    """

    def __init__(self, resolution: int = 64, model_channels: int = 768, latent_channels: int = 8,
                 num_blocks: int = 12, num_heads: int | None = 12, num_head_channels: int = 64,
                 mlp_ratio: float = 4.0, window_size: int = 8, use_checkpoint: bool = False,
                 backend: str = "auto", num_gaussians: int = 32, voxel_size: float = 1.5,
                 perturb_offset: bool = True, scaling_bias: float = 4e-3, opacity_bias: float = 0.1,
                 min_kernel_size: float = 9e-4, filter_2d_kernel_size: float = 0.1,
                 lr: dict[str, float] | None = None) -> None:
        super().__init__(resolution, latent_channels, model_channels, num_blocks, num_heads, num_head_channels,
                         mlp_ratio, window_size, use_checkpoint, backend)
        self.latent_channels = latent_channels
        self.num_gaussians = num_gaussians
        self.voxel_size = voxel_size
        self.perturb_offset = perturb_offset
        self.scaling_bias = scaling_bias
        self.opacity_bias = opacity_bias
        self.min_kernel_size = min_kernel_size
        self.filter_2d_kernel_size = filter_2d_kernel_size
        self.lr = {**TRELLIS_LR, **(lr or {})}
        self.out_channels = CHANNELS_PER_GAUSSIAN * num_gaussians
        self.out_layer = nn.Linear(model_channels, self.out_channels)
        self.register_buffer("offset_perturbation", offset_perturbation(num_gaussians, voxel_size))
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier trunk; zero output layer."""
        super().initialize_weights()
        nn.init.zeros_(self.out_layer.weight)
        nn.init.zeros_(self.out_layer.bias)

    @property
    def render_kwargs(self) -> dict:
        """Keyword arguments of `learnlib.splat.rasterize` for TRELLIS's Mip-Splatting 2D filter."""
        return {"eps2d": self.filter_2d_kernel_size, "antialiased": True}

    def to_gaussians(self, raw: SparseTensor) -> list[Gaussians]:
        """One `Gaussians` per object from the output layer's features (N, 14 * num_gaussians)."""
        perturbation = self.offset_perturbation if self.perturb_offset else None
        out = []
        for rows in raw.layout:
            params = gaussian_params(raw.feats[rows], raw.coords[rows, 1:], self.resolution, perturbation,
                                     self.voxel_size, self.lr)
            out.append(Gaussians(**params, scaling_bias=self.scaling_bias, opacity_bias=self.opacity_bias,
                                 min_kernel_size=self.min_kernel_size))
        return out

    def forward(self, z: SparseTensor) -> list[Gaussians]:
        z = check_voxels(z, self.resolution, self.latent_channels, "SLatGaussianDecoder")
        h = self.trunk(z)
        return self.to_gaussians(h.replace(self.out_layer(h.feats)))
