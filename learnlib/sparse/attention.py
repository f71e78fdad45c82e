"""Self-attention restricted to groups of voxels: shifted 3D windows or Morton chunks.

Every voxel attends only to the voxels of its own group (see `windows.py` and
`serialize.py`). Backends (names and resolution in `learnlib.nn.backends`), all computing
the same thing:

- "reference": one Python iteration per group with an explicit softmax; the readable reference.
- "sdpa": groups binned by length (multiples of 16 up to 256, then 8 bins per doubling),
  padded (Wb, H, Lb, D) with a key-padding mask, one `torch.nn.functional.scaled_dot_product_attention`
  call per bin in blocks of at most PADDED_BLOCK_BYTES, so short windows do not pay for the
  longest one. `partitioned_self_attention(..., pad_to_longest=True)` pads every group to the
  longest one instead (the slower variant, kept for benchmarks/bench_sparse.py and its tests).
- "flash": `flash_attn_varlen_qkvpacked_func` on the sorted voxels (CUDA only,
  fp16/bf16; fp32 inputs are computed in bf16 and cast back).

"auto" picks flash on CUDA when it is installed and sdpa otherwise. How the backends compare
(the loop, bucketed and padded sdpa, FlexAttention, window sizes 4 and 8) is measured by
benchmarks/bench_sparse.py and recorded, with machine and date, in benchmarks/RESULTS.md. A dense
block-diagonal (N, N) mask is not offered: at 20k voxels it has 400M entries.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from learnlib.nn.backends import canonical_backend, resolve_backend
from learnlib.sparse.serialize import sparse_serialized_partition
from learnlib.sparse.tensor import SparseTensor
from learnlib.sparse.windows import Partition, sparse_window_partition

MIN_BUCKET = 16  # shortest padded length of the bucketed sdpa backend
BUCKETS_PER_OCTAVE = 8  # padded lengths per doubling of the window length
PADDED_BLOCK_BYTES = 2 * 2**20  # gathered qkv per sdpa call


def _attention_loop(qkv: Tensor, part: Partition, scale: float) -> Tensor:
    """Reference: one group at a time, softmax written out."""
    out = qkv.new_empty(qkv.shape[0], *qkv.shape[2:])  # (N, H, D)
    bounds = part.cu_seqlens.tolist()
    for start, end in itertools.pairwise(bounds):
        ids = part.fwd[start:end]  # voxels of this group
        q, k, v = qkv[ids].unbind(1)  # 3 x (L, H, D)
        scores = torch.einsum("qhd,khd->hqk", q, k) * scale  # (H, L, L)
        scores = scores - scores.amax(dim=-1, keepdim=True)
        weights = scores.exp()
        weights = weights / weights.sum(dim=-1, keepdim=True)
        out[ids] = torch.einsum("hqk,khd->qhd", weights, v)  # (L, H, D)
    return out


def bucket_length(seqlens: Tensor, per_octave: int = BUCKETS_PER_OCTAVE) -> Tensor:
    """Padded length of each group: L rounded up to a multiple of max(MIN_BUCKET, 2**floor(log2(L - 1)) / per_octave).

    Short groups pad to multiples of MIN_BUCKET; long ones waste at most 1 / per_octave of a row.
    """
    seqlens = seqlens.long().clamp(min=MIN_BUCKET)
    octave = torch.floor(torch.log2((seqlens - 1).double())).long()
    step = torch.exp2((octave - int(math.log2(per_octave))).clamp(min=0).double()).long().clamp(min=MIN_BUCKET)
    return (seqlens + step - 1) // step * step


@dataclass
class _Block:
    """One padded sdpa call: windows of one bucket, at most a row budget of them."""

    ids: Tensor        # (Wb * Lb,) voxel per padded slot; padding repeats a voxel of the same group
    length: int        # Lb, the padded length of every group of the block
    mask: Tensor | None  # (Wb, 1, 1, Lb) keys to keep, None when no slot is padding
    valid: Tensor | None  # (R,) flat slots w * Lb + l that hold a real voxel, None when all do
    dst: Tensor        # (R,) the voxel each valid slot writes


def _padded_plan(part: Partition, bucketed: bool, max_rows: int) -> list[_Block]:
    """Padded blocks of groups, each at most `max_rows` slots (or one group), cached in the partition."""
    key = ("padded", bucketed, max_rows)
    if key in part.plans:
        return part.plans[key]
    seqlens = part.seqlens.long()
    starts = part.cu_seqlens[:-1].long()
    if bucketed:
        lengths = bucket_length(seqlens)  # (W,)
        bucket_lengths = torch.unique(lengths).tolist()
    else:
        lengths = torch.full_like(seqlens, part.max_seqlen)
        bucket_lengths = [part.max_seqlen] if part.num_groups else []
    plan = []
    for length in bucket_lengths:
        groups = torch.nonzero(lengths == length).squeeze(1)  # (W_bucket,)
        pos = torch.arange(length, device=seqlens.device)
        for chunk in groups.split(max(1, max_rows // length)):
            n_valid = seqlens[chunk, None]  # (Wb, 1)
            mask = pos[None, :] < n_valid  # (Wb, Lb)
            ids = part.fwd[starts[chunk, None] + torch.minimum(pos[None, :], n_valid - 1)]  # (Wb, Lb)
            ids = ids.flatten()  # (Wb*Lb,)
            if bool(mask.all()):
                plan.append(_Block(ids, length, None, None, ids))
            else:
                valid = torch.nonzero(mask.flatten()).squeeze(1)  # (R,)
                plan.append(_Block(ids, length, mask[:, None, None, :], valid, ids[valid]))  # mask: (Wb, 1, 1, Lb)
    part.plans[key] = plan
    return plan


def _attention_padded(qkv: Tensor, part: Partition, scale: float, bucketed: bool) -> Tensor:
    """Padded groups through scaled_dot_product_attention, one call per block of a bucket.

    Blocks hold at most PADDED_BLOCK_BYTES of gathered qkv, so temporaries stay cache- and
    allocator-friendly instead of one huge padded copy (fresh large allocations page-fault).
    Rows move with `index_select` / `index_copy_` on (N, 3*H*D) views, the cheapest gathers.
    """
    n, _, heads, dim = qkv.shape
    max_rows = max(1, PADDED_BLOCK_BYTES // (3 * heads * dim * qkv.element_size()))
    rows = qkv.reshape(n, 3 * heads * dim)  # (N, 3*H*D)
    out = qkv.new_empty(n, heads * dim)  # (N, H*D)
    for block in _padded_plan(part, bucketed, max_rows):
        gathered = rows.index_select(0, block.ids)  # (Wb*Lb, 3*H*D)
        q, k, v = rearrange(gathered, "(w l) (t h d) -> t w h l d", l=block.length, t=3, h=heads)  # 3 x (Wb, H, Lb, D)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=block.mask, scale=scale)  # (Wb, H, Lb, D)
        o = rearrange(o, "w h l d -> (w l) (h d)")  # (Wb*Lb, H*D)
        out.index_copy_(0, block.dst, o if block.valid is None else o.index_select(0, block.valid))
    return out.view(n, heads, dim)  # (N, H, D)


def _attention_flash(qkv: Tensor, part: Partition, scale: float) -> Tensor:
    """flash-attn varlen kernel on the grouped sequence (CUDA, half precision)."""
    from flash_attn import flash_attn_varlen_qkvpacked_func

    dtype = qkv.dtype
    run_dtype = dtype if dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
    qkv_sorted = qkv[part.fwd].to(run_dtype).contiguous()  # (N, 3, H, D) grouped
    out = flash_attn_varlen_qkvpacked_func(qkv_sorted, part.cu_seqlens, part.max_seqlen, softmax_scale=scale)
    return out[part.bwd].to(dtype)  # (N, H, D) voxel order


def partitioned_self_attention(
    qkv: Tensor, part: Partition, backend: str = "auto", scale: float | None = None,
    pad_to_longest: bool = False,
) -> Tensor:
    """Attention of qkv (N, 3, H, D) within the groups of `part`; returns (N, H, D).

    `pad_to_longest` makes the sdpa backend pad every group to the longest one instead of
    to its length bucket (same result, slower; for benchmarks).
    """
    if qkv.dim() != 4 or qkv.shape[1] != 3:
        raise ValueError(f"qkv must have shape (N, 3, H, D), got {tuple(qkv.shape)}")
    if qkv.shape[0] != part.fwd.shape[0]:
        raise ValueError(f"qkv has {qkv.shape[0]} voxels but the partition {part.fwd.shape[0]}")
    scale = 1.0 / math.sqrt(qkv.shape[-1]) if scale is None else scale
    backend = resolve_backend(backend, qkv.device)
    if pad_to_longest and backend != "sdpa":
        raise ValueError(f"pad_to_longest applies to the 'sdpa' backend only, got backend {backend!r}")
    if qkv.shape[0] == 0:  # 0 voxels: an empty result on every backend (flash-attn rejects empty batches)
        return qkv[:, 0] * 0.0  # (0, H, D), still in the autograd graph
    if backend == "reference":
        return _attention_loop(qkv, part, scale)
    if backend == "flash":
        return _attention_flash(qkv, part, scale)
    return _attention_padded(qkv, part, scale, bucketed=not pad_to_longest)


def _check_qkv(qkv: SparseTensor) -> None:
    if qkv.feats.dim() != 4 or qkv.feats.shape[1] != 3:
        raise ValueError(f"qkv feats must have shape (N, 3, H, D), got {tuple(qkv.feats.shape)}")


def sparse_windowed_self_attention(
    qkv: SparseTensor,
    window_size: int | Sequence[int],
    shift: int | Sequence[int] = 0,
    backend: str = "auto",
    scale: float | None = None,
) -> SparseTensor:
    """Self-attention inside shifted 3D windows; qkv feats (N, 3, H, D) -> feats (N, H, D)."""
    _check_qkv(qkv)
    part = sparse_window_partition(qkv, window_size, shift)
    return qkv.replace(partitioned_self_attention(qkv.feats, part, backend, scale))


def sparse_serialized_self_attention(
    qkv: SparseTensor, chunk_size: int, shift: int = 0, backend: str = "auto", scale: float | None = None,
) -> SparseTensor:
    """Self-attention inside chunks of `chunk_size` voxels along each batch's Morton curve."""
    _check_qkv(qkv)
    part = sparse_serialized_partition(qkv, chunk_size, shift)
    return qkv.replace(partitioned_self_attention(qkv.feats, part, backend, scale))


class SparseMultiHeadAttention(nn.Module):
    """Multi-head self-attention over a SparseTensor (N, channels) within shifted windows.

    The one sparse attention layer of the course: chapter 06 builds it, and the SLat Swin blocks
    (`learnlib.slat.blocks.SparseSwinBlock`) use it as their `attn`. Its parameter names are
    TRELLIS's (`to_qkv`, `to_out`), so released TRELLIS state dicts load into those blocks strictly.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int,
        window_size: int | Sequence[int],
        shift_window: int | Sequence[int] = 0,
        backend: str = "auto",
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.channels = channels
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_window = shift_window if isinstance(shift_window, int) else tuple(shift_window)
        self.backend = canonical_backend(backend)
        self.to_qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x: SparseTensor) -> SparseTensor:
        if x.feats.dim() != 2 or x.feats.shape[1] != self.channels:
            raise ValueError(f"expected feats (N, {self.channels}), got {tuple(x.feats.shape)}")
        qkv = rearrange(self.to_qkv(x.feats), "n (t h d) -> n t h d", t=3, h=self.num_heads)  # (N, 3, H, D)
        out = sparse_windowed_self_attention(x.replace(qkv), self.window_size, self.shift_window, self.backend)
        out = rearrange(out.feats, "n h d -> n (h d)")  # (N, C)
        return x.replace(self.to_out(out))
