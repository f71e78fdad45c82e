"""The gsplat CUDA backend behind `learnlib.splat.rasterize(..., backend="gsplat")`.

gsplat (>= 1.5) is imported lazily, inside the functions, so CPU installs never need it. The
outputs are reshaped to `rasterize`'s contract: the same render layout and the same `info` keys
as the PyTorch path (see `rasterize`). gsplat itself appends the zero depth background channel
in "RGB+D"/"RGB+ED" and replaces the background by zeros in "D"/"ED"; nothing is added here.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

INFO_KEYS = ("means2d", "depths", "radii", "conics", "opacities", "compensations", "width", "height",
             "tile_size", "n_cameras", "n_intersections", "backend")


@functools.lru_cache(maxsize=1)
def gsplat_available() -> bool:
    """True when CUDA is available and `gsplat` imports."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except (ImportError, OSError, RuntimeError):  # missing, or a broken build of its CUDA extension
        return False
    return True


def require_cuda(means: Tensor) -> None:
    """Raise a ValueError unless the Gaussians live on a CUDA device (gsplat's kernels are CUDA only)."""
    if not means.is_cuda:
        raise ValueError("backend='gsplat' needs CUDA tensors; move the inputs with .cuda() or use backend='torch'")


def compensation_from_conics(conics: Tensor, eps2d: float) -> Tensor:
    """Mip-Splatting compensation sqrt(det(Sigma) / det(Sigma + eps2d I)) [...] from blurred conics [..., 3]."""
    a, b, c = conics.unbind(-1)
    det_blur = 1.0 / (a * c - b * b).clamp_min(1e-20)  # det(Sigma + eps2d I) = 1 / det(conic)
    trace_blur = (a + c) * det_blur
    det_orig = det_blur - eps2d * trace_blur + eps2d * eps2d
    return torch.sqrt(torch.clamp(det_orig / det_blur, min=0.0))


def rasterize_gsplat(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
                     viewmats: Tensor, Ks: Tensor, width: int, height: int, near_plane: float = 0.01,
                     far_plane: float = 1e10, eps2d: float = 0.3, backgrounds: Tensor | None = None,
                     antialiased: bool = False, tile_size: int = 16, render_mode: str = "RGB"
                     ) -> tuple[Tensor, Tensor, dict]:
    """`gsplat.rasterization` with the arguments and output layout of `rasterize`."""
    try:
        from gsplat import rasterization
    except ImportError as err:
        raise ImportError("backend='gsplat' needs the gsplat package and a CUDA device: "
                          "pip install -e '.[gpu]', or use backend='torch'") from err
    require_cuda(means)
    render_colors, render_alphas, meta = rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, backgrounds=backgrounds, packed=False,
        tile_size=tile_size, render_mode=render_mode,
        rasterize_mode="antialiased" if antialiased else "classic",
    )
    info = {
        "means2d": meta["means2d"], "depths": meta["depths"], "radii": meta["radii"], "conics": meta["conics"],
        "opacities": meta["opacities"], "compensations": compensation_from_conics(meta["conics"].detach(), eps2d),
        "width": width, "height": height, "tile_size": tile_size, "n_cameras": viewmats.shape[0],
        "n_intersections": int(meta["isect_ids"].numel()), "backend": "gsplat",
    }
    return render_colors, render_alphas, info
