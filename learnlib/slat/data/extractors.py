"""Patch-feature extractors (backends): rendered views (V, K, H, W) -> patch-feature maps (V, C, h, w).

Every backend takes the same view stack: channels 0-2 RGB in [0, 1] (straight, not premultiplied),
channel 3 alpha, then optional geometry channels (depth, normals) when the backend asks for them
(`needs_geometry`). The projection onto voxels (learnlib.slat.data.projection) is the same for all.

- `PatchPoolBackend` ("patch_pool", the offline default): no learned weights. Each patch of
  `patch_size` px is split into `sub_cells` x `sub_cells` cells and every input channel is averaged
  per cell, so C = K * sub_cells^2 (32 for RGB + alpha + depth + normals and 2 x 2 cells).
- `Dinov2Backend` ("dinov2"): DINOv2 ViT-L/14 with registers at 518 px, as TRELLIS: RGB
  premultiplied by alpha (black background), resized to 518, ImageNet-normalized, and the 37 x 37
  patch tokens of the last block *before* the final LayerNorm (`x_prenorm`): C = 1024.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BACKENDS", "Dinov2Backend", "PatchPoolBackend", "make_backend"]


def _check_views(views: Tensor, min_channels: int) -> None:
    if views.dim() != 4 or views.shape[1] < min_channels:
        raise ValueError(f"views must be [V, K >= {min_channels}, H, W] (RGB, alpha, ...), got {tuple(views.shape)}")


class PatchPoolBackend:
    """Offline patch features: per-cell means of the view channels, `sub_cells`^2 cells per patch.

    With the geometry channels (`needs_geometry`), the stack is RGB, alpha, depth scaled to [0, 1]
    over the camera's depth range, and world normals mapped to [0, 1]: 8 channels, C = 8 sub_cells^2.
    """

    needs_geometry = True

    def __init__(self, patch_size: int = 4, sub_cells: int = 2):
        if patch_size < 1 or sub_cells < 1 or patch_size % sub_cells:
            raise ValueError(f"patch_size must be a positive multiple of sub_cells, got {patch_size} and {sub_cells}")
        self.patch_size, self.sub_cells = patch_size, sub_cells

    def __call__(self, views: Tensor) -> Tensor:
        _check_views(views, 1)
        p, s = self.patch_size, self.sub_cells
        if views.shape[-2] % p or views.shape[-1] % p:
            raise ValueError(f"view size {tuple(views.shape[-2:])} must be a multiple of patch_size {p}")
        cells = F.avg_pool2d(views.float(), kernel_size=p // s)  # (V, K, s h, s w)
        return F.pixel_unshuffle(cells, s)  # (V, K s^2, h, w)


class Dinov2Backend:
    """DINOv2 patch tokens of the premultiplied RGB at `image_size` px: (V, 1024, 37, 37) at 518.

    `weights` is a local `dinov2_vitl14_reg4_pretrain.pth` (never downloaded); `model` may be passed
    instead (any `learnlib.vit.dinov2.DinoV2`, e.g. a small random one in tests).
    """

    needs_geometry = False

    def __init__(self, weights=None, model=None, device="cpu", image_size: int = 518, batch_size: int = 16,
                 prenorm: bool = True):
        if weights is None and model is None:
            raise FileNotFoundError("the dinov2 backend needs weights: set the path of a local "
                                    "dinov2_vitl14_reg4_pretrain.pth (facebookresearch/dinov2); it is never downloaded")
        self.weights, self._model, self.device = weights, model, torch.device(device)
        self.image_size, self.batch_size, self.prenorm = image_size, batch_size, prenorm

    @property
    def model(self):
        if self._model is None:
            from learnlib.vit.dinov2 import load_dinov2

            self._model = load_dinov2(self.weights)
        return self._model.to(self.device).eval()

    def preprocess(self, views: Tensor) -> Tensor:
        """Views (V, K, H, W) -> normalized network input (V, 3, S, S): RGB * alpha, resized, ImageNet stats."""
        from learnlib.vit.dinov2 import IMAGENET_MEAN, IMAGENET_STD

        _check_views(views, 4)
        rgb = views[:, :3].float() * views[:, 3:4].float()  # (V, 3, H, W) on black
        if rgb.shape[-2:] != (self.image_size, self.image_size):
            rgb = F.interpolate(rgb, size=(self.image_size, self.image_size), mode="bicubic",
                                antialias=True, align_corners=False).clamp(0.0, 1.0)  # (V, 3, S, S)
        mean = rgb.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = rgb.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (rgb - mean) / std

    @torch.no_grad()
    def __call__(self, views: Tensor) -> Tensor:
        model = self.model
        x = self.preprocess(views)
        maps = [model.patch_feature_map(x[i:i + self.batch_size].to(self.device), prenorm=self.prenorm).float().cpu()
                for i in range(0, len(x), self.batch_size)]
        return torch.cat(maps)  # (V, C, h, w)


BACKENDS = {"patch_pool": PatchPoolBackend, "dinov2": Dinov2Backend}


def make_backend(name: str = "patch_pool", **kwargs):
    """A backend by name ("patch_pool" or "dinov2"); keyword arguments go to its constructor."""
    if name not in BACKENDS:
        raise ValueError(f"unknown feature backend {name!r}; expected one of {sorted(BACKENDS)}")
    return BACKENDS[name](**kwargs)
