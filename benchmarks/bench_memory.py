"""Training memory: learnlib.memory's shape-only estimate against measurement on real CPU tensors.

Measured: parameter, gradient and AdamW state bytes counted from the tensors after one training
step, plus the bytes saved for backward (saved-tensor hooks, each storage once). Estimated:
`learnlib.memory.estimate` (FakeTensor trace, no data). Default: full-size ViT-B/16, VAR-d16 at
full width and sequence but 4 of its 16 blocks, and the VQ-VAE ch160 at 128x128 (the full-size
VAR and VQ-VAE take several minutes of forward passes on 2 cores: `--full`).

    python benchmarks/bench_memory.py              # appends to RESULTS.md
    python benchmarks/bench_memory.py --full       # full-size VAR-d16 and VQ-VAE at 256x256 too
    python benchmarks/bench_memory.py --smoke --no-write
"""

from __future__ import annotations

import argparse
import time

import torch
from machine import append_results, cpu_model

from learnlib import models
from learnlib.memory import estimate
from learnlib.memory.breakdown import MIB
from learnlib.memory.measure import measure_activations, measure_state

REDUCED = [("ViT-B/16", "vit_base_patch16_224", {}),
           ("VAR-d16, 4 of 16 blocks", "var_d16", {"depth": 4, "embed_dim": 1024, "num_heads": 16}),
           ("VQ-VAE ch160, 128x128", "vqvae_ch160", {"v_patch_nums": (1, 2, 3, 4, 5, 6, 8)})]
FULL = [("ViT-B/16", "vit_base_patch16_224", {}), ("VAR-d16", "var_d16", {}), ("VQ-VAE ch160, 256x256", "vqvae_ch160", {})]
SMOKE = [("ViT-Ti/16 depth 2, 64px", "vit_tiny_patch16_224", {"depth": 2, "img_size": 64}),
         ("VAR depth 2, width 128", "var_d16", {"depth": 2, "embed_dim": 128, "num_heads": 4, "patch_nums": (1, 2, 4)}),
         ("VQ-VAE ch32, 64x64", "vqvae_ch160", {"ch": 32, "v_patch_nums": (1, 2, 4)})]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size VAR-d16 and VQ-VAE (minutes on 2 cores)")
    parser.add_argument("--smoke", action="store_true", help="tiny models: checks the script runs")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
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
