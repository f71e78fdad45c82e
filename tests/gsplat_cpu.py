"""gsplat's public `rasterization` on CPU: torch stand-ins for the CUDA functions it calls.

`install(monkeypatch)` replaces, inside `gsplat.rendering`, the four CUDA entry points that the
non-packed pinhole path of gsplat 1.5 calls, and lets `learnlib.splat.gsplat_backend` accept CPU
tensors. Everything else (argument handling, render modes, backgrounds, depth channels, the
expected-depth division, meta) is gsplat's own code, run unmodified.

- `fully_fused_projection`: gsplat's `_torch_impl` pieces (`_quat_scale_to_covar_preci`,
  `_world_to_cam`, `_persp_proj`), then the kernel's rules (ProjectionEWA3DGSFused.cu): cull when
  z < near or z > far or det <= 0; opacity-aware extent min(3.33, sqrt(2 log(opacity / (1/255))))
  (opacity times the compensation when antialiased; cull below 1/255); per-axis radii
  ceil(extent * sqrt(Sigma_xx)), ceil(extent * sqrt(Sigma_yy)); cull boxes entirely off-screen.
- `isect_tiles`, `isect_offset_encode`: gsplat's `_torch_impl` versions.
- `rasterize_to_pixels`: the kernel's rules written out per tile (RasterizeToPixels3DGSFwd.cu):
  front to back, alpha = min(0.999, opacity exp(-sigma)), skip sigma < 0 or alpha < 1/255, stop
  before the Gaussian that brings T to 1e-4 or below, background times the final T. Autograd
  differentiates it (the CUDA backward is not exercised).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0


def fully_fused_projection(means, covars, quats, scales, viewmats, Ks, width, height, eps2d=0.3, near_plane=0.01,
                           far_plane=1e10, radius_clip=0.0, packed=False, sparse_grad=False,
                           calc_compensations=False, camera_model="pinhole", opacities=None):
    from gsplat.cuda._torch_impl import _persp_proj, _quat_scale_to_covar_preci, _world_to_cam

    assert not packed and camera_model == "pinhole" and means.dim() == 2, "stand-in covers the unbatched pinhole path"
    if covars is None:
        covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False, triu=False)
    else:
        rows = torch.tensor([[0, 1, 2], [1, 3, 4], [2, 4, 5]], device=covars.device)
        covars = covars[..., rows]  # (N, 3, 3) from the upper-triangle 6-vector
    means_c, covars_c = _world_to_cam(means, covars, viewmats)  # (C, N, 3), (C, N, 3, 3)
    z = means_c[..., 2]
    in_depth = (z >= near_plane) & (z <= far_plane)
    safe_c = torch.where(in_depth[..., None], means_c, means_c.new_tensor([0.0, 0.0, 1.0]))  # (C, N, 3)
    means2d, cov2d = _persp_proj(safe_c, covars_c, Ks, width, height)
    det_orig = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]
    cov2d = cov2d + eps2d * torch.eye(2, dtype=cov2d.dtype, device=cov2d.device)
    det = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]
    compensations = torch.sqrt(torch.clamp(det_orig / det.clamp_min(1e-10), min=0.0))
    safe_det = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([cov2d[..., 1, 1], -0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0]), cov2d[..., 0, 0]],
                         dim=-1) / safe_det[..., None]  # (C, N, 3)
    with torch.no_grad():
        valid = in_depth & (det > 0)
        extent = torch.full_like(z, 3.33)
        if opacities is not None:
            opacity = opacities.expand_as(z) * (compensations if calc_compensations else 1.0)
            valid = valid & (opacity >= ALPHA_THRESHOLD)
            level = torch.log(torch.clamp(opacity / ALPHA_THRESHOLD, min=1.0))
            extent = torch.minimum(extent, torch.sqrt(2.0 * level))
        rx = torch.ceil(extent * torch.sqrt(cov2d[..., 0, 0].clamp_min(0)))
        ry = torch.ceil(extent * torch.sqrt(cov2d[..., 1, 1].clamp_min(0)))
        valid = valid & ~((rx <= radius_clip) & (ry <= radius_clip))
        m = means2d.detach()
        valid = valid & ~((m[..., 0] + rx <= 0) | (m[..., 0] - rx >= width)
                          | (m[..., 1] + ry <= 0) | (m[..., 1] - ry >= height))
        radii = torch.where(valid[..., None], torch.stack([rx, ry], dim=-1), 0.0).int()  # (C, N, 2)
    return radii, means2d, z, conics, (compensations if calc_compensations else None)


def isect_tiles(means2d, radii, depths, tile_size, tile_width, tile_height, sort=True, segmented=False,
                packed=False, n_images=None, image_ids=None, gaussian_ids=None):
    from gsplat.cuda._torch_impl import _isect_tiles

    assert not packed
    return _isect_tiles(means2d, radii, depths, tile_size, tile_width, tile_height, sort=sort)


def isect_offset_encode(isect_ids, n_images, tile_width, tile_height):
    from gsplat.cuda._torch_impl import _isect_offset_encode

    return _isect_offset_encode(isect_ids, n_images, tile_width, tile_height)


def rasterize_to_pixels(means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor, image_width: int,
                        image_height: int, tile_size: int, isect_offsets: Tensor, flatten_ids: Tensor,
                        backgrounds: Tensor | None = None, masks=None, packed: bool = False, absgrad: bool = False):
    assert not packed and masks is None
    image_dims = means2d.shape[:-2]
    N, D = means2d.shape[-2], colors.shape[-1]
    I = math.prod(image_dims)
    flat_means = means2d.reshape(I * N, 2)  # (I*N, 2)
    flat_conics = conics.reshape(I * N, 3)  # (I*N, 3)
    flat_colors = colors.reshape(I * N, D)  # (I*N, D)
    flat_opac = opacities.reshape(I * N)  # (I*N,)
    offsets = isect_offsets.reshape(I, -1)  # (I, tiles)
    n_isects = len(flatten_ids)
    tiles_h, tiles_w = isect_offsets.shape[-2:]
    bg = None if backgrounds is None else backgrounds.reshape(I, D)  # (I, D)
    images, alphas = [], []
    for i in range(I):
        rows = []
        row_alphas = []
        for ty in range(tiles_h):
            tile_colors, tile_alphas = [], []
            for tx in range(tiles_w):
                t = ty * tiles_w + tx
                start = int(offsets[i, t])
                end = int(offsets[i, t + 1]) if t + 1 < offsets.shape[1] else (
                    int(offsets[i + 1, 0]) if i + 1 < I else n_isects)
                ids = flatten_ids[start:end].long()  # front to back
                x0, y0 = tx * tile_size, ty * tile_size
                w, h = min(tile_size, image_width - x0), min(tile_size, image_height - y0)
                ys, xs = torch.meshgrid(torch.arange(h, dtype=means2d.dtype), torch.arange(w, dtype=means2d.dtype),
                                        indexing="ij")
                pix = torch.stack([xs + x0 + 0.5, ys + y0 + 0.5], dim=-1).reshape(-1, 1, 2)  # (P, 1, 2)
                d = pix - flat_means[ids]  # (P, K, 2)
                c = flat_conics[ids]  # (K, 3)
                sigma = 0.5 * (c[:, 0] * d[..., 0] ** 2 + c[:, 2] * d[..., 1] ** 2) + c[:, 1] * d[..., 0] * d[..., 1]
                alpha = torch.clamp(flat_opac[ids] * torch.exp(-sigma), max=0.999)  # (P, K)
                alpha = torch.where((sigma < 0) | (alpha < ALPHA_THRESHOLD), torch.zeros_like(alpha), alpha)
                t_after = torch.cumprod(1.0 - alpha, dim=-1)
                stopped = torch.cumsum((t_after <= 1e-4).int(), dim=-1) > 0
                alpha = torch.where(stopped, torch.zeros_like(alpha), alpha)
                trans = torch.cumprod(1.0 - alpha, dim=-1)  # (P, K)
                t_before = torch.cat([torch.ones_like(trans[:, :1]), trans[:, :-1]], dim=-1)  # (P, K)
                weights = alpha * t_before
                color = weights @ flat_colors[ids] if len(ids) else flat_colors.new_zeros(len(pix), D)  # (P, D)
                t_final = trans[:, -1:] if len(ids) else torch.ones_like(color[:, :1])  # (P, 1)
                if bg is not None:
                    color = color + t_final * bg[i]
                tile_colors.append(color.reshape(h, w, D))  # (h, w, D)
                tile_alphas.append((1.0 - t_final).reshape(h, w, 1))  # (h, w, 1)
            rows.append(torch.cat(tile_colors, dim=1))
            row_alphas.append(torch.cat(tile_alphas, dim=1))
        images.append(torch.cat(rows, dim=0))
        alphas.append(torch.cat(row_alphas, dim=0))
    render_colors = torch.stack(images).reshape(image_dims + (image_height, image_width, D))
    render_alphas = torch.stack(alphas).reshape(image_dims + (image_height, image_width, 1))
    return render_colors, render_alphas


def install(monkeypatch) -> None:
    """Route `gsplat.rendering`'s CUDA calls to the stand-ins and let learnlib's backend take CPU tensors."""
    import gsplat.rendering

    import learnlib.splat.gsplat_backend as backend

    for name in ("fully_fused_projection", "isect_tiles", "isect_offset_encode", "rasterize_to_pixels"):
        monkeypatch.setattr(gsplat.rendering, name, globals()[name])
    monkeypatch.setattr(backend, "require_cuda", lambda means: None)
