"""`estimate`: the memory of one training step per device, from the model's shapes (no data, no FLOPs).

Conventions (what each part holds):
- Precision is torch autocast, as `learnlib.train` runs it: parameters stay fp32 (under
  bf16/fp16 the fp32 parameters ARE the master weights; no separate copy), gradients are
  fp32, and autocast's bf16 copies of the weights, cached until backward, count as activations.
- AdamW keeps two fp32 moments per parameter (8 bytes) plus a 4-byte step per parameter tensor;
  SGD is SGD with momentum: one fp32 buffer (4 bytes per parameter). A model stored in another
  dtype (`model.bfloat16()`) is counted in that dtype: torch.optim keeps gradients and moments in
  the parameters' dtype.
- DDP: every device holds the full state; with several devices its gradient buckets (a second
  fp32 copy of the gradients, `gradient_as_bucket_view=False`, torch's default) are counted.
- FSDP (full sharding, one unit per block, MixedPrecision with the compute dtype of `precision`):
  fp32 parameters, gradients and optimizer states are divided by the world size; during
  forward/backward the unsharded compute copies of the root parameters (everything outside
  the blocks) and of two blocks (the running one and the prefetched one) are live, plus one
  block's unsharded gradients before its reduce-scatter.
- Activations: every storage autograd saves for backward, counted once, from a FakeTensor trace
  of the real model at batch 1 and 2 extrapolated linearly (shapes only: cheap at full size).
  The reference ("math") attention backend saves the (B, heads, N, N) score matrix; the fused ones
  (sdpa, flash) save q, k, v, the output and the logsumexp only, as torch's fused CPU kernel does.
- Activation checkpointing (`learnlib.nn.checkpointing`, every block of `model.blocks`): only the
  blocks' inputs and what the stem/head save are kept, plus one block's saved tensors while
  it is recomputed in backward (`recompute_peak`).
- EMA (`ema=True`; the CLI's default when trainer.ema_decay > 0): the trainer's averaged copy of
  the parameters and buffers, held like the parameters (sharded under FSDP).
- Transient: the step's highest point above the parts before it (the saved tensors; with
  checkpointing, the checkpointed ones and one recomputed block), the larger of two:
  forward/backward: from a FakeTensor trace of the whole forward and backward with the gradients
  already allocated (every step but the first), the live tensors after each allocation: the loss's
  copies of the logits and their gradients, the gradients of the activations next to the saved
  tensors backward has not freed yet, each weight's gradient before it is added into `.grad`
  (learnlib.memory.transient: traced at batch 1, 2 and 3, extrapolated per allocation beyond);
  optimizer step: it runs after the activations are freed, so only what it allocates beyond them
  counts (the fused AdamW: nothing; SGD: a copy of the gradients).
  What kernels allocate inside themselves is not a tensor and is not counted (cuBLAS/cuDNN
  workspaces, in learnlib.memory.gpus's allowance; on CPU, oneDNN's convolution backward copies
  the output's gradient into its own layout and keeps a few weight-sized buffers per thread). A family with its own profile
  measures its transient (the SLat VAE: the PyTorch rasterizer's (pixel, Gaussian) pairs and the
  backward's temporaries, on CPU). The measured counterpart is learnlib.memory.measure_total_peak.
- A family may count another unit and bring its own saved profile (learnlib.workloads):
  the SLat VAE's `batch_per_device` is its voxels per device, and its activations come from CPU
  measurements at two voxel counts and two render sizes, extrapolated (learnlib.slat.memory).
"""

from __future__ import annotations

from torch import nn

from learnlib.memory.breakdown import OPTIMIZERS, PRECISIONS, STRATEGIES, MemoryBreakdown, check_choice
from learnlib.memory.spec import resolve
from learnlib.memory.trace import trace_step
from learnlib.memory.transient import (
    TRACED_BATCHES,
    forward_backward_peak,
    optimizer_transient,
    step_transient,
)
from learnlib.nn.backends import canonical_backend
from learnlib.workloads import SavedProfile, Workload, positive_int

FP32 = 4


def _compute_bytes(precision: str) -> int:
    return FP32 if precision == "fp32" else 2


def _largest_block(model: nn.Module) -> int:
    blocks = list(getattr(model, "blocks", ()))
    return max((sum(p.numel() for p in b.parameters()) for b in blocks), default=0)


def has_blocks(model: nn.Module) -> bool:
    """True when `model.blocks` is there to checkpoint (learnlib.nn.checkpointing)."""
    return len(getattr(model, "blocks", ())) > 0


def state_parts(model: nn.Module, precision: str, optimizer: str, strategy: str, world_size: int,
                trained: frozenset | None = None, ema: bool = False) -> dict:
    """Bytes of parameters, gradients, optimizer states, the EMA copy, FSDP gathered copies, DDP buckets and
    buffers.

    `trained` (names) restricts gradients and optimizer states to the parameters the loss reaches
    (an unused parameter never gets a gradient, so AdamW never creates its moments)."""
    trainable = [p for name, p in model.named_parameters()
                 if p.requires_grad and (trained is None or name in trained)]
    n_all = sum(p.numel() for p in model.parameters() if p.requires_grad)
    grads = sum(p.numel() * p.element_size() for p in trainable)  # gradients and moments take the params' dtype
    trainable_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    frozen_params = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    opt = 2 * grads + FP32 * len(trainable) if optimizer == "adamw" else grads
    shard = world_size if strategy == "fsdp" else 1
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    parts = {"parameters": trainable_bytes // shard + frozen_params, "gradients": grads // shard,
             "optimizer_states": opt // shard, "gathered_parameters": 0, "communication": 0,
             "buffers": buffers}
    parts["ema"] = parts["parameters"] + buffers if ema else 0
    if strategy == "fsdp":
        block = _largest_block(model)
        root = n_all - sum(sum(p.numel() for p in b.parameters()) for b in getattr(model, "blocks", ()))
        parts["gathered_parameters"] = _compute_bytes(precision) * (root + 3 * block)
    elif world_size > 1:
        parts["communication"] = grads
    return parts


def _traces(workload: Workload, precision: str, backend: str | None, checkpointing: bool) -> tuple:
    """FakeTensor traces of the step at TRACED_BATCHES, made once per setting and kept in `workload.traces`."""
    key = (precision, backend, checkpointing)
    if key not in workload.traces:
        workload.traces[key] = tuple(trace_step(workload.model, b, precision, backend, workload.task, checkpointing)
                                     for b in TRACED_BATCHES)
    return workload.traces[key]


def saved_profile(workload: Workload, batch: int, precision: str, backend: str | None,
                  activation_checkpointing: bool = False) -> SavedProfile:
    """Saved-for-backward bytes and the forward/backward transient at `batch`: the family's own profile when it
    has one, else FakeTensor traces of the step at batch 1, 2 and 3 (saved bytes extrapolated linearly from 1
    and 2; the transient as learnlib.memory.transient extrapolates it, above what `activation_checkpointing`
    keeps: the checkpointed tensors and one recomputed block)."""
    backend = canonical_backend(backend) if backend is not None else None
    own = workload.family.saved_profile(workload, batch, precision, backend)
    if own is not None:
        return own
    one, two = (t.saved for t in _traces(workload, precision, backend, False)[:2])

    def at(field: str) -> int:
        a, b = getattr(one, field), getattr(two, field)
        return a + (b - a) * (batch - 1)

    activation_checkpointing = activation_checkpointing and has_blocks(workload.model)  # else refused by the caller
    traces = _traces(workload, precision, backend, activation_checkpointing)
    peak = forward_backward_peak(traces, batch)
    if peak is None:  # the ops differ between batch 2 and 3: trace this batch itself
        key = (precision, backend, activation_checkpointing, batch)
        if key not in workload.traces:
            workload.traces[key] = trace_step(workload.model, batch, precision, backend, workload.task,
                                              activation_checkpointing)
        peak = max(workload.traces[key].levels, default=0)
    held = at("checkpointed") + at("block_peak") if activation_checkpointing else at("activations")
    return SavedProfile(at("activations"), at("checkpointed"), at("block_peak"), one.trained,
                        step_transient(peak, 0, held))


def estimate(model_or_experiment, batch_per_device: int, precision: str = "fp32", optimizer: str = "adamw",
             strategy: str = "ddp", world_size: int = 1, activation_checkpointing: bool = False,
             attention_backend: str | None = None, overrides: tuple[str, ...] = (),
             ema: bool = False) -> MemoryBreakdown:
    """Memory per device of one training step of a model, registered model name or experiment.

    `attention_backend` (a learnlib.nn.backends name or alias) None keeps the model's own;
    "auto"/"sdpa"/"flash" count the fused kernels' saved tensors, "reference" ("math") the explicit
    score matrix. `ema` counts the trainer's EMA copy of the weights. `overrides` are Hydra strings
    applied to an experiment (e.g. "model.depth=2"). See the module docstring for conventions.
    """
    positive_int("batch_per_device", batch_per_device)
    positive_int("world_size", world_size)
    check_choice("precision", precision, PRECISIONS)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("strategy", strategy, STRATEGIES)
    if attention_backend is not None:
        canonical_backend(attention_backend)
    workload = resolve(model_or_experiment, overrides)
    return estimate_workload(workload, batch_per_device, precision, optimizer, strategy, world_size,
                             activation_checkpointing, attention_backend, ema=ema)


def estimate_workload(workload: Workload, batch_per_device: int, precision: str, optimizer: str, strategy: str,
                      world_size: int, activation_checkpointing: bool, attention_backend: str | None,
                      profile: SavedProfile | None = None, ema: bool = False) -> MemoryBreakdown:
    """`estimate` for a resolved workload (optionally with its saved profile already at this batch)."""
    model = workload.model
    positive_int(f"the batch per device ({workload.family.unit})", batch_per_device)
    if activation_checkpointing and not has_blocks(model):
        raise ValueError(f"activation checkpointing wraps `model.blocks`; {type(model).__name__} has none")
    if attention_backend is not None:
        attention_backend = canonical_backend(attention_backend)
    profile = profile or saved_profile(workload, batch_per_device, precision, attention_backend,
                                       activation_checkpointing)
    activations, recompute = profile.activations, 0
    if activation_checkpointing:
        activations, recompute = profile.checkpointed, profile.block_peak
    backend = attention_backend or _model_backend(model)
    parts = state_parts(model, precision, optimizer, strategy, world_size, profile.trained, ema)
    # the optimizer step runs after backward has freed the activations: its temporaries count above them only
    transient = step_transient(activations + recompute + profile.transient,
                               optimizer_transient(parts["gradients"], optimizer), activations + recompute)
    return MemoryBreakdown(**parts,
                           frozen=workload.frozen_bytes, activations=activations, recompute_peak=recompute,
                           transient=transient,
                           batch_per_device=batch_per_device, precision=precision, optimizer=optimizer,
                           strategy=strategy, world_size=world_size,
                           activation_checkpointing=activation_checkpointing, attention_backend=backend)


def _model_backend(model: nn.Module) -> str:
    for module in model.modules():
        if hasattr(module, "backend") and isinstance(module.backend, str):
            return module.backend
    return "none"
