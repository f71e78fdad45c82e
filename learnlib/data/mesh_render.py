"""A small triangle rasterizer (z-buffer, barycentric interpolation) for rendering meshes to images.

Cameras follow `learnlib.splat.cameras` (world -> camera view matrix, x right, y down, z forward;
pixel intrinsics; pixel (i, j) sampled at its centre (j + 0.5, i + 0.5)), so a mesh and Gaussians
fitted to it render into the same pixels. Not differentiable: it makes training targets.

Shading: per-vertex colours when given (interpolated perspective-correctly), else a grey albedo;
multiplied by a Lambert term ambient + (1 - ambient) max(0, n . l) with flat face normals, turned
towards the camera (two-sided). The light direction is fixed in the camera frame (a headlight: a
surface's shade changes with the view) or, with `light_frame="world"`, in the world frame (the shade
of a closed surface is the same from every view, which view-independent colours can reproduce).
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from learnlib.splat.cameras import camera_to_pixels, world_to_camera_points

DEFAULT_LIGHT = (-0.3, -0.5, -1.0)  # in the camera frame: from the upper left, towards the viewer
LIGHT_FRAMES = ("camera", "world")


def _np(x, dtype=np.float64) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def render_mesh(vertices, faces, viewmat, K, width: int, height: int, vertex_colors=None,
                albedo: float = 0.8, ambient: float = 0.3, light_dir=DEFAULT_LIGHT, shading: bool = True,
                background=None, near_plane: float = 0.01, chunk: int = 1 << 21, light_frame: str = "camera"
                ) -> tuple[Tensor, Tensor, Tensor]:
    """Render one view: RGB (H, W, 3), alpha (H, W, 1) (1 on the mesh, 0 elsewhere), depth (H, W) (0 = empty).

    vertices (V, 3), faces int (F, 3), viewmat (4, 4), K (3, 3), vertex_colors (V, 3) in [0, 1] or None.
    `light_dir` points towards the light, in the frame named by `light_frame` ("camera" or "world").
    Triangles with a vertex in front of `near_plane` are dropped (no clipping).
    """
    if light_frame not in LIGHT_FRAMES:
        raise ValueError(f"light_frame must be one of {LIGHT_FRAMES}, got {light_frame!r}")
    v = _np(vertices)
    f = _np(faces, np.int64)
    view, K = _np(viewmat), _np(K)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"expected vertices (V, 3) and faces (F, 3), got {v.shape} and {f.shape}")
    if view.shape != (4, 4) or K.shape != (3, 3):
        raise ValueError(f"expected viewmat (4, 4) and K (3, 3), got {view.shape} and {K.shape}")
    colors = None if vertex_colors is None else _np(vertex_colors)
    if colors is not None and colors.shape != v.shape:
        raise ValueError(f"vertex_colors must be (V, 3) = {list(v.shape)}, got {list(colors.shape)}")

    cam = world_to_camera_points(torch.from_numpy(v), torch.from_numpy(view)[None])[0].numpy()  # (V, 3)
    z = cam[:, 2]
    safe = np.concatenate([cam[:, :2], np.where(z > near_plane, z, 1.0)[:, None]], axis=1)  # (V, 3) no z near 0
    uv = camera_to_pixels(torch.from_numpy(safe)[None], torch.from_numpy(K)[None])[0].numpy()  # (V, 2)
    tri_uv, tri_z = uv[f], z[f]  # (F, 3, 2), (F, 3)
    x0 = np.clip(np.ceil(tri_uv[..., 0].min(1) - 0.5), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(tri_uv[..., 0].max(1) - 0.5) + 1, 0, width).astype(np.int64)
    y0 = np.clip(np.ceil(tri_uv[..., 1].min(1) - 0.5), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(tri_uv[..., 1].max(1) - 0.5) + 1, 0, height).astype(np.int64)
    e1, e2 = tri_uv[:, 1] - tri_uv[:, 0], tri_uv[:, 2] - tri_uv[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = (tri_z > near_plane).all(1) & (np.abs(area) > 1e-12)
    w = np.where(ok, np.maximum(x1 - x0, 0), 0)
    counts = w * np.maximum(y1 - y0, 0)

    pix_all, face_all, bary_all, depth_all = [], [], [], []
    ends = np.cumsum(counts)
    start = 0
    while start < len(f) and (ends[-1] if len(ends) else 0) > 0:
        base = ends[start - 1] if start > 0 else 0
        stop = max(int(np.searchsorted(ends, base + chunk, side="right")), start + 1)
        idx = np.arange(start, stop)
        face = np.repeat(idx, counts[idx])  # (P,)
        k = np.arange(len(face)) - np.repeat(np.cumsum(counts[idx]) - counts[idx], counts[idx])
        px = x0[face] + k % w[face]
        py = y0[face] + k // w[face]
        p = np.stack([px + 0.5, py + 0.5], axis=1) - tri_uv[face, 0]  # (P, 2) relative to vertex 0
        inv = 1.0 / area[face]
        b1 = (p[:, 0] * e2[face, 1] - p[:, 1] * e2[face, 0]) * inv
        b2 = (e1[face, 0] * p[:, 1] - e1[face, 1] * p[:, 0]) * inv
        bary = np.stack([1.0 - b1 - b2, b1, b2], axis=1)  # (P, 3) screen-space barycentrics
        inside = (bary >= -1e-9).all(axis=1)
        bary, face, px, py = bary[inside], face[inside], px[inside], py[inside]
        inv_z = (bary / tri_z[face]).sum(axis=1)  # 1/z is linear in screen space
        pix_all.append(py * width + px)
        face_all.append(face)
        bary_all.append(bary / tri_z[face] / inv_z[:, None])  # perspective-correct barycentrics
        depth_all.append(1.0 / inv_z)
        start = stop

    rgb = np.zeros((height * width, 3))
    alpha = np.zeros(height * width)
    depth = np.zeros(height * width)
    if pix_all and sum(len(p) for p in pix_all):
        pix, face = np.concatenate(pix_all), np.concatenate(face_all)  # (P,), (P,)
        bary, dep = np.concatenate(bary_all), np.concatenate(depth_all)  # (P, 3), (P,)
        order = np.lexsort((dep, pix))  # by pixel, nearest first
        first = np.ones(len(order), dtype=bool)
        first[1:] = pix[order][1:] != pix[order][:-1]
        sel = order[first]
        pix, face, bary, dep = pix[sel], face[sel], bary[sel], dep[sel]
        base_color = ((bary[:, :, None] * colors[f[face]]).sum(axis=1) if colors is not None
                      else np.full((len(face), 3), albedo))
        if shading:
            tri_cam = cam[f[face]]  # (P, 3, 3)
            n = np.cross(tri_cam[:, 1] - tri_cam[:, 0], tri_cam[:, 2] - tri_cam[:, 0])
            n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-20
            point = (bary[:, :, None] * tri_cam).sum(axis=1)
            n *= np.where((n * point).sum(axis=1, keepdims=True) > 0, -1.0, 1.0)  # face the camera
            light = np.asarray(light_dir, dtype=np.float64)
            if light_frame == "world":
                light = view[:3, :3] @ light  # (3,) the world direction in the camera frame
            light = light / np.linalg.norm(light)
            base_color = base_color * (ambient + (1.0 - ambient) * np.clip(n @ light, 0.0, None))[:, None]  # (P, 3)
        rgb[pix], alpha[pix], depth[pix] = base_color, 1.0, dep
    if background is not None:
        rgb += (1.0 - alpha)[:, None] * _np(background).reshape(1, 3)  # (H*W, 3)
    rgb = rgb.reshape(height, width, 3)  # (H, W, 3)
    alpha = alpha.reshape(height, width, 1)  # (H, W, 1)
    depth = depth.reshape(height, width)  # (H, W)
    return torch.from_numpy(rgb).float(), torch.from_numpy(alpha).float(), torch.from_numpy(depth).float()


def mesh_vertex_colors(mesh) -> np.ndarray | None:
    """Per-vertex RGB (V, 3) in [0, 1] when the trimesh mesh carries vertex colours, else None."""
    visual = getattr(mesh, "visual", None)
    if visual is None or getattr(visual, "kind", None) != "vertex":
        return None
    return np.asarray(visual.vertex_colors)[:, :3] / 255.0


def render_views(mesh, cameras, size: int | None = None, use_vertex_colors: bool = True, **kwargs
                 ) -> tuple[Tensor, Tensor]:
    """Render a trimesh mesh from every camera of a `learnlib.splat.Cameras`.

    Returns images (C, H, W, 3) and alphas (C, H, W, 1); `size` re-renders at size x size.
    Extra keyword arguments go to `render_mesh` (shading, background, ...).
    """
    if size is not None:
        cameras = cameras.resized(size, size)
    colors = mesh_vertex_colors(mesh) if use_vertex_colors else None
    images, alphas = [], []
    for i in range(len(cameras)):
        rgb, alpha, _ = render_mesh(mesh.vertices, mesh.faces, cameras.viewmats[i], cameras.Ks[i],
                                    cameras.width, cameras.height, vertex_colors=colors, **kwargs)
        images.append(rgb)
        alphas.append(alpha)
    return torch.stack(images), torch.stack(alphas)  # (C, H, W, 3), (C, H, W, 1)


def mesh_targets(mesh, cameras, supersample: int = 4, background=(1.0, 1.0, 1.0),
                 shading: bool = False) -> Tensor:
    """Anti-aliased renders (C, H, W, 3) of a trimesh mesh (its vertex colours, unshaded by default):
    `render_views` at `supersample` times the resolution, box-filtered down. The training images
    of a Gaussian fit (`learnlib.splat.fit.fit_gaussians`), e.g. of a mesh coloured by
    `learnlib.splat.fit.color_by_normals`."""
    if supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    big = cameras.resized(cameras.width * supersample, cameras.height * supersample)
    images, _ = render_views(mesh, big, background=background, shading=shading)  # (C, sH, sW, 3)
    images = rearrange(images, "c (h i) (w j) d -> c h w d (i j)", i=supersample, j=supersample)  # (C, H, W, 3, s*s)
    return images.mean(dim=-1)  # (C, H, W, 3)
