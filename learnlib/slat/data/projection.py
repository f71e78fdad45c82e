"""Per-voxel features from multiview patch-feature maps (the aggregation of TRELLIS's SLat data).

Each voxel centre is projected into every view; the view's patch-feature map (C, h, w), which covers
the whole W x H image, is sampled bilinearly at that point with `F.grid_sample(align_corners=False)`
(grid -1 / +1 = the outer edges of the image, so pixel position u maps to 2 u / W - 1); the samples
are averaged over the views. TRELLIS averages over *all* views, occluded ones included; passing
`visible` (e.g. from `visibility_from_depth`) averages over the views that see the voxel instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from learnlib.splat.cameras import Cameras, camera_to_pixels, world_to_camera_points

__all__ = ["project_to_grid", "project_voxel_features", "sample_feature_maps", "visibility_from_depth"]


def _check_points(points: Tensor) -> None:
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3) world positions, got {tuple(points.shape)}")


def project_to_grid(points: Tensor, cameras: Cameras) -> tuple[Tensor, Tensor]:
    """grid_sample coordinates (V, N, 2) in [-1, 1] (align_corners=False) and depths (V, N) of points (N, 3)."""
    _check_points(points)
    cam = world_to_camera_points(points.to(cameras.viewmats.dtype), cameras.viewmats)  # (V, N, 3)
    uv = camera_to_pixels(cam, cameras.Ks)  # (V, N, 2) pixel positions
    size = uv.new_tensor([cameras.width, cameras.height])
    return 2.0 * uv / size - 1.0, cam[..., 2]  # (V, N, 2), (V, N)


def sample_feature_maps(feature_maps: Tensor, grid: Tensor) -> Tensor:
    """Bilinear samples (V, N, C) of maps (V, C, h, w) at grid coordinates (V, N, 2) (zeros outside)."""
    if feature_maps.dim() != 4:
        raise ValueError(f"feature_maps must be (V, C, h, w), got {tuple(feature_maps.shape)}")
    if grid.dim() != 3 or grid.shape[0] != feature_maps.shape[0] or grid.shape[2] != 2:
        raise ValueError(f"grid must be [V={feature_maps.shape[0]}, N, 2], got {tuple(grid.shape)}")
    samples = F.grid_sample(feature_maps, grid.unsqueeze(1).to(feature_maps.dtype), mode="bilinear",
                            align_corners=False)  # (V, C, 1, N)
    return samples.squeeze(2).transpose(1, 2)  # (V, N, C)


def project_voxel_features(feature_maps: Tensor, points: Tensor, cameras: Cameras,
                           visible: Tensor | None = None) -> Tensor:
    """Features (N, C) of world points (N, 3): the mean over views of the bilinearly sampled maps (V, C, h, w).

    Without `visible` every view counts (TRELLIS). With `visible` bool (V, N) only the views that see
    a point count; a point no view sees falls back to the mean over all views.
    """
    if feature_maps.dim() != 4 or feature_maps.shape[0] != len(cameras):
        raise ValueError(f"expected one feature map per camera: [V={len(cameras)}, C, h, w], "
                         f"got {tuple(feature_maps.shape)}")
    grid, _ = project_to_grid(points, cameras)
    samples = sample_feature_maps(feature_maps, grid)  # (V, N, C)
    if visible is None:
        return samples.mean(dim=0)  # (N, C)
    if visible.shape != samples.shape[:2]:
        raise ValueError(f"visible must be (V, N) = {list(samples.shape[:2])}, got {list(visible.shape)}")
    weight = visible.to(samples.dtype).unsqueeze(-1)  # (V, N, 1)
    count = weight.sum(dim=0)  # (N, 1)
    masked = (samples * weight).sum(dim=0) / count.clamp(min=1.0)  # (N, C)
    return torch.where(count > 0, masked, samples.mean(dim=0))


def visibility_from_depth(points: Tensor, cameras: Cameras, depths: Tensor, tolerance: float) -> Tensor:
    """Bool (V, N): the point projects inside view v and lies no more than `tolerance` behind its surface.

    depths (V, H, W) or (V, 1, H, W) are rendered camera-space depths (0 where the view is empty; an
    empty pixel hides nothing). For surface voxels of side s use a tolerance of about the diagonal,
    sqrt(3) s: the centre of an occupied cell can lie that far behind the surface it contains.
    """
    if depths.dim() == 4:
        depths = depths.squeeze(1)  # (V, H, W)
    if depths.shape != (len(cameras), cameras.height, cameras.width):
        raise ValueError(f"depths must be [V={len(cameras)}, H={cameras.height}, W={cameras.width}], "
                         f"got {tuple(depths.shape)}")
    grid, z = project_to_grid(points, cameras)  # (V, N, 2), (V, N)
    col = torch.floor((grid[..., 0] + 1.0) * 0.5 * cameras.width).long()  # (V, N) pixel holding the point
    row = torch.floor((grid[..., 1] + 1.0) * 0.5 * cameras.height).long()
    inside = (z > 0) & (col >= 0) & (col < cameras.width) & (row >= 0) & (row < cameras.height)
    flat = (row.clamp(0, cameras.height - 1) * cameras.width + col.clamp(0, cameras.width - 1))  # (V, N)
    surface = torch.gather(depths.reshape(len(cameras), -1), 1, flat).to(z.dtype)  # (V, N)
    return inside & ((surface <= 0) | (z <= surface + tolerance))


def default_visibility_tolerance(resolution: int) -> float:
    """sqrt(3) / resolution: the diagonal of one voxel of a `resolution`^3 grid over the unit cube."""
    return math.sqrt(3.0) / resolution
