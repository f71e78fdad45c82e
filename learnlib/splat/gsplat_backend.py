"""The gsplat CUDA backend behind `learnlib.splat.rasterize(..., backend="gsplat")`.

gsplat is imported lazily, inside the functions, so CPU installs never need it.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor


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
    if not means.is_cuda:
        raise ValueError("backend='gsplat' needs CUDA tensors; move the inputs with .cuda() or use backend='torch'")
    C = viewmats.shape[0]
    if backgrounds is not None and render_mode in ("RGB+D", "RGB+ED"):
        backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(C, 1)], dim=-1)  # (C, D + 1)
    render_colors, render_alphas, meta = rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, backgrounds=backgrounds, packed=False,
        tile_size=tile_size, render_mode=render_mode,
        rasterize_mode="antialiased" if antialiased else "classic",
    )
    info = dict(meta)
    info["backend"] = "gsplat"
    return render_colors, render_alphas, info
