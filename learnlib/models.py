"""The model registry: every model of the course is built by name through `create`.

Model modules register factories with `@register("name")`; configs, the CLI and the
notebooks all call `create(name, **overrides)`, and the training path `build_model(cfg)`.
"""

from __future__ import annotations

import torch
from torch import nn

from learnlib.registry import Registry

# Modules whose import registers models. Each chapter adds its module here.
MODEL_MODULES = (
    "learnlib.mlp",
    "learnlib.vit",
    "learnlib.vq",
    "learnlib.var",
    "learnlib.slat",
)
MODELS = Registry("model", MODEL_MODULES)
register = MODELS.register


def available() -> list[str]:
    """Sorted names of every registered model."""
    return MODELS.available()


def create(name: str, **overrides) -> nn.Module:
    """Build the registered model `name`, with keyword overrides of its defaults."""
    return MODELS.build(name, **overrides)


def build_model(cfg) -> nn.Module:
    """The model that a training config's `model` group describes (`name` plus overrides)."""
    from omegaconf import OmegaConf

    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    return create(kwargs.pop("name"), **kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of `model` (all, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def build_on_meta(name: str, **overrides) -> nn.Module:
    """Model `name` with shapes only (meta device): no memory, no initialisation cost."""
    with torch.device("meta"):
        return create(name, **overrides)


def state_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers of `model`."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
