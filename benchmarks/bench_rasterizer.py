"""Gaussian rasterizer on CPU: forward + backward of the torch reference at 64x64.

Measured: learnlib.splat.rasterize (backend="torch") with 50k Gaussians, target <= 1 s for
forward + backward on 2 threads. Peer in the same run: a dense renderer that evaluates every
Gaussian at every pixel and composites with `composite_front_to_back` (the textbook formula),
at a size it can handle (2k Gaussians); both must produce the same image.

Prints a table and appends one dated section to benchmarks/RESULTS.md.

    python benchmarks/bench_rasterizer.py [--repeats 5] [--no-write]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import torch
from machine import Figure, append_results, cpu_model

from learnlib.splat import composite_front_to_back, gaussian_alpha, orbit_cameras, rasterize

SIZE = 64


def scene(n: int, seed: int = 0):
    """n random Gaussians in the unit cube, 3-20 thousandths wide (TRELLIS voxel-sized), random colours."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g) - 0.5
    scales = torch.exp(torch.empty(n, 3).uniform_(math.log(0.003), math.log(0.02), generator=g))
    quats = torch.randn(n, 4, generator=g)
    opacities = torch.empty(n).uniform_(0.1, 0.9, generator=g)
    colors = torch.rand(n, 3, generator=g)
    return [t.requires_grad_() for t in (means, quats, scales, opacities, colors)]


def render_reference(params, cams):
    img, alpha, info = rasterize(*params, cams.viewmats, cams.Ks, SIZE, SIZE, backend="torch")
    return img, alpha, info["n_intersections"]


def render_dense(params, cams):
    """Every Gaussian at every pixel, sorted by depth, composited with the textbook formula."""
    opacities, colors = params[3], params[4]
    _, _, info = rasterize(*params, cams.viewmats, cams.Ks, SIZE, SIZE, backend="torch")
    order = torch.argsort(info["depths"][0].detach())
    order = order[(info["radii"][0, order] > 0).all(-1)]
    ys, xs = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32),
                            indexing="ij")
    pix = torch.stack([xs, ys], -1).reshape(-1, 1, 2) + 0.5  # (P, 1, 2)
    a = gaussian_alpha(pix - info["means2d"][0, order], info["conics"][0, order], opacities[order])
    img, alpha = composite_front_to_back(colors[order].expand(len(pix), -1, -1), a)
    return img.reshape(1, SIZE, SIZE, 3), alpha.reshape(1, SIZE, SIZE, 1), len(pix) * len(order)


def time_fwd_bwd(fn, params, cams, repeats: int):
    fn(params, cams)  # warm-up
    fwd, bwd, cpu = [], [], []
    for _ in range(repeats):
        for p in params:
            p.grad = None
        c0, t0 = time.process_time(), time.perf_counter()
        img, alpha, pairs = fn(params, cams)
        t1 = time.perf_counter()
        (img.sum() + alpha.sum()).backward()
        t2, c2 = time.perf_counter(), time.process_time()
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
        cpu.append(c2 - c0)
    return statistics.median(fwd), statistics.median(bwd), statistics.median(cpu), pairs, img.detach()




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cams = orbit_cameras(torch.tensor([0.3]), torch.tensor([0.2]), radius=2.0, width=SIZE)

    rows = []
    results = {}
    for name, fn, n in [("torch reference", render_reference, 50_000),
                        ("torch reference", render_reference, 2_000),
                        ("dense peer (all pixels x all Gaussians)", render_dense, 2_000)]:
        fwd, bwd, cpu, pairs, img = time_fwd_bwd(fn, scene(n), cams, args.repeats)
        results[(name, n)] = (fwd + bwd, img)
        rows.append((name, n, pairs, fwd, bwd, fwd + bwd, cpu))

    ref_total, ref_img = results[("torch reference", 2_000)]
    dense_total, dense_img = results[("dense peer (all pixels x all Gaussians)", 2_000)]
    max_diff = (ref_img - dense_img).abs().max().item()
    total_50k = rows[0][5]

    header = "| renderer | Gaussians | pairs evaluated | forward s | backward s | fwd+bwd s | CPU s (process) |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r[0]} | {r[1]:,} | {r[2]:,} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.3f} | {r[6]:.3f} |" for r in rows]
    summary = [
        (f"- 50k Gaussians, {SIZE}x{SIZE}, fwd+bwd: {total_50k:.3f} s (target <= 1 s: "
         f"{'met' if total_50k <= 1.0 else 'NOT met'}); load average during the run "
         f"{os.getloadavg()[0]:.1f} (wall times grow on a shared machine)"),
        (f"- 2k Gaussians: dense peer / reference = {dense_total / ref_total:.1f}x; "
         f"max |image difference| = {max_diff:.2e}"),
    ]
    table = "\n".join(lines + [""] + summary)
    print(table)

    if not args.no_write:
        machine = (f"{cpu_model()}, {torch.get_num_threads()} threads "
                   f"(of {os.cpu_count()} cores), torch {torch.__version__}, "
                   f"Python {platform.python_version()}")
        append_results("Gaussian rasterizer, CPU", (
            f"`python benchmarks/bench_rasterizer.py --repeats {args.repeats}`; median of {args.repeats} "
            f"runs; one camera, {SIZE}x{SIZE}, random Gaussians in the unit cube seen from distance 2.\n"
            f"Machine: {machine}.\n\n{table}\n"), [
            Figure("bench_rasterizer: 50k Gaussians", f"torch rasterizer, 50k Gaussians, {SIZE}x{SIZE}, forward + backward",
                   f"{total_50k:.3f} s", "", "", f"{cpu_model()}, {torch.get_num_threads()} threads"),
            Figure("bench_rasterizer: vs dense", f"2k Gaussians, {SIZE}x{SIZE}, forward + backward",
                   f"{ref_total:.3f} s (tiled)", f"{dense_total:.3f} s (dense: all pixels x all Gaussians)",
                   f"{dense_total / ref_total:.1f}x", f"{cpu_model()}, {torch.get_num_threads()} threads")])


if __name__ == "__main__":
    main()
