"""Plots of voxels, window partitions and serialization curves (matplotlib only)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import LineCollection
from torch import Tensor

_AXES = "xyz"


def _xyz(coords: Tensor) -> np.ndarray:
    if coords.dim() != 2 or coords.shape[1] not in (3, 4):
        raise ValueError(f"coords must have shape (N, 3) or (N, 4) (batch, x, y, z), got {tuple(coords.shape)}")
    return coords[:, -3:].cpu().numpy()


def plot_voxels(coords: Tensor, colors=None, up: str = "z", ax=None, title: str = "", size: float = 4.0):
    """3D scatter of the voxel centres `coords` (N, 3) or (N, 4); the axis `up` is drawn vertically."""
    if up not in _AXES:
        raise ValueError(f"up must be 'x', 'y' or 'z', got {up!r}")
    xyz = _xyz(coords)
    order = [(_AXES.index(up) + k) % 3 for k in (1, 2, 0)]  # a cyclic shift keeps the frame right-handed
    if ax is None:
        ax = plt.figure(figsize=(4, 4)).add_subplot(projection="3d")
    ax.scatter(*(xyz[:, k] for k in order), c=colors if colors is not None else xyz[:, order[2]],
               s=size, marker="s", cmap="viridis", depthshade=True, linewidths=0)
    ax.set_xlabel(_AXES[order[0]])
    ax.set_ylabel(_AXES[order[1]])
    ax.set_zlabel(_AXES[order[2]])
    span = np.ptp(xyz, axis=0)[order] + 1
    ax.set_box_aspect(tuple(float(s) for s in span))
    if title:
        ax.set_title(title)
    return ax


def _slice(coords: Tensor, axis: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the voxels on plane `axis` = `index`, and the two in-plane axes."""
    xyz = _xyz(coords)
    keep = np.nonzero(xyz[:, axis] == index)[0]
    plane = [a for a in range(3) if a != axis]
    return keep, xyz[keep][:, plane]  # (M,), (M, 2)


def plot_window_slice(
    coords: Tensor, window_ids: Tensor, window_size: int, shift: int, resolution: int,
    axis: int = 2, index: int | None = None, ax=None, title: str = "",
):
    """The plane `axis` = `index` of the grid: active voxels coloured by window, window borders as lines."""
    if window_ids.shape != (coords.shape[0],):
        raise ValueError(f"window_ids must have shape ({coords.shape[0]},), got {tuple(window_ids.shape)}")
    index = resolution // 2 if index is None else index
    keep, uv = _slice(coords, axis, index)
    ids = window_ids.cpu().numpy()[keep]
    _, rank = np.unique(ids, return_inverse=True)
    image = np.full((resolution, resolution), np.nan)  # (rows = second in-plane axis, columns = first)
    image[uv[:, 1], uv[:, 0]] = (rank * 7) % 20  # a stride so that neighbouring windows differ in colour
    if ax is None:
        ax = plt.figure(figsize=(4, 4)).add_subplot()
    ax.imshow(image, origin="lower", cmap="tab20", vmin=0, vmax=19, interpolation="nearest")
    for border in np.arange(-shift, resolution + 1, window_size):
        if 0 < border < resolution:
            ax.axvline(border - 0.5, color="k", lw=0.8)
            ax.axhline(border - 0.5, color="k", lw=0.8)
    plane = [_AXES[a] for a in range(3) if a != axis]
    ax.set_xlabel(plane[0])
    ax.set_ylabel(plane[1])
    ax.set_title(title or f"{_AXES[axis]} = {index}, window {window_size}, shift {shift}")
    return ax


def plot_curve(points: Tensor, chunks: Tensor | None = None, ax=None, title: str = "", cmap: str = "tab10"):
    """A polyline through 2D `points` (M, 2) in the given order, segments coloured by `chunks` (M,)."""
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (M, 2), got {tuple(points.shape)}")
    p = points.cpu().numpy().astype(float)
    chunk = np.zeros(len(p), dtype=int) if chunks is None else chunks.cpu().numpy()
    segments = np.stack([p[:-1], p[1:]], axis=1)  # (M-1, 2, 2)
    if ax is None:
        ax = plt.figure(figsize=(4, 4)).add_subplot()
    colors = plt.get_cmap(cmap)(chunk % plt.get_cmap(cmap).N)
    ax.add_collection(LineCollection(segments, colors=colors[:-1], linewidths=1.2))
    ax.scatter(p[:, 0], p[:, 1], c=colors, s=6, zorder=3)
    ax.set_aspect("equal")
    ax.autoscale()
    if title:
        ax.set_title(title)
    return ax


def slice_points(coords: Tensor, axis: int, index: int) -> tuple[Tensor, Tensor]:
    """Rows (M,) of the voxels on the plane `axis` = `index` and their in-plane coordinates (M, 2)."""
    keep, uv = _slice(coords, axis, index)
    return torch.from_numpy(keep), torch.from_numpy(uv)
