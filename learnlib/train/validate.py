"""Up-front checks of a training config: types, ranges and choices, each error naming its key."""

from __future__ import annotations

import math
from numbers import Real

from omegaconf import DictConfig, ListConfig

from learnlib.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
BEST_MODES = ("max", "min")
BATCHINGS = ("fixed", "budget")
STRATEGIES = ("ddp", "fsdp")


def _fail(key: str, expected: str, value) -> None:
    raise ConfigError(f"{key} must be {expected}, got {value!r}")


def _int(cfg, key: str, minimum: int, optional: bool = False) -> None:
    value = cfg.get(key.split(".")[-1])
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(key, f"an integer >= {minimum}" + (" or null" if optional else ""), value)


def _float(cfg, key: str, low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False,
           optional: bool = False) -> None:
    value = cfg.get(key.split(".")[-1])
    if value is None and optional:
        return
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        _fail(key, f"a finite number in {span}" + (" or null" if optional else ""), value)


def _choice(cfg, key: str, choices: tuple[str, ...]) -> None:
    value = cfg.get(key.split(".")[-1])
    if value not in choices:
        _fail(key, f"one of {', '.join(choices)}", value)


def _bool(cfg, key: str) -> None:
    value = cfg.get(key.split(".")[-1])
    if not isinstance(value, bool):
        _fail(key, "true or false", value)


def validate_trainer(t: DictConfig) -> None:
    """Check every `trainer.*` value; ConfigError naming the first bad key."""
    for key in ("max_steps", "batch_size", "grad_accum", "eval_every", "checkpoint_every", "log_every"):
        _int(t, f"trainer.{key}", 1)
    _int(t, "trainer.warmup_steps", 0)
    _int(t, "trainer.num_workers", 0)
    _int(t, "trainer.num_threads", 1, optional=True)
    _float(t, "trainer.lr", 0.0, low_open=True)
    _float(t, "trainer.weight_decay", 0.0)
    _float(t, "trainer.min_lr_ratio", 0.0, 1.0)
    _float(t, "trainer.grad_clip", 0.0, low_open=True, optional=True)
    _float(t, "trainer.ema_decay", 0.0, 1.0, low_open=True, high_open=True, optional=True)
    betas = t.get("betas")
    if not (isinstance(betas, (list, tuple, ListConfig)) and len(betas) == 2
            and all(isinstance(b, Real) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
        _fail("trainer.betas", "two numbers in [0, 1), e.g. [0.9, 0.999]", betas)
    _choice(t, "trainer.precision", PRECISIONS)
    _choice(t, "trainer.device", DEVICES)
    _choice(t, "trainer.best_mode", BEST_MODES)
    _choice(t, "trainer.batching", BATCHINGS)
    _choice(t, "trainer.strategy", STRATEGIES)
    if t.get("strategy") == "fsdp" and t.get("ema_decay") is not None:
        raise ConfigError("trainer.ema_decay needs trainer.strategy=ddp: EMA weights of a sharded (fsdp) model "
                          "are not kept; set trainer.ema_decay=null or use strategy=ddp")
    if t.get("batching") == "budget":
        _int(t, "trainer.batch_budget", 1)
        _int(t, "trainer.batch_max_items", 1, optional=True)
    for key in ("compile", "progress", "tensorboard", "plot", "activation_checkpointing"):
        _bool(t, f"trainer.{key}")
    if not isinstance(t.get("best_metric"), str) or not t.best_metric.startswith("val/"):
        _fail("trainer.best_metric", "a held-out metric name such as val/accuracy", t.get("best_metric"))


def validate_config(cfg: DictConfig) -> None:
    """Check a composed training config before anything is built or written."""
    for key in ("resume", "overwrite"):
        _bool(cfg, key)
    _int(cfg, "seed", 0)
    validate_trainer(cfg.trainer)


def validate_best_metric(t: DictConfig, metric_names: tuple[str, ...]) -> None:
    """`trainer.best_metric` must be one of the held-out metrics the task reports."""
    valid = [f"val/{name}" for name in metric_names]
    if valid and t.best_metric not in valid:
        _fail("trainer.best_metric", f"one of the task's metrics ({', '.join(valid)})", t.best_metric)
