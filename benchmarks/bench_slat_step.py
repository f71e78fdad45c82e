"""Forward + backward cost of the tiny structured-latent VAE (slat_vae_tiny) on CPU.

Four objects, each a voxelized spherical shell of a different radius at resolution 32 (2k to 4k
surface voxels, as TRELLIS's surface voxels), 32-channel features; one step = encoder + decoder
forward (Gaussian parameters of every voxel) and backward of a loss over every Gaussian. The
peer is the same step with activation checkpointing of every block (use_checkpoint=True).
Rendering is not included. Prints a table and appends a dated section to benchmarks/RESULTS.md
unless --no-write.

    OMP_NUM_THREADS=2 python benchmarks/bench_slat_step.py
"""

from __future__ import annotations

import argparse
import os

import torch
from machine import append_results, best_wall_and_cpu, cpu_model

from learnlib import models
from learnlib.sparse import SparseTensor

RADII = (10.0, 11.5, 12.5, 13.5)
HALF_THICKNESS = 0.8  # voxels; shells about 1.6 voxels thick
RESOLUTION = 32


def shell_batch(radii=RADII, resolution=RESOLUTION, channels=32, seed=0) -> SparseTensor:
    """Voxels within HALF_THICKNESS of spheres of the given radii, centred in the grid, one object each."""
    axis = torch.arange(resolution) + 0.5 - resolution / 2
    r = torch.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)  # (R, R, R)
    rows = []
    for b, radius in enumerate(radii):
        xyz = torch.nonzero((r - radius).abs() < HALF_THICKNESS)  # (n, 3)
        rows.append(torch.cat([torch.full((len(xyz), 1), b), xyz], dim=1))  # (n, 4)
    coords = torch.cat(rows).int()  # (N, 4)
    feats = torch.randn(len(coords), channels, generator=torch.Generator().manual_seed(seed))
    return SparseTensor(feats, coords, resolution=resolution)


def step(vae, x):
    vae.zero_grad(set_to_none=True)
    out = vae(x, generator=torch.Generator().manual_seed(0))
    loss = out.kl + sum(g.means.square().mean() + g.scales.mean() + g.opacities.mean() + g.colors.mean()
                        for g in out.gaussians)
    loss.backward()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = shell_batch()
    counts = [sl.stop - sl.start for sl in x.layout]
    plain = models.create("slat_vae_tiny")
    ckpt = models.create("slat_vae_tiny", use_checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    for vae in (plain, ckpt):  # away from the zero-initialised output layers
        for layer in (vae.encoder.out_layer, vae.decoder.out_layer):
            torch.nn.init.normal_(layer.weight, std=0.02, generator=torch.Generator().manual_seed(1))
    times = best_wall_and_cpu({"plain": lambda: step(plain, x), "checkpointed": lambda: step(ckpt, x)}, args.repeats)
    what = (f"slat_vae_tiny fwd+bwd, 4 objects, {sum(counts)} voxels ({', '.join(map(str, counts))}), "
            f"res {RESOLUTION}, {sum(counts) * 32} Gaussians")
    table = ["| measured | peer | peer s | ours | ours s | ratio |", "|---|---|---|---|---|---|",
             (f"| {what} | use_checkpoint=True | {times['checkpointed'][0]:.3f} | plain | {times['plain'][0]:.3f} | "
             f"{times['checkpointed'][0] / times['plain'][0]:.2f}x |")]
    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    body = (f"Machine: {cpu_model()}, torch {torch.__version__}, OMP_NUM_THREADS={threads}; best of {args.repeats} "
            "interleaved steps.\n\n" + "\n".join(table) + "\n")
    print(body)
    if not args.no_write:
        append_results("Structured-latent VAE step, tiny config, CPU", body)


if __name__ == "__main__":
    main()
