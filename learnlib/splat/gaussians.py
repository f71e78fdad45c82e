"""3D Gaussians stored as raw (unconstrained) tensors with TRELLIS-style activations.

Every raw tensor may take any real value; the activations map it to a valid Gaussian, and an
all-zero raw tensor means a sensible default (this is what lets a decoder predict raw values
around zero):

- scales = sqrt(softplus(raw_scales + inverse_softplus(scaling_bias))^2 + min_kernel_size^2):
  positive, `scaling_bias` at raw 0, never thinner than `min_kernel_size`;
- quats = normalize(raw_quats + (1, 0, 0, 0)) (wxyz): the identity rotation at raw 0; a
  quaternion that sums to zero falls back to the identity (see `normalize_quats`);
- opacities = sigmoid(raw_opacities + logit(opacity_bias)): `opacity_bias` at raw 0;
- colors = 0.5 + C0 * sh_dc, the degree-0 spherical harmonic (C0 = 0.28209479177387814,
  the constant Y_0^0); mid grey at raw 0.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from learnlib.splat.projection import covariance_3d, normalize_quats

SH_C0 = 0.28209479177387814


def inverse_softplus(x: Tensor | float) -> Tensor:
    """y with softplus(y) = x, for x > 0."""
    x = torch.as_tensor(x, dtype=torch.float64 if not isinstance(x, Tensor) else x.dtype)
    return x + torch.log(-torch.expm1(-x))


def logit(p: Tensor | float) -> Tensor:
    """y with sigmoid(y) = p, for p in (0, 1)."""
    p = torch.as_tensor(p, dtype=torch.float64 if not isinstance(p, Tensor) else p.dtype)
    return torch.log(p) - torch.log1p(-p)


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """Degree-0 SH coefficients of colours: (rgb - 0.5) / C0."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh: Tensor) -> Tensor:
    """Colours of degree-0 SH coefficients: 0.5 + C0 * sh."""
    return 0.5 + SH_C0 * sh


_IDENTITY_QUAT = (1.0, 0.0, 0.0, 0.0)


@dataclass
class Gaussians:
    """N Gaussians: raw_means (N, 3), raw_scales (N, 3), raw_quats (N, 4), raw_opacities (N, 1),
    sh_dc (N, 3); the activated values are the properties `means`, `scales`, `quats`, `opacities`,
    `colors`. The raw tensors may be leaf parameters (fit a scene) or a network's outputs.
    """

    raw_means: Tensor
    raw_scales: Tensor
    raw_quats: Tensor
    raw_opacities: Tensor
    sh_dc: Tensor
    scaling_bias: float = 0.01
    opacity_bias: float = 0.1
    min_kernel_size: float = 0.0
    _raw_names: ClassVar[tuple[str, ...]] = ("raw_means", "raw_scales", "raw_quats", "raw_opacities", "sh_dc")

    def __post_init__(self) -> None:
        n = self.raw_means.shape[0]
        expected = {"raw_means": (n, 3), "raw_scales": (n, 3), "raw_quats": (n, 4), "raw_opacities": (n, 1),
                    "sh_dc": (n, 3)}
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"{name} must be {list(shape)}, got {list(getattr(self, name).shape)}")
        if self.scaling_bias <= 0 or not 0 < self.opacity_bias < 1 or self.min_kernel_size < 0:
            raise ValueError("need scaling_bias > 0, 0 < opacity_bias < 1 and min_kernel_size >= 0, got "
                             f"{self.scaling_bias}, {self.opacity_bias}, {self.min_kernel_size}")

    def __len__(self) -> int:
        return self.raw_means.shape[0]

    # --- activations -------------------------------------------------------------------------
    @property
    def means(self) -> Tensor:
        """Centres (N, 3) (the raw means are used as they are)."""
        return self.raw_means

    @property
    def scales(self) -> Tensor:
        """Standard deviations along the three local axes (N, 3), all > min_kernel_size."""
        bias = float(inverse_softplus(self.scaling_bias))
        s = F.softplus(self.raw_scales + bias)
        return torch.sqrt(s * s + self.min_kernel_size ** 2)

    @property
    def quats(self) -> Tensor:
        """Unit wxyz quaternions (N, 4)."""
        return normalize_quats(self.raw_quats + self.raw_quats.new_tensor(_IDENTITY_QUAT))

    @property
    def opacities(self) -> Tensor:
        """Opacities [N] in (0, 1)."""
        return torch.sigmoid(self.raw_opacities[:, 0] + float(logit(self.opacity_bias)))

    @property
    def colors(self) -> Tensor:
        """RGB (N, 3) from the degree-0 SH coefficients (not clamped)."""
        return sh_to_rgb(self.sh_dc)

    def covariances(self) -> Tensor:
        """3D covariances (N, 3, 3) = R S S^T R^T."""
        return covariance_3d(self.quats, self.scales)

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_activated(cls, means: Tensor, scales: Tensor, quats: Tensor, opacities: Tensor, colors: Tensor,
                       scaling_bias: float = 0.01, opacity_bias: float = 0.1,
                       min_kernel_size: float = 0.0) -> Gaussians:
        """Gaussians whose activations give back these values (inverts every activation)."""
        if (scales <= min_kernel_size).any():
            raise ValueError(f"every scale must exceed min_kernel_size={min_kernel_size}")
        if ((opacities <= 0) | (opacities >= 1)).any():
            raise ValueError("opacities must lie strictly inside (0, 1)")
        s = torch.sqrt(scales * scales - min_kernel_size ** 2)
        raw_scales = inverse_softplus(s) - float(inverse_softplus(scaling_bias))
        raw_quats = normalize_quats(quats) - quats.new_tensor(_IDENTITY_QUAT)
        raw_opacities = (logit(opacities) - float(logit(opacity_bias))).unsqueeze(-1)  # (N, 1)
        return cls(means.clone(), raw_scales, raw_quats, raw_opacities, rgb_to_sh(colors),
                   scaling_bias, opacity_bias, min_kernel_size)

    @classmethod
    def from_points(cls, points: Tensor, colors: Tensor | None = None, scale: float | None = None,
                    opacity: float = 0.1, scaling_bias: float = 0.01, opacity_bias: float = 0.1,
                    min_kernel_size: float = 0.0) -> Gaussians:
        """Isotropic Gaussians at points (N, 3) with optional colours (N, 3) (default grey).

        `scale` defaults to the mean distance to the nearest other point (so neighbours
        overlap), computed exactly in blocks; a single point gets `scaling_bias`. Points must be
        finite (one NaN would make every scale NaN).
        """
        if points.dim() != 2 or points.shape[1] != 3:
            raise ValueError(f"points must be (N, 3), got {tuple(points.shape)}")
        n = len(points)
        if colors is not None and colors.shape != (n, 3):
            raise ValueError(f"colors must be [{n}, 3], got {tuple(colors.shape)}")
        bad = ~torch.isfinite(points).all(dim=1)  # (N,)
        if bool(bad.any()):
            index = int(bad.nonzero()[0])
            raise ValueError(f"points must be finite (no NaN or inf), but points[{index}] = "
                             f"{points[index].tolist()} ({int(bad.sum())} non-finite point(s) in all); drop them and their colours first: "
                             "keep = torch.isfinite(points).all(dim=1); points, colors = points[keep], colors[keep]")
        if scale is None:
            scale = _mean_nearest_distance(points) if n > 1 else scaling_bias
        scale = max(float(scale), min_kernel_size + 1e-6)
        dtype = points.dtype
        quats = torch.tensor(_IDENTITY_QUAT, dtype=dtype).expand(n, 4)  # (N, 4)
        return cls.from_activated(points, torch.full((n, 3), scale, dtype=dtype), quats,
                                  torch.full((n,), opacity, dtype=dtype),
                                  colors if colors is not None else torch.full((n, 3), 0.5, dtype=dtype),
                                  scaling_bias, opacity_bias, min_kernel_size)

    # --- utilities ---------------------------------------------------------------------------
    def raw_tensors(self) -> dict[str, Tensor]:
        """The five raw tensors by name (e.g. to give them to an optimizer)."""
        return {name: getattr(self, name) for name in self._raw_names}

    def requires_grad_(self, flag: bool = True) -> Gaussians:
        """Make the raw tensors leaves that require gradients (detached copies)."""
        for name in self._raw_names:
            setattr(self, name, getattr(self, name).detach().clone().requires_grad_(flag))
        return self

    def to(self, *args, **kwargs) -> Gaussians:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in self._raw_names:
            moved[name] = moved[name].to(*args, **kwargs)
        return Gaussians(**moved)

    def render(self, viewmats: Tensor, Ks: Tensor, width: int, height: int, **kwargs):
        """`rasterize` these Gaussians; returns (render_colors, render_alphas, info)."""
        from learnlib.splat.rasterize import rasterize

        return rasterize(self.means, self.quats, self.scales, self.opacities, self.colors, viewmats, Ks,
                         width, height, **kwargs)


def _mean_nearest_distance(points: Tensor, block: int = 2048) -> float:
    total = 0.0
    pts = points.detach()
    for start in range(0, len(pts), block):
        d = torch.cdist(pts[start:start + block], pts)  # (b, N)
        idx = torch.arange(start, min(start + block, len(pts)))
        d[torch.arange(len(idx)), idx] = float("inf")
        total += d.min(dim=1).values.sum().item()
    return total / len(pts)
