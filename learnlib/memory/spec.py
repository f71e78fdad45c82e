"""What an estimate is about: a model, a model name or an experiment, resolved to a model and its task."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import yaml
from torch import nn

from learnlib import models


@dataclass
class Workload:
    """A model (possibly on the meta device) with its task's loss options and its frozen companions' bytes."""

    model: nn.Module
    name: str
    task: dict = field(default_factory=dict)
    frozen_bytes: int = 0
    config: object = None  # the composed experiment config, when there is one
    traces: dict = field(default_factory=dict)  # saved-tensor traces by (precision, backend)


def build_on_meta(name: str, **overrides) -> nn.Module:
    """Model `name` with shapes only (meta device): no memory, no initialisation cost."""
    with torch.device("meta"):
        return models.create(name, **overrides)


def state_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers of `model`."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def _from_config(cfg) -> Workload:
    from omegaconf import OmegaConf

    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    name = kwargs.pop("name")
    task = OmegaConf.to_container(cfg.task, resolve=True)
    if task.get("name") == "slat_vae":
        return _slat_from_config(cfg, name, kwargs, task)
    frozen = _tokenizer_bytes(task) if task.get("name") == "var" else 0
    options = {k: task[k] for k in ("label_smoothing", "recon_loss", "quant_weight") if k in task}
    return Workload(build_on_meta(name, **kwargs), cfg.get("name", name), options, frozen, cfg)


def _slat_from_config(cfg, name: str, kwargs: dict, task: dict) -> Workload:
    """The SLat VAE with what its step renders: data.image_size x data.views_per_item views of
    trainer.batch_max_items objects, and the task's loss weights (LPIPS's network counted as frozen)."""
    from learnlib.memory.slat import RenderSetting, lpips_bytes
    from learnlib.slat.task import LOSS_WEIGHT_NAMES, TRELLIS_LOSS_WEIGHTS, SLatLossWeights

    weights = SLatLossWeights(**{k: task.get(k, getattr(TRELLIS_LOSS_WEIGHTS, k)) for k in LOSS_WEIGHT_NAMES})
    setting = RenderSetting(int(cfg.data.image_size), int(cfg.data.get("views_per_item") or 1),
                            int(cfg.trainer.get("batch_max_items") or 1), weights)
    checkpointed = bool(kwargs.pop("use_checkpoint", False))  # a setting of the estimate, not of the shapes
    return Workload(build_on_meta(name, **kwargs), cfg.get("name", name), {"render": setting, "use_checkpoint": checkpointed},
                    lpips_bytes(weights), cfg)


def _tokenizer_bytes(task: dict) -> int:
    """Bytes of VAR's frozen tokenizer: named by task.vqvae_model, or by the config of an exported folder."""
    from pathlib import Path

    from omegaconf import OmegaConf

    overrides = dict(task.get("vqvae_overrides") or {})
    if task.get("vqvae_model"):
        return state_bytes(build_on_meta(task["vqvae_model"], **overrides))
    folder = Path(str(task.get("vqvae")))
    if (folder / "config.yaml").is_file():
        kwargs = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml").model, resolve=True)
        return state_bytes(build_on_meta(kwargs.pop("name"), **{**kwargs, **overrides}))
    return 0


def resolve(model_or_experiment, overrides: list[str] | tuple[str, ...] = ()) -> Workload:
    """A `Workload` from an nn.Module, a composed config, an experiment name or a registered model name.

    Names are looked up first among the experiments (learnlib/configs/experiment), then among
    the models; `overrides` are Hydra `key=value` strings for experiments, e.g. "model.depth=2".
    """
    if isinstance(model_or_experiment, nn.Module):
        return Workload(model_or_experiment, type(model_or_experiment).__name__)
    if isinstance(model_or_experiment, str):
        from learnlib.train.config import compose, list_experiments

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
