"""Training-step throughput of learnlib's ViT against timm's VisionTransformer on the CPU.

Both models get the same config, the same weights (timm's, loaded into learnlib), the same
batch and the same AdamW step; the timed loop alternates between them so that a busy
machine slows both alike. Prints a table and appends a dated section to RESULTS.md.

    python benchmarks/bench_vit_vs_timm.py                  # ViT-S/16, 224 px, batch 8, 2 threads
    python benchmarks/bench_vit_vs_timm.py --model vit_tiny_patch16_224 --batch 16

timm is not a dependency of learnlib: run this from an environment that has it
(with learnlib importable, e.g. PYTHONPATH=. from the repository root).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from machine import Figure, append_results, cpu_model

from learnlib.models import count_parameters, create


def train_step(model, optimizer, x, y) -> None:
    loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def seconds_per_step(model, optimizer, x, y, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, x, y)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vit_small_patch16_224", help="a name both registries know")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()

    try:
        import timm
    except ImportError:
        sys.exit("timm is not installed in this environment; install it (with a matching torch) to run this")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ref = timm.create_model(args.model, pretrained=False, img_size=args.img_size)
    ours = create(args.model, img_size=args.img_size)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(args.batch, 3, args.img_size, args.img_size)
    y = torch.randint(0, ref.num_classes, (args.batch,))
    with torch.no_grad():
        max_diff = (ours.eval()(x) - ref.eval()(x)).abs().max().item()

    models = {"learnlib": ours.train(), "timm": ref.train()}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}
    for name, model in models.items():
        for _ in range(args.warmup):
            train_step(model, optimizers[name], x, y)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            times[name].append(seconds_per_step(model, optimizers[name], x, y, args.steps))

    rate = {name: args.batch / statistics.median(t) for name, t in times.items()}
    ratio = rate["learnlib"] / rate["timm"]
    config = (f"{args.model}, {args.img_size} px, batch {args.batch}, AdamW train step, "
              f"{args.rounds} rounds x {args.steps} steps (median), {count_parameters(ours):,} parameters")
    machine = (f"{cpu_model()}, {os.cpu_count()} cores, torch.set_num_threads({args.threads}), "
               f"torch {torch.__version__}, timm {timm.__version__}, Python {platform.python_version()}, "
               f"load average {os.getloadavg()[0]:.1f} at start")
    table = "\n".join([
        "| implementation | s / step (median) | images / s |",
        "| --- | --- | --- |",
        *(f"| {name} | {statistics.median(t):.3f} | {rate[name]:.2f} |" for name, t in times.items()),
        f"| ratio learnlib / timm | | {ratio:.3f} |",
    ])
    body = (f"- config: {config}\n- machine: {machine}\n"
            f"- same weights: max |logit difference| {max_diff:.1e} before training\n\n{table}\n")
    print(body)
    if not args.no_write:
        append_results("ViT training step: learnlib vs timm (CPU)", body, [Figure(
            "bench_vit_vs_timm", f"{args.model} training step, {args.img_size} px, batch {args.batch}",
            f"{rate['learnlib']:.2f} images/s", f"{rate['timm']:.2f} images/s (timm)", f"{ratio:.3f}",
            f"{cpu_model()}, {args.threads} threads")])


if __name__ == "__main__":
    main()
