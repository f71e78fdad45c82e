"""Training memory: learnlib.memory's shape-only estimate against measurement on real CPU tensors.

Measured: parameter, gradient and AdamW state bytes counted from the tensors after one training
step, plus the bytes saved for backward (saved-tensor hooks, each storage once). Estimated:
`learnlib.memory.estimate` (FakeTensor trace, no data). Default: full-size ViT-B/16, VAR-d16 at
full width and sequence but 4 of its 16 blocks, and the VQ-VAE ch160 at 128x128 (the full-size
VAR and VQ-VAE take several minutes of forward passes on 2 cores: `--full`).

    python benchmarks/bench_memory.py              # appends to RESULTS.md
    python benchmarks/bench_memory.py --full       # full-size VAR-d16 and VQ-VAE at 256x256 too
    python benchmarks/bench_memory.py --smoke --no-write
    python benchmarks/bench_memory.py --peak       # estimated total vs the measured total peak of a whole step
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import torch
from machine import Figure, append_results, cpu_model, return_freed_memory

from learnlib import models
from learnlib.memory import estimate
from learnlib.memory.breakdown import MIB
from learnlib.memory.measure import measure_activations, measure_state, measure_total_peak

REDUCED = [("ViT-B/16", "vit_base_patch16_224", {}),
           ("VAR-d16, 4 of 16 blocks", "var_d16", {"depth": 4, "embed_dim": 1024, "num_heads": 16}),
           ("VQ-VAE ch160, 128x128", "vqvae_ch160", {"v_patch_nums": (1, 2, 3, 4, 5, 6, 8)})]
FULL = [("ViT-B/16", "vit_base_patch16_224", {}), ("VAR-d16", "var_d16", {}), ("VQ-VAE ch160, 256x256", "vqvae_ch160", {})]
SMOKE = [("ViT-Ti/16 depth 2, 64px", "vit_tiny_patch16_224", {"depth": 2, "img_size": 64}),
         ("VAR depth 2, width 128", "var_d16", {"depth": 2, "embed_dim": 128, "num_heads": 4, "patch_nums": (1, 2, 4)}),
         ("VQ-VAE ch32, 64x64", "vqvae_ch160", {"ch": 32, "v_patch_nums": (1, 2, 4)})]

# (label, model, overrides, batches): batches a learner would run that fit a 2-core CPU's RAM and minutes
PEAK = [("ViT-B/16", "vit_base_patch16_224", {}, (8, 16)), ("VAR-d16", "var_d16", {}, (2, 4)),
        ("VQ-VAE ch160, 256x256", "vqvae_ch160", {}, (1, 2))]
PEAK_SMOKE = [(label, name, kwargs, (4,)) for label, name, kwargs in SMOKE]
PEAK_HEADER = [("| model | batch | precision | total MiB est | total peak MiB meas | est/meas | state MiB est | "
                "state MiB meas | saved MiB est | saved MiB meas | transient MiB est | transient MiB meas | "
                "measure s |"), "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]


def compare(label: str, name: str, kwargs: dict, batches: tuple[int, ...]) -> list[str]:
    """Table rows estimate vs measurement for one model at every batch and precision."""
    torch.manual_seed(0)
    model = models.create(name, **kwargs)
    state = measure_state(model, "adamw", batch=1)
    state_bytes = sum(state.values())
    rows = []
    for precision in ("fp32", "bf16"):
        for batch in batches:
            est = estimate(model, batch, precision=precision)
            start = time.perf_counter()
            measured = measure_activations(model, batch, precision)
            seconds = time.perf_counter() - start
            total = state_bytes + measured
            rows.append(f"| {label} | {batch} | {precision} | {est.model_state / MIB:,.1f} | {state_bytes / MIB:,.1f} | "
                        f"{est.activations / MIB:,.1f} | {measured / MIB:,.1f} | {est.activations / measured:.3f} | "
                        f"{(est.model_state + est.activations) / total:.3f} | "
                        f"{seconds:.1f} |")
            print(rows[-1], flush=True)
    del model
    return rows


def peak_row(label: str, name: str, kwargs: dict, batch: int, precision: str) -> tuple[str, float]:
    """(table row, est/meas) of the estimated total against the measured total peak of one whole CPU step."""
    return_freed_memory()
    torch.manual_seed(0)
    model = models.create(name, **kwargs)
    est = estimate(model, batch, precision=precision)
    start = time.perf_counter()
    meas = measure_total_peak(model, batch, precision, with_saved=True)
    seconds = time.perf_counter() - start
    ratio = est.total / meas.total
    cells = [f"{v / MIB:,.1f}" for v in (est.total, meas.total)] + [f"{ratio:.3f}"] + [
        f"{v / MIB:,.1f}" for v in (est.model_state, meas.state, est.activations, meas.saved, est.transient,
                                     meas.step_peak - meas.saved)]
    return f"| {label} | {batch} | {precision} | {' | '.join(cells)} | {seconds:.0f} |", ratio


def main_peak(args) -> None:
    """The --peak table, appended to RESULTS.md with the current figure. Each row runs in a fresh process: what
    one full-size step leaves in the process (the C library's and BLAS's freed buffers) is not the next one's."""
    print("\n".join(PEAK_HEADER), flush=True)
    cases = [(label, name, kwargs, batch, precision) for label, name, kwargs, batches in
             (PEAK_SMOKE if args.smoke else PEAK) for precision in ("fp32", "bf16") for batch in batches]
    start = time.perf_counter()
    results = []
    with ProcessPoolExecutor(1, multiprocessing.get_context("spawn"), max_tasks_per_child=1) as pool:
        for row, ratio in pool.map(peak_row, *zip(*cases, strict=True)):
            print(row, flush=True)
            results.append((row, ratio))
    seconds = time.perf_counter() - start
    if args.no_write or args.smoke:
        return
    ratios = [ratio for _, ratio in results]
    machine = f"{cpu_model()}, {torch.get_num_threads()} threads"
    append_results("Training memory: estimated total vs measured total peak of a step, CPU", (
        "`python benchmarks/bench_memory.py --peak`: one training step (forward, backward, fused AdamW step) on random "
        "inputs, fp32 and bf16 autocast, each row in a fresh process. Measured total peak = parameters + gradients "
        "(kept allocated, zeroed) + AdamW moments + buffers before the step (state), plus the highest point torch's "
        "CPU allocator reaches above them during forward, backward and the optimizer step "
        "(`learnlib.memory.measure_total_peak`, torch.profiler memory events); saved = what the forward saves for "
        "backward; transient = the peak above state + saved. Estimate: `learnlib.memory.estimate` (FakeTensor traces "
        "of the forward and backward at batch 1, 2 and 3, extrapolated; the buffers oneDNN's convolution backward "
        f"allocates inside the kernel are not counted). Machine: {machine}, torch {torch.__version__}; {seconds:.0f} s in all.\n\n"
        + "\n".join(PEAK_HEADER + [row for row, _ in results]) + "\n"),
        [Figure("bench_memory: total peak", "estimated total vs measured total peak of a CPU training step (ViT-B/16 "
                "batch 8, 16; VAR-d16 batch 2, 4; VQ-VAE ch160 256 px batch 1, 2; fp32 and bf16)",
                f"est/meas {min(ratios):.3f} to {max(ratios):.3f} ({len(ratios)} rows)",
                "measured (torch's CPU allocator events)", f"{min(ratios):.3f} to {max(ratios):.3f}", machine)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size VAR-d16 and VQ-VAE (minutes on 2 cores)")
    parser.add_argument("--smoke", action="store_true", help="tiny models: checks the script runs")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    parser.add_argument("--peak", action="store_true", help="estimated total vs the measured total peak of a whole step")
    args = parser.parse_args()
    if args.peak:
        main_peak(args)
        return
    configs = SMOKE if args.smoke else FULL if args.full else REDUCED
    header = [("| model | batch | precision | state MiB est | state MiB meas | saved MiB est | saved MiB meas | "
               "saved est/meas | total est/meas | measure s |"), "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(header), flush=True)
    start = time.perf_counter()
    rows = [row for label, name, kwargs in configs for row in compare(label, name, kwargs, (1, 2))]
    seconds = time.perf_counter() - start
    text = "\n".join(header + rows)
    if args.no_write or args.smoke:
        return
    append_results("Training memory: estimate vs measurement on CPU", (
        f"`python benchmarks/bench_memory.py{' --full' if args.full else ''}`; state = parameters + gradients + "
        f"AdamW states (+ buffers) counted from the tensors after one step; saved = bytes saved for backward by "
        f"one training forward (saved-tensor hooks, each storage once, parameters excluded); bf16 = autocast. "
        f"Estimate: `learnlib.memory.estimate` (FakeTensor trace, no data). Machine: {cpu_model()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}; {seconds:.0f} s in all.\n\n{text}\n"))


if __name__ == "__main__":
    main()
