"""The per-device memory breakdown of one training step, and the choices it is computed for."""

from __future__ import annotations

from dataclasses import dataclass

from learnlib.nn.backends import KINDS
from learnlib.nn.optim import OPTIMIZERS
from learnlib.nn.precision import PRECISIONS

__all__ = ["ATTENTION_BACKENDS", "GIB", "MIB", "OPTIMIZERS", "PRECISIONS", "STRATEGIES", "MemoryBreakdown",
           "check_choice"]

STRATEGIES = ("ddp", "fsdp")
ATTENTION_BACKENDS = KINDS["attention"]  # learnlib.nn.backends' names; canonical_backend maps the aliases
GIB = 2**30
MIB = 2**20


def check_choice(name: str, value, valid: tuple) -> None:
    """ValueError naming the valid values when `value` is not one of them."""
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid values: {', '.join(map(str, valid))}")


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per device of one training step, by what holds them.

    parameters, gradients, optimizer_states: the model state (sharded under FSDP).
    gathered_parameters: FSDP's unsharded compute copies (and one block's unsharded gradients)
    live during forward/backward. communication: DDP's gradient buckets (several devices).
    buffers: the model's buffers. frozen: frozen models the step also runs (VAR's tokenizer).
    activations: tensors saved for backward at the end of the forward pass.
    recompute_peak: with activation checkpointing, one block's saved tensors while it is
    recomputed in backward. ema: the trainer's exponential moving average of the weights (a full
    copy of the parameters and buffers, `trainer.ema_decay`), 0 when there is none.
    transient: what the step allocates above the parts before it at its highest point (the gradients of
    activations, the loss's copies of the logits, the optimizer step's temporaries; the PyTorch
    rasterizer's (pixel, Gaussian) pairs): see learnlib.memory.estimate.
    """

    parameters: int
    gradients: int
    optimizer_states: int
    gathered_parameters: int
    communication: int
    buffers: int
    frozen: int
    activations: int
    recompute_peak: int
    batch_per_device: int
    precision: str
    optimizer: str
    strategy: str
    world_size: int
    activation_checkpointing: bool
    attention_backend: str
    ema: int = 0
    transient: int = 0

    @property
    def model_state(self) -> int:
        """Parameters, gradients, optimizer states, the EMA copy and buffers."""
        return self.parameters + self.gradients + self.optimizer_states + self.ema + self.buffers

    @property
    def total(self) -> int:
        """Everything above, per device (no CUDA context or allocator slack: see learnlib.memory.gpus)."""
        return (self.model_state + self.gathered_parameters + self.communication + self.frozen
                + self.activations + self.recompute_peak + self.transient)

    def rows(self) -> list[tuple[str, int]]:
        """(name, bytes) of every part (the EMA and the transient only when there is one), then the total."""
        names = ["parameters", "gradients", "optimizer_states", "ema", "gathered_parameters", "communication",
                 "buffers", "frozen", "activations", "recompute_peak", "transient"]
        return [*((name, getattr(self, name)) for name in names if name not in ("ema", "transient") or getattr(self, name)),
                ("total", self.total)]

    def describe(self) -> str:
        """One line naming the setting."""
        ckpt = ", activation checkpointing" if self.activation_checkpointing else ""
        return (f"batch {self.batch_per_device} per device, {self.precision}, {self.optimizer}, {self.strategy} "
                f"x {self.world_size}, attention {self.attention_backend}{ckpt}")

    def table(self) -> str:
        """A markdown table of the parts in MiB and GiB."""
        lines = [f"memory per device: {self.describe()}", "", "| part | MiB | GiB |", "|---|---:|---:|"]
        lines += [f"| {name} | {value / MIB:,.1f} | {value / GIB:.2f} |" for name, value in self.rows()]
        return "\n".join(lines)
