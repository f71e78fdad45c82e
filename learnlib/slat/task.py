"""Training task of the structured-latent VAE (`slat_vae`): render the decoded Gaussians at the object's views.

Training (as TRELLIS's SLatVaeGaussianTrainer): encode each object's voxel features, sample the
posterior, decode 32 Gaussians per voxel, render them at the batch's views (one random view per
object from the dataset) over a random black or white background per object, and follow
`slat_vae_loss` (L1 + SSIM + LPIPS + KL + volume and opacity regularizers). Held-out: the posterior
mean is decoded and rendered at every view of the held-out batch over `eval_background`; `psnr` and
`ssim` are per view, `kl` per voxel.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import torch
from torch import Tensor

from learnlib.metrics import psnr_per_image, ssim_per_image
from learnlib.slat.losses import (
    TRELLIS_LOSS_WEIGHTS,
    SLatLossWeights,
    composite_target,
    render_views,
    slat_vae_loss,
)
from learnlib.tasks import Task, register_task

LOSS_WEIGHT_NAMES = tuple(f.name for f in fields(SLatLossWeights))
STRING_OPTIONS = ("loss_type", "ssim_padding")


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


def check_resolution(model, batch: dict) -> None:
    """ValueError naming data.resolution and model.resolution when the batch's voxel grid is not the model's."""
    data = batch.get("resolution")
    model_resolution = getattr(model, "module", model).encoder.resolution
    if data is not None and int(data) != int(model_resolution):
        raise ValueError(f"data.resolution={int(data)} but model.resolution={int(model_resolution)}: the voxels "
                         "would be placed on another grid than the model's; set both to the same value")


def _views(batch: dict, device: torch.device) -> tuple[list[Tensor], list[Tensor], list]:
    """Per object: images [k, 3, H, W], alphas [k, H, W] and Cameras on `device`."""
    images = [im.to(device) for im in batch["images"]]
    alphas = [a.to(device).reshape(len(a), *a.shape[-2:]) for a in batch["alphas"]]  # (k, H, W)
    cameras = [c.to(device) for c in batch["cameras"]]
    return images, alphas, cameras


@register_task("slat_vae")
class SLatVAEReconstruction(Task):
    """Rendering loss of an `SLatVAE` on SLatDataset batches; held-out PSNR, SSIM (in [0, 1]) and KL.

    Options: the loss weights of `SLatLossWeights` by field name (loss_type, ssim, lpips, kl, volume,
    opacity, ssim_padding; TRELLIS's values by default), `lpips_backbone` (the VGG16 weights file `LPIPSVGG` loads,
    needed when lpips > 0), `eval_background` (RGB of the held-out renders, black by default),
    `render_backend` ("auto": gsplat on CUDA when installed, else the PyTorch rasterizer).
    """

    metric_names = ("psnr", "ssim", "kl")

    def __init__(self, lpips_backbone: str | None = None, eval_background: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 render_backend: str = "auto", **weights):
        unknown = set(weights) - set(LOSS_WEIGHT_NAMES)
        if unknown:
            raise ValueError(f"unknown slat_vae task options {sorted(unknown)}; loss weights are {LOSS_WEIGHT_NAMES}")
        defaults = {f: getattr(TRELLIS_LOSS_WEIGHTS, f) for f in LOSS_WEIGHT_NAMES}
        self.weights = SLatLossWeights(**{**defaults, **{k: (v if k in STRING_OPTIONS else float(v))
                                                         for k, v in weights.items()}})
        if len(tuple(eval_background)) != 3:
            raise ValueError(f"eval_background must be an RGB triple, got {eval_background!r}")
        self.eval_background = tuple(float(c) for c in eval_background)
        self.render_backend = render_backend
        self.lpips_fn = None
        if self.weights.lpips > 0:
            if lpips_backbone is None or not Path(lpips_backbone).expanduser().is_file():
                raise ValueError(f"task.lpips={self.weights.lpips} needs task.lpips_backbone, the VGG16 weights file "
                                 f"of LPIPS (got {lpips_backbone!r}, which is not a file); or set task.lpips=0")
            from learnlib.slat.lpips_vgg import LPIPSVGG

            self.lpips_fn = LPIPSVGG(backbone_path=Path(lpips_backbone).expanduser()).eval().requires_grad_(False)

    def _render(self, model, out, cameras, backgrounds: list[Tensor]) -> list[Tensor]:
        """Renders [k, 3, H, W] per object over backgrounds [k, 3], in fp32 (outside autocast)."""
        decoder = getattr(model, "module", model).decoder
        with torch.autocast(backgrounds[0].device.type, enabled=False):
            gaussians = [g.to(torch.float32) for g in out.gaussians]
            return [render_views([g], [c], bg[None], backend=self.render_backend, **decoder.render_kwargs)[0]
                    for g, c, bg in zip(gaussians, cameras, backgrounds)]

    def training_loss(self, model, batch):
        check_resolution(model, batch)
        device = _model_device(model)
        images, alphas, cameras = _views(batch, device)
        out = model(batch["feats"].to(device), sample_posterior=True)
        white = torch.randint(0, 2, (len(images),), device=device).float()  # (B,) 1 = white background
        backgrounds = [w.expand(len(c), 3) for w, c in zip(white, cameras)]  # [(k, 3)] per object
        renders = self._render(model, out, cameras, backgrounds)
        targets = [composite_target(im, a, bg) for im, a, bg in zip(images, alphas, backgrounds)]
        self._lpips_to(device)
        loss, terms = slat_vae_loss(torch.cat(renders), torch.cat(targets), out.gaussians, out.mean.float(),
                                    out.logvar.float(), self.weights, self.lpips_fn)
        return loss, {k: float(v.detach()) for k, v in terms.items() if k != "loss"}

    def _lpips_to(self, device: torch.device) -> None:
        if self.lpips_fn is not None and next(self.lpips_fn.parameters()).device != device:
            self.lpips_fn.to(device)

    def eval_sums(self, model, batch):
        check_resolution(model, batch)
        device = _model_device(model)
        images, alphas, cameras = _views(batch, device)
        out = model(batch["feats"].to(device), sample_posterior=False)
        background = torch.tensor(self.eval_background, device=device)
        backgrounds = [background.expand(len(c), 3) for c in cameras]  # [(k, 3)] per object
        renders = torch.cat(self._render(model, out, cameras, backgrounds))  # (V, 3, H, W)
        targets = torch.cat([composite_target(im, a, bg) for im, a, bg in zip(images, alphas, backgrounds)])
        views, voxels = len(renders), len(out.mean)
        return {"psnr": (psnr_per_image(renders, targets, value_range=(0.0, 1.0)).sum(), views),
                "ssim": (ssim_per_image(renders.clamp(0, 1), targets).sum(), views),
                "kl": (out.kl.float() * voxels, voxels)}
