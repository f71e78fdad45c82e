"""Single-scale vector quantization: nearest code, straight-through gradients, usage statistics."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook row (squared L2) for every vector of `z` (..., C) -> (...)."""
    if codebook.ndim != 2:
        raise ValueError(f"codebook must be (V, C), got {tuple(codebook.shape)}")
    if z.shape[-1] != codebook.shape[1]:
        raise ValueError(f"z must end in C={codebook.shape[1]} to match codebook {tuple(codebook.shape)}, "
                         f"got {tuple(z.shape)}")
    flat = z.reshape(-1, z.shape[-1])  # (N, C)
    # ||z - e||^2 = ||z||^2 + ||e||^2 - 2 z.e, computed for all pairs at once
    dist = flat.square().sum(1, keepdim=True) + codebook.square().sum(1) - 2.0 * flat @ codebook.T  # (N, V)
    return dist.argmin(dim=1).reshape(z.shape[:-1])  # (...)


def straight_through(z: torch.Tensor, zq: torch.Tensor) -> torch.Tensor:
    """Forward value `zq`, gradient passed unchanged to `z` (the straight-through estimator)."""
    if z.shape != zq.shape:
        raise ValueError(f"z and zq must have the same shape, got {tuple(z.shape)} and {tuple(zq.shape)}")
    return z + (zq - z).detach()


def vq_loss(z: torch.Tensor, zq: torch.Tensor, beta: float = 0.25) -> torch.Tensor:
    """Codebook loss ||sg(z) - zq||^2 plus commitment loss beta * ||z - sg(zq)||^2 (means)."""
    if z.shape != zq.shape:
        raise ValueError(f"z and zq must have the same shape, got {tuple(z.shape)} and {tuple(zq.shape)}")
    return F.mse_loss(zq, z.detach()) + beta * F.mse_loss(z, zq.detach())


def codebook_usage(indices: torch.Tensor, vocab_size: int) -> dict[str, torch.Tensor | float]:
    """Per-code counts, perplexity exp(H(p)) of the code histogram, and the fraction of codes used."""
    counts = torch.bincount(indices.reshape(-1), minlength=vocab_size).float()  # (V,)
    probs = counts / counts.sum().clamp_min(1.0)
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
    return {
        "counts": counts,
        "perplexity": float(entropy.exp()),
        "used_fraction": float((counts > 0).float().mean()),
    }


class QuantizerOutput(NamedTuple):
    """What a quantizer returns: straight-through features, loss, code indices, usage statistics."""

    z_q: torch.Tensor
    loss: torch.Tensor
    indices: torch.Tensor
    usage: dict


class VectorQuantizer(nn.Module):
    """VQ-VAE quantizer over channel vectors of a feature map (B, C, H, W).

    Keeps an exponential moving average of code hits (`ema_counts`); with
    `dead_code_threshold > 0`, codes whose average falls below it are re-initialised in
    training from random encoder outputs of the current batch.
    """

    def __init__(self, vocab_size: int, dim: int, beta: float = 0.25, dead_code_threshold: float = 0.0,
                 ema_decay: float = 0.99):
        super().__init__()
        self.vocab_size, self.dim, self.beta = vocab_size, dim, beta
        self.dead_code_threshold, self.ema_decay = dead_code_threshold, ema_decay
        self.embedding = nn.Embedding(vocab_size, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / vocab_size, 1.0 / vocab_size)
        self.register_buffer("ema_counts", torch.ones(vocab_size))

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        if z.ndim != 4 or z.shape[1] != self.dim:
            raise ValueError(f"VectorQuantizer expects (B, {self.dim}, H, W), got {tuple(z.shape)}")
        B, _, H, W = z.shape
        flat = rearrange(z, "b c h w -> (b h w) c")  # (BHW, C)
        idx = nearest_code(flat.detach(), self.embedding.weight.detach())  # (BHW,)
        zq = rearrange(self.embedding(idx), "(b h w) c -> b c h w", b=B, h=H, w=W)  # (B, C, H, W)
        loss = vq_loss(z, zq, self.beta)
        usage = codebook_usage(idx, self.vocab_size)
        if self.training:
            with torch.no_grad():
                self.ema_counts.mul_(self.ema_decay).add_(usage["counts"], alpha=1 - self.ema_decay)
            if self.dead_code_threshold > 0:
                usage["restarted"] = self.restart_dead_codes(flat.detach())
        return QuantizerOutput(straight_through(z, zq), loss, idx.reshape(B, H, W), usage)  # idx (B, H, W)

    @torch.no_grad()
    def restart_dead_codes(self, vectors: torch.Tensor, threshold: float | None = None) -> int:
        """Re-initialise codes whose average hit count is below `threshold` from random rows of `vectors` (N, C)."""
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors must be (N, {self.dim}), got {tuple(vectors.shape)}")
        threshold = self.dead_code_threshold if threshold is None else threshold
        dead = (self.ema_counts < threshold).nonzero().flatten()  # (n_dead,)
        if len(dead) == 0:
            return 0
        pick = torch.randint(0, vectors.shape[0], (len(dead),), device=vectors.device)
        self.embedding.weight[dead] = vectors[pick].to(self.embedding.weight.dtype)
        self.ema_counts[dead] = 1.0
        return len(dead)

    @torch.no_grad()
    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook vectors for indices (B, H, W) as a feature map (B, C, H, W)."""
        if indices.ndim != 3:
            raise ValueError(f"indices must be (B, H, W), got {tuple(indices.shape)}")
        return rearrange(self.embedding(indices), "b h w c -> b c h w")  # (B, C, H, W)
