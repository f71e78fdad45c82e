"""SLatVAE: encoder + Gaussian decoder, and the registered configurations.

Registered models: `slat_enc_swin8_b_64l8`, `slat_dec_gs_swin8_b_64l8`, `slat_vae_swin8_b_64l8`
(TRELLIS's published sizes: resolution 64, width 768, 12 blocks, 12 heads, window 8, latent 8)
and `slat_enc_tiny`, `slat_dec_gs_tiny`, `slat_vae_tiny` (CPU-sized: resolution 32, width 64,
2 blocks, 4 heads, window 8, latent 8, input width 32 by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from learnlib.models import register
from learnlib.slat.decoder_gs import SLatGaussianDecoder
from learnlib.slat.encoder import SLatEncoder, diagonal_gaussian_kl
from learnlib.sparse import SparseTensor
from learnlib.splat import Gaussians

FULL = {"resolution": 64, "model_channels": 768, "latent_channels": 8, "num_blocks": 12, "num_heads": 12,
        "mlp_ratio": 4.0, "window_size": 8}
TINY = {"resolution": 32, "model_channels": 64, "latent_channels": 8, "num_blocks": 2, "num_heads": 4,
        "mlp_ratio": 4.0, "window_size": 8}
FULL_IN_CHANNELS = 1024  # DINOv2 ViT-L/14 features averaged into each voxel
TINY_IN_CHANNELS = 32


@dataclass
class SLatVAEOutput:
    """gaussians: one `Gaussians` per object; latent: the sampled SparseTensor (N, latent);
    mean, logvar: (N, latent) posterior; kl: the scalar `diagonal_gaussian_kl`."""

    gaussians: list[Gaussians]
    latent: SparseTensor
    mean: Tensor
    logvar: Tensor
    kl: Tensor


class SLatVAE(nn.Module):
    """Structured-latent VAE: `encoder` (SLatEncoder) then `decoder` (SLatGaussianDecoder).

    Build it from two modules, or with `SLatVAE.build(encoder_kwargs, decoder_kwargs)`.
    `use_checkpoint` switches activation checkpointing of every block of both halves; `blocks`
    lists the encoder's blocks then the decoder's, so that `trainer.activation_checkpointing`
    (learnlib.nn.checkpointing), per-block FSDP units and learnlib.memory reach them too.
    """

    def __init__(self, encoder: SLatEncoder, decoder: SLatGaussianDecoder) -> None:
        super().__init__()
        if encoder.latent_channels != decoder.latent_channels or encoder.resolution != decoder.resolution:
            raise ValueError("encoder and decoder must share latent_channels and resolution, got "
                             f"{encoder.latent_channels}/{encoder.resolution} and "
                             f"{decoder.latent_channels}/{decoder.resolution}")
        self.encoder = encoder
        self.decoder = decoder

    @property
    def blocks(self) -> nn.ModuleList:
        """The Swin blocks of the encoder then of the decoder (a view: not registered twice)."""
        return nn.ModuleList([*self.encoder.blocks, *self.decoder.blocks])

    @property
    def use_checkpoint(self) -> bool:
        return self.encoder.use_checkpoint and self.decoder.use_checkpoint

    @use_checkpoint.setter
    def use_checkpoint(self, flag: bool) -> None:
        self.encoder.use_checkpoint = flag
        self.decoder.use_checkpoint = flag

    def forward(self, feats: SparseTensor, sample_posterior: bool = True,
                generator: torch.Generator | None = None) -> SLatVAEOutput:
        latent, mean, logvar = self.encoder(feats, sample_posterior=sample_posterior, generator=generator)
        gaussians = self.decoder(latent)
        return SLatVAEOutput(gaussians, latent, mean, logvar, diagonal_gaussian_kl(mean, logvar))


def _encoder(base: dict, in_channels: int, **overrides) -> SLatEncoder:
    return SLatEncoder(**{**base, "in_channels": in_channels, **overrides})


def _decoder(base: dict, **overrides) -> SLatGaussianDecoder:
    return SLatGaussianDecoder(**{**base, **overrides})


def _vae(base: dict, in_channels: int, encoder: dict | None, decoder: dict | None, **shared) -> SLatVAE:
    return SLatVAE(_encoder(base, in_channels, **shared, **(encoder or {})), _decoder(base, **shared, **(decoder or {})))


@register("slat_enc_swin8_b_64l8")
def slat_enc_swin8_b_64l8(in_channels: int = FULL_IN_CHANNELS, **overrides) -> SLatEncoder:
    """TRELLIS's SLat encoder (85.8M parameters): 1024-channel voxel features -> 8-channel latent."""
    return _encoder(FULL, in_channels, **overrides)


@register("slat_dec_gs_swin8_b_64l8")
def slat_dec_gs_swin8_b_64l8(**overrides) -> SLatGaussianDecoder:
    """TRELLIS's SLat Gaussian decoder (85.4M parameters): 32 Gaussians per voxel."""
    return _decoder(FULL, **overrides)


@register("slat_vae_swin8_b_64l8")
def slat_vae_swin8_b_64l8(encoder: dict | None = None, decoder: dict | None = None, in_channels: int = FULL_IN_CHANNELS,
                          **shared) -> SLatVAE:
    """Both published halves; `shared` overrides (e.g. use_checkpoint=True) go to encoder and decoder."""
    return _vae(FULL, in_channels, encoder, decoder, **shared)


@register("slat_enc_tiny")
def slat_enc_tiny(in_channels: int = TINY_IN_CHANNELS, **overrides) -> SLatEncoder:
    """CPU-sized encoder (resolution 32, width 64, 2 blocks, 4 heads)."""
    return _encoder(TINY, in_channels, **overrides)


@register("slat_dec_gs_tiny")
def slat_dec_gs_tiny(**overrides) -> SLatGaussianDecoder:
    """CPU-sized Gaussian decoder (resolution 32, width 64, 2 blocks, 4 heads, 32 Gaussians per voxel)."""
    return _decoder(TINY, **overrides)


@register("slat_vae_tiny")
def slat_vae_tiny(encoder: dict | None = None, decoder: dict | None = None, in_channels: int = TINY_IN_CHANNELS,
                  **shared) -> SLatVAE:
    """CPU-sized VAE; `shared` overrides go to both halves."""
    return _vae(TINY, in_channels, encoder, decoder, **shared)
