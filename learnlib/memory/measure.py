"""Measured training memory: real tensors on CPU (saved-tensor hooks, the allocator's total peak of a step), the
CUDA allocator's peak on GPU."""

from __future__ import annotations

import torch
from torch import nn

from learnlib.memory.breakdown import OPTIMIZERS, PRECISIONS, MemoryBreakdown, check_choice
from learnlib.memory.trace import attention_backend as use_backend
from learnlib.nn.backends import canonical_backend
from learnlib.nn.checkpointing import apply_activation_checkpointing, remove_activation_checkpointing
from learnlib.nn.optim import build_optimizer
from learnlib.nn.precision import autocast
from learnlib.nn.saved_tensors import SavedTensorTracker, storage_key
from learnlib.nn.step_peak import StepPeak, measure_step_peak
from learnlib.workloads import training_step


def _unique_bytes(tensors) -> int:
    seen = {}
    for t in tensors:
        seen.setdefault(storage_key(t), t.untyped_storage().nbytes())
    return sum(seen.values())


def measure_activations(model: nn.Module, batch: int, precision: str = "fp32", backend: str | None = None,
                        activation_checkpointing: bool = False, task: dict | None = None, seed: int = 0) -> int:
    """Bytes saved for backward by one training forward of `model` (real tensors, each storage once,
    parameters and buffers excluded). The graph is freed without running backward. fp16 runs on CUDA only."""
    check_choice("precision", precision, PRECISIONS)
    generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    was_training = model.training
    model.train()
    if activation_checkpointing:
        apply_activation_checkpointing(model)
    try:
        with use_backend(model, canonical_backend(backend) if backend is not None else None):
            step = training_step(model, batch, generator=generator, **(task or {}))
            with SavedTensorTracker(model) as saved, autocast(precision, next(model.parameters()).device.type):
                loss = step()
            del loss
    finally:
        if activation_checkpointing:
            remove_activation_checkpointing(model)
        model.train(was_training)
    return saved.total


def measure_state(model: nn.Module, optimizer: str = "adamw", batch: int = 2, precision: str = "fp32",
                  task: dict | None = None) -> dict[str, int]:
    """Bytes of parameters, gradients, optimizer states and buffers counted from the real tensors after
    one training step (forward, backward, optimizer step) on `batch` random items."""
    check_choice("optimizer", optimizer, OPTIMIZERS)
    opt = build_optimizer(model, 1e-4, 0.0, kind=optimizer)  # learning rate and weight decay change no memory
    model.train()
    step = training_step(model, batch, generator=torch.Generator(next(model.parameters()).device).manual_seed(0),
                         **(task or {}))
    with autocast(precision, next(model.parameters()).device.type):
        loss = step()
    loss.backward()
    opt.step()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    states = [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    out = {"parameters": _unique_bytes(model.parameters()), "gradients": _unique_bytes(grads),
           "optimizer_states": _unique_bytes(states), "buffers": _unique_bytes(model.buffers())}
    opt.zero_grad(set_to_none=True)
    return out


def measure_cpu(model: nn.Module, batch: int, precision: str = "fp32", optimizer: str = "adamw",
                activation_checkpointing: bool = False, backend: str | None = None,
                task: dict | None = None) -> MemoryBreakdown:
    """The measured counterpart of `estimate(model, batch, ...)` for one device, on real CPU tensors."""
    state = measure_state(model, optimizer, task=task)
    activations = measure_activations(model, batch, precision, backend, activation_checkpointing, task)
    return MemoryBreakdown(**state, gathered_parameters=0, communication=0, frozen=0, activations=activations,
                           recompute_peak=0, batch_per_device=batch, precision=precision, optimizer=optimizer,
                           strategy="ddp", world_size=1, activation_checkpointing=activation_checkpointing,
                           attention_backend=backend or "model's own")


def measure_total_peak(model: nn.Module, batch: int, precision: str = "fp32", optimizer: str = "adamw",
                       activation_checkpointing: bool = False, backend: str | None = None,
                       task: dict | None = None, seed: int = 0, with_saved: bool = False) -> StepPeak:
    """The measured total peak of one training step of `model` (its registered workload) on CPU tensors.

    The counterpart of `estimate(...).total` (learnlib.nn.step_peak): `state` is the parameters,
    gradients (zeroed, not freed), optimizer states and buffers before the step, `step_peak` the highest
    point torch's CPU allocator reaches above them during forward, backward and the optimizer step.
    `with_saved` also measures what the forward saves for backward (`measure_activations`) into `saved`.
    The model's weights are restored afterwards. fp16 runs on CUDA only."""
    check_choice("precision", precision, PRECISIONS)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    if activation_checkpointing:
        apply_activation_checkpointing(model)
    try:
        with use_backend(model, canonical_backend(backend) if backend is not None else None):
            step = training_step(model, batch, generator=torch.Generator().manual_seed(seed), **(task or {}))
            peak = measure_step_peak(model, step, precision, optimizer)
            del step
    finally:
        if activation_checkpointing:
            remove_activation_checkpointing(model)
    if with_saved:
        peak.saved = measure_activations(model, batch, precision, backend, activation_checkpointing, task, seed)
    return peak


def measure_cuda(model: nn.Module, batch: int, precision: str = "bf16", optimizer: str = "adamw",
                 activation_checkpointing: bool = False, steps: int = 2, task: dict | None = None) -> dict[str, int]:
    """Peak CUDA memory of training `model` (already on the GPU) for `steps` steps at `batch`.

    Returns bytes: `state` (allocated after the steps: parameters, gradients set to None, optimizer
    states), `peak` (torch.cuda.max_memory_allocated over the steps) and `peak_minus_state`.
    The first step allocates the optimizer states, so `steps` >= 2 measures a steady-state step.
    """
    device = next(model.parameters()).device
    if device.type != "cuda":
        raise ValueError(f"measure_cuda needs a model on a CUDA device, got {device}")
    check_choice("precision", precision, PRECISIONS)
    if activation_checkpointing:
        apply_activation_checkpointing(model)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    opt = build_optimizer(model, 1e-4, 0.0, kind=optimizer)  # learning rate and weight decay change no memory
    model.train()
    step = training_step(model, batch, **(task or {}))
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    try:
        for _ in range(steps):
            with autocast(precision, "cuda"):
                loss = step()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize(device)
    finally:
        if activation_checkpointing:
            remove_activation_checkpointing(model)
    peak = torch.cuda.max_memory_allocated(device)
    state = torch.cuda.memory_allocated(device)
    return {"state": state, "peak": peak, "peak_minus_state": peak - state}
