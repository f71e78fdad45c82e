"""Training-step cost of the digits ViT on CPU, one choice at a time.

Each row changes one thing from the row above, from the former `vit_digits` setup
(element-wise dropout 0.1, fused CPU sdpa attention, per-tensor AdamW, items fetched one
by one) to the current one (stochastic depth 0.1, attention written out, fused AdamW,
batched fetch). A step = fetch a batch of 128 shifted digits, forward, backward, AdamW.
Prints a table and appends a dated section to benchmarks/RESULTS.md unless --no-write.

    python benchmarks/bench_vit_digits_step.py
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F
from machine import append_results, best_wall_and_cpu, cpu_model
from torch.utils.data import DataLoader, Dataset

from learnlib import models
from learnlib.data.digits import DigitsDataset

BATCH = 128


class OneByOne(Dataset):
    """The digits without their batched `__getitems__`: DataLoader fetches items one at a time."""

    def __init__(self, data: DigitsDataset):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        return self.data[index]


SETUPS = [  # (label, model overrides, AdamW options, batched fetch)
    ("former: dropout 0.1, sdpa, per-tensor AdamW, item-by-item fetch",
     {"drop_rate": 0.1, "drop_path_rate": 0.0, "attn_backend": "sdpa"}, {"foreach": False}, False),
    ("+ stochastic depth 0.1 instead of dropout",
     {"drop_rate": 0.0, "drop_path_rate": 0.1, "attn_backend": "sdpa"}, {"foreach": False}, False),
    ("+ attention written out (reference)",
     {"drop_rate": 0.0, "drop_path_rate": 0.1, "attn_backend": "reference"}, {"foreach": False}, False),
    ("+ fused AdamW", {"drop_rate": 0.0, "drop_path_rate": 0.1, "attn_backend": "reference"}, {"fused": True}, False),
    ("+ batched fetch (current vit_digits)", {}, {"fused": True}, True),
]


def step_fn(overrides: dict, adamw: dict, batched: bool):
    """A callable running `steps` training steps of vit_digits built with `overrides`."""
    torch.manual_seed(0)
    model = models.create("vit_digits", **overrides).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, **adamw)
    data = DigitsDataset("train", max_shift=1)
    loader = DataLoader(data if batched else OneByOne(data), batch_size=BATCH, shuffle=True, drop_last=True)
    batches = iter(())

    def step() -> None:
        nonlocal batches
        try:
            images, labels = next(batches)
        except StopIteration:
            batches = iter(loader)
            images, labels = next(batches)
        loss = F.cross_entropy(model(images), labels, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return lambda: [step() for _ in range(20)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fns = [(label, step_fn(*setup)) for label, *setup in SETUPS]
    measured = best_wall_and_cpu(dict(fns), args.repeats)
    best = {label: wall for label, (wall, _) in measured.items()}
    cpu = {label: cpu_s for label, (_, cpu_s) in measured.items()}
    first = best[fns[0][0]]
    rows = "".join(f"| {label} | {best[label] / 20 * 1e3:.1f} | {cpu[label] / 20 * 1e3:.1f} | "
                   f"{first / best[label]:.2f}x |\n" for label, _ in fns)
    table = "| setup | ms / step (wall) | CPU ms / step | vs former |\n|---|---:|---:|---:|\n" + rows
    print(table)
    if args.no_write:
        return
    load = os.getloadavg()[0]
    append_results("vit_digits training step, CPU", (
        f"`python benchmarks/bench_vit_digits_step.py`; best of {args.repeats} interleaved runs of 20 steps "
        f"(batch {BATCH}, 8x8 digits with +-1 px shifts, label smoothing 0.1).\n"
        f"Machine: {cpu_model()}, {args.threads} threads (of {os.cpu_count()} cores), torch {torch.__version__}; "
        f"load average at the end {load:.1f}.\n\n{table}"
    ))


if __name__ == "__main__":
    main()
