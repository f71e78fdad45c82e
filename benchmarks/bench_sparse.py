"""Benchmark the sparse chapter: window partition and windowed attention, vectorized vs naive.

(a) `window_partition` vs `naive_window_partition` at ~20k and ~200k voxels.
(b) sparse windowed self-attention at ~20k voxels, 8 heads x 64, window 8 (and window 4,
    many small windows), fp32: the per-window loop ("reference") vs the sdpa backend padded to
    the longest window (`pad_to_longest=True`) and length-bucketed (the library's "sdpa"), and
    FlexAttention (compiled) with a block-diagonal BlockMask built from the partition's
    cu_seqlens, measured here to choose the CPU backend (the library keeps the faster: bucketed).
Voxels are thin spherical shells (surface-like occupancy, as in TRELLIS structured
latents). Prints a table and appends a dated section to benchmarks/RESULTS.md.

    python benchmarks/bench_sparse.py
    python benchmarks/bench_sparse.py --smoke --no-write   # tiny sizes, no FlexAttention: checks the script runs
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from machine import Figure, append_results, best_times, cpu_model

from learnlib.sparse import (
    SparseTensor,
    naive_window_partition,
    partitioned_self_attention,
    window_partition,
)
from learnlib.sparse.windows import Partition, sparse_window_partition

THREADS = 2
FLEX_BLOCKS = (32, 64)  # FlexAttention block sizes tried (its default, 128, wastes most of each block here)


def shell_coords(resolution: int, batch_size: int, thickness: float) -> torch.Tensor:
    """Voxels (batch, x, y, z) int32 of spherical shells, radius varying with the batch."""
    axis = torch.arange(resolution, dtype=torch.float32) + 0.5 - resolution / 2
    r = torch.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
    rows = []
    for b in range(batch_size):
        radius = resolution * (0.42 - 0.04 * b / max(batch_size, 1))
        xyz = torch.nonzero((r - radius).abs() < thickness / 2)  # (n, 3)
        rows.append(torch.cat([torch.full((xyz.shape[0], 1), b), xyz], dim=1))  # (n, 4)
    return torch.cat(rows).int()  # (N, 4)




def block_diagonal_mask(part: Partition, block: int):
    """FlexAttention BlockMask of attention within groups, over the voxels sorted by group.

    Query block i only visits the key blocks spanned by the groups it touches; the mask_mod
    settles the partial blocks. Built from cu_seqlens directly (create_block_mask would
    evaluate all N x N pairs).
    """
    from torch.nn.attention.flex_attention import BlockMask

    n = part.fwd.shape[0]
    cu = part.cu_seqlens.long()
    group = torch.repeat_interleave(torch.arange(part.num_groups), part.seqlens.long())  # (N,) sorted order
    first = torch.arange(0, n, block)  # (Qb,) first sorted position of each query block
    last = (first + block).clamp(max=n) - 1
    kv_lo = cu[group[first]] // block  # (Qb,)
    kv_hi = (cu[group[last] + 1] - 1) // block
    counts = kv_hi - kv_lo + 1
    span = torch.arange(first.shape[0])  # BlockMask wants one column per key block
    kv_indices = (kv_lo[:, None] + span[None, :]).clamp(max=kv_hi[:, None])  # (Qb, KVb), tail unused

    def same_group(b, h, q_idx, kv_idx):
        return group[q_idx] == group[kv_idx]

    return BlockMask.from_kv_blocks(
        counts.int()[None, None], kv_indices.int()[None, None], BLOCK_SIZE=block,
        mask_mod=same_group, seq_lengths=(n, n),
    )


def flex_contender(qkv: SparseTensor, part: Partition, block: int):
    """A callable running compiled FlexAttention on the group-sorted voxels (back in voxel order)."""
    from torch.nn.attention.flex_attention import flex_attention

    flex = torch.compile(flex_attention, dynamic=False)
    mask = block_diagonal_mask(part, block)

    def run() -> torch.Tensor:
        q, k, v = qkv.feats[part.fwd].permute(1, 2, 0, 3).unsqueeze(1).unbind(0)  # 3 x (1, H, N, D)
        out = flex(q.contiguous(), k.contiguous(), v.contiguous(), block_mask=mask)  # (1, H, N, D)
        return out[0].transpose(0, 1)[part.bwd]  # (N, H, D) voxel order

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no FlexAttention: checks the script runs")
    parser.add_argument("--no-write", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    rows, notes = [], []
    repeats = 1 if args.smoke else 5
    flex_blocks = () if args.smoke else FLEX_BLOCKS

    # (a) window partition
    for res, batch, thick in ((16, 1, 1.2),) if args.smoke else ((64, 2, 1.2), (128, 4, 1.5)):
        coords = shell_coords(res, batch, thick)
        t = best_times({
            "naive": lambda c=coords: naive_window_partition(c, 8, 4),
            "fast": lambda c=coords: window_partition(c, 8, 4),
        }, repeats=repeats)
        rows.append((f"window partition, {coords.shape[0]} voxels, ws 8, shift 4",
                     "naive_window_partition", t["naive"], "window_partition", t["fast"]))

    # (b) windowed attention, steady state (partition and padding plan cached, as in a layer stack)
    resolution = 16 if args.smoke else 64
    coords = shell_coords(resolution, 1 if args.smoke else 2, 1.2)
    heads, dim = (2, 16) if args.smoke else (8, 64)
    qkv = SparseTensor(torch.randn(coords.shape[0], 3, heads, dim), coords, resolution=resolution)
    for ws in (8, 4):
        part = sparse_window_partition(qkv, ws, 0)
        fns = {
            "reference": lambda part=part: partitioned_self_attention(qkv.feats, part, "reference"),
            "sdpa padded": lambda part=part: partitioned_self_attention(qkv.feats, part, "sdpa", pad_to_longest=True),
            "sdpa": lambda part=part: partitioned_self_attention(qkv.feats, part, "sdpa"),
        }
        reference = fns["reference"]()
        for block in flex_blocks:
            fns[f"flex {block}"] = flex_contender(qkv, part, block)
            start = time.perf_counter()
            error = (fns[f"flex {block}"]() - reference).abs().max().item()
            notes.append(f"FlexAttention block {block}, ws {ws}: compile + first call {time.perf_counter() - start:.1f} s, "
                         f"max |difference| to the loop {error:.1e}")
        t = best_times(fns, repeats=repeats)
        label = (f"windowed attention, {coords.shape[0]} voxels, ws {ws}: {part.num_groups} windows "
                 f"(mean {coords.shape[0] / part.num_groups:.0f}, max {part.max_seqlen}), {heads}x{dim}, fp32")
        rows.append((label, "reference (loop)", t["reference"], "sdpa padded to max", t["sdpa padded"]))
        rows.append((label, "reference (loop)", t["reference"], "sdpa (length-bucketed)", t["sdpa"]))
        for block in flex_blocks:
            rows.append((label, "reference (loop)", t["reference"], f"FlexAttention, block-diagonal, block {block}",
                         t[f"flex {block}"]))

    header = "| measured | peer | peer s | ours | ours s | speed-up |\n|---|---|---|---|---|---|\n"
    table = header + "".join(
        f"| {what} | {peer} | {tp:.4f} | {ours} | {to:.4f} | {tp / to:.1f}x |\n" for what, peer, tp, ours, to in rows
    )
    print(table)
    print("\n".join(notes))
    if args.no_write:
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = (f"{cpu_model()}, {os.cpu_count()} cores, torch.set_num_threads({THREADS}), torch {torch.__version__}, "
               f"1-min load average at the end {load:.1f}")
    figures = []
    for key, test in (("bench_sparse: window partition", lambda r: r[0].startswith("window partition")),
                      ("bench_sparse: windowed attention", lambda r: r[3] == "sdpa (length-bucketed)")):
        what, peer, tp, ours, to = [r for r in rows if test(r)][-1]  # the largest case
        figures.append(Figure(key, what, f"{to:.4f} s ({ours})", f"{tp:.4f} s ({peer})", f"{tp / to:.1f}x",
                              f"{cpu_model()}, {THREADS} threads"))
    append_results("Sparse: window partition and windowed attention", (
        f"Machine: {machine}. Script: `benchmarks/bench_sparse.py` (best of 5 interleaved runs after a warm-up, "
        f"seconds; surface-like voxels: thin spherical shells).\n\n{table}\n" + "".join(f"- {n}\n" for n in notes)
    ), figures)


if __name__ == "__main__":
    main()
