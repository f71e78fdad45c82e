"""Compose the Hydra configuration of an experiment, with errors that list valid choices.

Shared by every command that reads an experiment (`learnlib.train`, `learnlib.memory`).
"""

from __future__ import annotations

from importlib import resources

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf

from learnlib.errors import ConfigError

CONFIG_MODULE = "learnlib.configs"

# ${scale_lr:tblr,batch_size} = tblr * batch_size / 256: the linear learning-rate scaling rule.
OmegaConf.register_new_resolver("scale_lr", lambda tblr, batch: float(tblr) * float(batch) / 256, replace=True)


def list_experiments() -> list[str]:
    """Names of the experiments in learnlib/configs/experiment/."""
    folder = resources.files(CONFIG_MODULE) / "experiment"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _valid_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if isinstance(value, DictConfig):
            keys += _valid_keys(value, prefix=f"{path}.")
        else:
            keys.append(path)
    return keys


def compose(experiment: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The resolved config of `experiment` with Hydra-style `key=value` overrides applied."""
    overrides = list(overrides)
    if experiment is None:
        given = [o for o in overrides if o.startswith("experiment=")]
        experiment = given[-1].split("=", 1)[1] if given else None
    overrides = [o for o in overrides if not o.startswith("experiment=")]
    choices = list_experiments()
    if experiment is not None and experiment not in choices:
        raise ConfigError(f"unknown experiment {experiment!r}; valid experiments: {', '.join(choices)}")
    if experiment is not None:
        overrides = [f"experiment={experiment}", *overrides]
    with initialize_config_module(config_module=CONFIG_MODULE, version_base=None):
        try:
            cfg = hydra_compose(config_name="config", overrides=overrides)
        except ConfigCompositionException as err:
            base = hydra_compose(config_name="config", overrides=overrides[:1])
            cause = err.__cause__ or err
            raise ConfigError(
                f"{cause}\nvalid keys: {', '.join(_valid_keys(base))}\n"
                "(prefix a new key with '+' to add it, e.g. +model.some_option=1)"
            ) from None
    OmegaConf.resolve(cfg)
    missing = OmegaConf.missing_keys(cfg)
    if missing:
        raise ConfigError(f"config values missing: {', '.join(sorted(missing))}")
    return cfg
