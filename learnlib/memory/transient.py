"""The step's transient: what a training step allocates above its saved tensors at its highest point.

Forward and backward: the FakeTensor trace of the step (learnlib.memory.trace.trace_step) records the
live bytes after every allocation: the saved tensors as they accumulate, the loss's copies of the
logits, and in backward the gradients of the activations next to the saved tensors not yet freed and
each weight's gradient before it is added into `.grad`. Batch 1, 2 and 3 are traced; at a larger
batch every allocation's level is extrapolated from batch 2 and 3 (where the same ops run) and the
highest is taken, so the peak may move to another op as the batch grows. A kernel's own buffers are
not tensors and are not seen (oneDNN's convolution backward on CPU copies the output's gradient).

Optimizer step (after backward, when the activations are freed): learnlib.nn.optim's AdamW is the
fused kernel, which updates in place and allocates nothing; torch's SGD (the foreach implementation,
CUDA's default) adds the weight decay into a copy of every gradient, counted whatever the weight decay.
"""

from __future__ import annotations

from learnlib.memory.trace import StepTrace

TRACED_BATCHES = (1, 2, 3)


def forward_backward_peak(traces: tuple[StepTrace, ...], batch: int) -> int | None:
    """The most the forward and backward hold at once at `batch` (bytes above the step's start), from the
    traces at TRACED_BATCHES; None when the traces at 2 and 3 do not run the same allocations."""
    if batch in TRACED_BATCHES:
        return max(traces[TRACED_BATCHES.index(batch)].levels, default=0)
    two, three = (traces[TRACED_BATCHES.index(b)].levels for b in (2, 3))
    if len(two) != len(three):
        return None
    return max((a + (b - a) * (batch - 2) for a, b in zip(two, three, strict=True)), default=0)


def optimizer_transient(gradients: int, optimizer: str) -> int:
    """Bytes the optimizer step allocates and frees (module docstring): 0 for the fused AdamW, a copy of
    the `gradients` for SGD."""
    return gradients if optimizer == "sgd" else 0


def step_transient(forward_backward: int, optimizer: int, activations: int) -> int:
    """The step's peak above its saved `activations`: the larger of the forward/backward's highest point
    and the optimizer step's temporaries (which run after the activations are freed), less the activations."""
    return max(0, forward_backward - activations, optimizer - activations)
