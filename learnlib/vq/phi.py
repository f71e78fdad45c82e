"""The residual refiners phi of the multi-scale quantizer: phi(h) = (1 - r) * h + r * conv3x3(h).

K scales share `share_quant_resi` convolutions; scale k uses the conv whose tick (a point of
[0, 1]) is nearest to k / (K - 1).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def phi_ticks(num_phis: int) -> list[float]:
    """Tick positions of `num_phis` convs in [0, 1]: linspace(1/(3n), 1-1/(3n)) for n == 4, else 1/(2n).

    Computed with numpy's linspace so that the exact ties of the 10-scale schedule
    (2/9 and 7/9 lie halfway between two ticks) break the same way as in the published model.
    """
    if num_phis < 1:
        raise ValueError(f"num_phis must be >= 1, got {num_phis}")
    margin = 1 / 3 / num_phis if num_phis == 4 else 1 / 2 / num_phis
    return [float(t) for t in np.linspace(margin, 1 - margin, num_phis)]


def nearest_tick(ticks: list[float], at: float) -> int:
    """Index of the tick closest to `at` (the first one on exact floating-point ties)."""
    return int(np.argmin(np.abs(np.asarray(ticks) - at)))


def scale_fraction(si: int, num_scales: int) -> float:
    """Position si / (K - 1) of scale `si` among K scales (0 for a single scale)."""
    return si / (num_scales - 1) if num_scales > 1 else 0.0


def phi_schedule(num_scales: int, num_phis: int) -> list[int]:
    """Which phi each of `num_scales` scales uses; (10, 4) -> [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]."""
    ticks = phi_ticks(num_phis)
    return [nearest_tick(ticks, scale_fraction(si, num_scales)) for si in range(num_scales)]


class Phi(nn.Conv2d):
    """phi(h) = (1 - r) h + r conv3x3(h) with r = |quant_resi|."""

    def __init__(self, channels: int, quant_resi: float):
        super().__init__(channels, channels, kernel_size=3, stride=1, padding=1)
        self.resi_ratio = abs(quant_resi)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * (1 - self.resi_ratio) + super().forward(h) * self.resi_ratio


class PhiShared(nn.Module):
    """A single phi used at every scale."""

    def __init__(self, qresi: nn.Module):
        super().__init__()
        self.qresi = qresi

    def __getitem__(self, at: float) -> nn.Module:
        return self.qresi


class PhiPartiallyShared(nn.Module):
    """A few phis; `self[at]` returns the one whose tick is nearest to `at` in [0, 1]."""

    def __init__(self, qresi_ls: nn.ModuleList):
        super().__init__()
        self.qresi_ls = qresi_ls
        self.ticks = phi_ticks(len(qresi_ls))

    def __getitem__(self, at: float) -> nn.Module:
        return self.qresi_ls[nearest_tick(self.ticks, at)]

    def extra_repr(self) -> str:
        return f"ticks={[round(t, 4) for t in self.ticks]}"


class PhiNonShared(nn.ModuleList):
    """One phi per scale (or per tick); `self[at]` picks by nearest tick as well."""

    def __init__(self, qresi: list[nn.Module]):
        super().__init__(qresi)
        self.ticks = phi_ticks(len(qresi))

    def __getitem__(self, at: float) -> nn.Module:
        return super().__getitem__(nearest_tick(self.ticks, at))


def build_phi(channels: int, num_scales: int, quant_resi: float = 0.5, share_quant_resi: int = 4,
              default_qresi_counts: int = 0) -> nn.Module:
    """Phi container: 0 = one per scale, 1 = fully shared, n > 1 = n partially shared convs."""

    def make() -> nn.Module:
        return Phi(channels, quant_resi) if abs(quant_resi) > 1e-6 else nn.Identity()

    if share_quant_resi == 0:
        return PhiNonShared([make() for _ in range(default_qresi_counts or num_scales)])
    if share_quant_resi == 1:
        return PhiShared(make())
    return PhiPartiallyShared(nn.ModuleList([make() for _ in range(share_quant_resi)]))
