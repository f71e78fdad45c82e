"""The memory-workload hook: what the memory estimator (learnlib.memory) needs to know about each family.

It lives below the families, like the model and task registries, so a family can register its
workload without importing the estimator. A family registers a `FamilyWorkload` subclass in its own room with `@register_workload("name")`
(learnlib/vit/memory.py, learnlib/slat/memory.py, ...); WORKLOAD_MODULES lists those modules, imported
on first use, so the estimator finds the family of a model by asking the registry. A workload builds
one random training step (the same loss the family's task computes) and names its batch unit; a
family whose memory is not a FakeTensor trace at batch 1 and 2 (the SLat VAE: voxels, measured and
extrapolated) overrides the optional hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from learnlib.registry import Registry

# Modules whose import registers memory workloads. Each chapter adds its module here.
WORKLOAD_MODULES = (
    "learnlib.mlp.memory",
    "learnlib.vit.memory",
    "learnlib.vq.memory",
    "learnlib.var.memory",
    "learnlib.slat.memory",
)
WORKLOADS = Registry("memory workload", WORKLOAD_MODULES)
register_workload = WORKLOADS.register


@dataclass(frozen=True)
class ConfigExtras:
    """What a family reads from an experiment config besides the model."""

    options: dict = field(default_factory=dict)  # keyword options of the family's `training_step`
    frozen_bytes: int = 0  # frozen networks the step also runs (a tokenizer, LPIPS)
    activation_checkpointing: bool = False  # the family's own switch (e.g. model.use_checkpoint)


@dataclass(frozen=True)
class SavedProfile:
    """Saved-for-backward bytes of one forward at one batch size."""

    activations: int  # all saved storages
    checkpointed: int  # what stays saved when every block is checkpointed
    block_peak: int  # the largest one block saves
    trained: frozenset = frozenset()  # names of the parameters the loss reaches (they get gradients)
    transient: int = 0  # the step's peak above what it holds (the saved tensors), where the family counts it


def cpu_precision(precision: str) -> str:
    """The precision a CPU run uses to count the bytes of `precision`: fp16 autocast is CUDA-only, and
    bf16 saves exactly as many bytes (2 per element), so fp16 is counted as bf16."""
    return "bf16" if precision == "fp16" else precision



@dataclass
class Workload:
    """A model (possibly on the meta device) with its task's loss options and its frozen companions' bytes.

    From an experiment config also: the trainer's activation checkpointing (or the family's own
    switch) and EMA decay, which the CLI uses as its defaults.
    """

    model: nn.Module
    name: str
    task: dict = field(default_factory=dict)
    frozen_bytes: int = 0
    config: object = None  # the composed experiment config, when there is one
    traces: dict = field(default_factory=dict)  # saved-tensor traces by (precision, backend)
    activation_checkpointing: bool = False
    ema_decay: float = 0.0

    @property
    def family(self) -> FamilyWorkload:
        """The registered memory workload of the model's family."""
        return family_of(self.model)


class FamilyWorkload:
    """How the estimator runs one family: subclass it in the family's room and register it.

    Required: `model_class` and `training_step`. `unit` is what a batch counts ("items", or
    "voxels"), `batch_word` how the CLI names one batch per device, `budget_key` the config key a
    budgeted batch is set by (None: trainer.batch_size items). The other methods are hooks with
    generic defaults.
    """

    unit = "items"
    batch_word = "batch"
    budget_key: str | None = None

    def model_class(self) -> type:
        """The nn.Module class of the family (subclasses match too)."""
        raise NotImplementedError

    def training_step(self, model: nn.Module, batch: int, generator: torch.Generator | None = None,
                      **options) -> Callable[[], torch.Tensor]:
        """A function running the forward pass and loss of `model` on a random batch of `batch` units."""
        raise NotImplementedError

    def from_config(self, cfg) -> ConfigExtras:
        """Training-step options, frozen bytes and checkpointing read off a composed experiment config."""
        return ConfigExtras()

    def attention_layers(self, model: nn.Module) -> Iterator[nn.Module]:
        """The layers whose `backend` attribute picks the attention kernel (learnlib.nn.Attention by default)."""
        from learnlib.nn.attention import Attention

        return (m for m in model.modules() if isinstance(m, Attention))

    def saved_profile(self, workload, batch: int, precision: str, backend: str | None):
        """The family's own SavedProfile at `batch`, or None for the generic FakeTensor trace."""

    def largest(self, workload, total_at: Callable[[int], int], budget_bytes: float) -> int | None:
        """The family's own search for the largest batch with total_at(batch) <= budget_bytes, or None
        for the generic one (the total is linear in the batch)."""

    def cli_batch(self, workload, devices: int) -> tuple[int, list[str]]:
        """The batch per device of a composed experiment for the CLI, and the header lines explaining it."""
        trainer = workload.config.trainer
        size = positive_int("trainer.batch_size", trainer.batch_size)
        accum = positive_int("trainer.grad_accum", trainer.grad_accum)
        if size % (devices * accum):
            raise ValueError(f"trainer.batch_size ({size}) must be a multiple of devices * grad_accum "
                             f"({devices} * {accum})")
        batch = size // (devices * accum)
        return batch, [(f"experiment {workload.name}: global batch {size} = {devices} devices x "
                        f"{accum} accumulation steps x {batch} per device")]


def positive_int(name: str, value) -> int:
    """`value` as an int >= 1; ValueError naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


_INSTANCES: dict[str, FamilyWorkload] = {}


def family_of(model: nn.Module) -> FamilyWorkload:
    """The registered workload whose model class `model` is an instance of."""
    for name in WORKLOADS.available():
        if name not in _INSTANCES:
            _INSTANCES[name] = WORKLOADS.get(name)()
        if isinstance(model, _INSTANCES[name].model_class()):
            return _INSTANCES[name]
    raise ValueError(f"no memory workload is registered for a {type(model).__name__}; registered families: "
                     f"{', '.join(WORKLOADS.available())} (learnlib.workloads.WORKLOAD_MODULES)")


def training_step(model: nn.Module, batch: int, generator: torch.Generator | None = None,
                  **options) -> Callable[[], torch.Tensor]:
    """A function running the forward pass and loss of `model` on a random batch of `batch` units (items,
    or the family's unit), the loss its experiment's task computes. Under FakeTensorMode the inputs are
    fake too (shapes only)."""
    positive_int("batch", batch)
    return family_of(model).training_step(model, batch, generator=generator, **options)


def task_options(cfg, names: tuple[str, ...]) -> dict:
    """The keys `names` of a composed config's task group that it sets (the loss options of a training step)."""
    from omegaconf import OmegaConf

    task = OmegaConf.to_container(cfg.task, resolve=True) if cfg.get("task") is not None else {}
    return {k: task[k] for k in names if k in task}
