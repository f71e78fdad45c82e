"""Training memory of the SLat VAE: learnlib.memory's voxel-budget estimate against measurement on CPU tensors.

Measured: the bytes one training forward (encode, decode, render, loss) saves for backward on the
synthetic shell object (saved-tensor hooks, each storage once; with checkpointing plus the blocks'
inputs the checkpoints keep), and the AdamW state after one step. Estimated: learnlib.slat.memory
(two blocks per half measured at 512 and 1024 voxels, 32 and 64 px, then extrapolated).
Default: slat_vae_tiny as experiment slat_vae_meshes runs it (8 Gaussians per voxel, 64 px, no LPIPS);
`--full`: the full-size slat_vae_swin8_b_64l8 (12 + 12 blocks, LPIPS) at 1536 voxels, 128 px, bf16.

    python benchmarks/bench_memory_slat.py            # appends to RESULTS.md
    python benchmarks/bench_memory_slat.py --full --no-write
    python benchmarks/bench_memory_slat.py --peak     # total peak of a whole step (state + saved + transient)
    python benchmarks/bench_memory_slat.py --peak --full   # the same for the full-size VAE at 2048 and 4096 voxels
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import torch
from machine import Figure, append_results, cpu_model, return_freed_memory

from learnlib import models
from learnlib.memory.breakdown import MIB
from learnlib.memory.estimate import estimate_workload
from learnlib.memory.measure import measure_state
from learnlib.slat.losses import TRELLIS_LOSS_WEIGHTS
from learnlib.slat.memory import RenderSetting, lpips_network, slat_workload
from learnlib.slat.memory_step import measure_peak, measure_saved

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


PEAK_CASES = [("fp32", "sdpa", 700), ("fp32", "sdpa", 2000), ("bf16", "math", 2000)]
FULL_PEAK_CASES = [(p, "sdpa", n) for p in ("bf16", "fp32") for n in (2048, 4096)]
FULL_PEAK_PX = 64  # small enough for a step of about 90 s on 2 cores (forward + backward at 4096 voxels)
FULL_PEAK_SETTING = RenderSetting(FULL_PEAK_PX, 1, 1, TRELLIS_LOSS_WEIGHTS)


def peak_rows(model, setting: RenderSetting, cases) -> list[str]:
    """One row per case: the estimated total against the measured total peak of a whole CPU step."""
    workload = slat_workload(model, setting)
    lpips_fn = lpips_network(setting.weights)
    out = []
    for precision, backend, voxels in cases:
        est = estimate_workload(workload, voxels, precision, "adamw", "ddp", 1, False, backend)
        meas = measure_peak(model, voxels, setting.image_size, setting.views, setting.objects, precision,
                            SPARSE[backend], setting.weights, lpips_fn, with_saved=True)
        row = (f"| {precision} | {backend} | {voxels} | {est.total / MIB:,.2f} | {meas.total / MIB:,.2f} | "
               f"{est.total / meas.total:.3f} | {est.transient / MIB:,.2f} | "
               f"{(meas.step_peak - meas.saved) / MIB:,.2f} |")
        print(row, flush=True)
        out.append(row)
    return out


def full_peak_row(case) -> str:
    """The --full row of `case` (precision, attention, voxels): the full-size VAE built, calibrated and measured in
    this process."""
    return_freed_memory()
    torch.manual_seed(0)
    return peak_rows(models.create("slat_vae_swin8_b_64l8"), FULL_PEAK_SETTING, [case])[0]


def main_peak(args) -> None:
    """The --peak table: slat_vae_tiny as slat_vae_meshes runs it, or (--full) the full-size VAE, each case in a
    fresh process (what one full-size step leaves in the process is not the next one's)."""
    torch.manual_seed(0)
    if args.full:
        setting, cases = FULL_PEAK_SETTING, FULL_PEAK_CASES
        what = (f"slat_vae_swin8_b_64l8 (12 + 12 blocks, width 768, 32 Gaussians per voxel), the TRELLIS loss "
                f"(L1, SSIM, LPIPS-VGG with random weights, KL, regularizers), one object on the synthetic shell, "
                f"1 view of {FULL_PEAK_PX} px (a render size small enough for a CPU step of about 90 s), AdamW")
    else:
        model = models.create("slat_vae_tiny", decoder={"num_gaussians": 8})
        setting, cases = RenderSetting(64), PEAK_CASES
        what = ("slat_vae_tiny (8 Gaussians per voxel) as experiment slat_vae_meshes runs it, one object on the "
                "synthetic shell, 1 view of 64 px, AdamW")
    header = [("| precision | attention | voxels | total MiB est | total peak MiB meas | est/meas | "
               "transient MiB est | transient MiB meas |"), "|---|---|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(header), flush=True)
    start = time.perf_counter()
    if args.full:
        with ProcessPoolExecutor(1, multiprocessing.get_context("spawn"), max_tasks_per_child=1) as pool:
            table = list(pool.map(full_peak_row, cases))
    else:
        table = peak_rows(model, setting, cases)
    seconds = time.perf_counter() - start
    if args.no_write:
        return
    machine = f"{cpu_model()}, {torch.get_num_threads()} thread(s)"
    figures = []
    if args.full:
        ratios = [float(row.split(" | ")[5]) for row in table]
        figures = [Figure("bench_memory_slat: total peak", f"SLat VAE swin8_b_64l8, estimated total vs measured total "
                          f"peak of a CPU step, {', '.join(str(n) for n in sorted({c[2] for c in cases}))} voxels, "
                          f"{FULL_PEAK_PX} px, bf16 and fp32",
                          f"est/meas {min(ratios):.3f} to {max(ratios):.3f} ({len(ratios)} rows)",
                          "measured (torch's CPU allocator events)", f"{min(ratios):.3f} to {max(ratios):.3f}",
                          machine)]
    append_results("Training memory of the SLat VAE: estimated total vs measured total peak, CPU", (
        f"`python benchmarks/bench_memory_slat.py --peak{' --full' if args.full else ''}`: {what}"
        f"{'; each row in a fresh process' if args.full else ''}. Measured total "
        "peak = parameters + gradients (kept allocated) + AdamW moments + buffers before the step, plus the highest "
        "point torch's CPU allocator reaches above them during forward, backward and the optimizer step "
        "(`learnlib.nn.step_peak`, torch.profiler memory events). Estimate: `learnlib.memory` total with the SLat "
        "workload's transient (calibrated at 512 and 1024 voxels, 32 and 64 px on two blocks per half; the voxel "
        "counts here are not calibration points); transient = peak above the saved tensors (the PyTorch "
        f"rasterizer's (pixel, Gaussian) temporaries and the backward's). Machine: {machine}, "
        f"torch {torch.__version__}; {seconds:.0f} s in all.\n\n" + "\n".join(header + table) + "\n"), figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true",
                        help="the full-size VAE (1536 voxels; with --peak 2048 and 4096; minutes on 2 cores)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    parser.add_argument("--peak", action="store_true", help="estimated total vs measured total peak of a whole step")
    args = parser.parse_args()
    if args.peak:
        main_peak(args)
        return
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
