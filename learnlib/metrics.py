"""Image-quality metrics shared by the chapters: peak signal-to-noise ratio (PSNR)."""

from __future__ import annotations

import torch

MIN_MSE = 1e-12  # floor of the mean squared error: a perfect match reads 10 log10(peak^2 / 1e-12) dB


def _check_pair(pred: torch.Tensor, target: torch.Tensor, value_range: tuple[float, float]) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2 or not value_range[1] > value_range[0]:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range!r}")


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor,
                   value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """PSNR in dB of each image (B,) of pred and target (B, ...), pred clamped to `value_range`.

    The peak is the width of `value_range` (2 for images in [-1, 1], the default); the name and
    form match the datasets' `value_range`.
    """
    _check_pair(pred, target, value_range)
    low, high = value_range
    mse = (pred.float().clamp(low, high) - target.float()).pow(2).flatten(1).mean(1)  # (B,)
    return 10 * torch.log10((high - low) ** 2 / mse.clamp_min(MIN_MSE))


def psnr(pred: torch.Tensor, target: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """PSNR in dB over all pixels of pred and target (one number), pred clamped to `value_range` ([0, 1])."""
    _check_pair(pred, target, value_range)
    flat = pred.detach().reshape(1, -1), target.detach().reshape(1, -1)  # (1, everything)
    return float(psnr_per_image(*flat, value_range=value_range)[0])
