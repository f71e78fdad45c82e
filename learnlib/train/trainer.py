"""`fit`: the one training loop of the course, from a notebook cell to torchrun on many GPUs."""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm import tqdm

from learnlib import models
from learnlib.data import build_datasets
from learnlib.train import (
    distributed,
    generative_tasks,  # noqa: F401  (registers the vqvae and var tasks)
)
from learnlib.train.checkpoint import (
    FORMAT,
    atomic_copy,
    atomic_save,
    load_checkpoint,
    load_model_state,
    rng_state,
    set_rng_state,
)
from learnlib.train.errors import NonFiniteLossError
from learnlib.train.logger import RunLogger, plot_curves
from learnlib.train.optim import build_optimizer
from learnlib.train.sampler import ResumableDistributedSampler
from learnlib.train.schedule import build_scheduler
from learnlib.train.tasks import build_task, move_to


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


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: DictConfig) -> torch.nn.Module:
    """The model named in `cfg.model`, built through the registry."""
    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    return models.create(kwargs.pop("name"), **kwargs)


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("trainer.precision=fp16 needs CUDA; use bf16 on CPU")
        return torch.autocast("cuda", dtype=torch.float16)
    raise ValueError(f"trainer.precision must be fp32, bf16 or fp16, got {precision!r}")


def _check_batching(cfg: DictConfig, world_size: int, train_len: int) -> int:
    t = cfg.trainer
    per_step = world_size * t.grad_accum
    if t.grad_accum < 1 or t.batch_size % per_step:
        raise ValueError(f"trainer.batch_size ({t.batch_size}) must be a positive multiple of "
                         f"world_size * grad_accum ({world_size} * {t.grad_accum})")
    if train_len < t.batch_size:
        raise ValueError(f"the training set has {train_len} items, fewer than one batch "
                         f"(trainer.batch_size={t.batch_size})")
    return t.batch_size // per_step


def evaluate(model, task, loader, info, precision: str) -> dict[str, float]:
    """Held-out metrics: sums over the loader (and over ranks) divided by counts."""
    was_training = model.training
    model.eval()
    sums: dict[str, list[float]] = {}
    with torch.no_grad(), _autocast(precision, info.device):
        for batch in loader:
            for key, (total, count) in task.eval_sums(model, move_to(batch, info.device)).items():
                acc = sums.setdefault(key, [0.0, 0.0])
                acc[0] += float(total)
                acc[1] += count
    keys = sorted(sums)
    packed = torch.tensor([v for k in keys for v in sums[k]], dtype=torch.float64, device=info.device)
    packed = distributed.all_reduce_sum(packed, info).view(-1, 2)  # (metrics, [sum, count])
    model.train(was_training)
    return {f"val/{k}": (packed[i, 0] / packed[i, 1].clamp_min(1)).item() for i, k in enumerate(keys)}


def fit(cfg: DictConfig) -> FitResult:
    """Train the experiment described by `cfg` (see learnlib/configs/config.yaml)."""
    t = cfg.trainer
    info = distributed.setup(t.device)
    try:
        return _fit(cfg, info)
    finally:
        distributed.teardown(info)


def _fit(cfg: DictConfig, info) -> FitResult:
    t = cfg.trainer
    run_dir = Path(cfg.run_dir)
    ckpt_dir = run_dir / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"

    resume_state = None
    if cfg.resume:
        resume_state = load_checkpoint(last_path)  # raises a clear error before anything is written
    elif info.is_main and last_path.exists():
        print(f"note: starting a fresh run in {run_dir}; its old checkpoints will be replaced "
              "(pass resume=true to continue it instead)")

    _autocast(t.precision, info.device)  # validates trainer.precision before anything is built
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    seed_everything(cfg.seed)
    train_set, val_set = build_datasets(cfg.data)
    micro_batch = _check_batching(cfg, info.world_size, len(train_set))
    task = build_task(cfg.task)
    model = build_model(cfg).to(info.device)
    optimizer = build_optimizer(model, t.lr, t.weight_decay, t.betas, info.device)
    scheduler = build_scheduler(optimizer, t.warmup_steps, t.max_steps, t.min_lr_ratio)
    scaler = torch.amp.GradScaler("cuda", enabled=t.precision == "fp16")
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(t.ema_decay)) if t.ema_decay else None

    step, epoch, batch_in_epoch = 0, 0, 0
    best_value = None
    if resume_state is not None:
        load_model_state(model, resume_state["model"], str(last_path))
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        scaler.load_state_dict(resume_state["scaler"])
        if ema is not None and resume_state.get("ema") is not None:
            ema.load_state_dict(resume_state["ema"])
        step = resume_state["step"]
        epoch, batch_in_epoch = resume_state["data"]["epoch"], resume_state["data"]["batch_in_epoch"]
        best_value = resume_state.get("best_value")
        set_rng_state(resume_state["rng"])

    train_model = model
    if info.enabled:
        train_model = DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    if t.compile:
        train_model = torch.compile(train_model)

    sampler = ResumableDistributedSampler(len(train_set), info.rank, info.world_size, shuffle=True,
                                          seed=cfg.seed, global_batch=t.batch_size)
    loader_generator = torch.Generator().manual_seed(cfg.seed)  # keeps the global RNG untouched
    train_loader = DataLoader(train_set, batch_size=micro_batch, sampler=sampler, num_workers=t.num_workers,
                              pin_memory=info.device.type == "cuda", generator=loader_generator,
                              persistent_workers=False)
    val_sampler = ResumableDistributedSampler(len(val_set), info.rank, info.world_size, shuffle=False,
                                              drop_last=False)
    val_loader = DataLoader(val_set, batch_size=max(micro_batch, 256), sampler=val_sampler,
                            num_workers=t.num_workers, generator=torch.Generator().manual_seed(cfg.seed))

    logger = RunLogger(run_dir, enabled=info.is_main, tensorboard=t.tensorboard, append=resume_state is not None)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    eval_model = ema.module if ema is not None else model
    metrics: dict[str, float] = {}

    def save(path: Path, current_metrics: dict[str, float]) -> None:
        state = {
            "format": FORMAT, "step": step, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "ema": ema.state_dict() if ema is not None else None,
            "rng": rng_state(), "data": {"epoch": epoch, "batch_in_epoch": batch_in_epoch},
            "config": OmegaConf.to_yaml(cfg), "metrics": current_metrics, "best_value": best_value,
        }
        atomic_save(state, path)

    def is_better(value: float) -> bool:
        if best_value is None:
            return True
        return value > best_value if t.best_mode == "max" else value < best_value

    start_time = time.perf_counter()
    progress = tqdm(total=t.max_steps, initial=step, disable=not (info.is_main and t.progress),
                    desc=cfg.name, dynamic_ncols=True, mininterval=1.0)
    model.train()
    batches_per_epoch = len(train_set) // t.batch_size * t.grad_accum
    data_iter = None
    while step < t.max_steps:
        if data_iter is None:
            sampler.set_epoch(epoch, start=batch_in_epoch * micro_batch)
            data_iter = iter(train_loader)
        loss_sum, scalars_sum = 0.0, {}
        for micro in range(t.grad_accum):
            batch = next(data_iter, None)
            if batch is None:  # the epoch ran out mid-step: start the next one
                epoch, batch_in_epoch = epoch + 1, 0
                sampler.set_epoch(epoch)
                data_iter = iter(train_loader)
                batch = next(data_iter)
            batch_in_epoch += 1
            batch = move_to(batch, info.device)
            sync = micro == t.grad_accum - 1 or not info.enabled
            with (contextlib.nullcontext() if sync else train_model.no_sync()):
                with _autocast(t.precision, info.device):
                    loss, scalars = task.training_loss(train_model, batch)
                if not torch.isfinite(loss):
                    progress.close()
                    logger.close()
                    where = f"last good checkpoint: {last_path}" if last_path.exists() else "no checkpoint written yet"
                    raise NonFiniteLossError(f"loss became {loss.item()} at step {step + 1} "
                                             f"(micro-batch {micro + 1}/{t.grad_accum}); {where}")
                scaler.scale(loss / t.grad_accum).backward()
            loss_sum += loss.item() / t.grad_accum
            for key, value in scalars.items():
                scalars_sum[key] = scalars_sum.get(key, 0.0) + value / t.grad_accum
        if batch_in_epoch >= batches_per_epoch:
            epoch, batch_in_epoch, data_iter = epoch + 1, 0, None

        scaler.unscale_(optimizer)
        grad_norm = None
        if t.grad_clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip).item()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        step += 1
        progress.update(1)

        if step % t.log_every == 0 or step == t.max_steps:
            logged = {"train/loss": loss_sum, "train/lr": lr, **{f"train/{k}": v for k, v in scalars_sum.items()}}
            if grad_norm is not None:  # logged only on steps that stepped and clipped
                logged["train/grad_norm"] = grad_norm
            logger.log(step, logged)
            progress.set_postfix(loss=f"{loss_sum:.4f}", lr=f"{lr:.2e}")

        do_eval = step % t.eval_every == 0 or step == t.max_steps
        do_ckpt = step % t.checkpoint_every == 0 or step == t.max_steps
        if do_eval:
            metrics = evaluate(eval_model, task, val_loader, info, t.precision)
            logger.log(step, metrics)
            progress.set_postfix(loss=f"{loss_sum:.4f}", **{k.replace("/", "_"): f"{v:.4f}" for k, v in metrics.items()})
        if do_ckpt:
            distributed.barrier(info)
            if info.is_main:
                new_best = do_eval and t.best_metric in metrics and is_better(metrics[t.best_metric])
                if new_best:
                    best_value = metrics[t.best_metric]
                save(last_path, metrics)
                if new_best:
                    atomic_copy(last_path, best_path)
            distributed.barrier(info)
    progress.close()

    seconds = time.perf_counter() - start_time
    if info.is_main and t.plot:
        plot_curves(logger.history, run_dir / "curves.png", title=cfg.name)
    logger.close()
    return FitResult(metrics=metrics, checkpoint=last_path if last_path.exists() else None,
                     best_checkpoint=best_path if best_path.exists() else None, run_dir=run_dir,
                     steps=step, seconds=seconds, history=dict(logger.history))
