"""`python -m learnlib.memory experiment=var_d16 trainer.batch_size=768 devices=8 gpu=H100-80GB`

Prints the memory per device of one training step, whether it fits on the GPU (and on the
other GPUs of learnlib.memory.gpus), and the largest batch per device that fits with and without
activation checkpointing and FSDP. Keys of this command: experiment, devices, gpu, strategy
(ddp|fsdp), precision (default: the experiment's trainer.precision), optimizer (adamw|sgd),
activation_checkpointing (true|false), attention_backend; any other key=value is a Hydra
override of the experiment (trainer.batch_size, trainer.grad_accum, model.depth, ...).

The SLat VAE (experiments slat_vae_*) trains on budgeted batches: its unit is voxels per device,
`trainer.batch_budget` (with trainer.batching=budget), and the largest budget that fits is printed
in voxels; activation_checkpointing defaults to the experiment's model.use_checkpoint. Its
activations are measured on the CPU first (about 1.5 min for the full-size VAE on 2 cores).
`python -m learnlib.memory experiment=slat_vae_swin8_b_64l8 trainer.batch_budget=32768 devices=8`
"""

from __future__ import annotations

import sys

from learnlib.memory.breakdown import (
    ATTENTION_BACKENDS,
    GIB,
    OPTIMIZERS,
    PRECISIONS,
    STRATEGIES,
    check_choice,
)
from learnlib.memory.estimate import estimate_workload, is_slat
from learnlib.memory.gpus import ALLOWANCE_NOTE, GPUS, gpu_capacity, largest_batch, needed_gib
from learnlib.memory.spec import resolve

OWN_KEYS = ("experiment", "devices", "gpu", "strategy", "precision", "optimizer", "activation_checkpointing",
            "attention_backend")


def _parse(argv: list[str]) -> tuple[dict, list[str]]:
    own, overrides = {}, []
    for arg in argv:
        if "=" not in arg:
            raise ValueError(f"arguments are key=value, got {arg!r}; keys of this command: {', '.join(OWN_KEYS)}")
        key, value = arg.split("=", 1)
        (own.__setitem__(key, value) if key in OWN_KEYS else overrides.append(arg))
    return own, overrides


def _bool(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value.lower() in ("true", "1", "yes")


def run(argv: list[str]) -> str:
    """The report for command-line arguments `argv` (ValueError on bad input)."""
    own, overrides = _parse(argv)
    if "experiment" not in own:
        raise ValueError("experiment=NAME is required, e.g. experiment=var_d16")
    devices = int(own.get("devices", 1))
    if devices < 1:
        raise ValueError(f"devices must be a positive int, got {devices}")
    gpu = own.get("gpu", "H100-80GB")
    gpu_capacity(gpu)
    strategy = own.get("strategy", "ddp")
    check_choice("strategy", strategy, STRATEGIES)
    optimizer = own.get("optimizer", "adamw")
    check_choice("optimizer", optimizer, OPTIMIZERS)
    backend = own.get("attention_backend")
    if backend is not None:
        check_choice("attention_backend", backend, ATTENTION_BACKENDS)
    if "precision" in own:
        check_choice("precision", own["precision"], PRECISIONS)
    workload = resolve(own["experiment"], overrides)
    default_ckpt = "true" if workload.task.get("use_checkpoint") else "false"
    ckpt = _bool("activation_checkpointing", own.get("activation_checkpointing", default_ckpt))
    trainer = workload.config.trainer
    precision = own.get("precision", trainer.precision)
    check_choice("precision", precision, PRECISIONS)
    batch, header, unit = (_voxel_budget(workload, devices) if is_slat(workload)
                           else _batch_per_device(workload, devices))
    settings = (precision, optimizer, strategy, devices, ckpt, backend)
    breakdown = estimate_workload(workload, batch, *settings)
    need, capacity = needed_gib(breakdown), gpu_capacity(gpu)
    table = breakdown.table().replace(f"batch {batch} per device", f"{unit} {batch} per device", 1)
    lines = [*header, "", table, "", ALLOWANCE_NOTE + ".", ""]
    verdict = "fits" if need <= capacity else "does NOT fit"
    lines.append(f"{gpu} ({capacity:.1f} GiB): {verdict}: needs {need:.1f} GiB with the allowance.")
    lines += ["", f"largest {unit} per device that fits ({precision}, {optimizer}, {devices} devices):", "",
              "| GPU | GiB | fits now | ddp | ddp + checkpointing | fsdp | fsdp + checkpointing |",
              "|---|---:|---|---:|---:|---:|---:|"]
    best = {}
    for name, gib in GPUS.items():
        row = []
        for strat in ("ddp", "fsdp"):
            for with_ckpt in (False, True):
                value = largest_batch(workload, name, precision, optimizer, strat, devices, with_ckpt, backend)
                row.append(value)
                if name == gpu:
                    best[(strat, with_ckpt)] = value
        current = estimate_workload(workload, batch, *settings[:2], settings[2], devices, ckpt, backend)
        marker = " (chosen)" if name == gpu else ""
        lines.append(f"| {name}{marker} | {gib:.1f} | {'yes' if needed_gib(current) <= gib else 'no'} | "
                     + " | ".join(str(v) for v in row) + " |")
    lines += ["", _recommend(best, batch, need <= capacity, strategy, ckpt, gpu, breakdown.total / GIB, unit)]
    return "\n".join(lines)


def _batch_per_device(workload, devices: int) -> tuple[int, list[str], str]:
    trainer = workload.config.trainer
    per_step = devices * trainer.grad_accum
    if trainer.batch_size % per_step:
        raise ValueError(f"trainer.batch_size ({trainer.batch_size}) must be a multiple of devices * grad_accum "
                         f"({devices} * {trainer.grad_accum})")
    batch = trainer.batch_size // per_step
    return batch, [(f"experiment {workload.name}: global batch {trainer.batch_size} = {devices} devices x "
                    f"{trainer.grad_accum} accumulation steps x {batch} per device")], "batch"


def _voxel_budget(workload, devices: int) -> tuple[int, list[str], str]:
    """The SLat VAE's micro-batch per device: trainer.batch_budget voxels (trainer.batching=budget)."""
    from learnlib.memory.slat import slat_setting

    trainer = workload.config.trainer
    if trainer.get("batching") != "budget" or not trainer.get("batch_budget"):
        raise ValueError(f"experiment {workload.name}: the SLat VAE's memory is per voxel budget; set "
                         f"trainer.batching=budget and trainer.batch_budget=VOXELS per device")
    budget, setting = int(trainer.batch_budget), slat_setting(workload)
    header = [(f"experiment {workload.name}: {budget} voxels per device (trainer.batch_budget) x {devices} devices x "
               f"{trainer.grad_accum} accumulation steps"),
              ("workload unit: voxels per device (trainer.batching=budget), not items: up to "
               f"{setting.objects} objects (trainer.batch_max_items) sharing the budget, each rendered at "
               f"{setting.views} view(s) of {setting.image_size} x {setting.image_size} px"),
              ("activations: measured on CPU at 512 and 1024 voxels and 32/64 px, extrapolated per voxel and per "
               "pixel (learnlib.memory.slat); attention auto counts flash-attn (CUDA's choice with the gpu extra); "
               f"budgets stop at {setting.objects} x {workload.model.encoder.resolution}^3 voxels (every grid cell)")]
    return budget, header, "voxel budget"


def _recommend(best: dict, batch: int, fit: bool, strategy: str, ckpt: bool, gpu: str, total_gib: float,
               unit: str = "batch") -> str:
    current = best[(strategy, ckpt)]
    more = "trainer.grad_accum" if unit == "batch" else "trainer.grad_accum with a smaller trainer.batch_budget"
    if fit:
        return (f"recommendation: {unit} {batch} per device fits on {gpu} with {strategy}"
                f"{' + checkpointing' if ckpt else ''} (up to {current} per device).")
    for option in (("ddp", False), ("fsdp", False), ("ddp", True), ("fsdp", True)):
        if best[option] >= batch:
            strat, with_ckpt = option
            return (f"recommendation: {unit} {batch} per device needs {total_gib:.1f} GiB before the allowance; "
                    f"use strategy={strat}{' activation_checkpointing=true' if with_ckpt else ''} "
                    f"(up to {best[option]} per device), or more devices / {more}.")
    most = max(best.values())
    return (f"recommendation: {unit} {batch} per device does not fit on {gpu} in any setting (at most {most} per "
            f"device); raise devices or {more} so that {unit} per device <= {most}.")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        print(run(argv))
    except (ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # configuration errors of learnlib.train (unknown keys, experiments)
        if type(err).__name__ == "ConfigError":
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
