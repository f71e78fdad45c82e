"""The PyTorch rasterizer against gsplat 1.5's own reference on CPU: same scene, interleaved runs.

gsplat's reference is its public `rasterization` with its CUDA calls stood in by its
`_torch_impl` functions and the kernels' compositing rules (tests/gsplat_cpu.py, as in the
parity tests). Both render the scene of bench_rasterizer.py (one camera, 64x64) forward and
backward; the runs alternate (torch, gsplat, torch, ...) so a load change on a shared machine
hits both. Prints the medians, their ratio and the largest image difference, and appends a
dated section to benchmarks/RESULTS.md.

    python benchmarks/bench_gsplat_cpu.py [--gaussians 1000] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import pytest
import torch
from bench_rasterizer import SIZE, scene
from machine import append_results, cpu_model

from learnlib.splat import orbit_cameras, rasterize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import gsplat_cpu


def fwd_bwd(params, cams, backend: str) -> tuple[float, torch.Tensor]:
    for p in params:
        p.grad = None
    start = time.perf_counter()
    img, alpha, _ = rasterize(*params, cams.viewmats, cams.Ks, SIZE, SIZE, backend=backend)
    (img.sum() + alpha.sum()).backward()
    return time.perf_counter() - start, img.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    patch = pytest.MonkeyPatch()
    gsplat_cpu.install(patch)
    cams = orbit_cameras(torch.tensor([0.3]), torch.tensor([0.2]), radius=2.0, width=SIZE)
    params = scene(args.gaussians)
    times = {"torch": [], "gsplat": []}
    images = {}
    for backend in ("torch", "gsplat"):  # warm-up
        fwd_bwd(params, cams, backend)
    for _ in range(args.repeats):
        for backend in ("torch", "gsplat"):
            seconds, images[backend] = fwd_bwd(params, cams, backend)
            times[backend].append(seconds)
    patch.undo()
    ours, peer = statistics.median(times["torch"]), statistics.median(times["gsplat"])
    diff = (images["torch"] - images["gsplat"]).abs().max().item()
    table = "\n".join([
        "| measured | peer | peer s | ours | ours s | ratio (peer / ours) | max image diff |",
        "|---|---|---:|---|---:|---:|---:|",
        (f"| fwd+bwd, {args.gaussians:,} Gaussians, {SIZE}x{SIZE}, 1 camera | gsplat 1.5 reference on CPU "
         f"(its rasterization + _torch_impl + kernel rules) | {peer:.3f} | learnlib torch rasterizer | {ours:.3f} | "
         f"{peer / ours:.1f}x | {diff:.1e} |"),
    ])
    print(table)
    if not args.no_write:
        machine = (f"{cpu_model()}, {torch.get_num_threads()} threads (of {os.cpu_count()} cores, shared; load "
                   f"average {os.getloadavg()[0]:.1f}), torch {torch.__version__}")
        append_results("Gaussian rasterizer vs gsplat's reference, CPU", (
            f"`python benchmarks/bench_gsplat_cpu.py --gaussians {args.gaussians} --repeats {args.repeats}`; "
            f"median of {args.repeats} interleaved runs after one warm-up each, run once (small: the CPU is "
            f"shared). Machine: {machine}.\n\n{table}\n"))


if __name__ == "__main__":
    main()
