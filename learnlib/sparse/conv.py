"""Sparse 3D convolution and 2x resampling on SparseTensors.

Submanifold convolution computes outputs only at the active voxels and reads only
active neighbours, so the set of voxels never grows. Neighbours are found by
encoding (batch, x, y, z) into one int64 key, sorting the keys once and looking up
every shifted key with `torch.searchsorted`; the neighbour map is cached in the
tensor's spatial cache. spconv is the fast backend when installed.

Weight layout of `SubMConv3d.weight`: [out, in, kx, ky, kz], the layout of
`torch.nn.Conv3d`, so a submanifold conv equals a dense `F.conv3d` (padding
dilation * (k // 2)) read at the active voxels of a grid that is zero elsewhere.
spconv 2.x stores [out, kx, ky, kz, in]; the module permutes on the fly.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from learnlib.nn.backends import canonical_backend
from learnlib.sparse.tensor import SparseTensor, voxel_keys, voxels_from_keys

_encode, _decode = voxel_keys, voxels_from_keys  # the voxel keys of SparseTensor's duplicate check


def _offsets(kernel_size: int, dilation: int, device: torch.device) -> Tensor:
    """Kernel offsets [K^3, 3] in the order of the flattened (kx, ky, kz) weight axes."""
    r = kernel_size // 2
    grid = list(itertools.product(range(-r, r + 1), repeat=3))
    return torch.tensor(grid, device=device, dtype=torch.long) * dilation  # (K^3, 3)


def submanifold_neighbors(coords: Tensor, kernel_size: int = 3, dilation: int = 1) -> Tensor:
    """Neighbour map [N, K^3] of voxels `coords` (N, 4): the row of the voxel at offset k
    of voxel i, or N where that neighbour is inactive (index of an appended zero row)."""
    if coords.dim() != 2 or coords.shape[1] != 4:
        raise ValueError(f"coords must have shape (N, 4) (batch, x, y, z), got {tuple(coords.shape)}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"submanifold convolution needs an odd kernel_size, got {kernel_size}")
    n = coords.shape[0]
    offsets = _offsets(kernel_size, dilation, coords.device)
    if n == 0:
        return torch.zeros(0, offsets.shape[0], dtype=torch.long, device=coords.device)
    pad = (kernel_size // 2) * dilation
    c = coords.long()
    c[:, 1:] += pad  # neighbours now have coordinates >= 0
    sizes = tuple(int(m) + pad + 1 for m in c[:, 1:].amax(0).tolist())  # one host sync
    keys = _encode(c, sizes)  # (N,)
    sorted_keys, order = torch.sort(keys)
    _, sy, sz = sizes
    deltas = (offsets[:, 0] * sy + offsets[:, 1]) * sz + offsets[:, 2]  # (K^3,) key change per offset
    query = keys[:, None] + deltas[None, :]  # (N, K^3); in range because of the padding
    pos = torch.searchsorted(sorted_keys, query).clamp(max=n - 1)
    found = sorted_keys[pos] == query
    return torch.where(found, order[pos], torch.full_like(pos, n))  # (N, K^3)


def sparse_neighbors(x: SparseTensor, kernel_size: int = 3, dilation: int = 1) -> Tensor:
    """`submanifold_neighbors` of a SparseTensor, cached under ("submconv", kernel_size, dilation)."""
    key = ("submconv", kernel_size, dilation)
    nbr = x.spatial_cache.get(key)
    if nbr is None:
        nbr = submanifold_neighbors(x.coords, kernel_size, dilation)
        x.spatial_cache[key] = nbr
    return nbr


def submanifold_conv3d(
    feats: Tensor, neighbors: Tensor, weight: Tensor, bias: Tensor | None = None,
) -> Tensor:
    """Submanifold conv: feats (N, Cin), neighbour map [N, K^3], weight (Cout, Cin, K, K, K) -> (N, Cout).

    Gathers each kernel offset's neighbour features and accumulates one matmul per offset.
    """
    cout, cin = weight.shape[:2]
    kvol = math.prod(weight.shape[2:])
    if feats.dim() != 2 or feats.shape[1] != cin:
        raise ValueError(f"feats must have shape (N, {cin}), got {tuple(feats.shape)}")
    if neighbors.shape != (feats.shape[0], kvol):
        raise ValueError(f"neighbors must have shape {(feats.shape[0], kvol)}, got {tuple(neighbors.shape)}")
    padded = torch.cat([feats, feats.new_zeros(1, cin)])  # (N+1, Cin): row N is the missing neighbour
    w = weight.flatten(2)  # (Cout, Cin, K^3)
    out = feats.new_zeros(feats.shape[0], cout)  # (N, Cout)
    if bias is not None:
        out = out + bias
    for k in range(kvol):
        out = out + padded[neighbors[:, k]] @ w[:, :, k].t()  # (N, Cout)
    return out


def _spconv_available() -> bool:
    try:
        import spconv.pytorch  # noqa: F401
    except ImportError:
        return False
    return True


class SubMConv3d(nn.Module):
    """Submanifold 3D convolution on a SparseTensor (N, in_channels) -> (N, out_channels).

    weight: [out, in, k, k, k] (the nn.Conv3d layout); backend "reference" (alias "torch"),
    "spconv" or "auto" (spconv when installed), as in learnlib.nn.backends. A tensor with 0 voxels gives 0 voxels with out_channels
    features (computed by the torch path, which spconv cannot take).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1,
        bias: bool = True, backend: str = "auto",
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"submanifold convolution needs an odd kernel_size, got {kernel_size}")
        backend = canonical_backend(backend, "conv")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.dilation, self.backend = kernel_size, dilation, backend
        ref = nn.Conv3d(in_channels, out_channels, kernel_size, bias=bias)  # default init of Conv3d
        self.weight = nn.Parameter(ref.weight.detach().clone())  # (out, in, k, k, k)
        self.bias = nn.Parameter(ref.bias.detach().clone()) if bias else None
        self._spconv: dict[torch.device, nn.Module] = {}  # spconv layers by device; not submodules

    def forward(self, x: SparseTensor) -> SparseTensor:
        if x.feats.dim() != 2 or x.feats.shape[1] != self.in_channels:
            raise ValueError(f"expected feats (N, {self.in_channels}), got {tuple(x.feats.shape)}")
        backend = self.backend
        if backend == "auto":
            backend = "spconv" if _spconv_available() else "reference"
        if backend == "spconv" and len(x) > 0:
            return x.replace(self._forward_spconv(x))
        nbr = sparse_neighbors(x, self.kernel_size, self.dilation)
        return x.replace(submanifold_conv3d(x.feats, nbr, self.weight, self.bias))

    def _forward_spconv(self, x: SparseTensor) -> Tensor:
        import spconv.pytorch as spconv
        from spconv.core import ConvAlgo

        layer = self._spconv.get(x.device)
        if layer is None:  # holds only the kernel configuration; weights come from this module
            algo = None if x.device.type == "cuda" else ConvAlgo.Native  # CPU runs the native algorithm only
            layer = spconv.SubMConv3d(
                self.in_channels, self.out_channels, self.kernel_size, dilation=self.dilation,
                bias=self.bias is not None, algo=algo,
            ).to(x.device)
            self._spconv[x.device] = layer
        k = self.kernel_size
        if tuple(layer.weight.shape) == (self.out_channels, k, k, k, self.in_channels):
            weight = self.weight.permute(0, 2, 3, 4, 1)  # (out, kx, ky, kz, in)
        else:
            weight = self.weight.permute(2, 3, 4, 1, 0)  # (kx, ky, kz, in, out)
        params = {"weight": weight.contiguous()}
        if self.bias is not None:
            params["bias"] = self.bias
        if x.resolution is not None:
            shape = list(x.resolution)
        else:
            shape = [int(m) + 1 for m in x.coords[:, 1:].amax(0).tolist()]
        sp = spconv.SparseConvTensor(x.feats, x.coords, shape, x.batch_size)
        out = torch.func.functional_call(layer, params, (sp,))
        return out.features  # (N, out); submanifold output keeps the input rows


class SparseDownsample(nn.Module):
    """Merge each 2x2x2 block of voxels into one (coords // factor), pooling feats by mean or max.

    The output remembers the finer coordinates (spatial cache key ("upsample", factor)),
    so `SparseUpsample` can go back to exactly this layout. 0 voxels give 0 voxels.
    """

    def __init__(self, factor: int = 2, mode: str = "mean") -> None:
        super().__init__()
        if mode not in ("mean", "max"):
            raise ValueError(f"mode must be 'mean' or 'max', got {mode!r}")
        self.factor, self.mode = factor, mode

    def forward(self, x: SparseTensor) -> SparseTensor:
        f = self.factor
        coarse = x.coords.long()
        coarse[:, 1:] = coarse[:, 1:] // f
        if x.resolution is not None:
            sizes = tuple(math.ceil(r / f) for r in x.resolution)
        else:
            sizes = tuple(int(m) + 1 for m in coarse[:, 1:].amax(0).tolist()) if len(x) else (1, 1, 1)
        keys, inverse = torch.unique(_encode(coarse, sizes), return_inverse=True)  # sorted: batches stay sorted
        coords = _decode(keys, sizes).int()  # (M, 4)
        flat = x.feats.reshape(x.feats.shape[0], math.prod(x.feats.shape[1:]))  # (N, F)
        index = inverse[:, None].expand_as(flat)  # (N, F)
        reduce = "mean" if self.mode == "mean" else "amax"
        pooled = flat.new_zeros(keys.shape[0], flat.shape[1]).scatter_reduce(0, index, flat, reduce, include_self=False)
        feats = pooled.reshape(keys.shape[0], *x.feats.shape[1:])  # (M, ...)
        resolution = None if x.resolution is None else sizes
        out = SparseTensor(feats, coords, resolution=resolution, batch_size=x.batch_size, validate=False)
        out.spatial_cache[("upsample", f)] = {
            "coords": x.coords, "inverse": inverse, "resolution": x.resolution, "cache": x.spatial_cache,
        }
        return out


class SparseUpsample(nn.Module):
    """Copy each voxel's features to its finer voxels: back to the cached layout of the
    `SparseDownsample` that produced the input, or else to all factor^3 children.
    0 voxels give 0 voxels."""

    def __init__(self, factor: int = 2, use_cache: bool = True) -> None:
        super().__init__()
        self.factor, self.use_cache = factor, use_cache

    def forward(self, x: SparseTensor) -> SparseTensor:
        f = self.factor
        cached = x.spatial_cache.get(("upsample", f)) if self.use_cache else None
        if cached is not None:
            return SparseTensor(
                x.feats[cached["inverse"]], cached["coords"], resolution=cached["resolution"],
                batch_size=x.batch_size, spatial_cache=cached["cache"], validate=False,
            )
        children = torch.tensor(list(itertools.product(range(f), repeat=3)), device=x.device)  # (f^3, 3)
        c = x.coords.long()
        xyz = c[:, None, 1:] * f + children[None]  # (N, f^3, 3)
        batch = c[:, None, :1].expand(-1, children.shape[0], 1)  # (N, f^3, 1)
        coords = torch.cat([batch, xyz], dim=2).reshape(-1, 4).int()  # (N*f^3, 4), parents' order kept
        feats = x.feats.repeat_interleave(children.shape[0], dim=0)  # (N*f^3, ...)
        resolution = None if x.resolution is None else tuple(r * f for r in x.resolution)
        return SparseTensor(feats, coords, resolution=resolution, batch_size=x.batch_size, validate=False)
