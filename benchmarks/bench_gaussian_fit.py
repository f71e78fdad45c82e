"""Fitting Gaussians to the bunny on CPU: held-out-view PSNR against iterations, and the time it takes.

Measured: `learnlib.splat.fit.fit_gaussians` on pymeshlab's Stanford bunny (upright, coloured by its
normals, unshaded, 4x supersampled targets), 24 training and 8 held-out Hammersley views at
SIZE x SIZE, Gaussians initialized on 2,000 surface samples, 4 views per step. One run of the
largest step count; the held-out PSNR and the training time (wall and process CPU, evaluation
excluded) are read at each checkpoint. Peer in the same run: the initialization (step 0).

Prints a table and appends one dated section to benchmarks/RESULTS.md.

    python benchmarks/bench_gaussian_fit.py [--steps 200 500 1000] [--size 32] [--gaussians 2000]
                                            [--threads 2] [--no-write]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import torch
from machine import append_results, cpu_model

from learnlib.data.mesh_render import mesh_targets
from learnlib.data.meshes import load_sample_mesh, normalize_to_unit_cube, sample_surface
from learnlib.splat import hammersley_cameras
from learnlib.splat.fit import color_by_normals, fit_gaussians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[200, 500, 1000])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--gaussians", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoints = sorted(set(args.steps))

    t0, c0 = time.perf_counter(), time.process_time()
    bunny = color_by_normals(normalize_to_unit_cube(load_sample_mesh("bunny", up_axis="y")))
    train_cams = hammersley_cameras(24, radius=2.0, width=args.size)
    test_cams = hammersley_cameras(8, radius=2.0, width=args.size, offset=(0.5, 0.37))
    train, held_out = mesh_targets(bunny, train_cams), mesh_targets(bunny, test_cams)
    targets_wall, targets_cpu = time.perf_counter() - t0, time.process_time() - c0

    every = math.gcd(*checkpoints)  # evaluate at every checkpoint
    _, history = fit_gaussians(train, train_cams, sample_surface(bunny, args.gaussians, seed=0)[0],
                               steps=checkpoints[-1], batch_views=4, eval_images=held_out, eval_cameras=test_cams,
                               eval_every=every, seed=0, progress=False)
    load = os.getloadavg()[0]

    rows = [(s, history.train_psnr[i], history.eval_psnr[i], history.wall_s[i], history.cpu_s[i])
            for i, s in enumerate(history.eval_steps) if s == 0 or s in checkpoints]
    lines = ["| steps | train PSNR dB | held-out PSNR dB | wall s | CPU s (process) | CPU ms / step |",
             "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {s} (init) | {tr:.2f} | {ev:.2f} | - | - | - |" if s == 0 else
              f"| {s} | {tr:.2f} | {ev:.2f} | {w:.1f} | {c:.1f} | {1000 * c / s:.0f} |" for s, tr, ev, w, c in rows]
    summary = [(f"- {args.gaussians:,} Gaussians, {args.size}x{args.size} images, 24 training / 8 held-out views, "
                f"4 views per step; targets rendered in {targets_wall:.1f} s wall ({targets_cpu:.1f} s CPU)"),
               (f"- times exclude the PSNR evaluations; 1-min load average at the end {load:.1f} "
                "(wall time grows on a shared machine; process CPU time also counts threads spinning "
                "while they wait for a core)")]
    table = "\n".join(lines + [""] + summary)
    print(table)

    if not args.no_write:
        machine = (f"{cpu_model()}, torch.set_num_threads({args.threads}) (of {os.cpu_count()} cores), "
                   f"torch {torch.__version__}, Python {platform.python_version()}")
        command = "python benchmarks/bench_gaussian_fit.py " + " ".join(
            [f"--steps {' '.join(map(str, checkpoints))}", f"--size {args.size}", f"--gaussians {args.gaussians}",
             f"--threads {args.threads}"])
        append_results("Gaussian fit on the bunny, CPU", (
            f"`{command}`; one run of {checkpoints[-1]} steps (the position learning rate decays over "
            f"the whole run), read at each checkpoint.\nMachine: {machine}.\n\n{table}\n"))


if __name__ == "__main__":
    main()
