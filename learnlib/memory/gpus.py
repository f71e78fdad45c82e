"""GPUs, whether a training step fits on one, and the largest batch per device that does."""

from __future__ import annotations

import math

from learnlib.memory.breakdown import GIB, MemoryBreakdown
from learnlib.memory.estimate import estimate_workload, saved_profile
from learnlib.workloads import Workload

# Memory per GPU as nvidia-smi reports it, in GiB.
GPUS = {
    "H100-80GB": 79.6,
    "A100-40GB": 40.0,
    "A100-80GB": 80.0,
    "H200-141GB": 140.4,
    "RTX4090-24GB": 24.0,
    "L40S-48GB": 45.0,
}
GPU_ALIASES = {"H200": "H200-141GB", "RTX4090": "RTX4090-24GB", "L40S": "L40S-48GB", "H100": "H100-80GB"}
# What the estimate leaves out: the CUDA context with cuBLAS/cuDNN/NCCL workspaces (a fixed
# amount) and allocator fragmentation (a share of the estimate). The step's transient tensors
# (gradients of activations, the loss's temporaries) are in the estimate (learnlib.memory.transient).
CONTEXT_GIB = 1.5
SLACK = 0.10
ALLOWANCE_NOTE = (f"allowance: {CONTEXT_GIB} GiB for the CUDA context and library workspaces, plus "
                  f"{SLACK:.0%} of the estimate for allocator fragmentation")


def gpu_capacity(gpu: str) -> float:
    """Memory of `gpu` in GiB; ValueError naming the known GPUs otherwise."""
    name = GPU_ALIASES.get(gpu, gpu)
    if name not in GPUS:
        raise ValueError(f"unknown gpu {gpu!r}; valid values: {', '.join(GPUS)}")
    return GPUS[name]


def needed_gib(breakdown: MemoryBreakdown) -> float:
    """GiB a device needs for `breakdown`: the estimate plus the allowance."""
    return breakdown.total * (1 + SLACK) / GIB + CONTEXT_GIB


def fits(breakdown: MemoryBreakdown, gpu: str) -> bool:
    """True when the step of `breakdown` fits in the memory of `gpu`, allowance included."""
    return needed_gib(breakdown) <= gpu_capacity(gpu)


def largest_batch(workload: Workload, gpu: str, precision: str, optimizer: str = "adamw", strategy: str = "ddp",
                  world_size: int = 1, activation_checkpointing: bool = False,
                  attention_backend: str | None = None, ema: bool = False) -> int:
    """The largest batch per device whose step fits on `gpu` (0 when even batch 1 does not), in the unit of
    the model's family (items; the SLat VAE: voxels, to 0.1 %)."""
    capacity = gpu_capacity(gpu)
    settings = (precision, optimizer, strategy, world_size, activation_checkpointing, attention_backend)
    budget_bytes = (capacity - CONTEXT_GIB) * GIB / (1 + SLACK)
    own = workload.family.largest(workload, lambda b: estimate_workload(workload, b, *settings, ema=ema).total,
                                  budget_bytes)
    if own is not None:
        return own
    def total_at(batch: int) -> int:
        return estimate_workload(workload, batch, *settings, ema=ema,
                                 profile=saved_profile(workload, batch, precision, attention_backend,
                                                         activation_checkpointing)).total

    one, two = total_at(1), total_at(2)
    if one > budget_bytes:
        return 0
    # the total is convex in the batch (linear, plus a transient whose peak may move to a steeper op): the
    # line through batch 1 and 2 bounds it from below, so its crossing bounds the answer from above
    per_item = two - one
    hi = 1 + (math.floor((budget_bytes - one) / per_item) if per_item > 0 else 10**9)
    if hi == 10**9 + 1 or total_at(hi) <= budget_bytes:
        return hi
    lo = 1
    while hi - lo > 1:  # total_at(lo) fits, total_at(hi) does not
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if total_at(mid) <= budget_bytes else (lo, mid)
    return lo
