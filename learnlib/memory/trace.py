"""The estimate's structure measurement: one training forward pass on FakeTensors (shapes, no data, no FLOPs)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from learnlib.memory.saved import SavedTensors, SavedTensorTracker
from learnlib.memory.workload import training_step

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.bfloat16}  # fp16 saves as many bytes as bf16


@dataclass(frozen=True)
class SavedProfile:
    """Saved-for-backward bytes of one forward at one batch size."""

    activations: int  # all saved storages
    checkpointed: int  # what stays saved when every block is checkpointed
    block_peak: int  # the largest one block saves
    trained: frozenset = frozenset()  # names of the parameters the loss reaches (they get gradients)


def autocast(precision: str, device_type: str = "cpu"):
    """torch.autocast for bf16/fp16, a no-op context for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if (precision == "fp16" and device_type == "cuda") else AUTOCAST_DTYPES[precision]
    return torch.autocast(device_type, dtype=dtype)


@contextlib.contextmanager
def attention_backend(model: nn.Module, backend: str | None):
    """Temporarily set the attention backend of every attention layer that has one (ViT, VAR)."""
    from learnlib.nn.attention import Attention
    from learnlib.var.attention import SelfAttention

    changed = []
    if backend is not None:
        for module in model.modules():
            if isinstance(module, (Attention, SelfAttention)):
                value = backend
                if isinstance(module, SelfAttention):  # VAR has math and sdpa; flash/auto run as sdpa
                    value = "math" if backend == "math" else "sdpa"
                changed.append((module, module.backend))
                module.backend = value
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


def trace_saved(model: nn.Module, batch: int, precision: str, backend: str | None = None,
                task: dict | None = None) -> SavedProfile:
    """What one training forward of `model` on `batch` items saves for backward, traced on FakeTensors."""
    from learnlib.nn.checkpointing import (
        apply_activation_checkpointing,
        is_checkpointed,
        remove_activation_checkpointing,
    )

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    was_training = model.training
    checkpointed = any(is_checkpointed(block) for block in getattr(model, "blocks", ()))
    remove_activation_checkpointing(model)  # traced plain; checkpointing is a setting of the estimate
    model.train()
    try:
        with fake_state(model, mode), attention_backend(model, backend), mode:
            step = training_step(model, batch, **(task or {}))
            result: SavedTensors
            with SavedTensorTracker(model) as result, autocast(precision):
                loss = step()
            trained = reached_parameters(model, loss)
    finally:
        model.train(was_training)
        if checkpointed:
            apply_activation_checkpointing(model)
    blocks = len(getattr(model, "blocks", ()))
    per_block = result.per_block(blocks) if blocks else [0]
    return SavedProfile(result.total, result.kept_with_checkpointing, max(per_block), trained)


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
