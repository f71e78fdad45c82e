"""Partition voxels into groups that attend to each other: shifted 3D windows.

A partition sorts the N voxels so that each group (window) is a contiguous run:
`fwd` lists the voxels in that order, `bwd` is its inverse, `seqlens` / `cu_seqlens`
give the runs (the layout flash-attn's varlen kernels take) and `batch` the batch
of each group. Windows are the cells of a grid of `window_size` voxels after
shifting the coordinates by `shift` (Swin alternates shift 0 and window_size // 2);
a window never spans two batches because the batch id is folded into its id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from learnlib.sparse.tensor import SparseTensor


@dataclass(kw_only=True)
class Partition:
    """Voxels grouped into contiguous runs; all index tensors are int64 unless noted."""

    fwd: Tensor          # (N,) voxel at each sorted position
    bwd: Tensor          # (N,) sorted position of each voxel: fwd[bwd] = arange(N)
    index: Tensor        # (N,) group of each voxel, in the original voxel order
    seqlens: Tensor      # (W,) int32 voxels per group
    cu_seqlens: Tensor   # (W+1,) int32 run boundaries in the sorted order
    batch: Tensor        # (W,) batch id of each group
    max_seqlen: int      # longest group
    plans: dict[Any, Any] = field(default_factory=dict, repr=False)  # padded-attention gathers

    @property
    def num_groups(self) -> int:
        return self.seqlens.shape[0]


@dataclass(kw_only=True)
class WindowPartition(Partition):
    """A Partition whose groups are shifted 3D windows."""

    window_size: tuple[int, int, int]
    shift: tuple[int, int, int]
    num_windows: tuple[int, int, int]  # windows counted per axis (x, y, z)
    window_ids: Tensor                 # (N,) window id of each voxel with the batch folded in


def _triple(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    if isinstance(value, int):
        value = (value,) * 3
    value = tuple(int(v) for v in value)
    if len(value) != 3:
        raise ValueError(f"{name} must be an int or 3 ints, got {value}")
    return value  # type: ignore[return-value]


def _check(coords: Tensor, window_size: tuple[int, ...], shift: tuple[int, ...]) -> None:
    if coords.dim() != 2 or coords.shape[1] != 4:
        raise ValueError(f"coords must have shape (N, 4) (batch, x, y, z), got {tuple(coords.shape)}")
    if min(window_size) < 1:
        raise ValueError(f"window_size must be >= 1, got {window_size}")
    if min(shift) < 0 or any(s >= w for s, w in zip(shift, window_size)):
        raise ValueError(f"shift must lie in [0, window_size) = [0, {window_size}), got {shift}")


def _window_keys(
    coords: Tensor, window_size: tuple[int, int, int], shift: tuple[int, int, int],
    resolution: tuple[int, int, int] | None,
) -> tuple[Tensor, tuple[int, int, int]]:
    """Window id of each voxel (batch folded in) and windows counted per axis."""
    ws = torch.tensor(window_size, device=coords.device)
    cell = (coords[:, 1:].long() + torch.tensor(shift, device=coords.device)) // ws  # (N, 3)
    if resolution is None:  # one host sync: the extent of the coordinates
        extent = coords[:, 1:].amax(0).tolist() if coords.shape[0] else [0, 0, 0]
    else:
        extent = [r - 1 for r in resolution]
    num_windows = tuple(math.ceil((e + 1 + s) / w) for e, s, w in zip(extent, shift, window_size))
    nx, ny, nz = num_windows
    keys = ((coords[:, 0].long() * nx + cell[:, 0]) * ny + cell[:, 1]) * nz + cell[:, 2]  # (N,)
    return keys, num_windows  # type: ignore[return-value]


def partition_from_keys(keys: Tensor) -> Partition:
    """Group voxels with equal integer `keys` into contiguous runs, ordered by key.

    Within a run, voxels keep their original order (stable sort). `batch` holds each
    run's key until the caller turns it into a batch id.
    """
    sorted_keys, fwd = torch.sort(keys, stable=True)
    return partition_from_sorted(sorted_keys, fwd)


def partition_from_sorted(sorted_keys: Tensor, fwd: Tensor) -> Partition:
    """Runs of equal keys of an already sorted sequence; `fwd` maps positions to voxels."""
    n = fwd.shape[0]
    bwd = torch.empty_like(fwd)
    bwd[fwd] = torch.arange(n, device=fwd.device)
    uniq, group_sorted, counts = torch.unique_consecutive(sorted_keys, return_inverse=True, return_counts=True)
    cu = torch.zeros(counts.shape[0] + 1, dtype=torch.int32, device=fwd.device)
    cu[1:] = torch.cumsum(counts, 0)
    return Partition(
        fwd=fwd, bwd=bwd, index=group_sorted[bwd], seqlens=counts.int(), cu_seqlens=cu,
        batch=uniq, max_seqlen=int(counts.max()) if n else 0,
    )


def window_partition(
    coords: Tensor,
    window_size: int | Sequence[int],
    shift: int | Sequence[int] = 0,
    resolution: int | Sequence[int] | None = None,
) -> WindowPartition:
    """Shifted-window partition of voxels `coords` int (N, 4) = (batch, x, y, z), vectorized.

    A voxel at p lies in window floor((p + shift) / window_size) of its batch; x, y, z must be
    >= 0 (and below `resolution` when given, as a SparseTensor guarantees). Host syncs:
    the coordinate extent (skipped when `resolution` is given), the number of windows and
    the longest window.
    """
    ws = _triple(window_size, "window_size")
    sh = _triple(shift, "shift")
    _check(coords, ws, sh)
    res = None if resolution is None else _triple(resolution, "resolution")
    keys, num_windows = _window_keys(coords, ws, sh, res)
    part = partition_from_keys(keys)
    per_batch = num_windows[0] * num_windows[1] * num_windows[2]
    return WindowPartition(
        fwd=part.fwd, bwd=part.bwd, index=part.index, seqlens=part.seqlens, cu_seqlens=part.cu_seqlens,
        batch=part.batch // per_batch, max_seqlen=part.max_seqlen,
        window_size=ws, shift=sh, num_windows=num_windows, window_ids=keys,
    )


def naive_window_partition(
    coords: Tensor, window_size: int | Sequence[int], shift: int | Sequence[int] = 0,
) -> WindowPartition:
    """The same partition built the straightforward way: bincount over every window id,
    lengths pulled to the host with `.tolist()` and groups listed in Python.

    Kept as the readable peer of `window_partition` (benchmark and parity test).
    """
    ws = _triple(window_size, "window_size")
    sh = _triple(shift, "shift")
    _check(coords, ws, sh)
    keys, num_windows = _window_keys(coords, ws, sh, None)
    per_batch = num_windows[0] * num_windows[1] * num_windows[2]
    fwd = torch.argsort(keys, stable=True)
    bwd = torch.argsort(fwd)
    counts = torch.bincount(keys).tolist()  # one bin per possible window
    seqlens, batch, window_of_key = [], [], {}
    for key, n in enumerate(counts):
        if n > 0:
            window_of_key[key] = len(seqlens)
            seqlens.append(n)
            batch.append(key // per_batch)
    index = torch.tensor([window_of_key[k] for k in keys.tolist()], dtype=torch.long)
    cu = [0]
    for n in seqlens:
        cu.append(cu[-1] + n)
    device = coords.device
    return WindowPartition(
        fwd=fwd, bwd=bwd, index=index.to(device),
        seqlens=torch.tensor(seqlens, dtype=torch.int32, device=device),
        cu_seqlens=torch.tensor(cu, dtype=torch.int32, device=device),
        batch=torch.tensor(batch, dtype=torch.long, device=device),
        max_seqlen=max(seqlens, default=0),
        window_size=ws, shift=sh, num_windows=num_windows, window_ids=keys,
    )


def sparse_window_partition(
    x: SparseTensor, window_size: int | Sequence[int], shift: int | Sequence[int] = 0,
) -> WindowPartition:
    """`window_partition` of a SparseTensor's coords, cached in its spatial cache
    under ("window", window_size, shift)."""
    key = ("window", _triple(window_size, "window_size"), _triple(shift, "shift"))
    part = x.spatial_cache.get(key)
    if part is None:
        part = window_partition(x.coords, key[1], key[2], resolution=x.resolution)
        x.spatial_cache[key] = part
    return part


def swin_shift(window_size: int | Sequence[int], layer: int) -> tuple[int, int, int]:
    """Shift of layer `layer` in a Swin stack: 0 on even layers, window_size // 2 on odd ones."""
    ws = _triple(window_size, "window_size")
    return tuple(w // 2 if layer % 2 else 0 for w in ws)  # type: ignore[return-value]
