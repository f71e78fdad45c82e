"""The VQ-VAE of VAR: conv encoder, multi-scale residual quantizer, conv decoder.

Weight-compatible with the published `vae_ch160v4096z32.pth` (built by `vqvae_ch160`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from learnlib.models import register
from learnlib.vq.decoder import Decoder
from learnlib.vq.encoder import Encoder
from learnlib.vq.multiscale import MultiScaleResidualQuantizer

VAR_PATCH_NUMS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)  # token-map sides of VAR's 256px pyramid (680 tokens); learnlib.var uses it too


class VQVAEOutput(NamedTuple):
    """Reconstruction in [-1, 1] scale (unclamped), quantizer loss, codebook usage statistics."""

    recon: torch.Tensor
    quant_loss: torch.Tensor
    usage: dict


class VQVAE(nn.Module):
    """Image (B, in_channels, H, W) <-> per-scale token maps [(B, pn*pn)] for pn in `v_patch_nums`."""

    def __init__(self, vocab_size: int = 4096, z_channels: int = 32, ch: int = 128, dropout: float = 0.0,
                 beta: float = 0.25, quant_conv_ks: int = 3, quant_resi: float = 0.5, share_quant_resi: int = 4,
                 default_qresi_counts: int = 0, v_patch_nums: Sequence[int] = VAR_PATCH_NUMS,
                 in_channels: int = 3, ch_mult: Sequence[int] = (1, 1, 2, 2, 4), num_res_blocks: int = 2,
                 using_sa: bool = True, using_mid_sa: bool = True, norm_groups: int = 32,
                 dead_code_threshold: float = 0.0, test_mode: bool = False):
        super().__init__()
        self.V = self.vocab_size = vocab_size
        self.Cvae = z_channels
        self.in_channels = in_channels
        self.downsample = 2 ** (len(ch_mult) - 1)
        cfg = {"ch": ch, "ch_mult": tuple(ch_mult), "num_res_blocks": num_res_blocks, "dropout": dropout,
                   "in_channels": in_channels, "z_channels": z_channels, "using_sa": using_sa,
                   "using_mid_sa": using_mid_sa, "norm_groups": norm_groups}
        self.encoder = Encoder(double_z=False, **cfg)
        self.decoder = Decoder(**cfg)
        self.quantize = MultiScaleResidualQuantizer(
            vocab_size=vocab_size, Cvae=z_channels, patch_nums=v_patch_nums, beta=beta, quant_resi=quant_resi,
            share_quant_resi=share_quant_resi, default_qresi_counts=default_qresi_counts,
            dead_code_threshold=dead_code_threshold,
        )
        pad = quant_conv_ks // 2
        self.quant_conv = nn.Conv2d(z_channels, z_channels, quant_conv_ks, stride=1, padding=pad)
        self.post_quant_conv = nn.Conv2d(z_channels, z_channels, quant_conv_ks, stride=1, padding=pad)
        self.image_size = self.quantize.patch_nums[-1] * self.downsample
        if test_mode:
            self.eval()
            self.requires_grad_(False)

    @property
    def patch_nums(self) -> tuple[int, ...]:
        return self.quantize.patch_nums

    def _check_image(self, x: torch.Tensor) -> None:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"VQVAE expects images (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous features f (B, Cvae, h, w) before quantization."""
        self._check_image(x)
        return self.quant_conv(self.encoder(x))

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        """Training path: reconstruction through the straight-through quantizer, loss and usage."""
        q = self.quantize(self.encode(x))
        return VQVAEOutput(self.decoder(self.post_quant_conv(q.z_q)), q.loss, q.usage)

    @torch.no_grad()
    def encode_to_indices(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-scale token maps [(B, pn*pn)] of images x."""
        return self.quantize.f_to_indices(self.encode(x))

    def fhat_to_image(self, f_hat: torch.Tensor) -> torch.Tensor:
        """Decode quantized features (B, Cvae, h, w) to images clamped to [-1, 1]."""
        return self.decoder(self.post_quant_conv(f_hat)).clamp(-1, 1)

    @torch.no_grad()
    def indices_to_image(self, indices: Sequence[torch.Tensor]) -> torch.Tensor:
        """Images (B, in_channels, H, W) in [-1, 1] from per-scale token maps."""
        return self.fhat_to_image(self.quantize.indices_to_fhat(indices))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, all_scales: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """Quantize-and-decode images x; with `all_scales`, one image per number of scales used."""
        f_hats = self.quantize.f_to_fhat(self.encode(x), all_scales=all_scales)
        if all_scales:
            return [self.fhat_to_image(f) for f in f_hats]
        return self.fhat_to_image(f_hats)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """Load weights; a usage buffer recorded with another number of scales is replaced by ours."""
        key = "quantize.ema_vocab_hit_SV"
        if key in state_dict and state_dict[key].shape != self.quantize.ema_vocab_hit_SV.shape:
            state_dict = dict(state_dict)
            state_dict[key] = self.quantize.ema_vocab_hit_SV
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


@register("vqvae_ch160")
def vqvae_ch160(**overrides) -> VQVAE:
    """VAR's published tokenizer: ch 160, 16x downsampling, vocab 4096, z 32, 10 scales (256x256 images)."""
    cfg = {"vocab_size": 4096, "z_channels": 32, "ch": 160, "ch_mult": (1, 1, 2, 2, 4), "num_res_blocks": 2,
               "v_patch_nums": VAR_PATCH_NUMS, "share_quant_resi": 4, "quant_resi": 0.5, "beta": 0.25}
    return VQVAE(**{**cfg, **overrides})


@register("vqvae_digits")
def vqvae_digits(**overrides) -> VQVAE:
    """Tiny tokenizer for 16x16 one-channel digits: 4x downsampling to 4x4, scales (1, 2, 3, 4), vocab 64.

    Pass `in_channels=3` for RGB digits; codes hit less than once per batch are restarted.
    """
    cfg = {"vocab_size": 64, "z_channels": 8, "ch": 16, "ch_mult": (1, 2, 4), "num_res_blocks": 1, "in_channels": 1,
               "v_patch_nums": (1, 2, 3, 4), "share_quant_resi": 4, "quant_resi": 0.5, "beta": 0.25,
               "using_sa": False, "using_mid_sa": True, "norm_groups": 8, "dead_code_threshold": 1.0}
    return VQVAE(**{**cfg, **overrides})
