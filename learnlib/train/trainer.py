"""`fit`: the one training loop of the course, from a notebook cell to torchrun on many GPUs."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm  # a widget in JupyterLab (with ipywidgets), text in a terminal

from learnlib.data import build_datasets
from learnlib.errors import ConfigError, NonFiniteLossError
from learnlib.models import build_model
from learnlib.nn.checkpointing import apply_activation_checkpointing
from learnlib.nn.optim import build_optimizer
from learnlib.nn.precision import autocast
from learnlib.tasks import build_task
from learnlib.train import distributed
from learnlib.train.checkpoint import (
    FORMAT,
    atomic_save,
    first_non_finite,
    load_checkpoint,
    load_model_state,
    optimizer_tensors,
    rng_state,
    set_rng_state,
)
from learnlib.train.data_errors import reading_data
from learnlib.train.dcp import load_sharded, save_sharded
from learnlib.train.loader import ResumableLoader, eval_batches, move_to, train_batch_sampler
from learnlib.train.logger import RunLogger, plot_curves
from learnlib.train.run_dir import RunDirectory
from learnlib.train.schedule import build_scheduler
from learnlib.train.sharding import accumulation_context, clip_grad_norm, wrap_for_training
from learnlib.train.validate import validate_best_metric, validate_config
from learnlib.train.write_errors import writing_run_files


@dataclass
class FitResult:
    """What a run leaves: final held-out metrics, checkpoint paths and the logged history."""

    metrics: dict[str, float]
    checkpoint: Path | None
    best_checkpoint: Path | None
    run_dir: Path
    steps: int
    seconds: float
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    is_main: bool = True  # False on the other ranks of a distributed run (they write nothing)
    already_complete: bool = False  # resumed at or past trainer.max_steps: nothing trained, the saved metrics


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _autocast(precision: str, device: torch.device):
    """learnlib.nn.precision.autocast, its errors naming trainer.precision."""
    return autocast(precision, device, name="trainer.precision")


def _check_batching(cfg: DictConfig, world_size: int, train_len: int) -> int:
    """The micro-batch per rank of fixed-size batching (0 for budgeted batches)."""
    t = cfg.trainer
    if t.get("batching", "fixed") == "budget":
        return 0
    per_step = world_size * t.grad_accum
    if t.batch_size % per_step:
        raise ValueError(f"trainer.batch_size ({t.batch_size}) must be a positive multiple of "
                         f"world_size * grad_accum ({world_size} * {t.grad_accum})")
    if train_len < t.batch_size:
        raise ValueError(f"the training set has {train_len} items, fewer than one batch "
                         f"(trainer.batch_size={t.batch_size})")
    return t.batch_size // per_step


def evaluate(model, task, loader, info, precision: str) -> dict[str, float]:
    """Held-out metrics: sums over the loader (and over ranks) divided by counts.

    Every rank runs the same number of forward passes (sharded models gather their weights in
    each one): a rank with fewer batches repeats its last one and discards the result.
    """
    was_training = model.training
    model.eval()
    sums: dict[str, list[float]] = {}
    rounds = int(distributed.all_reduce_max(torch.tensor(len(loader), device=info.device), info))
    with torch.no_grad(), _autocast(precision, info.device):
        batch = None
        for batch in loader:
            for key, (total, count) in task.eval_sums(model, move_to(batch, info.device)).items():
                acc = sums.setdefault(key, [0.0, 0.0])
                acc[0] += float(total)
                acc[1] += count
        for _ in range(rounds - len(loader)):
            task.eval_sums(model, move_to(batch, info.device))
    keys = sorted(sums)
    packed = torch.tensor([v for k in keys for v in sums[k]], dtype=torch.float64, device=info.device)
    packed = distributed.all_reduce_sum(packed, info).view(-1, 2)  # (metrics, 2): [sum, count]
    model.train(was_training)
    return {f"val/{k}": (packed[i, 0] / packed[i, 1].clamp_min(1)).item() for i, k in enumerate(keys)}


def fit(cfg: DictConfig) -> FitResult:
    """Train the experiment described by `cfg` (see learnlib/configs/config.yaml)."""
    validate_config(cfg)
    info = distributed.setup(cfg.trainer.device)
    run_dir = RunDirectory(cfg.run_dir)
    try:
        _check_strategy(cfg.trainer.strategy, info)
        with writing_run_files(run_dir.path), reading_data():
            if info.is_main:
                run_dir.acquire()
            run_dir.check_start(cfg.resume, cfg.overwrite)
            if info.is_main:
                if cfg.overwrite and not cfg.resume:
                    run_dir.clear()
                run_dir.remove_partial_checkpoints()
            distributed.barrier(info)
            return _Run(cfg, info, run_dir).train()
    finally:
        run_dir.release()
        distributed.teardown(info)


def _check_strategy(strategy: str, info) -> None:
    if strategy == "fsdp" and not info.enabled:
        raise ConfigError("trainer.strategy=fsdp shards the model over 2 or more ranks but this is one process: "
                          "launch with `torchrun --nproc_per_node=N -m learnlib.train ...` (N >= 2), or pass "
                          "trainer.strategy=ddp to train in one process (it resumes a sharded checkpoint too)")


class _Run:
    """One training run: builds everything from the config, restores a checkpoint, loops."""

    def __init__(self, cfg: DictConfig, info, run_dir: RunDirectory):
        t = self.t = cfg.trainer
        self.cfg, self.info, self.dir = cfg, info, run_dir
        self.sharded = t.strategy == "fsdp"
        # sharded checkpoint folders under FSDP, and on resuming one (DCP loads it into an unsharded model)
        self.sharded_checkpoints = self.sharded or (cfg.resume and run_dir.has_sharded_checkpoint())
        if self.sharded_checkpoints:
            run_dir.use_sharded_checkpoints()
        # a single-file checkpoint is read now: a clear error before anything is built or written
        resume_state = load_checkpoint(run_dir.last) if cfg.resume and not self.sharded_checkpoints else None
        _autocast(t.precision, info.device)  # validates trainer.precision before anything is built
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        seed_everything(cfg.seed)
        train_set, val_set = build_datasets(cfg.data)
        micro_batch = _check_batching(cfg, info.world_size, len(train_set))
        self.task = build_task(cfg.task)
        validate_best_metric(t, self.task.metric_names)
        self.model = build_model(cfg).to(info.device)
        if t.activation_checkpointing:
            apply_activation_checkpointing(self.model)
        if self.sharded:  # sharded in place: the optimizer and the checkpoint see the shards
            self.model = wrap_for_training(self.model, "fsdp", info, t.precision)
        self.optimizer = build_optimizer(self.model, t.lr, t.weight_decay, t.betas, info.device)
        self.scheduler = build_scheduler(self.optimizer, t.warmup_steps, t.max_steps, t.min_lr_ratio)
        self.scaler = torch.amp.GradScaler("cuda", enabled=t.precision == "fp16")
        self.ema = (AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(t.ema_decay))
                    if t.ema_decay else None)
        self.loader = ResumableLoader(train_set, train_batch_sampler(train_set, t, info.rank, info.world_size, cfg.seed),
                                      num_workers=t.num_workers, pin_memory=info.device.type == "cuda", seed=cfg.seed)
        self.step, self.best_value, self.last_good_step = 0, None, None
        if cfg.resume and self.sharded_checkpoints:
            resume_state = load_sharded(run_dir.last, self.model, self.optimizer)
        if resume_state is not None:
            self._restore(resume_state)
        self.train_model = self._wrap(self.model)
        self.val_loader = eval_batches(val_set, t.get("eval_batch_size") or max(micro_batch, 256), info.rank,
                                       info.world_size, t.num_workers, cfg.seed)
        self.already_complete = resume_state is not None and self.step >= t.max_steps
        self.logger = RunLogger(run_dir.path, enabled=info.is_main and not self.already_complete,
                                tensorboard=t.tensorboard, resume_step=self.step if resume_state is not None else None)
        if info.is_main and not self.already_complete:
            (run_dir.path / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        self.eval_model = self.ema.module if self.ema is not None else self.model
        # a finished run's final metrics stay its result until it trains again
        self.metrics: dict[str, float] = dict(resume_state.get("metrics") or {}) if resume_state is not None else {}

    def _restore(self, state: dict) -> None:
        if not self.sharded_checkpoints:  # a sharded checkpoint already restored the weights and the optimizer
            load_model_state(self.model, state["model"], str(self.dir.last))
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.step = self.last_good_step = state["step"]
        self.loader.load_state_dict(state["data"])
        self.best_value = state.get("best_value")
        set_rng_state(state["rng"])

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.sharded:  # DDP replicas under torchrun, the model itself in one process
            model = wrap_for_training(model, "ddp", self.info, self.t.precision)
        return torch.compile(model) if self.t.compile else model

    def train(self) -> FitResult:
        """Run until `trainer.max_steps`; evaluate, log and checkpoint on schedule."""
        t, info = self.t, self.info
        start_time = time.perf_counter()
        if self.already_complete:  # nothing to train: the saved run and its final metrics, untouched
            return self._result(0.0)
        shown = info.is_main and t.progress and os.environ.get("LEARNLIB_PROGRESS", "on") != "off"  # off: stored notebooks
        self.progress = tqdm(total=t.max_steps, initial=self.step, disable=not shown,
                             desc=self.cfg.name, dynamic_ncols=True, mininterval=1.0)
        self.model.train()
        try:
            while self.step < t.max_steps:
                loss, scalars = self._optimizer_step()
                self._after_step(loss, scalars)
        finally:
            self.progress.close()
            self.logger.close()
        seconds = time.perf_counter() - start_time
        if info.is_main and t.plot:
            plot_curves(self.logger.history, self.dir.path / "curves.png", title=self.cfg.name)
        return self._result(seconds)

    def _result(self, seconds: float) -> FitResult:
        is_main = self.info.is_main
        last = self.dir.last if is_main and self.dir.last.exists() else None
        best = self.dir.best if is_main and self.dir.best.exists() else None
        return FitResult(metrics=self.metrics, checkpoint=last, best_checkpoint=best, run_dir=self.dir.path,
                         steps=self.step, seconds=seconds, history=dict(self.logger.history), is_main=is_main,
                         already_complete=self.already_complete)

    def _optimizer_step(self) -> tuple[float, dict[str, float]]:
        """Forward and backward over `grad_accum` micro-batches, then one optimizer step."""
        t, info = self.t, self.info
        loss_sum, scalars_sum = 0.0, {}
        # under FSDP its mixed-precision policy casts the weights, so autocast stays off
        precision = "fp32" if self.sharded else t.precision
        for micro in range(t.grad_accum):
            batch = move_to(next(self.loader), info.device)
            with accumulation_context(self.train_model, is_last_micro=micro == t.grad_accum - 1):
                with _autocast(precision, info.device):
                    loss, scalars = self.task.training_loss(self.train_model, batch)
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(f"loss became {loss.item()} at step {self.step + 1} "
                                             f"(micro-batch {micro + 1}/{t.grad_accum}); {self._last_good()}")
                self.scaler.scale(loss / t.grad_accum).backward()
            loss_sum += loss.item() / t.grad_accum
            for key, value in scalars.items():
                scalars_sum[key] = scalars_sum.get(key, 0.0) + value / t.grad_accum
        self.scaler.unscale_(self.optimizer)
        if t.grad_clip is not None:
            scalars_sum["grad_norm"] = clip_grad_norm(self.model, t.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        scalars_sum["lr"] = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1
        self.progress.update(1)
        return loss_sum, scalars_sum

    def _after_step(self, loss: float, scalars: dict[str, float]) -> None:
        t, step = self.t, self.step
        if step % t.log_every == 0 or step == t.max_steps:
            # grad_norm is there only on steps that clipped: every optimizer step, never a micro-batch
            self.logger.log(step, {"train/loss": loss, **{f"train/{k}": v for k, v in scalars.items()}})
            self.progress.set_postfix(loss=f"{loss:.4f}", lr=f"{scalars['lr']:.2e}")
        do_eval = step % t.eval_every == 0 or step == t.max_steps
        if do_eval:
            precision = "fp32" if self.sharded else t.precision
            self.metrics = evaluate(self.eval_model, self.task, self.val_loader, self.info, precision)
            self.logger.log(step, self.metrics)
            self.progress.set_postfix(loss=f"{loss:.4f}",
                                      **{k.replace("/", "_"): f"{v:.4f}" for k, v in self.metrics.items()})
        if step % t.checkpoint_every == 0 or step == t.max_steps:
            self._checkpoint(new_metrics=do_eval)

    def _last_good(self) -> str:
        if self.last_good_step is None:
            return "no checkpoint written yet"
        return f"last good checkpoint: {self.dir.last} (step {self.last_good_step})"

    def _intact(self) -> str:
        if self.last_good_step is None:
            return "no checkpoint written yet"
        return f"last good checkpoint {self.dir.last} (step {self.last_good_step}) is intact"

    def _checkpoint(self, new_metrics: bool) -> None:
        """Write last (and best on a new best); never with non-finite weights or optimizer state.

        One file on rank 0 (DDP, one process), or a sharded folder written by every rank (FSDP).
        """
        self._check_finite()
        metric = self.metrics.get(self.t.best_metric) if new_metrics else None
        new_best = metric is not None and self._is_better(metric)
        if new_best:
            self.best_value = metric
        distributed.barrier(self.info)
        with writing_run_files(self.dir.checkpoints, self._intact()):
            if self.sharded_checkpoints:
                save_sharded(self.dir.last, self.model, self.optimizer, self._state(with_weights=False))
            elif self.info.is_main:
                atomic_save(self._state(), self.dir.last)
            self.last_good_step = self.step
            if new_best and self.info.is_main:
                self.dir.copy_last_to_best()
        distributed.barrier(self.info)

    def _check_finite(self) -> None:
        """Stop every rank together when a weight or an optimizer state holds NaN or infinity."""
        # buffers may hold infinities on purpose (attention masks) and are not checked
        bad = first_non_finite([*self.model.named_parameters(), *optimizer_tensors(self.optimizer)])
        flag = distributed.all_reduce_sum(torch.tensor(float(bad is not None), device=self.info.device), self.info)
        if flag.item() > 0:
            what = bad or "a weight on another rank"
            raise NonFiniteLossError(f"{what} became non-finite by step {self.step}; no checkpoint written "
                                     f"(lower trainer.lr or enable trainer.grad_clip); {self._last_good()}")

    def _is_better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value > self.best_value if self.t.best_mode == "max" else value < self.best_value

    def _state(self, with_weights: bool = True) -> dict:
        """Everything a resume needs; without the weights and optimizer when a sharded save holds them."""
        state = {
            "format": FORMAT, "step": self.step, "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": rng_state(), "data": self.loader.state_dict(),
            "config": OmegaConf.to_yaml(self.cfg), "metrics": self.metrics, "best_value": self.best_value,
        }
        if with_weights:
            ema = self.ema.state_dict() if self.ema is not None else None
            state.update(model=self.model.state_dict(), optimizer=self.optimizer.state_dict(), ema=ema)
        return state
