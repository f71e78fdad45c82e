"""Held-out evaluation of a structured-latent VAE against three baselines, on the object's pixels.

Every method renders an object's held-out views over black and is scored per view by
`heldout_scores`: PSNR over the object's pixels (the union of the reference's and the render's
silhouettes, alpha > 0.05: a render that misses part of the object and one that paints the
background are both measured, the background both leave empty is not), SSIM (pytorch-msssim's
valid-window definition), the silhouette IoU (alpha > 0.5) and the full-image PSNR (which
mostly measures the black background, kept for continuity with earlier numbers).

Methods (`METHODS`), each seeing only the object's training views or its voxel features:
- "SLat VAE": voxel features -> posterior mean -> Gaussians -> render, one forward pass;
- "per-scene fit": chapter 07's optimization (`learnlib.splat.fit.fit_gaussians`), one Gaussian
  per voxel centre fitted to the training views, its seconds per object;
- "voxel splats": one isotropic Gaussian per voxel (std half a voxel, opacity 0.95) coloured by the
  alpha-weighted mean colour of its projections into the training views, no optimization;
- "all black": the empty render, the floor every method must clear.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from learnlib.data.meshes import voxel_centres
from learnlib.metrics import (
    masked_psnr_per_image,
    object_mask,
    psnr_per_image,
    silhouette_iou,
    ssim_per_image,
)
from learnlib.slat.data.projection import project_voxel_features
from learnlib.splat.cameras import Cameras
from learnlib.splat.gaussians import Gaussians

__all__ = ["MASK_THRESHOLD", "METHODS", "evaluate_object", "heldout_scores", "render_with_alpha", "voxel_splats"]

METHODS = ("SLat VAE", "per-scene fit", "voxel splats", "all black")
MASK_THRESHOLD = 0.05


def render_with_alpha(gaussians: Gaussians, cameras: Cameras, **render_kwargs) -> tuple[Tensor, Tensor]:
    """Renders (V, 3, H, W) over black and their alphas (V, H, W), without gradients."""
    with torch.no_grad():
        black = torch.zeros(len(cameras), 3, dtype=gaussians.raw_means.dtype)
        colors, alphas, _ = gaussians.render(cameras.viewmats, cameras.Ks, cameras.width, cameras.height,
                                             backgrounds=black, **render_kwargs)
    return colors.permute(0, 3, 1, 2).clamp(0, 1), alphas[..., 0]  # (V, 3, H, W), (V, H, W)


def heldout_scores(renders: Tensor, render_alphas: Tensor, targets: Tensor, target_alphas: Tensor) -> dict[str, Tensor]:
    """Per-view scores {masked_psnr, ssim, iou, psnr} (V,) of renders (V, 3, H, W) over black against the
    references `targets` (V, 3, H, W) composited over black, alphas (V, H, W)."""
    if renders.shape != targets.shape or renders.dim() != 4:
        raise ValueError(f"expected renders and targets (V, 3, H, W) of one shape, got {tuple(renders.shape)} and "
                         f"{tuple(targets.shape)}")
    if render_alphas.shape != (len(renders), *renders.shape[2:]) or target_alphas.shape != render_alphas.shape:
        raise ValueError(f"expected alphas (V, H, W) = {(len(renders), *renders.shape[2:])}, got "
                         f"{tuple(render_alphas.shape)} and {tuple(target_alphas.shape)}")
    mask = object_mask(target_alphas, render_alphas, MASK_THRESHOLD)  # (V, H, W)
    return {"masked_psnr": masked_psnr_per_image(renders, targets, mask),
            "ssim": ssim_per_image(renders.clamp(0, 1), targets),
            "iou": silhouette_iou(render_alphas, target_alphas),
            "psnr": psnr_per_image(renders, targets, value_range=(0.0, 1.0))}


def voxel_splats(coords: Tensor, resolution: int, images: Tensor, alphas: Tensor, cameras: Cameras) -> Gaussians:
    """One isotropic Gaussian per voxel (std half a voxel, opacity 0.95) coloured by the alpha-weighted mean
    colour of its centre's projections into views images (V, 3, H, W), alphas (V, 1, H, W)."""
    centres = voxel_centres(coords, resolution)  # (N, 3)
    maps = torch.cat([images * alphas, alphas], dim=1)  # (V, 4, H, W)
    mean = project_voxel_features(maps, centres, cameras)  # (N, 4)
    colours = (mean[:, :3] / mean[:, 3:].clamp_min(1e-4)).clamp(0, 1)  # (N, 3)
    return Gaussians.from_points(centres, colours, scale=0.5 / resolution, opacity=0.95)


def evaluate_object(model, item: dict, train_ids: list[int], held_ids: list[int], resolution: int,
                    fit_steps: int = 0, methods=METHODS) -> dict[str, dict]:
    """{method: {score: (V,) tensor, "seconds": float, "gaussians": Gaussians | None}} at the held-out views
    `held_ids` of one SLatDataset item holding every view (views_per_item=None); the baselines see
    `train_ids` only and render with the rasterizer's defaults, the VAE with its decoder's `render_kwargs`.
    "per-scene fit" runs only when `fit_steps` > 0."""
    from learnlib.splat.fit import fit_gaussians

    cams, images, alphas = item["cameras"], item["images"], item["alphas"]  # alphas (V, 1, H, W)
    held_cams, train_cams = cams[held_ids], cams[train_ids]
    targets = images[held_ids] * alphas[held_ids]  # (V, 3, H, W) over black
    target_alphas = alphas[held_ids, 0]  # (V, H, W)
    render_kwargs = model.decoder.render_kwargs
    out = {}

    def score(name, gaussians, start, renders=None, render_alphas=None, **kwargs):
        if renders is None:
            renders, render_alphas = render_with_alpha(gaussians, held_cams, **kwargs)
        out[name] = {**heldout_scores(renders, render_alphas, targets, target_alphas),
                     "seconds": time.perf_counter() - start, "gaussians": gaussians}

    if "SLat VAE" in methods:
        start = time.perf_counter()
        from learnlib.slat.data.dataset import collate_slat

        with torch.no_grad():
            gaussians = model(collate_slat([item])["feats"], sample_posterior=False).gaussians[0]
        score("SLat VAE", gaussians, start, **render_kwargs)
    if "per-scene fit" in methods and fit_steps > 0:
        centres = voxel_centres(item["coords"], resolution)  # (N, 3)
        train_targets = (images[train_ids] * alphas[train_ids]).permute(0, 2, 3, 1).contiguous()  # (V, H, W, 3)
        fitted, history = fit_gaussians(train_targets, train_cams, centres, steps=fit_steps, batch_views=4,
                                        background=(0.0, 0.0, 0.0), eval_every=max(fit_steps, 1), seed=0,
                                        progress=False)
        score("per-scene fit", fitted, time.perf_counter())
        out["per-scene fit"]["seconds"] = history.wall_s[-1]  # optimization only, its evaluations excluded
    if "voxel splats" in methods:
        start = time.perf_counter()
        score("voxel splats", voxel_splats(item["coords"], resolution, images[train_ids], alphas[train_ids],
                                           train_cams), start)
    if "all black" in methods:
        start = time.perf_counter()
        score("all black", None, start, torch.zeros_like(targets), torch.zeros_like(target_alphas))
    return out
