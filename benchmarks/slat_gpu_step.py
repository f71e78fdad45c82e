"""Section (e) of bench_gpu.py: one SLat VAE training step (the `slat_vae` task) timed, its peak memory
measured and set beside learnlib.memory's voxel-budget estimate.

The model comes from the experiment config as the trainer builds it (`model.use_checkpoint` as
configured, plus one row with the other setting), trained under the experiment's autocast
precision with the trainer's AdamW and gradient clipping, on `objects` synthetic shells of
`voxels` voxels each (learnlib.slat.memory_step) rendered at one view. LPIPS is off (weight 0):
its VGG16 weights file is not on the benchmark machine. The EMA copy the trainer keeps is not part
of the step (nor of the estimate). The estimate counts the attention the model's "auto" resolves to
(flash_attn when installed on CUDA, else sdpa); its sdpa count also holds the PyTorch rasterizer's
(pixel, Gaussian) pairs, so with gsplat but without flash_attn it overestimates.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from learnlib.configs.compose import compose
from learnlib.memory.estimate import estimate_workload
from learnlib.memory.spec import resolve
from learnlib.models import build_model
from learnlib.nn.optim import build_optimizer
from learnlib.nn.precision import autocast
from learnlib.slat.memory_step import training_step
from learnlib.slat.task import SLatVAEReconstruction
from learnlib.sparse.attention import resolve_backend

FULL = {"experiment": "slat_vae_swin8_b_64l8", "objects": 4, "voxels": 8192, "image_size": 512}
SMOKE = {"experiment": "slat_vae_meshes", "objects": 2, "voxels": 256, "image_size": 64}


def rasterizer_used(device: torch.device) -> str:
    """What the task's "auto" render backend runs on `device`."""
    from learnlib.splat.gsplat_backend import gsplat_available

    return "gsplat" if device.type == "cuda" and gsplat_available() else "torch (reference)"


def estimate_backend(device: torch.device) -> str:
    """The attention backend the estimate counts: what the model's "auto" attention resolves to."""
    return "flash_attn" if resolve_backend("auto", device) == "flash" else "sdpa"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_steps(step, device: torch.device, repeats: int) -> tuple[float, float, float]:
    """First-step seconds, median seconds of `repeats` steps after two warm-ups, and the peak bytes of
    those (the allocator's peak after the first step; NaN on CPU)."""
    start = time.perf_counter()
    step()
    _sync(device)
    first = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(2 + repeats):
        start = time.perf_counter()
        step()
        _sync(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else float("nan")
    return first, statistics.median(times), peak


def _measure(cfg, setting: dict, checkpointing: bool, weights, device: torch.device, repeats: int):
    """(first s, median s, peak bytes) of training steps of the configured model, or None when out of memory."""
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    model.use_checkpoint = checkpointing
    model.train()
    trainer = cfg.trainer
    optimizer = build_optimizer(model, trainer.lr, trainer.weight_decay, trainer.betas, device)
    loss_fn = training_step(model, setting["voxels"], setting["image_size"], views=1, objects=setting["objects"],
                            weights=weights)
    precision = trainer.get("precision") or "fp32"

    def step() -> None:
        with autocast(precision, device.type):
            loss = loss_fn()
        loss.backward()
        if trainer.get("grad_clip"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    try:
        return _timed_steps(step, device, repeats)
    except torch.cuda.OutOfMemoryError:
        return None


def bench_slat_vae(device: torch.device, smoke: bool, repeats: int) -> list[str]:
    """Rows: the configured checkpointing, then the other one (the estimate's calibration time in the first)."""
    setting = SMOKE if smoke else FULL
    cfg = compose(setting["experiment"], [  # what the estimate renders: the step's objects and view
        "task.lpips=0",  # no VGG16 weights file on the benchmark machine
        f"trainer.batch_max_items={setting['objects']}", f"data.image_size={setting['image_size']}",
        "data.views_per_item=1"])
    task_options = {k: v for k, v in cfg.task.items() if k != "name"}
    weights = dataclasses.replace(SLatVAEReconstruction(**task_options).weights, lpips=0.0)
    workload = resolve(cfg)
    precision = cfg.trainer.get("precision") or "fp32"
    backend = estimate_backend(device)
    counted_render = "gsplat" if backend == "flash_attn" else "PyTorch rasterizer"  # what the estimate counts
    voxels = setting["objects"] * setting["voxels"]
    configured = bool(cfg.model.get("use_checkpoint", False))
    rows = []
    for checkpointing in (configured, not configured):
        start = time.perf_counter()
        est = estimate_workload(workload, voxels, precision, "adamw", "ddp", 1, checkpointing, backend)
        calibration = time.perf_counter() - start  # the first call measures the calibration model on the CPU
        measured = _measure(cfg, setting, checkpointing, weights, device, repeats)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the model and optimizer of the row are gone: hand their memory back
        what = (f"{cfg.model.name} ({setting['experiment']}), {setting['objects']} x {setting['voxels']:,} voxels, "
                f"1 view {setting['image_size']} px, {precision}, checkpointing {'on' if checkpointing else 'off'}"
                f"{' (configured)' if checkpointing == configured else ''}, LPIPS off (weight 0)")
        if measured is None:
            rows.append(f"| {what} | {rasterizer_used(device)} | out of memory | | | {est.total / 2**30:.3f} | | "
                        f"| {calibration:.1f} |")
            continue
        first, seconds, peak = measured
        ratio = f"{est.total / peak:.2f}" if device.type == "cuda" else "n/a (CPU)"
        rows.append(f"| {what} | {rasterizer_used(device)} | {seconds:.3f} | {voxels / seconds:,.0f} | "
                    f"{peak / 2**30:.3f} | {est.total / 2**30:.3f} | {ratio} | {first:.1f} | {calibration:.1f} |")
    header = [("| SLat VAE training step | rasterizer | s / step (median) | voxels/s | peak GiB (max_memory_allocated) "
               f"| estimated GiB ({backend}, {counted_render}) | estimate / measured | first step s | estimate calibration s (CPU) |"),
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    return header + rows
