"""Meshes -> structured-latent training objects: voxels, multiview renders and per-voxel features.

The recipe of TRELLIS's dataset toolkit, on learnlib's CPU pieces:
1. normalize the mesh into [-0.5, 0.5]^3 (bounding-box centre at the origin, longest side 1);
2. voxelize at resolution R (64 in TRELLIS): surface cells, coords (N, 3) in [0, R);
3. render V views from cameras on a sphere of radius 2 with a 40 degree field of view, looking at
   the origin (TRELLIS: 150 Hammersley views at 512 px, RGBA on a transparent background);
4. run a feature backend on the views (patch-feature maps), project every voxel centre
   (-0.5 + (i + 0.5) / R) into every view, sample the maps bilinearly and average over the views.

`save_trellis_features` / `load_trellis_features` read and write TRELLIS's per-object feature file:
an .npz with `indices` uint8 (N, 3) (voxel coords at resolution 64) and `patchtokens` float16 (N, C).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from learnlib.data.mesh_render import mesh_vertex_colors, render_mesh
from learnlib.data.meshes import normalize_to_unit_cube, voxel_centres, voxelize
from learnlib.slat.data.projection import (
    default_visibility_tolerance,
    project_voxel_features,
    visibility_from_depth,
)
from learnlib.splat.cameras import Cameras, camera_to_world, hammersley_cameras

__all__ = [
    "TRELLIS_FOV_DEG",
    "TRELLIS_RADIUS",
    "RenderedViews",
    "SLatObject",
    "heldout_offset",
    "load_trellis_features",
    "preprocess_mesh",
    "render_object_views",
    "save_trellis_features",
    "slat_cameras",
    "view_stack",
]

TRELLIS_RADIUS = 2.0
TRELLIS_FOV_DEG = 40.0
WORLD_LIGHT = (0.3, -0.4, 0.87)  # towards the light, world frame (z up): from above, to one side
LIGHTINGS = ("world", "camera")


@dataclass
class RenderedViews:
    """V rendered views: images (V, 3, H, W) and alphas (V, 1, H, W) in [0, 1], depths (V, 1, H, W)
    (camera z, 0 where empty), optional world normals (V, 3, H, W) in [-1, 1], and the cameras."""

    images: Tensor
    alphas: Tensor
    depths: Tensor
    cameras: Cameras
    normals: Tensor | None = None

    def __post_init__(self) -> None:
        counts = {len(self.images), len(self.alphas), len(self.depths), len(self.cameras)}
        if len(counts) != 1:
            raise ValueError(f"views and cameras must have the same count, got images {len(self.images)}, "
                             f"alphas {len(self.alphas)}, depths {len(self.depths)}, cameras {len(self.cameras)}")


@dataclass
class SLatObject:
    """One preprocessed object: voxel coords (N, 3) int64 in [0, resolution), features (N, C) float32,
    and its views (images (V, 3, H, W), alphas (V, 1, H, W), cameras)."""

    name: str
    resolution: int
    coords: Tensor
    feats: Tensor
    images: Tensor
    alphas: Tensor
    cameras: Cameras

    def __post_init__(self) -> None:
        if self.coords.dim() != 2 or self.coords.shape[1] != 3 or len(self.coords) == 0:
            raise ValueError(f"{self.name}: coords must be a non-empty (N, 3), got {tuple(self.coords.shape)}")
        if self.feats.dim() != 2 or len(self.feats) != len(self.coords):
            raise ValueError(f"{self.name}: feats must be [N={len(self.coords)}, C], got {tuple(self.feats.shape)}")
        if len(self.images) != len(self.cameras) or len(self.alphas) != len(self.cameras):
            raise ValueError(f"{self.name}: views and cameras must have the same count, got images "
                             f"{len(self.images)}, alphas {len(self.alphas)}, cameras {len(self.cameras)}")


def slat_cameras(num_views: int, image_size: int, radius: float = TRELLIS_RADIUS, fov_deg: float = TRELLIS_FOV_DEG,
                 offset=(0.0, 0.0)) -> Cameras:
    """TRELLIS-like cameras: `num_views` Hammersley points on a sphere of `radius`, `fov_deg` field of view."""
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    return hammersley_cameras(num_views, radius=radius, fov=math.radians(fov_deg), width=image_size, offset=offset)


def heldout_offset(offset, num_views: int) -> tuple[float, float]:
    """The Hammersley shift of an object's held-out cameras: half a pitch step and half a yaw step away from
    the training set drawn with `offset` over `num_views` views, so the two sets interleave on the sphere."""
    return (float(offset[0]) + 0.5, float(offset[1]) + 0.5 / max(int(num_views), 1))


def concat_cameras(first: Cameras, second: Cameras) -> Cameras:
    """The cameras of `first` followed by those of `second` (same image size)."""
    if (first.width, first.height) != (second.width, second.height):
        raise ValueError(f"cameras must share one image size, got {first.width}x{first.height} and "
                         f"{second.width}x{second.height}")
    return Cameras(torch.cat([first.viewmats, second.viewmats]), torch.cat([first.Ks, second.Ks]),
                   first.width, first.height)


def render_object_views(mesh, cameras: Cameras, with_normals: bool = False, lighting: str = "world") -> RenderedViews:
    """Render a (normalized) trimesh mesh from every camera: shaded RGB, alpha, depth, optional normals.

    `lighting="world"` lights every view from one world direction (WORLD_LIGHT), so a surface has the
    same colour in every view, as a fixed studio light gives (what degree-0 Gaussians can reproduce);
    "camera" uses a headlight fixed to each camera (the shade follows the viewer).
    """
    if lighting not in LIGHTINGS:
        raise ValueError(f"lighting must be one of {LIGHTINGS}, got {lighting!r}")
    light = {"light_dir": WORLD_LIGHT, "light_frame": "world"} if lighting == "world" else {}
    colors = mesh_vertex_colors(mesh)
    normal_colors = (np.asarray(mesh.vertex_normals) + 1.0) / 2.0 if with_normals else None
    images, alphas, depths, normals = [], [], [], []
    for i in range(len(cameras)):
        args = (mesh.vertices, mesh.faces, cameras.viewmats[i], cameras.Ks[i], cameras.width, cameras.height)
        rgb, alpha, depth = render_mesh(*args, vertex_colors=colors, **light)
        images.append(rgb.permute(2, 0, 1))  # (3, H, W)
        alphas.append(alpha.permute(2, 0, 1))  # (1, H, W)
        depths.append(depth.unsqueeze(0))  # (1, H, W)
        if with_normals:
            n, _, _ = render_mesh(*args, vertex_colors=normal_colors, shading=False)
            normals.append((n.permute(2, 0, 1) * 2.0 - 1.0) * alpha.permute(2, 0, 1))  # (3, H, W)
    return RenderedViews(torch.stack(images), torch.stack(alphas), torch.stack(depths), cameras,
                         torch.stack(normals) if with_normals else None)


def view_stack(views: RenderedViews, with_geometry: bool) -> Tensor:
    """The backend input (V, K, H, W): RGB, alpha and, with geometry, depth in [0, 1] and normals in [0, 1].

    Depth is scaled over [d - sqrt(3) / 2, d + sqrt(3) / 2], d the camera's distance to the origin
    (the depth range of the unit cube, as TRELLIS's depth renders); empty pixels stay 0.
    """
    parts = [views.images, views.alphas]
    if with_geometry:
        if views.normals is None:
            raise ValueError("geometry channels need views rendered with normals (render_object_views(with_normals=True))")
        distance = camera_to_world(views.cameras.viewmats)[:, :3, 3].norm(dim=-1).view(-1, 1, 1, 1)  # (V, 1, 1, 1)
        near = distance - 0.5 * math.sqrt(3.0)
        depth = ((views.depths - near) / math.sqrt(3.0)).clamp(0.0, 1.0) * views.alphas  # (V, 1, H, W)
        parts += [depth, (views.normals + 1.0) / 2.0 * views.alphas]
    return torch.cat(parts, dim=1)  # (V, K, H, W)


def preprocess_mesh(mesh, backend, resolution: int = 64, num_views: int = 150, image_size: int = 512,
                    radius: float = TRELLIS_RADIUS, fov_deg: float = TRELLIS_FOV_DEG, offset=(0.0, 0.0),
                    visibility: bool = False, name: str = "mesh", normalize: bool = True,
                    lighting: str = "world", heldout_views: int = 0) -> SLatObject:
    """Normalize, voxelize, render and featurize one trimesh mesh (see the module docstring).

    `heldout_views` > 0 also renders that many held-out views from a second Hammersley set interleaved
    with the first (`heldout_offset`); they are stored after the `num_views` training views and never
    feed the voxel features, which are projected from the training views alone.
    `visibility=False` averages every voxel's features over all views (TRELLIS); True keeps, per
    voxel, the views whose depth test passes (`visibility_from_depth`, tolerance one voxel diagonal).
    `lighting` as `render_object_views`. ValueError when the mesh has no voxel inside the cube.
    """
    if resolution < 1 or resolution > 256:
        raise ValueError(f"resolution must be in [1, 256] (uint8 voxel indices), got {resolution}")
    mesh = normalize_to_unit_cube(mesh) if normalize else mesh
    coords = voxelize(mesh, resolution)  # (N, 3)
    if len(coords) == 0:
        raise ValueError(f"{name}: the mesh has no voxel inside [-0.5, 0.5]^3 at resolution {resolution}")
    if heldout_views < 0:
        raise ValueError(f"heldout_views must be >= 0, got {heldout_views}")
    cameras = slat_cameras(num_views, image_size, radius, fov_deg, offset)
    needs_geometry = getattr(backend, "needs_geometry", False)
    views = render_object_views(mesh, cameras, with_normals=needs_geometry, lighting=lighting)
    maps = backend(view_stack(views, needs_geometry))  # (V, C, h, w)
    points = voxel_centres(coords, resolution)  # (N, 3)
    visible = (visibility_from_depth(points, cameras, views.depths, default_visibility_tolerance(resolution))
               if visibility else None)
    feats = project_voxel_features(maps, points, cameras, visible)  # (N, C)
    images, alphas = views.images, views.alphas
    if heldout_views:
        held_cameras = slat_cameras(heldout_views, image_size, radius, fov_deg, heldout_offset(offset, num_views))
        held = render_object_views(mesh, held_cameras, lighting=lighting)
        images, alphas = torch.cat([images, held.images]), torch.cat([alphas, held.alphas])  # (V + H, ., h, w)
        cameras = concat_cameras(cameras, held_cameras)
    return SLatObject(name, resolution, coords, feats.float(), images, alphas, cameras)


def save_trellis_features(path, coords: Tensor, feats: Tensor) -> None:
    """Write TRELLIS's feature file: `indices` uint8 (N, 3) and `patchtokens` float16 (N, C) (np.savez_compressed)."""
    coords, feats = torch.as_tensor(coords), torch.as_tensor(feats)
    if coords.dim() != 2 or coords.shape[1] != 3 or feats.dim() != 2 or len(feats) != len(coords):
        raise ValueError(f"expected coords (N, 3) and feats (N, C), got {tuple(coords.shape)} and {tuple(feats.shape)}")
    if len(coords) and (coords.min() < 0 or coords.max() > 255):
        raise ValueError(f"voxel indices must lie in [0, 255] to be stored as uint8, got [{int(coords.min())}, "
                         f"{int(coords.max())}]")
    np.savez_compressed(path, indices=coords.cpu().numpy().astype(np.uint8),
                        patchtokens=feats.detach().cpu().float().numpy().astype(np.float16))


def load_trellis_features(path, resolution: int = 64) -> tuple[Tensor, Tensor]:
    """Coords int64 (N, 3) and features float32 (N, C) from a TRELLIS feature .npz.

    ValueError naming the file when a key is missing, the shapes disagree or an index is outside
    [0, resolution); FileNotFoundError when the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature file {path} does not exist (TRELLIS writes it with "
                                "dataset_toolkits/extract_feature.py)")
    with np.load(path) as data:
        missing = {"indices", "patchtokens"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: missing keys {sorted(missing)}; a TRELLIS feature file holds 'indices' "
                             f"(N, 3) uint8 and 'patchtokens' (N, C) float16, found {sorted(data.files)}")
        indices, tokens = data["indices"], data["patchtokens"]
    if indices.ndim != 2 or indices.shape[1] != 3 or tokens.ndim != 2 or len(tokens) != len(indices):
        raise ValueError(f"{path}: expected indices (N, 3) and patchtokens (N, C), got {indices.shape} and {tokens.shape}")
    if len(indices) == 0:
        raise ValueError(f"{path}: the object has no voxels")
    coords = torch.from_numpy(indices.astype(np.int64))
    if coords.min() < 0 or coords.max() >= resolution:
        raise ValueError(f"{path}: voxel indices must lie in [0, {resolution}), got [{int(coords.min())}, "
                         f"{int(coords.max())}]")
    return coords, torch.from_numpy(tokens.astype(np.float32))


def downsample_features(coords: Tensor, feats: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """Coords // factor with the features of merged voxels averaged (TRELLIS's lower-resolution SLat)."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    if factor == 1:
        return coords, feats
    coarse, inverse = torch.unique(coords // factor, dim=0, return_inverse=True)  # (M, 3), (N,)
    sums = torch.zeros(len(coarse), feats.shape[1], dtype=feats.dtype).index_add_(0, inverse, feats)  # (M, C)
    counts = torch.bincount(inverse, minlength=len(coarse)).to(feats.dtype).unsqueeze(1)  # (M, 1)
    return coarse, sums / counts
