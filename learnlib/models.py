"""The model registry: every model of the course is built by name through `create`.

Model modules register factories with `@register("name")`; configs, the CLI and the
notebooks all call `create(name, **overrides)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}

# Modules whose import registers models. Each chapter adds its module here.
MODEL_MODULES = (
    "learnlib.mlp",
    "learnlib.vit",
    "learnlib.vq",
    "learnlib.var",
    "learnlib.slat",
)
_loaded = False


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that registers a model factory under `name`."""

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ValueError(f"model name {name!r} is registered twice")
        _FACTORIES[name] = factory
        return factory

    return decorator


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for module in MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            # A chapter module that does not exist yet registers nothing; any other
            # missing import is a real error and is raised.
            if err.name != module:
                raise
    _loaded = True


def available() -> list[str]:
    """Sorted names of every registered model."""
    _load_all()
    return sorted(_FACTORIES)


def create(name: str, **overrides) -> nn.Module:
    """Build the registered model `name`, with keyword overrides of its defaults."""
    _load_all()
    if name not in _FACTORIES:
        raise KeyError(f"unknown model {name!r}; available models: {', '.join(available())}")
    return _FACTORIES[name](**overrides)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of `model` (all, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
