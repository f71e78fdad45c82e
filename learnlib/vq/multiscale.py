"""Multi-scale residual quantization (VAR, algorithms 1 and 2).

A feature map f (B, C, H, W) becomes K token maps r_1..r_K of sizes patch_nums[k]^2:
at scale k the remaining residual is area-downsampled to pn x pn, quantized, its
embedding bicubically upsampled back to H x W (not at the last scale), refined by phi_k,
added to f_hat and subtracted from the residual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from learnlib.vq.phi import build_phi, scale_fraction
from learnlib.vq.quantizer import QuantizerOutput, codebook_usage, nearest_code, straight_through

PhiFn = Callable[[int, torch.Tensor], torch.Tensor]


def _identity_phi(si: int, h: torch.Tensor) -> torch.Tensor:
    return h


def _check_features(f: torch.Tensor, codebook: torch.Tensor, patch_nums: Sequence[int]) -> None:
    if f.ndim != 4 or f.shape[1] != codebook.shape[1]:
        raise ValueError(f"features must be (B, {codebook.shape[1]}, H, W), got {tuple(f.shape)}")
    if tuple(f.shape[-2:]) != (patch_nums[-1], patch_nums[-1]):
        raise ValueError(f"features must be {patch_nums[-1]}x{patch_nums[-1]} (the last patch_num), "
                         f"got {tuple(f.shape)}")


def embed_and_upsample(idx: torch.Tensor, codebook: torch.Tensor, pn: int, size: int) -> torch.Tensor:
    """Token map (B, pn*pn) -> embedding (B, C, size, size); bicubic upsampling unless pn == size."""
    h = F.embedding(idx, codebook)  # (B, pn*pn, C)
    h = rearrange(h, "b (h w) c -> b c h w", h=pn, w=pn)  # (B, C, pn, pn)
    if pn != size:
        h = F.interpolate(h, size=(size, size), mode="bicubic")  # (B, C, size, size)
    return h


def residual_multiscale_encode(f: torch.Tensor, codebook: torch.Tensor, patch_nums: Sequence[int],
                               phi: PhiFn | None = None, return_all: bool = False,
                               ) -> tuple[list[torch.Tensor], torch.Tensor | list[torch.Tensor]]:
    """Encode f (B, C, H, W) into per-scale token maps [(B, pn*pn)] and the reconstruction f_hat.

    `phi(si, h)` refines the upsampled embedding of scale si (identity when None). With
    `return_all`, the second output lists the cumulative f_hat after every scale. Gradients
    flow from f_hat to the codebook and phi, never through the code choice.
    """
    _check_features(f, codebook, patch_nums)
    phi = phi or _identity_phi
    H = f.shape[-2]
    f_rest = f.detach().clone()
    f_hat = torch.zeros_like(f_rest)
    indices, f_hats = [], []
    for si, pn in enumerate(patch_nums):
        z = F.interpolate(f_rest, size=(pn, pn), mode="area") if pn != H else f_rest  # (B, C, pn, pn)
        z = rearrange(z, "b c h w -> b (h w) c")  # (B, pn*pn, C)
        idx = nearest_code(z, codebook.detach())  # (B, pn*pn)
        h = phi(si, embed_and_upsample(idx, codebook, pn, H))  # (B, C, H, W)
        f_hat = f_hat + h
        f_rest = f_rest - h.detach()
        indices.append(idx)
        f_hats.append(f_hat)
    return indices, (f_hats if return_all else f_hat)


def multiscale_decode(indices: Sequence[torch.Tensor], codebook: torch.Tensor, patch_nums: Sequence[int],
                      phi: PhiFn | None = None) -> torch.Tensor:
    """Rebuild f_hat (B, C, H, W) from per-scale token maps [(B, pn*pn)]."""
    if len(indices) != len(patch_nums):
        raise ValueError(f"expected {len(patch_nums)} token maps, got {len(indices)}")
    phi = phi or _identity_phi
    size = patch_nums[-1]
    f_hat = None
    for si, (idx, pn) in enumerate(zip(indices, patch_nums)):
        if idx.ndim != 2 or idx.shape[1] != pn * pn:
            raise ValueError(f"token map {si} must be (B, {pn * pn}), got {tuple(idx.shape)}")
        h = phi(si, embed_and_upsample(idx, codebook, pn, size))  # (B, C, H, W)
        f_hat = h if f_hat is None else f_hat + h
    return f_hat


class MultiScaleResidualQuantizer(nn.Module):
    """VAR's multi-scale residual quantizer with partially shared phi (`quantize` of the VQ-VAE).

    Attribute names (`embedding`, `quant_resi`, `ema_vocab_hit_SV`) follow the published
    checkpoint. `forward` is the VQ-VAE training path; the other methods serve VAR.
    """

    def __init__(self, vocab_size: int = 4096, Cvae: int = 32,
                 patch_nums: Sequence[int] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16), beta: float = 0.25,
                 quant_resi: float = 0.5, share_quant_resi: int = 4, default_qresi_counts: int = 0,
                 dead_code_threshold: float = 0.0):
        super().__init__()
        self.dead_code_threshold = dead_code_threshold
        self.vocab_size, self.Cvae, self.beta = vocab_size, Cvae, beta
        self.patch_nums = tuple(int(p) for p in patch_nums)
        if list(self.patch_nums) != sorted(self.patch_nums):
            raise ValueError(f"patch_nums must increase, got {self.patch_nums}")
        self.quant_resi_ratio = quant_resi
        self.quant_resi = build_phi(Cvae, len(self.patch_nums), quant_resi, share_quant_resi, default_qresi_counts)
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(len(self.patch_nums), vocab_size))
        self.record_hit = 0
        self.embedding = nn.Embedding(vocab_size, Cvae)

    @property
    def num_scales(self) -> int:
        return len(self.patch_nums)

    def phi(self, si: int, h: torch.Tensor) -> torch.Tensor:
        """Apply the phi of scale `si` to an upsampled embedding h (B, C, H, W)."""
        return self.quant_resi[scale_fraction(si, self.num_scales)](h)

    def forward(self, f: torch.Tensor) -> QuantizerOutput:
        """Quantize f (B, C, H, W): straight-through f_hat, loss, per-scale token maps, usage."""
        f = f.float()
        indices, f_hats = residual_multiscale_encode(f, self.embedding.weight, self.patch_nums, self.phi,
                                                     return_all=True)
        loss = sum(self.beta * F.mse_loss(fh.detach(), f) + F.mse_loss(fh, f.detach()) for fh in f_hats)
        loss = loss / self.num_scales
        usage = self._usage(indices)
        if self.training and self.dead_code_threshold > 0:
            usage["restarted"] = self.restart_dead_codes(f)
        return QuantizerOutput(straight_through(f, f_hats[-1]), loss, indices, usage)

    @torch.no_grad()
    def _usage(self, indices: list[torch.Tensor]) -> dict:
        """Codebook statistics over all scales, plus per-scale used fractions of the running hit average."""
        usage = codebook_usage(torch.cat([i.reshape(-1) for i in indices]), self.vocab_size)  # (N,)
        if self.training:
            for si, idx in enumerate(indices):
                hit = torch.bincount(idx.reshape(-1), minlength=self.vocab_size).float()  # (V,)
                rate = 1.0 if self.record_hit == 0 else (0.1 if self.record_hit < 100 else 0.01)
                self.ema_vocab_hit_SV[si].mul_(1 - rate).add_(hit, alpha=rate)
            self.record_hit += 1
        usage["per_scale_used_fraction"] = [float((self.ema_vocab_hit_SV[si] > 0).float().mean())
                                            for si in range(self.num_scales)]
        return usage

    @torch.no_grad()
    def restart_dead_codes(self, f: torch.Tensor, threshold: float | None = None) -> int:
        """Re-initialise codes whose running hit count (summed over scales) is below `threshold`.

        New codes are random channel vectors of the current features f (B, C, H, W) (the
        first-scale residual), so that every code lies where the encoder puts its outputs.
        """
        threshold = self.dead_code_threshold if threshold is None else threshold
        dead = (self.ema_vocab_hit_SV.sum(0) < threshold).nonzero().flatten()  # (n_dead,)
        if len(dead) == 0:
            return 0
        vectors = rearrange(f.detach(), "b c h w -> (b h w) c")  # (BHW, C)
        pick = torch.randint(0, vectors.shape[0], (len(dead),), device=vectors.device)
        self.embedding.weight[dead] = vectors[pick].to(self.embedding.weight.dtype)
        self.ema_vocab_hit_SV[:, dead] = threshold
        return len(dead)

    @torch.no_grad()
    def f_to_indices(self, f: torch.Tensor) -> list[torch.Tensor]:
        """Per-scale token maps [(B, pn*pn)] of features f (B, C, H, W)."""
        return residual_multiscale_encode(f.float(), self.embedding.weight, self.patch_nums, self.phi)[0]

    @torch.no_grad()
    def f_to_fhat(self, f: torch.Tensor, all_scales: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """Reconstruction f_hat (B, C, H, W) of f, or the list of cumulative f_hat after each scale."""
        return residual_multiscale_encode(f.float(), self.embedding.weight, self.patch_nums, self.phi,
                                          return_all=all_scales)[1]

    def indices_to_fhat(self, indices: Sequence[torch.Tensor]) -> torch.Tensor:
        """f_hat (B, C, H, W) rebuilt from per-scale token maps [(B, pn*pn)]."""
        return multiscale_decode(indices, self.embedding.weight, self.patch_nums, self.phi)

    @torch.no_grad()
    def indices_to_var_input(self, indices: Sequence[torch.Tensor]) -> torch.Tensor:
        """Teacher-forcing input of VAR: (B, L - patch_nums[0]**2, C).

        For every scale k >= 1: the cumulative f_hat of scales < k, area-downsampled to
        patch_nums[k], flattened to tokens.
        """
        if len(indices) < self.num_scales - 1:
            raise ValueError(f"need at least {self.num_scales - 1} token maps, got {len(indices)}")
        size = self.patch_nums[-1]
        f_hat = torch.zeros(indices[0].shape[0], self.Cvae, size, size, device=indices[0].device)
        inputs = []
        for si in range(self.num_scales - 1):
            f_hat = f_hat + self.phi(si, embed_and_upsample(indices[si], self.embedding.weight,
                                                            self.patch_nums[si], size))  # (B, C, H, W)
            nxt = self.patch_nums[si + 1]
            down = F.interpolate(f_hat, size=(nxt, nxt), mode="area")  # (B, C, pn', pn')
            inputs.append(rearrange(down, "b c h w -> b (h w) c"))  # (B, pn'^2, C)
        return torch.cat(inputs, dim=1)  # (B, L - first_l, C)

    def next_autoregressive_input(self, si: int, f_hat: torch.Tensor, h: torch.Tensor,
                                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add scale si's embedding h (B, C, pn, pn) to f_hat; return (f_hat, next scale's input map)."""
        size = self.patch_nums[-1]
        if h.shape[-1] != size:
            h = F.interpolate(h, size=(size, size), mode="bicubic")  # (B, C, H, W)
        f_hat = f_hat + self.phi(si, h)
        if si == self.num_scales - 1:
            return f_hat, f_hat
        nxt = self.patch_nums[si + 1]
        return f_hat, F.interpolate(f_hat, size=(nxt, nxt), mode="area")  # (B, C, pn', pn')
