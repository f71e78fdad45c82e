"""Vector quantization: conv encoder/decoder, VectorQuantizer, multi-scale residual quantizer, VQ-VAE.

Importing this package registers `vqvae_ch160` and `vqvae_digits` in `learnlib.models`.
"""

from learnlib.vq.blocks import AttnBlock, Downsample2x, ResnetBlock, Upsample2x, group_norm
from learnlib.vq.decoder import Decoder
from learnlib.vq.encoder import Encoder
from learnlib.vq.losses import reconstruction_loss, vqvae_loss
from learnlib.vq.multiscale import (
    MultiScaleResidualQuantizer,
    embed_and_upsample,
    multiscale_decode,
    residual_multiscale_encode,
)
from learnlib.vq.phi import Phi, phi_schedule, phi_ticks
from learnlib.vq.quantizer import (
    QuantizerOutput,
    VectorQuantizer,
    codebook_usage,
    nearest_code,
    straight_through,
    vq_loss,
)
from learnlib.vq.vqvae import VAR_PATCH_NUMS, VQVAE, VQVAEOutput, vqvae_ch160, vqvae_digits

__all__ = [
    "VAR_PATCH_NUMS",
    "VQVAE",
    "AttnBlock",
    "Decoder",
    "Downsample2x",
    "Encoder",
    "MultiScaleResidualQuantizer",
    "Phi",
    "QuantizerOutput",
    "ResnetBlock",
    "Upsample2x",
    "VQVAEOutput",
    "VectorQuantizer",
    "codebook_usage",
    "embed_and_upsample",
    "group_norm",
    "multiscale_decode",
    "nearest_code",
    "phi_schedule",
    "phi_ticks",
    "reconstruction_loss",
    "residual_multiscale_encode",
    "straight_through",
    "vq_loss",
    "vqvae_ch160",
    "vqvae_digits",
    "vqvae_loss",
]
