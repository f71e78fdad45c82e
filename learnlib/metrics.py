"""Image-quality metrics shared by the chapters: PSNR and SSIM, each defined once.

Both take images whose values lie in `value_range` ((0, 1) by default; pass (-1, 1) for the
VQ-VAE's normalized images). SSIM comes in the two definitions found in the wild:
- padding="valid": the SSIM map only where the 11 x 11 window fits inside the image, averaged
  (Wang et al. 2004, pytorch-msssim, torchmetrics): the metric.
- padding="same": the window zero-padded at the borders, the whole map averaged (the 3DGS code
  and TRELLIS's training loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIN_MSE = 1e-12  # floor of the mean squared error: a perfect match reads 10 log10(peak^2 / 1e-12) dB
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K = (0.01, 0.03)
PADDINGS = ("valid", "same")


def _check_pair(pred: torch.Tensor, target: torch.Tensor, value_range: tuple[float, float]) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2 or not value_range[1] > value_range[0]:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range!r}")


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor,
                   value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """PSNR in dB of each image (B,) of pred and target (B, ...), pred clamped to `value_range`.

    The peak is the width of `value_range` (1 for images in [0, 1], the default; 2 for [-1, 1]).
    """
    _check_pair(pred, target, value_range)
    low, high = value_range
    mse = (pred.float().clamp(low, high) - target.float()).pow(2).flatten(1).mean(1)  # (B,)
    return 10 * torch.log10((high - low) ** 2 / mse.clamp_min(MIN_MSE))


def psnr(pred: torch.Tensor, target: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """PSNR in dB over all pixels of pred and target (one number), pred clamped to `value_range`."""
    _check_pair(pred, target, value_range)
    flat = pred.detach().reshape(1, -1), target.detach().reshape(1, -1)  # (1, everything)
    return float(psnr_per_image(*flat, value_range=value_range)[0])


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, dtype=torch.float32,
                    device=None) -> torch.Tensor:
    """The normalized 1D Gaussian (size,) centred on size // 2; SSIM's 2D window is its outer product."""
    offsets = torch.arange(size, dtype=dtype, device=device) - size // 2
    weights = torch.exp(-offsets**2 / (2 * sigma**2))
    return weights / weights.sum()


def _blur(images: torch.Tensor, window: torch.Tensor, pad: int) -> torch.Tensor:
    """Separable Gaussian filter of (B, C, H, W) per channel, zero-padded by `pad` on each side."""
    channels = images.shape[1]
    rows = window.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1)  # (C, 1, k, 1)
    cols = window.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1)  # (C, 1, 1, k)
    images = F.conv2d(images, rows, padding=(pad, 0), groups=channels)
    return F.conv2d(images, cols, padding=(0, pad), groups=channels)


def ssim_per_image(pred: torch.Tensor, target: torch.Tensor, padding: str = "valid",
                   value_range: tuple[float, float] = (0.0, 1.0), window_size: int = SSIM_WINDOW,
                   sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """SSIM of each image (B,) of pred and target (B, C, H, W): the mean of the SSIM map over C, H, W.

    padding: "valid" (the map where the window fits, the metric) or "same" (zero-padded borders,
    TRELLIS's and 3DGS's training loss). Differentiable; pred is not clamped.
    """
    _check_pair(pred, target, value_range)
    if pred.dim() != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(pred.shape)}")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if padding == "valid" and min(pred.shape[-2:]) < window_size:
        raise ValueError(f"SSIM with padding='valid' needs images of at least {window_size} x {window_size} "
                         f"pixels, got {tuple(pred.shape[-2:])}")
    x, y = pred.float(), target.float()
    peak = value_range[1] - value_range[0]
    c1, c2 = (SSIM_K[0] * peak) ** 2, (SSIM_K[1] * peak) ** 2
    window = gaussian_window(window_size, sigma, x.dtype, x.device)
    pad = window_size // 2 if padding == "same" else 0
    mu_x, mu_y = _blur(x, window, pad), _blur(y, window, pad)
    var_x = _blur(x * x, window, pad) - mu_x**2
    var_y = _blur(y * y, window, pad) - mu_y**2
    cov = _blur(x * y, window, pad) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)  # (B,)


def ssim(pred: torch.Tensor, target: torch.Tensor, padding: str = "valid",
         value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Mean SSIM over a batch of images (B, C, H, W) (a 0-dim tensor, differentiable); see `ssim_per_image`."""
    return ssim_per_image(pred, target, padding, value_range).mean()


def masked_psnr_per_image(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                          value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """PSNR in dB of each image (B,) over the pixels where `mask` (B, H, W) is True, all channels.

    pred, target (B, C, H, W); pred clamped to `value_range`. An image with an empty mask gets NaN
    (nothing to measure), never a perfect score.
    """
    _check_pair(pred, target, value_range)
    if pred.dim() != 4 or mask.shape != (pred.shape[0], *pred.shape[2:]):
        raise ValueError(f"expected images (B, C, H, W) and a mask (B, H, W); got {tuple(pred.shape)} and "
                         f"{tuple(mask.shape)}")
    low, high = value_range
    weight = mask.to(torch.float32)[:, None]  # (B, 1, H, W)
    squared = (pred.float().clamp(low, high) - target.float()).pow(2) * weight  # (B, C, H, W)
    count = weight.flatten(1).sum(1) * pred.shape[1]  # (B,)
    mse = squared.flatten(1).sum(1) / count.clamp_min(1)  # (B,)
    value = 10 * torch.log10((high - low) ** 2 / mse.clamp_min(MIN_MSE))
    return torch.where(count > 0, value, torch.full_like(value, float("nan")))


def object_mask(target_alpha: torch.Tensor, render_alpha: torch.Tensor, threshold: float = 0.05) -> torch.Tensor:
    """Pixels (B, H, W) that belong to the object in the reference or in the render (alpha > threshold).

    The union: a render that misses part of the object and one that paints the background are both
    measured, while the background that both leave empty is not.
    """
    if target_alpha.shape != render_alpha.shape:
        raise ValueError(f"alphas must have one shape, got {tuple(target_alpha.shape)} and {tuple(render_alpha.shape)}")
    return (target_alpha > threshold) | (render_alpha > threshold)


def silhouette_iou(render_alpha: torch.Tensor, target_alpha: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Intersection over union (B,) of the silhouettes alpha > threshold of alphas (B, H, W); 1 when both are empty."""
    if render_alpha.shape != target_alpha.shape or render_alpha.dim() != 3:
        raise ValueError(f"expected two alphas (B, H, W) of one shape, got {tuple(render_alpha.shape)} and "
                         f"{tuple(target_alpha.shape)}")
    a, b = render_alpha > threshold, target_alpha > threshold
    inter = (a & b).flatten(1).sum(1).float()  # (B,)
    union = (a | b).flatten(1).sum(1).float()  # (B,)
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
