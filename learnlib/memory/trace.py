"""The estimate's structure measurement: one training forward and backward on FakeTensors (shapes, no data, no FLOPs)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from learnlib.nn.live_tensors import LiveTensors
from learnlib.nn.precision import autocast
from learnlib.nn.saved_tensors import SavedTensors, SavedTensorTracker
from learnlib.workloads import SavedProfile, cpu_precision, family_of, training_step


def cpu_backend(backend: str | None) -> str | None:
    """The attention backend a CPU run uses to count the bytes of `backend`: flash-attn is CUDA-only, and
    torch's fused CPU kernel ("sdpa") saves what it saves (q, k, v, the output and the logsumexp)."""
    return "sdpa" if backend == "flash" else backend


@contextlib.contextmanager
def attention_backend(model: nn.Module, backend: str | None):
    """Temporarily set the attention backend of every attention layer of `model`'s family (none: unchanged)."""
    changed = []
    if backend is not None:
        for module in family_of(model).attention_layers(model):
            changed.append((module, module.backend))
            module.backend = backend
    try:
        yield
    finally:
        for module, old in changed:
            module.backend = old


@contextlib.contextmanager
def fake_state(model: nn.Module, mode: FakeTensorMode):
    """Temporarily replace every parameter and buffer of `model` by a FakeTensor of its shape on CPU."""
    saved = []
    with mode:
        for module in model.modules():
            for store in (module._parameters, module._buffers):
                for name, t in store.items():
                    if t is None:
                        continue
                    fake = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="cpu")
                    saved.append((store, name, t))
                    store[name] = nn.Parameter(fake, requires_grad=t.requires_grad) if store is module._parameters \
                        else fake
    try:
        yield
    finally:
        for store, name, t in saved:
            store[name] = t


@dataclass(frozen=True)
class StepTrace:
    """One traced training step: what its forward saves, and the live bytes after each allocation of its
    forward and backward (learnlib.nn.live_tensors; gradients already allocated, as in every step but the first)."""

    saved: SavedProfile
    levels: tuple[int, ...]


def trace_step(model: nn.Module, batch: int, precision: str, backend: str | None = None,
               task: dict | None = None, activation_checkpointing: bool = False) -> StepTrace:
    """One training forward and backward of `model` on `batch` items, traced on FakeTensors (CPU).

    `backend` is a learnlib.nn.backends attention name (None: the model's own). With
    `activation_checkpointing` every block of `model.blocks` is checkpointed (the saved tensors then
    count what the checkpoints keep, and the backward recomputes each block)."""
    from learnlib.nn.checkpointing import (
        apply_activation_checkpointing,
        is_checkpointed,
        remove_activation_checkpointing,
    )

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    was_training = model.training
    checkpointed = any(is_checkpointed(block) for block in getattr(model, "blocks", ()))
    remove_activation_checkpointing(model)  # checkpointing is a setting of the estimate, not of the model
    if activation_checkpointing:
        apply_activation_checkpointing(model)
    model.train()
    try:
        with fake_state(model, mode), attention_backend(model, cpu_backend(backend)), mode:
            for p in model.parameters():
                if p.requires_grad:
                    p.grad = torch.zeros_like(p)
            step = training_step(model, batch, **(task or {}))
            result: SavedTensors
            with LiveTensors() as live:
                with SavedTensorTracker(model) as result, autocast(cpu_precision(precision), "cpu"):
                    loss = step()
                trained = reached_parameters(model, loss)
                loss.backward()
                del loss
    finally:
        model.train(was_training)
        remove_activation_checkpointing(model)
        if checkpointed:
            apply_activation_checkpointing(model)
    blocks = len(getattr(model, "blocks", ()))
    per_block = result.per_block(blocks) if blocks else [0]
    saved = SavedProfile(result.total, result.kept_with_checkpointing, max(per_block), trained)
    return StepTrace(saved, tuple(live.levels))


def trace_saved(model: nn.Module, batch: int, precision: str, backend: str | None = None,
                task: dict | None = None) -> SavedProfile:
    """What one training forward of `model` on `batch` items saves for backward, traced on FakeTensors (CPU).

    `backend` is a learnlib.nn.backends attention name (None: the model's own)."""
    return trace_step(model, batch, precision, backend, task).saved


def reached_parameters(model: nn.Module, loss: torch.Tensor) -> frozenset:
    """Names of the parameters of `model` that backward from `loss` would give a gradient."""
    names = {id(p): name for name, p in model.named_parameters()}
    reached, stack, seen = set(), [loss.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        variable = getattr(fn, "variable", None)
        if variable is not None and id(variable) in names:
            reached.add(names[id(variable)])
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return frozenset(reached)
