"""Training-step time of FSDP2 on two CPU processes (gloo) against one process and DDP, same global batch.

A ViT-S/16-like model cut to depth 4 at 64 px (7.4 M parameters), global batch 8: one process
takes the whole batch, two ranks take 4 images each. A step = forward, backward (with the
gradient reduction of DDP or the all-gathers and reduce-scatters of FSDP), global-norm
clipping and AdamW. Also reported: rank 0's CPU seconds per step (less sensitive than wall time
to other load on the machine) and the parameters each rank holds between steps (FSDP keeps
1/world_size of them, and of their gradients and AdamW moments). Prints a table and appends
a dated section to benchmarks/RESULTS.md unless --no-write.

    python benchmarks/bench_fsdp.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from machine import Figure, append_results, cpu_model

from learnlib.train.distributed import DistInfo
from learnlib.train.local_ddp import free_port
from learnlib.train.sharding import clip_grad_norm, wrap_for_training
from learnlib.vit import VisionTransformer

GLOBAL_BATCH, IMG = 8, 64
MODEL = {"img_size": IMG, "patch_size": 16, "in_chans": 3, "num_classes": 10, "embed_dim": 384, "depth": 4,
         "num_heads": 6}


def measure(strategy: str, rank: int, world: int, steps: int, warmup: int) -> tuple[list, list, float]:
    """Wall and CPU seconds of each timed step on this rank, and the millions of parameters it holds."""
    torch.manual_seed(0)
    info = DistInfo(rank=rank, local_rank=rank, world_size=world, device=torch.device("cpu"))
    model = wrap_for_training(VisionTransformer(**MODEL), strategy, info)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    per_rank = GLOBAL_BATCH // world
    gen = torch.Generator().manual_seed(rank)
    images = torch.randn(per_rank, 3, IMG, IMG, generator=gen)
    labels = torch.randint(0, 10, (per_rank,), generator=gen)
    walls, cpus = [], []
    for step in range(warmup + steps):
        if world > 1:
            dist.barrier()
        start, start_cpu = time.perf_counter(), time.process_time()
        F.cross_entropy(model(images), labels).backward()
        clip_grad_norm(model, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= warmup:
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - start_cpu)
    held = sum((p.to_local() if hasattr(p, "to_local") else p).numel() for p in model.parameters()) / 1e6
    return walls, cpus, held


def _worker(rank: int, world: int, port: int, strategy: str, steps: int, warmup: int, out: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        walls, cpus, held = measure(strategy, rank, world, steps, warmup)
        if rank == 0:
            torch.save({"walls": walls, "cpus": cpus, "held": held}, out)
    finally:
        dist.destroy_process_group()



def run_two_ranks(strategy: str, steps: int, warmup: int) -> tuple[list, list, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "times.pt")
        mp.start_processes(_worker, args=(2, free_port(), strategy, steps, warmup, out), nprocs=2, join=True,
                           start_method="spawn")
        result = torch.load(out)
    return result["walls"], result["cpus"], result["held"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rows.append((f"1 process, {threads} thread(s), batch {GLOBAL_BATCH}",
                     *measure("none", 0, 1, args.steps, args.warmup)))
    for strategy in ("ddp", "fsdp"):
        rows.append((f"{strategy.upper()}, 2 ranks x 1 thread, {GLOBAL_BATCH // 2} per rank",
                     *run_two_ranks(strategy, args.steps, args.warmup)))
    base = statistics.median(rows[0][1])
    table = ("| setup | ms / step (median) | ms / step (best) | vs 1 process, 1 thread | CPU ms / step, rank 0 "
             "(median) | M params held per rank |\n|---|---:|---:|---:|---:|---:|\n")
    for label, walls, cpus, held in rows:
        median = statistics.median(walls)
        table += (f"| {label} | {median * 1e3:.1f} | {min(walls) * 1e3:.1f} | {base / median:.2f}x | "
                  f"{statistics.median(cpus) * 1e3:.1f} | {held:.2f} |\n")
    print(table)
    if args.no_write:
        return
    append_results("FSDP2 vs one process and DDP, CPU gloo", (
        f"`python benchmarks/bench_fsdp.py`; ViT depth 4, width 384, 6 heads, 16 px patches at {IMG} px "
        f"(7.4 M parameters), global batch {GLOBAL_BATCH}, fp32, AdamW (fused) with global-norm clipping; "
        f"{args.warmup} warm-up steps, then {args.steps} timed steps, each run once (not interleaved).\n"
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}; "
        f"load average at the end {os.getloadavg()[0]:.1f}.\n\n{table}"
    ), [Figure("bench_fsdp", "ViT depth 4 (7.4 M parameters), 2 gloo ranks: parameters held per rank",
               f"{rows[3][3]:.2f} M (FSDP)", f"{rows[2][3]:.2f} M (DDP)", f"{rows[2][3] / rows[3][3]:.2f}x",
               f"{cpu_model()}, 2 ranks x 1 thread")])


if __name__ == "__main__":
    main()
