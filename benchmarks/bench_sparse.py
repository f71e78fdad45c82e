"""Benchmark the sparse chapter: window partition and windowed attention, vectorized vs naive.

(a) `window_partition` vs `naive_window_partition` at ~20k and ~200k voxels.
(b) sparse windowed self-attention at ~20k voxels, 8 heads x 64, window 8 (and window 4,
    many small windows), fp32: the per-window loop vs the padded and the length-bucketed
    sdpa backends.
Voxels are thin spherical shells (surface-like occupancy, as in TRELLIS structured
latents). Prints a table and appends a dated section to benchmarks/RESULTS.md.

    python benchmarks/bench_sparse.py
"""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

import torch

from learnlib.sparse import (
    SparseTensor,
    naive_window_partition,
    sparse_windowed_self_attention,
    window_partition,
)
from learnlib.sparse.windows import sparse_window_partition
from machine import cpu_model

THREADS = 2
RESULTS = Path(__file__).with_name("RESULTS.md")


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


def best_times(fns: dict, repeats: int) -> dict:
    """Best wall time in seconds of each callable after a warm-up call; calls interleaved so
    that load from other processes hits every contender alike."""
    for fn in fns.values():
        fn()
    times = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name] = min(times[name], time.perf_counter() - start)
    return times




def main() -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    rows = []

    # (a) window partition
    for res, batch, thick in ((64, 2, 1.2), (128, 4, 1.5)):
        coords = shell_coords(res, batch, thick)
        t = best_times({
            "naive": lambda c=coords: naive_window_partition(c, 8, 4),
            "fast": lambda c=coords: window_partition(c, 8, 4),
        }, repeats=5)
        rows.append((f"window partition, {coords.shape[0]} voxels, ws 8, shift 4",
                     "naive_window_partition", t["naive"], "window_partition", t["fast"]))

    # (b) windowed attention, steady state (partition and padding plan cached, as in a layer stack)
    coords = shell_coords(64, 2, 1.2)
    heads, dim = 8, 64
    qkv = SparseTensor(torch.randn(coords.shape[0], 3, heads, dim), coords, resolution=64)
    for ws in (8, 4):
        part = sparse_window_partition(qkv, ws, 0)
        t = best_times({
            b: (lambda b=b, ws=ws: sparse_windowed_self_attention(qkv, ws, 0, backend=b))
            for b in ("loop", "sdpa", "sdpa_bucketed")
        }, repeats=5)
        label = (f"windowed attention, {coords.shape[0]} voxels, ws {ws}: {part.num_groups} windows "
                 f"(mean {coords.shape[0] / part.num_groups:.0f}, max {part.max_seqlen}), {heads}x{dim}, fp32")
        rows.append((label, "loop", t["loop"], "sdpa (padded to max)", t["sdpa"]))
        rows.append((label, "loop", t["loop"], "sdpa_bucketed", t["sdpa_bucketed"]))

    header = "| measured | peer | peer s | ours | ours s | speed-up |\n|---|---|---|---|---|---|\n"
    table = header + "".join(
        f"| {what} | {peer} | {tp:.4f} | {ours} | {to:.4f} | {tp / to:.1f}x |\n" for what, peer, tp, ours, to in rows
    )
    print(table)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = (f"{cpu_model()}, {os.cpu_count()} cores, torch.set_num_threads({THREADS}), torch {torch.__version__}, "
               f"1-min load average at the end {load:.1f}")
    section = (
        f"\n## Sparse: window partition and windowed attention ({datetime.date.today().isoformat()})\n\n"
        f"Machine: {machine}. Script: `benchmarks/bench_sparse.py` (best of 5 interleaved runs after a warm-up, "
        f"seconds; surface-like voxels: thin spherical shells).\n\n{table}"
    )
    with RESULTS.open("a") as fh:
        fh.write(section)


if __name__ == "__main__":
    main()
