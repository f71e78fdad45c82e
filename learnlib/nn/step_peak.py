"""The measured total peak of one training step on CPU: the state it starts from and the most it allocates above it.

`measure_step_peak(model, step, precision)` runs `step` (a function returning the loss) as a whole
training step (forward under autocast, backward, AdamW step) twice. The first creates the gradients
and the optimizer's moments; the gradients are then zeroed, not freed, since they are part of the
step's memory. `state` is what lives before the second step (parameters, gradients, optimizer states,
buffers); `step_peak` the highest point torch's CPU allocator reaches above it while the second step
runs its forward, backward and optimizer step (learnlib.nn.cpu_peak). The model's weights are
restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from learnlib.nn.cpu_peak import CpuPeak
from learnlib.nn.optim import build_optimizer
from learnlib.nn.precision import autocast
from learnlib.nn.saved_tensors import storage_key


@dataclass
class StepPeak:
    """The CPU memory of one whole training step (forward, backward, optimizer step), in bytes."""

    state: int  # parameters, gradients, optimizer states and buffers, allocated before the step
    step_peak: int  # the most the step allocates above `state` (saved tensors and every temporary)
    saved: int | None = None  # what its forward saves for backward, when the caller measured it

    @property
    def total(self) -> int:
        """The measured total peak: `state` + `step_peak`."""
        return self.state + self.step_peak


def tensor_bytes(tensors) -> int:
    """Bytes of the storages of `tensors`, each storage once."""
    seen = {storage_key(t): t.untyped_storage().nbytes() for t in tensors}
    return sum(seen.values())


def measure_step_peak(model: nn.Module, step: Callable[[], torch.Tensor], precision: str = "fp32",
                      optimizer: str = "adamw") -> StepPeak:
    """The state and the peak above it of one training step of `model` running `step` on CPU (module docstring).

    `optimizer` is a learnlib.nn.optim kind (AdamW is the fused kernel the trainer runs)."""
    weights_before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was_training = model.training
    model.train()
    try:
        opt = build_optimizer(model, 1e-6, 0.0, kind=optimizer)  # learning rate and weight decay change no memory

        def run():
            with autocast(precision, "cpu"):
                loss = step()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=False)

        run()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        states = [v for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
        state = tensor_bytes([*model.parameters(), *model.buffers(), *grads, *states])
        with CpuPeak() as peak:
            run()
        opt.zero_grad(set_to_none=True)
    finally:
        model.load_state_dict(weights_before)
        model.train(was_training)
    return StepPeak(state, peak.peak)
