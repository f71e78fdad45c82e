"""From the Gaussian decoder's per-voxel output channels to the raw tensors of `learnlib.splat.Gaussians`.

Each voxel emits G Gaussians (G = 32 in TRELLIS) as 14 * G channels, in TRELLIS's order:
offsets (G x 3), SH degree-0 colour (G x 3), scales (G x 3), rotations (G x 4), opacities (G x 1);
within a block, channel g * width + c is component c of Gaussian g. The centre of Gaussian g of
a voxel at integer coordinate v of an R^3 grid is

    (v + 0.5) / R + tanh(lr_xyz * raw + atanh(p_g / voxel_size)) * 0.5 * voxel_size / R - 0.5

where p_g in [-1, 1)^3 is the g-th Hammersley point: Gaussians start spread over the voxel and can
move at most voxel_size / 2 voxels from its centre (1.5 voxels wide boxes overlap their neighbours).
The world box is [-0.5, 0.5]^3 (TRELLIS's aabb). Rotations are scaled by lr 0.1 before the
identity quaternion is added; scales and opacities get their biases inside `Gaussians`.
"""

from __future__ import annotations

import torch
from torch import Tensor

# name -> components per Gaussian, in channel order
GAUSSIAN_CHANNELS = {"xyz": 3, "features_dc": 3, "scaling": 3, "rotation": 4, "opacity": 1}
# TRELLIS's per-attribute output multipliers ("lr" of its representation config)
TRELLIS_LR = {"xyz": 1.0, "features_dc": 1.0, "scaling": 1.0, "rotation": 0.1, "opacity": 1.0}
CHANNELS_PER_GAUSSIAN = sum(GAUSSIAN_CHANNELS.values())  # 14


def channel_ranges(num_gaussians: int) -> dict[str, tuple[int, int]]:
    """[start, end) channel range of each attribute block for `num_gaussians` Gaussians per voxel."""
    ranges, start = {}, 0
    for name, width in GAUSSIAN_CHANNELS.items():
        ranges[name] = (start, start + num_gaussians * width)
        start += num_gaussians * width
    return ranges


def radical_inverse(index: int, base: int) -> float:
    """The digits of `index` in `base` mirrored about the point: 0.d0 d1 d2 ... in that base."""
    value, scale = 0.0, 1.0 / base
    while index > 0:
        index, digit = divmod(index, base)
        value += digit * scale
        scale /= base
    return value


def hammersley_points(num_points: int) -> Tensor:
    """The 3D Hammersley set [num_points, 3] in [0, 1)^3: (i / n, radical inverse base 2, base 3)."""
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}")
    rows = [[i / num_points, radical_inverse(i, 2), radical_inverse(i, 3)] for i in range(num_points)]
    return torch.tensor(rows, dtype=torch.float64, device="cpu")  # (n, 3), real values even under a meta device


def offset_perturbation(num_gaussians: int, voxel_size: float = 1.5) -> Tensor:
    """atanh((2 * hammersley - 1) / voxel_size) [num_gaussians, 3], float32 as TRELLIS computes it.

    Added to the raw offsets before the tanh, so raw 0 puts Gaussian g at its Hammersley point.
    """
    if voxel_size <= 1.0:
        raise ValueError(f"voxel_size must be > 1 so that atanh stays finite, got {voxel_size}")
    points = hammersley_points(num_gaussians).float() * 2 - 1  # (G, 3) in [-1, 1)
    return torch.atanh(points / voxel_size)


def gaussian_params(raw: Tensor, coords: Tensor, resolution: int, perturbation: Tensor | None,
                    voxel_size: float = 1.5, lr: dict[str, float] | None = None) -> dict[str, Tensor]:
    """Raw Gaussian tensors of one object from its decoder output.

    Args:
        raw: (N, 14 * G) decoder output of the object's N voxels.
        coords: (N, 3) integer voxel coordinates in [0, resolution).
        resolution: grid side R.
        perturbation: (G, 3) `offset_perturbation` (already atanh'ed), or None for none.
        voxel_size: how many voxels wide the box a Gaussian may reach is (TRELLIS: 1.5).
        lr: per-attribute multipliers (default TRELLIS_LR).

    Returns the keyword arguments `raw_means` (N*G, 3) (world positions), `sh_dc` (N*G, 3),
    `raw_scales` (N*G, 3), `raw_quats` (N*G, 4), `raw_opacities` (N*G, 1) of `Gaussians`, voxel-major.
    """
    lr = TRELLIS_LR if lr is None else {**TRELLIS_LR, **lr}
    if raw.dim() != 2 or raw.shape[1] % CHANNELS_PER_GAUSSIAN:
        raise ValueError(f"raw must be (N, {CHANNELS_PER_GAUSSIAN} * G), got {tuple(raw.shape)}")
    n, g = raw.shape[0], raw.shape[1] // CHANNELS_PER_GAUSSIAN
    if coords.shape != (n, 3):
        raise ValueError(f"coords must be [{n}, 3] like raw's rows, got {list(coords.shape)}")
    if perturbation is not None and perturbation.shape != (g, 3):
        raise ValueError(f"perturbation must be [{g}, 3] for {g} Gaussians per voxel, got {list(perturbation.shape)}")
    blocks = {name: raw[:, a:b].reshape(n, g, GAUSSIAN_CHANNELS[name]) * lr[name]  # (N, G, width)
              for name, (a, b) in channel_ranges(g).items()}
    offset = blocks["xyz"] if perturbation is None else blocks["xyz"] + perturbation.to(raw)  # (N, G, 3)
    offset = torch.tanh(offset) * (0.5 * voxel_size / resolution)
    centres = (coords.to(raw.dtype) + 0.5) / resolution  # (N, 3)
    means = centres[:, None, :] + offset - 0.5  # (N, G, 3)
    return {
        "raw_means": means.reshape(n * g, 3),  # (N*G, 3)
        "sh_dc": blocks["features_dc"].reshape(n * g, 3),  # (N*G, 3)
        "raw_scales": blocks["scaling"].reshape(n * g, 3),  # (N*G, 3)
        "raw_quats": blocks["rotation"].reshape(n * g, 4),  # (N*G, 4)
        "raw_opacities": blocks["opacity"].reshape(n * g, 1),  # (N*G, 1)
    }
