"""What an estimate is about: a model, a model name or an experiment, resolved to a model and its task."""

from __future__ import annotations

import yaml
from torch import nn

from learnlib import models
from learnlib.models import build_on_meta
from learnlib.workloads import Workload, family_of


def _from_config(cfg) -> Workload:
    from omegaconf import OmegaConf

    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    name = kwargs.pop("name")
    model = build_on_meta(name, **kwargs)
    extras = family_of(model).from_config(cfg)
    trainer = cfg.get("trainer") or {}
    checkpointing = bool(trainer.get("activation_checkpointing")) or extras.activation_checkpointing
    return Workload(model, cfg.get("name", name), dict(extras.options), extras.frozen_bytes, cfg,
                    activation_checkpointing=checkpointing, ema_decay=float(trainer.get("ema_decay") or 0.0))


def resolve(model_or_experiment, overrides: list[str] | tuple[str, ...] = ()) -> Workload:
    """A `Workload` from an nn.Module, a composed config, an experiment name or a registered model name.

    Names are looked up first among the experiments (learnlib/configs/experiment), then among
    the models; `overrides` are Hydra `key=value` strings for experiments, e.g. "model.depth=2".
    """
    if isinstance(model_or_experiment, nn.Module):
        return Workload(model_or_experiment, type(model_or_experiment).__name__)
    if isinstance(model_or_experiment, str):
        from learnlib.configs.compose import compose, list_experiments

        if model_or_experiment in list_experiments():
            return _from_config(compose(model_or_experiment, overrides))
        if model_or_experiment in models.available():
            kwargs = {}
            for item in overrides:  # "model.depth=2" or "depth=2"
                key, sep, value = item.partition("=")
                if not sep:
                    raise ValueError(f"overrides are key=value strings, got {item!r}")
                kwargs[key.removeprefix("model.")] = yaml.safe_load(value)
            return Workload(build_on_meta(model_or_experiment, **kwargs), model_or_experiment)
        raise ValueError(f"unknown experiment or model {model_or_experiment!r}; experiments: "
                         f"{', '.join(list_experiments())}; models: {', '.join(models.available())}")
    if hasattr(model_or_experiment, "model") and hasattr(model_or_experiment, "task"):
        return _from_config(model_or_experiment)
    raise ValueError(f"expected an nn.Module, an experiment or model name, or a composed config; got "
                     f"{type(model_or_experiment).__name__}")
