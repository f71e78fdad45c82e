"""Training memory of the SLat VAE: learnlib.memory's voxel-budget estimate against measurement on CPU tensors.

Measured: the bytes one training forward (encode, decode, render, loss) saves for backward on the
synthetic shell object (saved-tensor hooks, each storage once; with checkpointing plus the blocks'
inputs the checkpoints keep), and the AdamW state after one step. Estimated: learnlib.slat.memory
(two blocks per half measured at 512 and 1024 voxels, 32 and 64 px, then extrapolated).
Default: slat_vae_tiny as experiment slat_vae_meshes runs it (8 Gaussians per voxel, 64 px, no LPIPS);
`--full`: the full-size slat_vae_swin8_b_64l8 (12 + 12 blocks, LPIPS) at 1536 voxels, 128 px, bf16.

    python benchmarks/bench_memory_slat.py            # appends to RESULTS.md
    python benchmarks/bench_memory_slat.py --full --no-write
"""

from __future__ import annotations

import argparse
import time

import torch
from machine import append_results, cpu_model

from learnlib import models
from learnlib.memory.breakdown import MIB
from learnlib.memory.estimate import estimate_workload
from learnlib.memory.measure import measure_state
from learnlib.slat.losses import TRELLIS_LOSS_WEIGHTS
from learnlib.slat.memory import RenderSetting, lpips_network, slat_workload
from learnlib.slat.memory_step import measure_saved

SPARSE = {"sdpa": "sdpa", "math": "reference"}
TINY_CASES = [(p, b, c, n) for p in ("fp32", "bf16") for b, c in (("sdpa", False), ("math", False), ("sdpa", True))
              for n in (700, 2000)]
FULL_CASES = [("bf16", "sdpa", False, 1536), ("bf16", "sdpa", True, 1536)]


def rows(model, setting: RenderSetting, cases) -> list[str]:
    """One table row per (precision, attention, checkpointing, voxels)."""
    workload = slat_workload(model, setting)
    lpips_fn = lpips_network(setting.weights)
    out = []
    for precision, backend, ckpt, voxels in cases:
        est = estimate_workload(workload, voxels, precision, "adamw", "ddp", 1, ckpt, backend)
        start = time.perf_counter()
        meas = measure_saved(model, voxels, setting.image_size, setting.views, setting.objects, precision,
                             SPARSE[backend], ckpt, setting.weights, lpips_fn).total
        seconds = time.perf_counter() - start
        row = (f"| {precision} | {backend} | {'yes' if ckpt else 'no'} | {voxels} | {est.activations / MIB:,.2f} | "
               f"{meas / MIB:,.2f} | {est.activations / meas:.3f} | {seconds:.1f} |")
        print(row, flush=True)
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full-size VAE at 1536 voxels (minutes on 2 cores)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.full:
        model = models.create("slat_vae_swin8_b_64l8")
        setting, cases, label = RenderSetting(128, 1, 1, TRELLIS_LOSS_WEIGHTS), FULL_CASES, "slat_vae_swin8_b_64l8"
    else:
        model = models.create("slat_vae_tiny", decoder={"num_gaussians": 8})
        setting, cases, label = RenderSetting(64), TINY_CASES, "slat_vae_tiny (8 Gaussians per voxel)"
    header = ["| precision | attention | checkpointing | voxels | saved MiB est | saved MiB meas | est/meas | measure s |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    print("\n".join(header), flush=True)
    start = time.perf_counter()
    table = rows(model, setting, cases)
    state = measure_state(model, "adamw", batch=512)
    est = estimate_workload(slat_workload(model, setting), 512, "fp32", "adamw", "ddp", 1, False, "sdpa")
    state_line = (f"AdamW state (parameters, gradients, moments) in bytes: estimated {est.parameters:,}, "
                  f"{est.gradients:,}, {est.optimizer_states:,}; measured {state['parameters']:,}, "
                  f"{state['gradients']:,}, {state['optimizer_states']:,}.")
    print(state_line)
    seconds = time.perf_counter() - start
    if args.no_write:
        return
    append_results("Training memory of the SLat VAE: estimate vs measurement on CPU", (
        f"`python benchmarks/bench_memory_slat.py{' --full' if args.full else ''}`: {label}, one object on the "
        f"synthetic shell, {setting.views} view of {setting.image_size} px; saved = bytes saved for backward by one "
        f"training forward (saved-tensor hooks, each storage once, parameters excluded; with checkpointing plus the "
        f"blocks' inputs); bf16 = autocast; math = the sparse reference loop. Estimate: `learnlib.slat.memory` "
        f"(measured at 512 and 1024 voxels, 32 and 64 px, extrapolated). Machine: {cpu_model()}, "
        f"{torch.get_num_threads()} thread(s), torch {torch.__version__}; {seconds:.0f} s in all.\n\n"
        + "\n".join(header + table) + f"\n\n{state_line}\n"))


if __name__ == "__main__":
    main()
