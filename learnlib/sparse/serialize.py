"""Serialize voxels along a Z-order (Morton) curve and cut the curve into chunks.

The Morton code interleaves the bits of x, y and z (x the most significant of each
triple), so voxels close on the curve are close in space. Sorting a batch by it and
cutting the sequence every `chunk_size` voxels gives groups of equal length: an
alternative to windows whose occupancy varies (serialized attention).
"""

from __future__ import annotations

import torch
from torch import Tensor

from learnlib.sparse.tensor import SparseTensor
from learnlib.sparse.windows import Partition, partition_from_sorted

MORTON_BITS = 16  # bits per axis: coordinates below 65536; batch ids go in the bits above 48


def _spread(v: Tensor) -> Tensor:
    """Insert two zero bits after each of the low 21 bits of v (int64)."""
    v = v & 0x1FFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    v = (v | (v << 2)) & 0x1249249249249249
    return v


def _compact(v: Tensor) -> Tensor:
    """Inverse of _spread: keep every third bit of v."""
    v = v & 0x1249249249249249
    v = (v | (v >> 2)) & 0x10C30C30C30C30C3
    v = (v | (v >> 4)) & 0x100F00F00F00F00F
    v = (v | (v >> 8)) & 0x1F0000FF0000FF
    v = (v | (v >> 16)) & 0x1F00000000FFFF
    v = (v | (v >> 32)) & 0x1FFFFF
    return v


def morton_encode(xyz: Tensor) -> Tensor:
    """Morton codes (N,) int64 of integer points xyz (N, 3) with 0 <= coordinate < 2**16."""
    if xyz.dim() != 2 or xyz.shape[1] != 3:
        raise ValueError(f"xyz must have shape (N, 3), got {tuple(xyz.shape)}")
    v = xyz.long()
    if v.numel() and (v.min() < 0 or v.max() >= 2**MORTON_BITS):
        raise ValueError(f"Morton coordinates must lie in [0, {2**MORTON_BITS})")
    return (_spread(v[:, 0]) << 2) | (_spread(v[:, 1]) << 1) | _spread(v[:, 2])


def morton_decode(codes: Tensor) -> Tensor:
    """Points (N, 3) int64 of Morton codes (N,): the inverse of morton_encode."""
    codes = codes.long()
    return torch.stack([_compact(codes >> 2), _compact(codes >> 1), _compact(codes)], dim=1)  # (N, 3)


def serialize(coords: Tensor) -> Tensor:
    """Sort keys (N,) int64 of voxels (batch, x, y, z): batch in the high bits, Morton code below."""
    if coords.dim() != 2 or coords.shape[1] != 4:
        raise ValueError(f"coords must have shape (N, 4) (batch, x, y, z), got {tuple(coords.shape)}")
    return (coords[:, 0].long() << (3 * MORTON_BITS)) | morton_encode(coords[:, 1:])


def serialized_partition(coords: Tensor, chunk_size: int, shift: int = 0) -> Partition:
    """Groups of `chunk_size` consecutive voxels along each batch's Morton curve.

    `shift` moves the cut points back by that many voxels (0 <= shift < chunk_size), so
    alternating 0 and chunk_size // 2 lets information cross chunk borders, as shifted
    windows do. A batch's first and last chunk may be shorter.
    """
    if chunk_size < 1 or not 0 <= shift < chunk_size:
        raise ValueError(f"need chunk_size >= 1 and 0 <= shift < chunk_size, got {chunk_size}, {shift}")
    n = coords.shape[0]
    _, fwd = torch.sort(serialize(coords), stable=True)  # (N,) voxels along the curve
    batch_sorted = coords[fwd, 0].long()  # (N,) batch at each curve position
    first = torch.searchsorted(batch_sorted, batch_sorted, side="left")  # (N,) start of own batch
    rank = torch.arange(n, device=coords.device) - first  # position within the batch's curve
    chunk_keys = batch_sorted * (n + 1) + (rank + shift) // chunk_size  # non-decreasing along the curve
    part = partition_from_sorted(chunk_keys, fwd)
    part.batch = part.batch // (n + 1)
    return part


def sparse_serialized_partition(x: SparseTensor, chunk_size: int, shift: int = 0) -> Partition:
    """`serialized_partition` of a SparseTensor, cached under ("serialized", chunk_size, shift)."""
    key = ("serialized", int(chunk_size), int(shift))
    part = x.spatial_cache.get(key)
    if part is None:
        part = serialized_partition(x.coords, chunk_size, shift)
        x.spatial_cache[key] = part
    return part
