"""Class consistency and sampling speed of the trained digits VAR (checkpoints/var_digits), on CPU.

Class consistency: the fraction of class-conditional samples that the digits classifier
(checkpoints/vit_digits) labels as their conditioning class, for several guidance strengths
(peer: no guidance, cfg 0). For reference, the classifier's accuracy on held-out real digits,
read through the same 16x16 -> 8x8 conversion (guided samples are more typical than real digits
and can score higher). Speed: sampling with the KV cache vs
recomputing the prefix at every scale (peer), and the largest logit difference between them.
Prints a table and appends a dated section to benchmarks/RESULTS.md (one append) unless --no-write.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from machine import append_results, cpu_model, timed

from learnlib.data.digits import DigitsDataset
from learnlib.train import load_model
from learnlib.var import autoregressive_sample
from learnlib.var.evaluate import class_consistency, to_classifier_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--var", default="checkpoints/var_digits")
    parser.add_argument("--vqvae", default="checkpoints/vqvae_digits")
    parser.add_argument("--classifier", default="checkpoints/vit_digits")
    parser.add_argument("--samples-per-class", type=int, default=50)
    parser.add_argument("--cfg", type=float, nargs="+", default=[0.0, 1.5, 3.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=100, help="samples per timed sampling call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    var, vae, classifier = (load_model(p) for p in (args.var, args.vqvae, args.classifier))

    real = DigitsDataset("val", size=16)
    with torch.no_grad():
        predicted = classifier(to_classifier_input((real.images + 1) / 2)).argmax(-1)
    ceiling = (predicted == real.labels).float().mean().item()

    rows = []
    for cfg in args.cfg:
        start = time.perf_counter()
        res = class_consistency(var, vae, classifier, samples_per_class=args.samples_per_class, cfg=cfg,
                                seed=args.seed)
        rows.append((cfg, res, time.perf_counter() - start))

    labels = torch.arange(args.batch) % var.num_classes
    speed = {}
    for cache in (True, False):
        def sample(cache=cache):
            return autoregressive_sample(var, vae.quantize, labels, cfg=3.0, seed=0, use_kv_cache=cache)

        speed[cache] = timed(sample, args.repeats)
    a = autoregressive_sample(var, vae.quantize, labels, cfg=3.0, seed=0, return_logits=True)
    b = autoregressive_sample(var, vae.quantize, labels, cfg=3.0, seed=0, return_logits=True, use_kv_cache=False)
    diff = max((x - y).abs().max().item() for x, y in zip(a.logits, b.logits))
    same_tokens = all(torch.equal(x, y) for x, y in zip(a.indices, b.indices))

    threads = torch.get_num_threads()
    machine = (f"{cpu_model()}, {threads} thread(s) of {os.cpu_count()} cores, torch {torch.__version__}, "
               f"Python {platform.python_version()}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    n = args.samples_per_class
    lines = [
        (f"`python benchmarks/bench_var_digits.py --samples-per-class {n} --threads {threads}`; models "
         f"`{args.var}`, tokenizer `{args.vqvae}`, classifier `{args.classifier}`; seed {args.seed}, no top-k / top-p."),
        f"Machine: {machine}. Load average at the end of the run: {load:.1f}.",
        "",
        f"Classifier accuracy on the {len(real)} held-out real digits (16x16 -> 8x8, same conversion): {ceiling:.3f}.",
        "",
        f"| cfg | class consistency ({n} x 10 samples) | worst class | per class (0..9) | seconds |",
        "|---:|---:|---|---|---:|",
    ]
    for cfg, res, seconds in rows:
        per = res["per_class"]
        worst = min(range(len(per)), key=per.__getitem__)
        lines.append(f"| {cfg:g} | {res['overall']:.3f} | {worst} ({per[worst]:.2f}) | "
                     f"{' '.join(f'{p:.2f}' for p in per)} | {seconds:.1f} |")
    (cw, cc), (nw, nc) = speed[True], speed[False]
    lines += [
        "",
        f"| sampling {args.batch} digits (cfg 3, x2 for guidance), median of {args.repeats} | wall s | CPU s |",
        "|---|---:|---:|",
        f"| KV cache | {cw:.3f} | {cc:.3f} |",
        f"| no cache (peer: prefix recomputed under the block-causal mask) | {nw:.3f} | {nc:.3f} |",
        f"| speed-up | {nw / cw:.2f}x | {nc / cc:.2f}x |",
        "",
        f"- cached vs uncached logits: max |difference| {diff:.1e}; same sampled tokens: {same_tokens}",
        (f"- class consistency without guidance {rows[0][1]['overall']:.3f}, best with guidance "
         f"{max(r[1]['overall'] for r in rows):.3f} (classifier on real held-out digits: {ceiling:.3f})"),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        append_results("VAR digits: class consistency and KV-cache sampling, CPU", text)


if __name__ == "__main__":
    main()
