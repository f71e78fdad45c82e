"""VAR sampling with and without the KV cache, and training-step throughput, on CPU.

Prints a table and appends a dated section to benchmarks/RESULTS.md (one append), unless
--no-write. Measured: a small VAR (depth 4, width 256) with a random small tokenizer;
weights are random, so only speed is meaningful. Peer: the same sampler recomputing the
whole prefix under the block-causal mask at every scale (no cache).
"""

from __future__ import annotations

import argparse
import os
import platform

import torch
from machine import Figure, append_results, cpu_model, timed

from learnlib.var import VAR, autoregressive_sample, var_loss
from learnlib.vq import MultiScaleResidualQuantizer

SCHEDULES = {
    "VAR 10 scales (1..16)": (1, 2, 3, 4, 5, 6, 8, 10, 13, 16),
    "16 scales (1,2,...,16)": tuple(range(1, 17)),
}






def build(patch_nums, depth: int, width: int):
    torch.manual_seed(0)
    quant = MultiScaleResidualQuantizer(vocab_size=512, Cvae=8, patch_nums=patch_nums).eval()
    var = VAR(vocab_size=512, Cvae=8, num_classes=10, depth=depth, embed_dim=width, num_heads=width // 64,
              patch_nums=patch_nums, drop_path_rate=0.0).eval()
    return quant, var


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadier on a shared CPU)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    labels = torch.arange(args.batch) % 10

    rows = []
    for name, pns in SCHEDULES.items():
        quant, var = build(pns, args.depth, args.width)
        res = {}
        for cache in (True, False):
            def sample(var=var, quant=quant, cache=cache):
                return autoregressive_sample(var, quant, labels, cfg=1.5, top_k=50, seed=0, use_kv_cache=cache)

            res[cache] = timed(sample, args.repeats)
        check_a = autoregressive_sample(var, quant, labels, top_k=1, seed=0, return_logits=True)
        check_b = autoregressive_sample(var, quant, labels, top_k=1, seed=0, return_logits=True, use_kv_cache=False)
        diff = max((a - b).abs().max().item() for a, b in zip(check_a.logits, check_b.logits))
        rows.append((name, sum(p * p for p in pns), res[True], res[False], diff))

    # training-step throughput (teacher forcing, AdamW), sdpa vs explicit math attention
    train_rows = []
    pns = SCHEDULES["VAR 10 scales (1..16)"]
    quant, var = build(pns, args.depth, args.width)
    var.train()
    opt = torch.optim.AdamW(var.parameters(), lr=1e-4)
    idx = [torch.randint(0, 512, (args.batch, p * p)) for p in pns]
    x = quant.indices_to_var_input(idx)
    targets = torch.cat(idx, dim=1)  # (B, L)

    def step():
        loss = var_loss(var(labels, x), targets, pns)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for backend in ("sdpa", "reference"):
        for block in var.blocks:
            block.attn.backend = backend
        wall, cpu = timed(step, args.repeats)
        train_rows.append((backend, wall, cpu, args.batch * var.L / wall))

    machine = (f"{cpu_model()}, {threads} threads (of {os.cpu_count()} cores), torch {torch.__version__}, "
               f"Python {platform.python_version()}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        (f"`python benchmarks/bench_var_kv_cache.py --repeats {args.repeats} --threads {threads}`; "
         f"median of {args.repeats} runs; VAR depth {args.depth}, width {args.width}, vocab 512, Cvae 8, "
         f"batch {args.batch} (x2 for CFG), top-k 50, random weights."),
        f"Machine: {machine}. Load average at the end of the run: {load:.1f}.",
        "",
        "| schedule | tokens L | cached s (CPU s) | no cache s (CPU s) | speed-up wall (CPU) | max logit diff |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, L, (cw, cc), (nw, nc), diff in rows:
        lines.append(f"| {name} | {L} | {cw:.3f} ({cc:.3f}) | {nw:.3f} ({nc:.3f}) | {nw / cw:.2f}x ({nc / cc:.2f}x) "
                     f"| {diff:.1e} |")
    lines += ["", "| training step (teacher forcing + AdamW), L=680 | wall s | CPU s | tokens/s |",
              "|---|---:|---:|---:|"]
    for backend, wall, cpu, tps in train_rows:
        lines.append(f"| attention {backend} | {wall:.3f} | {cpu:.3f} | {tps:,.0f} |")
    wall_x, cpu_x = rows[0][3][0] / rows[0][2][0], rows[0][3][1] / rows[0][2][1]
    verdict = "met" if min(wall_x, cpu_x) >= 3 else "NOT met"
    summary = (f"- KV cache speed-up with VAR's schedule: {wall_x:.2f}x wall, {cpu_x:.2f}x process CPU "
               f"(target >= 3x: {verdict}); 16-scale schedule: {rows[1][3][0] / rows[1][2][0]:.2f}x wall, "
               f"{rows[1][3][1] / rows[1][2][1]:.2f}x CPU")
    lines += ["", summary, ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        append_results("VAR sampling: KV cache vs recompute, and training steps, CPU", text, [Figure(
            "bench_var_kv_cache", f"VAR sampling, depth {args.depth}, VAR's 10-scale schedule",
            f"{rows[0][2][0]:.3f} s (KV cache)", f"{rows[0][3][0]:.3f} s (recompute)", f"{wall_x:.2f}x",
            f"{cpu_model()}, {threads} threads")])


if __name__ == "__main__":
    main()
