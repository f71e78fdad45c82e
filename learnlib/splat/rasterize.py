"""Differentiable Gaussian splatting: the plain PyTorch reference and the backend dispatch.

`rasterize` mirrors `gsplat.rasterization` (wxyz quaternions, world -> camera view matrices
(C, 4, 4), pixel intrinsics (C, 3, 3), channels-last outputs) and runs on any device. The
compositing rules are gsplat's, so the two backends agree pixel for pixel up to float rounding:

- a Gaussian's alpha at pixel centre p is min(ALPHA_MAX, opacity * exp(-0.5 d^T Sigma2d^-1 d));
  alphas below ALPHA_MIN (1/255) are skipped;
- Gaussians are composited front to back in depth order; a pixel stops at the Gaussian that
  would bring its transmittance T to TRANSMITTANCE_MIN (1e-4) or below (that one is excluded);
- a Gaussian is only evaluated on the tiles (tile_size x tile_size pixels) its box touches; the
  box is gsplat 1.5's (`radius_from_covariance`): per axis ceil(k sqrt(Sigma_xx)), ceil(k sqrt(Sigma_yy))
  with k = min(3.33, sqrt(2 log(opacity * 255))), so every pixel whose alpha reaches 1/255 is inside
  it unless the opacity exceeds about 0.998 (then the 3.33-sigma cap cuts the far rim, as in gsplat);
- culling is gsplat's: depth z < near_plane or z > far_plane, opacity below 1/255, box off-screen;
- in "D" and "ED" the background is ignored (zeros), in "RGB+D"/"RGB+ED" the depth channel's
  background is 0, as gsplat does.
Known differences left, below the parity tests' tolerances: a Gaussian hidden behind the
transmittance cut-off gets gradients of about 1e-11 here (the float64 log-space sum), exactly 0 in
gsplat; colours are taken as given (gsplat's SH path clamps them at 0; `rasterize` takes no SH).

How the reference stays fast on a CPU: instead of looping over pixels or tiles, it lists the
(pixel, Gaussian) pairs that can matter (inside the tiles and inside the ellipse where the alpha
reaches ALPHA_MIN, found without gradients), sorts the pairs by (pixel, depth), and composites
every pixel at once with a segmented cumulative sum of log(1 - alpha). Autograd differentiates
that graph; no hand-written backward is needed.

Inputs are checked before any work (one host sync): a NaN or inf in means, quats, scales,
opacities or colors raises a ValueError naming the field and the first bad Gaussian, instead of the
Gaussian being culled without a word or poisoning the image. 0 Gaussians render the
background (zeros without one) with alpha 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from learnlib.nn.backends import canonical_backend
from learnlib.splat.projection import ALPHA_THRESHOLD, covariance_3d, project_gaussians

ALPHA_MAX = 0.999  # gsplat's clamp (the original 3DGS CUDA code uses 0.99)
ALPHA_MIN = ALPHA_THRESHOLD
TRANSMITTANCE_MIN = 1e-4
RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
_PAIR_BUDGET = 1 << 22  # candidate (pixel, Gaussian) pairs examined per chunk


def gaussian_alpha(deltas: Tensor, conics: Tensor, opacities: Tensor) -> Tensor:
    """Alpha [...] of Gaussians with conics (a, b, c) [..., 3] at offsets pixel - mean [..., 2].

    Clamped to ALPHA_MAX; set to 0 where it is below ALPHA_MIN (skipped, as in gsplat).
    """
    dx, dy = deltas[..., 0], deltas[..., 1]
    sigma = 0.5 * (conics[..., 0] * dx * dx + conics[..., 2] * dy * dy) + conics[..., 1] * dx * dy
    alpha = torch.clamp(opacities * torch.exp(-sigma), max=ALPHA_MAX)
    return torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))


def composite_front_to_back(colors: Tensor, alphas: Tensor, background: Tensor | None = None
                            ) -> tuple[Tensor, Tensor]:
    """Blend K layers sorted front to back: colors [..., K, D], alphas [..., K] -> ([..., D], [..., 1]).

    Layer i gets weight alpha_i T_i with T_i = prod_{j<i} (1 - alpha_j); compositing stops before
    the layer that would bring T to TRANSMITTANCE_MIN or below. Alphas are used as given (apply
    `gaussian_alpha`'s clamp/skip first). The background fills the remaining transmittance.
    """
    if colors.shape[:-1] != alphas.shape:
        raise ValueError(f"expected colors [..., K, D] and alphas [..., K], got {tuple(colors.shape)} "
                         f"and {tuple(alphas.shape)}")
    t_after = torch.cumprod(1.0 - alphas, dim=-1)  # transmittance after each layer
    alphas = alphas * (t_after > TRANSMITTANCE_MIN)  # a prefix: T only decreases
    t_before = torch.cumprod(1.0 - alphas, dim=-1)
    t_before = torch.cat([torch.ones_like(t_before[..., :1]), t_before[..., :-1]], dim=-1)  # (..., K)
    weights = alphas * t_before
    color = (weights.unsqueeze(-1) * colors).sum(dim=-2)  # (..., D)
    alpha = weights.sum(dim=-1, keepdim=True)  # (..., 1)
    if background is not None:
        color = color + (1.0 - alpha) * background
    return color, alpha


def _candidate_boxes(means2d: Tensor, conics: Tensor, opacities: Tensor, radii: Tensor, width: int,
                     height: int, tile_size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pixel boxes [x0, x1) x [y0, y1) per Gaussian: its tiles (radii (M, 2) per axis), cut to where
    alpha can reach ALPHA_MIN."""
    r = radii.to(means2d.dtype)
    mx, my = means2d[:, 0], means2d[:, 1]
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    tx0 = torch.floor(mx / tile_size - r[:, 0] / tile_size).clamp(0, tiles_x) * tile_size
    tx1 = torch.ceil(mx / tile_size + r[:, 0] / tile_size).clamp(0, tiles_x) * tile_size
    ty0 = torch.floor(my / tile_size - r[:, 1] / tile_size).clamp(0, tiles_y) * tile_size
    ty1 = torch.ceil(my / tile_size + r[:, 1] / tile_size).clamp(0, tiles_y) * tile_size
    # alpha >= ALPHA_MIN needs d^T Sigma^-1 d <= 2 log(opacity / ALPHA_MIN); the ellipse's half
    # extents are sqrt(2 log(.) Sigma_xx), Sigma = conic^-1. One pixel of margin; the exact test follows.
    level = 2.0 * torch.log(torch.clamp(opacities / ALPHA_MIN, min=1.0))
    det = (conics[:, 0] * conics[:, 2] - conics[:, 1] ** 2).clamp_min(1e-20)
    ex = torch.sqrt(level * conics[:, 2] / det) + 1.0
    ey = torch.sqrt(level * conics[:, 0] / det) + 1.0
    x0 = torch.maximum(tx0, torch.floor(mx - ex))
    x1 = torch.minimum(tx1, torch.ceil(mx + ex)).clamp(max=width)
    y0 = torch.maximum(ty0, torch.floor(my - ey))
    y1 = torch.minimum(ty1, torch.ceil(my + ey)).clamp(max=height)
    empty = (opacities < ALPHA_MIN) | (radii <= 0).any(dim=-1)
    x1 = torch.where(empty | (x1 < x0), x0, x1)
    y1 = torch.where(empty | (y1 < y0), y0, y1)
    return x0.long(), x1.long(), y0.long(), y1.long()


@torch.no_grad()
def intersect_pixels(means2d: Tensor, conics: Tensor, opacities: Tensor, radii: Tensor, depths: Tensor,
                     width: int, height: int, tile_size: int = 16, num_per_camera: int | None = None
                     ) -> tuple[Tensor, Tensor]:
    """(Gaussian index, pixel index) pairs [P] where a Gaussian's alpha reaches ALPHA_MIN.

    Inputs are flat over cameras (means2d (M, 2), conics (M, 3), opacities [M], radii (M, 2),
    depths [M]); Gaussian m belongs to camera m // num_per_camera (default: one camera), and pixel
    ids are camera * H * W + y * W + x.
    The pairs come sorted by pixel and, within a pixel, front to back.
    """
    per_camera = num_per_camera or max(1, len(means2d))
    dev = means2d.device
    order = torch.argsort(depths, stable=True)  # front to back over all cameras
    x0, x1, y0, y1 = _candidate_boxes(means2d[order], conics[order], opacities[order], radii[order],
                                      width, height, tile_size)
    counts = (x1 - x0) * (y1 - y0)
    ends = torch.cumsum(counts, dim=0)
    gauss_out, pixel_out = [], []
    start = 0
    total = int(ends[-1]) if len(ends) else 0
    while total > 0 and start < len(order):
        # The largest run of Gaussians whose candidate pairs fit in the budget (at least one).
        base = int(ends[start - 1]) if start > 0 else 0
        stop = int(torch.searchsorted(ends, base + _PAIR_BUDGET, right=True))
        stop = max(stop, start + 1)
        sel = torch.arange(start, stop, device=dev)
        cnt = counts[sel]
        local = torch.repeat_interleave(torch.arange(len(sel), device=dev), cnt)  # (P,) which Gaussian of the run
        k = torch.arange(len(local), device=dev) - (torch.cumsum(cnt, 0) - cnt)[local]  # (P,) index inside the box
        g = sel[local]
        w = (x1 - x0)[g]
        px = x0[g] + k % w
        py = y0[g] + k // w
        gid = order[g]
        pixel = torch.stack([px, py], dim=-1).to(means2d.dtype) + 0.5  # (P, 2) pixel centres
        alpha = gaussian_alpha(pixel - means2d[gid], conics[gid], opacities[gid])
        keep = alpha > 0
        cam = torch.div(gid, per_camera, rounding_mode="floor")
        gauss_out.append(g[keep])
        pixel_out.append((cam * height + py)[keep] * width + px[keep])
        start = stop
    if not gauss_out:
        empty = torch.zeros(0, dtype=torch.long, device=means2d.device)
        return empty, empty
    rank, pixel = torch.cat(gauss_out), torch.cat(pixel_out)  # (P,), (P,)
    key = pixel * len(order) + rank  # sort by pixel, then front to back
    perm = torch.argsort(key)
    return order[rank[perm]], pixel[perm]


def composite_pairs(gauss_ids: Tensor, pixel_ids: Tensor, means2d: Tensor, conics: Tensor, opacities: Tensor,
                    colors: Tensor, num_pixels: int, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Front-to-back blend of (Gaussian, pixel) pairs sorted by (pixel, depth).

    Returns colors [num_pixels, D] and alphas [num_pixels]; pixel ids index a flat
    [cameras * height * width] image. Transmittances use a float64 segmented cumulative sum of
    log(1 - alpha), so long lists keep their precision.
    """
    x = (pixel_ids % width).to(means2d.dtype) + 0.5
    y = (torch.div(pixel_ids, width, rounding_mode="floor") % height).to(means2d.dtype) + 0.5
    deltas = torch.stack([x, y], dim=-1) - means2d[gauss_ids]  # (P, 2)
    alpha = gaussian_alpha(deltas, conics[gauss_ids], opacities[gauss_ids])
    log_t = torch.log1p(-alpha.double())
    csum = torch.cumsum(log_t, dim=0)
    # Index of the first pair of each pixel's run (pairs are grouped by pixel).
    counts = torch.bincount(pixel_ids, minlength=num_pixels)
    run_start = (torch.cumsum(counts, 0) - counts)[pixel_ids]
    before_run = (csum - log_t)[run_start]
    log_t_after = csum - before_run
    log_t_before = log_t_after - log_t
    keep = log_t_after > math.log(TRANSMITTANCE_MIN)
    weights = (alpha.double() * torch.exp(log_t_before) * keep).to(means2d.dtype)
    out_colors = colors.new_zeros(num_pixels, colors.shape[-1]).index_add(
        0, pixel_ids, weights.unsqueeze(-1) * colors[gauss_ids])  # (num_pixels, D)
    out_alphas = weights.new_zeros(num_pixels).index_add(0, pixel_ids, weights)
    return out_colors, out_alphas


def _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks) -> None:
    N = means.shape[0] if means.dim() == 2 else -1
    C = viewmats.shape[0] if viewmats.dim() == 3 else -1
    problems = []
    if means.dim() != 2 or means.shape[1] != 3:
        problems.append(f"means (N, 3), got {tuple(means.shape)}")
    if quats.shape != (N, 4):
        problems.append(f"quats (N, 4) (wxyz), got {tuple(quats.shape)}")
    if scales.shape != (N, 3):
        problems.append(f"scales (N, 3), got {tuple(scales.shape)}")
    if opacities.shape != (N,):
        problems.append(f"opacities [N], got {tuple(opacities.shape)}")
    if not (colors.dim() == 2 and colors.shape[0] == N) and not (colors.dim() == 3 and colors.shape[:2] == (C, N)):
        problems.append(f"colors (N, D) or (C, N, D), got {tuple(colors.shape)}")
    if viewmats.dim() != 3 or viewmats.shape[1:] != (4, 4):
        problems.append(f"viewmats (C, 4, 4), got {tuple(viewmats.shape)}")
    if Ks.shape != (C, 3, 3):
        problems.append(f"Ks (C, 3, 3), got {tuple(Ks.shape)}")
    if problems:
        raise ValueError("rasterize expects " + "; ".join(problems))


def check_finite_gaussians(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
                           colors: Tensor | None = None) -> None:
    """Raise a ValueError naming the field and the first Gaussian whose values are NaN or inf."""
    fields = {"means": means, "quats": quats, "scales": scales, "opacities": opacities}
    if colors is not None:
        fields["colors"] = colors.transpose(0, 1) if colors.dim() == 3 else colors  # Gaussians first
    bad = torch.stack([~torch.isfinite(t).all() for t in fields.values()]).tolist()  # one host sync
    for (name, values), is_bad in zip(fields.items(), bad):
        if is_bad:
            finite = torch.isfinite(values.detach()).reshape(values.shape[0], -1).all(dim=1)  # (N,)
            index = int((~finite).nonzero()[0])
            raise ValueError(
                f"rasterize: {name}[{index}] = {values[index].tolist()} is not finite (NaN or inf); every "
                "Gaussian needs finite means, quats, scales, opacities and colors: drop or repair the bad ones "
                f"first (e.g. keep = torch.isfinite({name}).reshape(len({name}), -1).all(1))"
            )


def _render_nothing(means: Tensor, colors: Tensor, viewmats: Tensor, width: int, height: int,
                    backgrounds: Tensor | None, tile_size: int, render_mode: str) -> tuple[Tensor, Tensor, dict]:
    """What `rasterize_torch` returns for 0 Gaussians: the background (or 0) with alpha 0 everywhere."""
    C = viewmats.shape[0]
    with_depth = render_mode in ("D", "ED", "RGB+D", "RGB+ED")
    D = (0 if render_mode in ("D", "ED") else colors.shape[-1]) + with_depth
    if backgrounds is None or render_mode in ("D", "ED"):
        backgrounds = means.new_zeros(C, D)
    elif render_mode in ("RGB+D", "RGB+ED"):
        backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(C, 1)], dim=-1)  # (C, D)
    render_colors = backgrounds[:, None, None, :].expand(C, height, width, D).clone()  # (C, H, W, D)
    render_alphas = means.new_zeros(C, height, width, 1)  # (C, H, W, 1)
    info = {
        "means2d": means.new_zeros(C, 0, 2), "depths": means.new_zeros(C, 0),
        "radii": torch.zeros(C, 0, 2, dtype=torch.int32, device=means.device), "conics": means.new_zeros(C, 0, 3),
        "opacities": means.new_zeros(C, 0), "compensations": means.new_zeros(C, 0), "width": width,
        "height": height, "tile_size": tile_size, "n_cameras": C, "n_intersections": 0, "backend": "torch",
    }
    return render_colors, render_alphas, info


def rasterize_torch(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
                    viewmats: Tensor, Ks: Tensor, width: int, height: int, near_plane: float = 0.01,
                    far_plane: float = 1e10, eps2d: float = 0.3, backgrounds: Tensor | None = None,
                    antialiased: bool = False, tile_size: int = 16, render_mode: str = "RGB"
                    ) -> tuple[Tensor, Tensor, dict]:
    """The plain PyTorch rasterizer; same arguments and outputs as `rasterize`."""
    check_finite_gaussians(means, quats, scales, opacities, colors)
    C, N = viewmats.shape[0], means.shape[0]
    if N == 0:
        return _render_nothing(means, colors, viewmats, width, height, backgrounds, tile_size, render_mode)
    proj = project_gaussians(means, covariance_3d(quats, scales), viewmats, Ks, width, height,
                             eps2d, near_plane, far_plane, opacities=opacities, antialiased=antialiased)
    opac = opacities.unsqueeze(0).expand(C, N)  # (C, N)
    if antialiased:
        opac = opac * proj.compensations
    feats = colors.unsqueeze(0).expand(C, N, colors.shape[-1]) if colors.dim() == 2 else colors  # (C, N, D)
    if render_mode in ("D", "ED"):
        feats = proj.depths.unsqueeze(-1)  # (C, N, 1)
    elif render_mode in ("RGB+D", "RGB+ED"):
        feats = torch.cat([feats, proj.depths.unsqueeze(-1)], dim=-1)  # (C, N, D + 1)
    means2d = proj.means2d.reshape(C * N, 2)  # (C*N, 2)
    conics = proj.conics.reshape(C * N, 3)  # (C*N, 3)
    opac_flat = opac.reshape(C * N)  # (C*N,)
    feats_flat = feats.reshape(C * N, -1)  # (C*N, D)
    radii_flat = proj.radii.reshape(C * N, 2)  # (C*N, 2)
    depths_flat = proj.depths.detach().reshape(C * N)  # (C*N,)
    gauss_ids, pixel_ids = intersect_pixels(means2d.detach(), conics.detach(), opac_flat.detach(), radii_flat,
                                            depths_flat, width, height, tile_size, num_per_camera=N)
    out_colors, out_alphas = composite_pairs(gauss_ids, pixel_ids, means2d, conics, opac_flat, feats_flat,
                                             C * height * width, width, height)
    render_colors = out_colors.reshape(C, height, width, -1)  # (C, H, W, D)
    render_alphas = out_alphas.reshape(C, height, width, 1)  # (C, H, W, 1)
    if render_mode in ("ED", "RGB+ED"):
        depth = render_colors[..., -1:] / render_alphas.clamp_min(1e-10)
        render_colors = torch.cat([render_colors[..., :-1], depth], dim=-1)  # (C, H, W, D)
    if backgrounds is not None and render_mode not in ("D", "ED"):
        if render_mode in ("RGB+D", "RGB+ED"):
            backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(C, 1)], dim=-1)  # (C, D + 1)
        render_colors = render_colors + (1.0 - render_alphas) * backgrounds[:, None, None, :]  # (C, H, W, D)
    info = {
        "means2d": proj.means2d, "depths": proj.depths, "radii": proj.radii, "conics": proj.conics,
        "opacities": opac, "compensations": proj.compensations, "width": width, "height": height,
        "tile_size": tile_size, "n_cameras": C, "n_intersections": int(gauss_ids.numel()), "backend": "torch",
    }
    return render_colors, render_alphas, info


def rasterize(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
              viewmats: Tensor, Ks: Tensor, width: int, height: int, near_plane: float = 0.01,
              far_plane: float = 1e10, eps2d: float = 0.3, backgrounds: Tensor | None = None,
              antialiased: bool = False, tile_size: int = 16, backend: str = "auto",
              render_mode: str = "RGB") -> tuple[Tensor, Tensor, dict]:
    """Render N 3D Gaussians into C cameras.

    Args:
        means (N, 3), quats (N, 4) (wxyz, normalized here), scales (N, 3), opacities [N] in [0, 1],
        colors (N, D) or (C, N, D); viewmats (C, 4, 4) world -> camera (x right, y down, z forward);
        Ks (C, 3, 3) pixel intrinsics; eps2d: screen-space blur added to the 2D covariance;
        backgrounds (C, D) (ignored in "D" and "ED", as in gsplat; the depth channel of "RGB+D" and
            "RGB+ED" gets background 0); antialiased: multiply opacities by the Mip-Splatting compensation;
        render_mode: "RGB", "D" (accumulated depth), "ED" (expected depth = D / alpha),
        "RGB+D" or "RGB+ED" (depth as an extra last channel);
        backend: "reference" (alias "torch"), "gsplat" (CUDA) or "auto" (gsplat on CUDA when importable,
            else reference), as in learnlib.nn.backends;
        0 Gaussians always take the torch path (the background with alpha 0).

    Raises ValueError for wrong shapes and for NaN or inf in means, quats, scales, opacities or
    colors (naming the field and the first bad Gaussian).

    Returns:
        render_colors [C, H, W, D'], render_alphas (C, H, W, 1), and an info dict with the same keys
        on both backends: means2d (C, N, 2), depths (C, N), radii (C, N, 2) int32 per axis (x, y;
        0 = culled), conics (C, N, 3), opacities (C, N) (times the compensation when antialiased),
        compensations (C, N), width, height, tile_size, n_cameras, n_intersections (the backend's
        work items: (pixel, Gaussian) pairs for "torch", (tile, Gaussian) pairs for "gsplat") and
        "backend". Entries of culled Gaussians (radii 0) are unspecified (gsplat leaves them unset).
    """
    _check_inputs(means, quats, scales, opacities, colors, viewmats, Ks)
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    if backgrounds is not None:
        D = (1 if render_mode in ("D", "ED") else colors.shape[-1])
        if backgrounds.shape != (viewmats.shape[0], D):
            raise ValueError(f"backgrounds must be [C, {D}] = [{viewmats.shape[0]}, {D}], "
                             f"got {tuple(backgrounds.shape)}")
    backend = canonical_backend(backend, "raster")
    args = (means, quats, scales, opacities, colors, viewmats, Ks, width, height)
    kwargs = {"near_plane": near_plane, "far_plane": far_plane, "eps2d": eps2d, "backgrounds": backgrounds,
              "antialiased": antialiased, "tile_size": tile_size, "render_mode": render_mode}
    if backend != "reference":
        from learnlib.splat.gsplat_backend import gsplat_available, rasterize_gsplat

        if means.shape[0] > 0 and (backend == "gsplat" or (means.is_cuda and gsplat_available())):
            check_finite_gaussians(means, quats, scales, opacities, colors)
            return rasterize_gsplat(*args, **kwargs)
    return rasterize_torch(*args, **kwargs)
