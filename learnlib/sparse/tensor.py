"""SparseTensor: features on the active voxels of a batch of 3D grids.

A sparse tensor stores only the occupied voxels: `feats` holds one row per voxel
(any trailing shape, e.g. (N, C) or (N, 3, H, D)) and `coords` holds the voxel's
(batch, x, y, z) as int32. Rows of one batch are contiguous and batches appear in
increasing order, so batch b is the slice `layout[b]` of both tensors.

Each voxel appears at most once: construction rejects duplicated coordinates (comparing the
`voxel_keys`, the spatial hash the neighbour search uses too, after a sort), and
`SparseTensor.coalesce` merges them explicitly. A tensor with 0 voxels is valid, and the
sparse layers return empty results for it.

Structures derived from the coordinates only (window partitions, neighbour maps,
the finer layout of a downsampled tensor) live in `spatial_cache`; `replace`
swaps the features but keeps the coordinates, the layout and that cache, so a
stack of layers computes each structure once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def _as_resolution(resolution: int | Sequence[int] | None) -> tuple[int, int, int] | None:
    if resolution is None:
        return None
    if isinstance(resolution, int):
        return (resolution,) * 3
    resolution = tuple(int(r) for r in resolution)
    if len(resolution) != 3:
        raise ValueError(f"resolution must be an int or 3 ints, got {resolution}")
    return resolution  # type: ignore[return-value]


def voxel_keys(coords: Tensor, sizes: Sequence[int]) -> Tensor:
    """Int64 key (N,) of voxels (batch, x, y, z) (N, 4) with 0 <= x, y, z < sizes.

    Distinct voxels get distinct keys, and the keys sort like the voxels (batch first, then x, y, z).
    """
    sx, sy, sz = sizes
    return ((coords[:, 0] * sx + coords[:, 1]) * sy + coords[:, 2]) * sz + coords[:, 3]


def voxels_from_keys(keys: Tensor, sizes: Sequence[int]) -> Tensor:
    """Inverse of `voxel_keys`: coords (N, 4) int64."""
    sx, sy, sz = sizes
    z = keys % sz
    y = (keys // sz) % sy
    x = (keys // (sz * sy)) % sx
    b = keys // (sz * sy * sx)
    return torch.stack([b, x, y, z], dim=1)  # (N, 4)


def _first_duplicate(coords: Tensor, sizes: Sequence[int]) -> tuple[int, int, int] | None:
    """(row, earlier row with the same voxel, number of duplicate rows) of the first repeated voxel, or None."""
    keys = voxel_keys(coords.long(), sizes)  # (N,)
    if bool((keys[1:] > keys[:-1]).all()):  # rows already in voxel order without repeats: no sort needed
        return None
    sorted_keys, order = torch.sort(keys, stable=True)
    same = sorted_keys[1:] == sorted_keys[:-1]  # (N-1,) equal neighbours in sorted order
    if not bool(same.any()):
        return None
    later, earlier = order[1:][same], order[:-1][same]  # stable sort: earlier < later in each pair
    first = int(later.argmin())
    return int(later[first]), int(earlier[first]), int(same.sum())


class SparseTensor:
    """Features `feats` (N, ...) on voxels `coords` int32 (N, 4) = (batch, x, y, z).

    Args:
        feats: (N, ...) features, one row per active voxel.
        coords: int32 (N, 4) (batch, x, y, z); batches contiguous and sorted, x, y, z >= 0,
            no voxel twice (merge repeated voxels with `SparseTensor.coalesce`).
        resolution: optional grid size (int or 3 ints); coordinates must lie in [0, resolution).
        batch_size: number of batches (default: last batch id + 1); trailing empty batches allowed.
        spatial_cache: derived structures shared with tensors on the same coordinates.
        validate: check the invariants above (two host syncs, and a sort of the voxel keys unless
            the rows are already in voxel order); internal ops, whose outputs satisfy them by
            construction, pass False.
    """

    def __init__(
        self,
        feats: Tensor,
        coords: Tensor,
        *,
        resolution: int | Sequence[int] | None = None,
        batch_size: int | None = None,
        spatial_cache: dict[Any, Any] | None = None,
        layout: list[slice] | None = None,
        validate: bool = True,
    ) -> None:
        if coords.dim() != 2 or coords.shape[1] != 4:
            raise ValueError(f"coords must have shape (N, 4) (batch, x, y, z), got {tuple(coords.shape)}")
        if coords.dtype != torch.int32:
            raise ValueError(f"coords must be int32, got {coords.dtype}; convert with coords.int()")
        if feats.dim() < 1 or feats.shape[0] != coords.shape[0]:
            raise ValueError(
                f"feats must have shape (N, ...) with N = {coords.shape[0]} rows like coords, "
                f"got {tuple(feats.shape)}"
            )
        if feats.device != coords.device:
            raise ValueError(f"feats on {feats.device} but coords on {coords.device}")
        self.feats = feats
        self.coords = coords
        self.resolution = _as_resolution(resolution)
        self._batch_size = batch_size
        self._layout = layout
        self.spatial_cache: dict[Any, Any] = {} if spatial_cache is None else spatial_cache
        if validate:
            self._validate()

    # ----------------------------------------------------------------- checks
    def _validate(self) -> None:
        c = self.coords
        if c.shape[0] == 0:
            return
        checks = [
            (c[:, 0] < 0).any(),
            (c[1:, 0] < c[:-1, 0]).any(),
            (c[:, 1:] < 0).any(),
            torch.tensor(False, device=c.device) if self.resolution is None
            else (c[:, 1:] >= torch.tensor(self.resolution, device=c.device, dtype=c.dtype)).any(),
        ]
        *bad, last_batch, mx, my, mz = torch.cat([torch.stack(checks).int(), c[-1:, 0], c[:, 1:].amax(0)]).tolist()  # one host sync
        if bad[0]:
            raise ValueError("coords batch ids must be >= 0")
        if bad[1]:
            raise ValueError(
                "rows of one batch must be contiguous and batches sorted (coords[:, 0] non-decreasing); "
                "sort rows by batch id first"
            )
        if bad[2]:
            raise ValueError("coords x, y, z must be >= 0; offset the coordinates first")
        if bad[3]:
            raise ValueError(f"coords x, y, z must lie in [0, resolution) = [0, {self.resolution})")
        if self._batch_size is not None and last_batch >= self._batch_size:
            raise ValueError(f"batch id {last_batch} >= batch_size {self._batch_size}")
        duplicate = _first_duplicate(c, (mx + 1, my + 1, mz + 1))
        if duplicate is not None:
            row, earlier, count = duplicate
            raise ValueError(
                f"coords must hold each voxel once, but row {row} (batch, x, y, z) = {tuple(c[row].tolist())} "
                f"repeats row {earlier} ({count} repeated row{'s' if count > 1 else ''} in all); merge repeated "
                "voxels with SparseTensor.coalesce(feats, coords, reduce='mean' or 'sum')"
            )

    # ------------------------------------------------------------- structure
    @property
    def batch_size(self) -> int:
        """Number of batches (last batch id + 1 unless given)."""
        if self._batch_size is None:
            self._batch_size = int(self.coords[-1, 0]) + 1 if self.coords.shape[0] else 0
        return self._batch_size

    @property
    def layout(self) -> list[slice]:
        """Per batch, the slice of rows that belongs to it."""
        if self._layout is None:
            counts = torch.bincount(self.coords[:, 0].long(), minlength=self.batch_size).tolist()
            starts = [0]
            for n in counts:
                starts.append(starts[-1] + n)
            self._layout = [slice(starts[b], starts[b + 1]) for b in range(self.batch_size)]
        return self._layout

    @property
    def shape(self) -> torch.Size:
        """(batch_size, *feature shape), as for a dense batch."""
        return torch.Size((self.batch_size, *self.feats.shape[1:]))

    @property
    def device(self) -> torch.device:
        return self.feats.device

    @property
    def dtype(self) -> torch.dtype:
        return self.feats.dtype

    def __len__(self) -> int:
        return self.feats.shape[0]

    def __repr__(self) -> str:
        return (
            f"SparseTensor(voxels={self.feats.shape[0]}, batch_size={self.batch_size}, "
            f"feats={tuple(self.feats.shape)}, dtype={self.dtype}, device={self.device}, "
            f"resolution={self.resolution})"
        )

    # ------------------------------------------------------------ new tensors
    def replace(self, feats: Tensor, coords: Tensor | None = None) -> SparseTensor:
        """Same voxels, new features (any trailing shape). Keeps layout and spatial cache.

        New `coords` must have the same rows per batch; the spatial cache is kept only
        when the coordinates are unchanged, since it is derived from them.
        """
        if feats.shape[0] != self.feats.shape[0]:
            raise ValueError(f"replace: feats must have {self.feats.shape[0]} rows, got {tuple(feats.shape)}")
        if coords is None or coords is self.coords:
            return SparseTensor(
                feats, self.coords, resolution=self.resolution, batch_size=self._batch_size,
                spatial_cache=self.spatial_cache, layout=self._layout, validate=False,
            )
        if coords.shape != self.coords.shape:
            raise ValueError(f"replace: coords must have shape {tuple(self.coords.shape)}, got {tuple(coords.shape)}")
        if not torch.equal(coords[:, 0], self.coords[:, 0]):
            raise ValueError("replace: new coords must keep the batch column (the layout) unchanged")
        return SparseTensor(
            feats, coords, resolution=self.resolution, batch_size=self._batch_size,
            layout=self._layout, validate=True,
        )

    def to(self, *args: Any, **kwargs: Any) -> SparseTensor:
        """Like Tensor.to for the features; coords follow the device and stay int32."""
        feats = self.feats.to(*args, **kwargs)
        same_device = feats.device == self.coords.device
        coords = self.coords if same_device else self.coords.to(feats.device)
        return SparseTensor(
            feats, coords, resolution=self.resolution, batch_size=self._batch_size,
            spatial_cache=self.spatial_cache if same_device else None,  # cached tensors live on a device
            layout=self._layout, validate=False,
        )

    def batch_broadcast(self, values: Tensor) -> Tensor:
        """Expand per-batch values (B, ...) to per-voxel values (N, ...)."""
        if values.shape[0] != self.batch_size:
            raise ValueError(f"expected per-batch values [{self.batch_size}, ...], got {tuple(values.shape)}")
        return values[self.coords[:, 0].long()]  # (N, ...)

    # ------------------------------------------------------------ arithmetic
    def _operand(self, other: Any) -> Any:
        if isinstance(other, SparseTensor):
            if other.coords is not self.coords and not torch.equal(other.coords, self.coords):
                raise ValueError("elementwise ops between SparseTensors need identical coords")
            return other.feats
        if isinstance(other, Tensor):
            try:
                out_shape = torch.broadcast_shapes(self.feats.shape, other.shape)
            except RuntimeError:
                out_shape = None
            if out_shape != self.feats.shape:
                raise ValueError(
                    f"tensor of shape {tuple(other.shape)} must broadcast over feats {tuple(self.feats.shape)} "
                    "without changing it; use batch_broadcast for per-batch values"
                )
            return other
        if isinstance(other, (int, float, bool)):
            return other
        return NotImplemented

    def _binary(self, other: Any, op: Any, reverse: bool = False) -> SparseTensor:
        value = self._operand(other)
        if value is NotImplemented:
            return NotImplemented
        return self.replace(op(value, self.feats) if reverse else op(self.feats, value))

    def __add__(self, other: Any) -> SparseTensor:
        return self._binary(other, torch.add)

    def __radd__(self, other: Any) -> SparseTensor:
        return self._binary(other, torch.add, reverse=True)

    def __sub__(self, other: Any) -> SparseTensor:
        return self._binary(other, torch.sub)

    def __rsub__(self, other: Any) -> SparseTensor:
        return self._binary(other, torch.sub, reverse=True)

    def __mul__(self, other: Any) -> SparseTensor:
        return self._binary(other, torch.mul)

    def __rmul__(self, other: Any) -> SparseTensor:
        return self._binary(other, torch.mul, reverse=True)

    def __truediv__(self, other: Any) -> SparseTensor:
        return self._binary(other, torch.true_divide)

    def __rtruediv__(self, other: Any) -> SparseTensor:
        return self._binary(other, torch.true_divide, reverse=True)

    def __neg__(self) -> SparseTensor:
        return self.replace(-self.feats)

    # ------------------------------------------------------- batch splitting
    def split(self) -> list[SparseTensor]:
        """One single-batch SparseTensor per batch (batch id reset to 0)."""
        parts = []
        for sl in self.layout:
            coords = self.coords[sl].clone()
            coords[:, 0] = 0
            parts.append(SparseTensor(self.feats[sl], coords, resolution=self.resolution, batch_size=1,
                                      validate=False))
        return parts

    # ---------------------------------------------------------------- dense
    def to_dense(self, resolution: int | Sequence[int] | None = None) -> Tensor:
        """Dense grid [B, *feature shape, X, Y, Z] with zeros at inactive voxels."""
        res = _as_resolution(resolution) or self.resolution
        if res is None:
            raise ValueError("to_dense needs a resolution (pass one or build the tensor with one)")
        if self.coords.shape[0] and (self.coords[:, 1:].amax(0) >= torch.tensor(res, device=self.device)).any():
            raise ValueError(f"coords do not fit in a grid of resolution {res}")
        feat_shape = tuple(self.feats.shape[1:])
        dense = self.feats.new_zeros((self.batch_size, *res, *feat_shape))  # (B, X, Y, Z, ...)
        c = self.coords.long()
        dense[c[:, 0], c[:, 1], c[:, 2], c[:, 3]] = self.feats
        k = len(feat_shape)
        return dense.permute(0, *range(4, 4 + k), 1, 2, 3).contiguous()  # (B, ..., X, Y, Z)

    @staticmethod
    def from_dense(dense: Tensor, mask: Tensor | None = None) -> SparseTensor:
        """Sparse tensor of the voxels of `dense` (B, C, X, Y, Z) where `mask` (B, X, Y, Z) is true.

        Without a mask, a voxel is active where any channel is nonzero.
        """
        if dense.dim() != 5:
            raise ValueError(f"dense must have shape (B, C, X, Y, Z), got {tuple(dense.shape)}")
        b, _, x, y, z = dense.shape
        if mask is None:
            mask = (dense != 0).any(dim=1)  # (B, X, Y, Z)
        elif mask.shape != (b, x, y, z):
            raise ValueError(f"mask must have shape {(b, x, y, z)}, got {tuple(mask.shape)}")
        coords = torch.nonzero(mask).int()  # (N, 4), lexicographic so batches are sorted
        c = coords.long()
        feats = dense.permute(0, 2, 3, 4, 1)[c[:, 0], c[:, 1], c[:, 2], c[:, 3]]  # (N, C)
        return SparseTensor(feats, coords, resolution=(x, y, z), batch_size=b, validate=False)


    @staticmethod
    def coalesce(
        feats: Tensor,
        coords: Tensor,
        reduce: str = "mean",
        *,
        resolution: int | Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> SparseTensor:
        """Sparse tensor of `feats` (N, ...) on `coords` int32 (N, 4) with repeated voxels merged.

        The rows of one voxel become one row holding the mean or the sum (`reduce`) of their
        features. Rows come out sorted by (batch, x, y, z), so the input rows may be in any order.
        """
        if reduce not in ("mean", "sum"):
            raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
        if coords.dim() != 2 or coords.shape[1] != 4 or coords.dtype != torch.int32:
            raise ValueError(f"coords must be int32 (N, 4) (batch, x, y, z), got {coords.dtype} {tuple(coords.shape)}")
        if feats.dim() < 1 or feats.shape[0] != coords.shape[0]:
            raise ValueError(f"feats must have shape (N, ...) with N = {coords.shape[0]}, got {tuple(feats.shape)}")
        if coords.shape[0] == 0:
            return SparseTensor(feats, coords, resolution=resolution, batch_size=batch_size)
        if bool((coords < 0).any()):
            raise ValueError("coords batch ids and x, y, z must be >= 0; offset the coordinates first")
        sizes = [int(m) + 1 for m in coords[:, 1:].amax(0).tolist()]
        keys, inverse = torch.unique(voxel_keys(coords.long(), sizes), return_inverse=True)  # sorted keys
        flat = feats.reshape(feats.shape[0], math.prod(feats.shape[1:]))  # (N, F)
        index = inverse[:, None].expand_as(flat)  # (N, F)
        merged = flat.new_zeros(keys.shape[0], flat.shape[1]).scatter_reduce(
            0, index, flat, reduce, include_self=False)  # (M, F)
        merged = merged.reshape(keys.shape[0], *feats.shape[1:])  # (M, ...)
        return SparseTensor(merged, voxels_from_keys(keys, sizes).int(), resolution=resolution,
                            batch_size=batch_size)


def sparse_cat(tensors: Sequence[SparseTensor], dim: int = 0) -> SparseTensor:
    """Concatenate along the batch (dim=0, batch ids renumbered) or the features (dim != 0)."""
    if not tensors:
        raise ValueError("sparse_cat needs at least one SparseTensor")
    if dim == 0:
        feats, coords, offset = [], [], 0
        for t in tensors:
            c = t.coords.clone()
            c[:, 0] += offset
            offset += t.batch_size
            feats.append(t.feats)
            coords.append(c)
        resolutions = {t.resolution for t in tensors}
        resolution = resolutions.pop() if len(resolutions) == 1 else None
        return SparseTensor(torch.cat(feats), torch.cat(coords), resolution=resolution,  # (sum N, ...)
                            batch_size=offset, validate=False)
    first = tensors[0]
    for t in tensors[1:]:
        if t.coords is not first.coords and not torch.equal(t.coords, first.coords):
            raise ValueError("sparse_cat along features needs identical coords")
    # dim indexes feats directly: 1 (or -1 for (N, C)) is the channel axis
    return first.replace(torch.cat([t.feats for t in tensors], dim=dim))  # (N, ..., sum C)


def random_coords(batch_size: int, count: int, resolution: int, generator: torch.Generator | None = None,
                  sort: bool = False) -> Tensor:
    """Distinct random voxels int32 (N, 4) = (batch, x, y, z): min(count, resolution³) per batch,
    batches contiguous; in random order within a batch unless `sort`."""
    rows = []
    for b in range(batch_size):
        m = min(count, resolution**3)
        flat = torch.randperm(resolution**3, generator=generator)[:m]  # (m,) flat voxel ids
        if sort:
            flat = flat.sort().values
        xyz = torch.stack([flat // resolution**2, flat // resolution % resolution, flat % resolution], dim=1)  # (m, 3)
        rows.append(torch.cat([torch.full((m, 1), b), xyz], dim=1))  # (m, 4)
    return torch.cat(rows).int()  # (N, 4)
