"""Structured-latent VAE (TRELLIS): sparse Swin encoder, Gaussian decoder, training losses (chapter 08).

Importing this package registers `slat_enc_swin8_b_64l8`, `slat_dec_gs_swin8_b_64l8`,
`slat_vae_swin8_b_64l8`, `slat_enc_tiny`, `slat_dec_gs_tiny` and `slat_vae_tiny` in `learnlib.models`.
"""

from learnlib.slat.blocks import (
    SparseFeedForward,
    SparseSwinBlock,
    layer_norm_fp32,
    swin_block_shifts,
)
from learnlib.slat.decoder_gs import SLatGaussianDecoder
from learnlib.slat.encoder import SLatEncoder, diagonal_gaussian_kl, reparameterize
from learnlib.slat.gaussian_layout import (
    CHANNELS_PER_GAUSSIAN,
    GAUSSIAN_CHANNELS,
    TRELLIS_LR,
    channel_ranges,
    gaussian_params,
    hammersley_points,
    offset_perturbation,
    radical_inverse,
)
from learnlib.slat.losses import (
    TINY_LOSS_WEIGHTS,
    TRELLIS_LOSS_WEIGHTS,
    SLatLossWeights,
    composite_target,
    lpips_distance,
    opacity_regularizer,
    render_views,
    slat_vae_loss,
    volume_regularizer,
)
from learnlib.slat.lpips_vgg import LPIPSVGG, VGG16Features, lpips_heads_path
from learnlib.slat.position import AbsolutePositionEmbedder
from learnlib.slat.transformer import SparseSwinTransformer, check_voxels
from learnlib.slat.vae import SLatVAE, SLatVAEOutput

__all__ = [
    "CHANNELS_PER_GAUSSIAN",
    "GAUSSIAN_CHANNELS",
    "LPIPSVGG",
    "TINY_LOSS_WEIGHTS",
    "TRELLIS_LOSS_WEIGHTS",
    "TRELLIS_LR",
    "AbsolutePositionEmbedder",
    "SLatEncoder",
    "SLatGaussianDecoder",
    "SLatLossWeights",
    "SLatVAE",
    "SLatVAEOutput",
    "SparseFeedForward",
    "SparseSwinBlock",
    "SparseSwinTransformer",
    "VGG16Features",
    "channel_ranges",
    "check_voxels",
    "composite_target",
    "diagonal_gaussian_kl",
    "gaussian_params",
    "hammersley_points",
    "layer_norm_fp32",
    "lpips_distance",
    "lpips_heads_path",
    "offset_perturbation",
    "opacity_regularizer",
    "radical_inverse",
    "render_views",
    "reparameterize",
    "slat_vae_loss",
    "swin_block_shifts",
    "volume_regularizer",
]
