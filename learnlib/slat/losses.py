"""Training losses of the structured-latent Gaussian VAE, as TRELLIS's SLatVaeGaussianTrainer computes them.

loss = L1(render, target) + 0.2 * (1 - SSIM) + 0.2 * LPIPS       (reconstruction, "rec")
     + 1e-6 * KL                                                  (diagonal Gaussian, mean over elements)
     + 1e4 * mean_i(prod(scales_i))                               ("reg_vol")
     + 1e-3 * mean_i((opacity_i - 1)^2)                           ("reg_opacity")

Targets are composited over the same background as the render: image * alpha + (1 - alpha) * bg.
SSIM is `learnlib.metrics.ssim` (11 x 11 Gaussian window, sigma 1.5, K = (0.01, 0.03)) with TRELLIS's
zero-padded borders (`ssim_padding="same"`) by default; "valid" averages only where the window fits.
LPIPS is `LPIPSVGG` on images mapped from [0, 1] to [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from learnlib.metrics import ssim
from learnlib.slat.encoder import diagonal_gaussian_kl
from learnlib.splat import Cameras, Gaussians


@dataclass(frozen=True)
class SLatLossWeights:
    """Weights of the loss terms (TRELLIS's slat_vae_enc_dec_gs_swin8_B_64l8 config by default)."""

    loss_type: str = "l1"  # "l1" or "l2"
    ssim: float = 0.2
    lpips: float = 0.2
    kl: float = 1e-6
    volume: float = 1e4
    opacity: float = 1e-3
    ssim_padding: str = "same"  # TRELLIS's zero-padded SSIM; "valid" is the metric's definition


TRELLIS_LOSS_WEIGHTS = SLatLossWeights()
TINY_LOSS_WEIGHTS = replace(SLatLossWeights(), lpips=0.0)  # the CPU config has no VGG16 weights file


def lpips_distance(pred: Tensor, target: Tensor, lpips_fn) -> Tensor:
    """Mean LPIPS of images (B, 3, H, W) in [0, 1] with `lpips_fn` (e.g. LPIPSVGG) taking [-1, 1] images."""
    return lpips_fn(pred * 2 - 1, target * 2 - 1).mean()


def volume_regularizer(gaussians: Sequence[Gaussians]) -> Tensor:
    """Mean over every Gaussian of the product of its three scales."""
    scales = torch.cat([g.scales for g in gaussians], dim=0)  # (N, 3)
    return scales.prod(dim=1).mean()


def opacity_regularizer(gaussians: Sequence[Gaussians]) -> Tensor:
    """Mean over every Gaussian of (opacity - 1)^2: pushes Gaussians to be opaque."""
    opacities = torch.cat([g.opacities for g in gaussians], dim=0)  # (N,)
    return (opacities - 1).pow(2).mean()


def composite_target(image: Tensor, alpha: Tensor, background: Tensor) -> Tensor:
    """image (B, 3, H, W) * alpha (B, H, W) + (1 - alpha) * background (B, 3)."""
    if alpha.shape != (image.shape[0], *image.shape[2:]) or background.shape != image.shape[:2]:
        raise ValueError(f"expected alpha (B, H, W) and background (B, 3) for image {list(image.shape)}, got "
                         f"{list(alpha.shape)} and {list(background.shape)}")
    a = alpha[:, None]  # (B, 1, H, W)
    return image * a + (1 - a) * background[:, :, None, None]


def render_views(gaussians: Sequence[Gaussians], cameras: Sequence[Cameras], backgrounds: Tensor,
                 eps2d: float = 0.1, antialiased: bool = True, backend: str = "auto") -> Tensor:
    """Render object b in its cameras b: images (B, C, 3, H, W); backgrounds (B, C, 3).

    The defaults are TRELLIS's Mip-Splatting 2D filter (`SLatGaussianDecoder.render_kwargs`).
    """
    if len(gaussians) != len(cameras) or backgrounds.shape[:2] != (len(cameras), len(cameras[0])):
        raise ValueError(f"need one Cameras per object and backgrounds (B, C, 3); got {len(gaussians)} objects, "
                         f"{len(cameras)} camera sets, backgrounds {list(backgrounds.shape)}")
    images = []
    for g, cams, bg in zip(gaussians, cameras, backgrounds):
        colors, _, _ = g.render(cams.viewmats, cams.Ks, cams.width, cams.height, eps2d=eps2d, backgrounds=bg,
                                antialiased=antialiased, backend=backend)
        images.append(colors.permute(0, 3, 1, 2))  # (C, 3, H, W)
    return torch.stack(images)  # (B, C, 3, H, W)


def slat_vae_loss(render: Tensor, target: Tensor, gaussians: Sequence[Gaussians], mean: Tensor, logvar: Tensor,
                  weights: SLatLossWeights = TRELLIS_LOSS_WEIGHTS, lpips_fn=None) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss and its terms ("l1"/"l2", "ssim" (= 1 - SSIM), "lpips", "rec", "kl", "reg_vol", "reg_opacity").

    render, target: [..., 3, H, W] in [0, 1] (leading dims flattened into the batch); gaussians: the
    decoder's output; mean, logvar: the encoder's posterior. `lpips_fn` is needed when weights.lpips > 0
    (an `LPIPSVGG`).
    """
    if render.shape != target.shape or render.dim() < 4 or render.shape[-3] != 3:
        raise ValueError(f"render and target must be [..., 3, H, W] of one shape, got {list(render.shape)} "
                         f"and {list(target.shape)}")
    pred = render.reshape(-1, *render.shape[-3:])  # (B, 3, H, W)
    gt = target.reshape(-1, *target.shape[-3:])  # (B, 3, H, W)
    terms: dict[str, Tensor] = {}
    if weights.loss_type == "l1":
        terms["l1"] = (pred - gt).abs().mean()
    elif weights.loss_type == "l2":
        terms["l2"] = (pred - gt).pow(2).mean()
    else:
        raise ValueError(f"loss_type must be 'l1' or 'l2', got {weights.loss_type!r}")
    rec = terms[weights.loss_type]
    if weights.ssim > 0:
        terms["ssim"] = 1 - ssim(pred, gt, padding=weights.ssim_padding)
        rec = rec + weights.ssim * terms["ssim"]
    if weights.lpips > 0:
        if lpips_fn is None:
            raise ValueError("weights.lpips > 0 needs lpips_fn (e.g. learnlib.slat.LPIPSVGG(backbone_path=...)); "
                             "or set the lpips weight to 0")
        terms["lpips"] = lpips_distance(pred, gt, lpips_fn)
        rec = rec + weights.lpips * terms["lpips"]
    terms["rec"] = rec
    terms["kl"] = diagonal_gaussian_kl(mean, logvar)
    terms["reg_vol"] = volume_regularizer(gaussians)
    terms["reg_opacity"] = opacity_regularizer(gaussians)
    loss = rec + weights.kl * terms["kl"] + weights.volume * terms["reg_vol"] + weights.opacity * terms["reg_opacity"]
    terms["loss"] = loss
    return loss, terms
