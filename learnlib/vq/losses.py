"""Loss helpers of VQ-VAE training: reconstruction plus quantizer loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """Mean L1 ("l1"), squared L2 ("l2") or their sum ("l1+l2") between reconstruction and target."""
    if recon.shape != target.shape:
        raise ValueError(f"recon and target must have the same shape, got {tuple(recon.shape)} "
                         f"and {tuple(target.shape)}")
    if kind == "l1":
        return F.l1_loss(recon, target)
    if kind == "l2":
        return F.mse_loss(recon, target)
    if kind == "l1+l2":
        return F.l1_loss(recon, target) + F.mse_loss(recon, target)
    raise ValueError(f"kind must be 'l1', 'l2' or 'l1+l2', got {kind!r}")


def vqvae_loss(recon: torch.Tensor, target: torch.Tensor, quant_loss: torch.Tensor, kind: str = "l2",
               quant_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss reconstruction + quant_weight * quantizer loss, and its parts as floats."""
    rec = reconstruction_loss(recon, target, kind)
    total = rec + quant_weight * quant_loss
    return total, {"loss": float(total.detach()), "recon": float(rec.detach()), "quant": float(quant_loss.detach())}
