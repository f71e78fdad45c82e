"""`python -m learnlib.memory experiment=var_d16 trainer.batch_size=768 devices=8 gpu=H100-80GB`

Prints the memory per device of one training step, whether it fits on the GPU (and on the
other GPUs of learnlib.memory.gpus), and the largest batch per device that fits with and without
activation checkpointing and FSDP. Keys of this command: experiment, devices, gpu, strategy
(ddp|fsdp), precision (default: the experiment's trainer.precision), optimizer (adamw|sgd),
activation_checkpointing (true|false; default: the experiment's trainer.activation_checkpointing),
attention_backend (a learnlib.nn.backends name: auto|reference|sdpa|flash, or an alias); any other
key=value is a Hydra override of the experiment (trainer.batch_size, trainer.grad_accum, model.depth,
trainer.ema_decay, ...). A family may count its batch in another unit: the SLat VAE's is voxels per
device, `trainer.batch_budget` (with trainer.batching=budget); its activations are measured on the CPU
first (run time: benchmarks/RESULTS.md).
`python -m learnlib.memory experiment=slat_vae_swin8_b_64l8 trainer.batch_budget=32768 devices=8`
"""

from __future__ import annotations

import sys

from learnlib.memory.breakdown import (
    GIB,
    OPTIMIZERS,
    PRECISIONS,
    STRATEGIES,
    check_choice,
)
from learnlib.memory.estimate import estimate_workload, has_blocks
from learnlib.memory.gpus import ALLOWANCE_NOTE, GPUS, gpu_capacity, largest_batch, needed_gib
from learnlib.memory.spec import resolve
from learnlib.nn.backends import canonical_backend

OWN_KEYS = ("experiment", "devices", "gpu", "strategy", "precision", "optimizer", "activation_checkpointing",
            "attention_backend")


def usage() -> str:
    """The --help text: the command, its keys and the experiments."""
    from learnlib.configs.compose import list_experiments

    return "\n".join([
        "usage: python -m learnlib.memory experiment=NAME [key=value ...]", "",
        "keys of this command:",
        "  experiment=NAME                 required; one of: " + ", ".join(list_experiments()),
        "  devices=N                       devices (GPUs) sharing the global batch (default 1)",
        f"  gpu=NAME                        default H100-80GB; one of: {', '.join(GPUS)}",
        f"  strategy=S                      {' | '.join(STRATEGIES)} (default ddp)",
        f"  precision=P                     {' | '.join(PRECISIONS)} (default: the experiment's trainer.precision)",
        f"  optimizer=O                     {' | '.join(OPTIMIZERS)} (default adamw)",
        "  activation_checkpointing=B      true | false (default: the experiment's trainer.activation_checkpointing)",
        "  attention_backend=B             auto | reference | sdpa | flash (aliases: math, flash_attn)",
        ("any other key=value overrides the experiment's config, e.g. trainer.batch_size=256 trainer.grad_accum=2 "
         "trainer.ema_decay=0.999 model.depth=12"),
    ])


def _parse(argv: list[str]) -> tuple[dict, list[str]]:
    own, overrides = {}, []
    for arg in argv:
        if "=" not in arg:
            raise ValueError(f"arguments are key=value, got {arg!r}; keys of this command: {', '.join(OWN_KEYS)} "
                             "(--help lists them)")
        key, value = arg.split("=", 1)
        (own.__setitem__(key, value) if key in OWN_KEYS else overrides.append(arg))
    return own, overrides


def _bool(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value.lower() in ("true", "1", "yes")


def _devices(value: str) -> int:
    try:
        devices = int(value)
    except ValueError:
        raise ValueError(f"devices must be a positive int, got {value!r}") from None
    if devices < 1:
        raise ValueError(f"devices must be a positive int, got {devices}")
    return devices


def run(argv: list[str]) -> str:
    """The report for command-line arguments `argv` (ValueError on bad input)."""
    own, overrides = _parse(argv)
    if "experiment" not in own:
        raise ValueError("experiment=NAME is required, e.g. experiment=var_d16 (--help lists the keys)")
    devices = _devices(own.get("devices", "1"))
    gpu = own.get("gpu", "H100-80GB")
    gpu_capacity(gpu)
    strategy = own.get("strategy", "ddp")
    check_choice("strategy", strategy, STRATEGIES)
    optimizer = own.get("optimizer", "adamw")
    check_choice("optimizer", optimizer, OPTIMIZERS)
    backend = own.get("attention_backend")
    if backend is not None:
        backend = canonical_backend(backend, "attention")
    if "precision" in own:
        check_choice("precision", own["precision"], PRECISIONS)
    workload = resolve(own["experiment"], overrides)
    ckpt = workload.activation_checkpointing
    if "activation_checkpointing" in own:
        ckpt = _bool("activation_checkpointing", own["activation_checkpointing"])
    blocks = has_blocks(workload.model)
    if ckpt and not blocks:
        raise ValueError(f"activation_checkpointing=true (or trainer.activation_checkpointing) wraps `model.blocks`; "
                         f"{type(workload.model).__name__} has none")
    trainer = workload.config.trainer
    precision = own.get("precision", trainer.precision)
    check_choice("precision", precision, PRECISIONS)
    ema = workload.ema_decay > 0
    family = workload.family
    batch, header = family.cli_batch(workload, devices)
    unit = family.batch_word
    settings = (precision, optimizer, strategy, devices, ckpt, backend)
    breakdown = estimate_workload(workload, batch, *settings, ema=ema)
    need, capacity = needed_gib(breakdown), gpu_capacity(gpu)
    table = breakdown.table().replace(f"batch {batch} per device", f"{unit} {batch} per device", 1)
    lines = [*header, "", table, "", ALLOWANCE_NOTE + ".", ""]
    if ema:
        lines += [f"ema: trainer.ema_decay={workload.ema_decay} keeps a copy of the weights (counted above).", ""]
    verdict = "fits" if need <= capacity else "does NOT fit"
    lines.append(f"{gpu} ({capacity:.1f} GiB): {verdict}: needs {need:.1f} GiB with the allowance.")
    no_ckpt = "" if blocks else f"; checkpointing n/a: {type(workload.model).__name__} has no `blocks`"
    lines += ["", f"largest {unit} per device that fits ({precision}, {optimizer}, {devices} devices{no_ckpt}):", "",
              "| GPU | GiB | fits now | ddp | ddp + checkpointing | fsdp | fsdp + checkpointing |",
              "|---|---:|---|---:|---:|---:|---:|"]
    best = {}
    for name, gib in GPUS.items():
        row = []
        for strat in ("ddp", "fsdp"):
            for with_ckpt in (False, True):
                if with_ckpt and not blocks:
                    row.append("n/a")
                    continue
                value = largest_batch(workload, name, precision, optimizer, strat, devices, with_ckpt, backend, ema)
                row.append(value)
                if name == gpu:
                    best[(strat, with_ckpt)] = value
        marker = " (chosen)" if name == gpu else ""
        lines.append(f"| {name}{marker} | {gib:.1f} | {'yes' if need <= gib else 'no'} | "
                     + " | ".join(str(v) for v in row) + " |")
    lines += ["", _recommend(best, batch, need <= capacity, strategy, ckpt, gpu, breakdown.total / GIB, unit,
                                   family.budget_key)]
    return "\n".join(lines)


def _recommend(best: dict, batch: int, fit: bool, strategy: str, ckpt: bool, gpu: str, total_gib: float,
               unit: str = "batch", budget_key: str | None = None) -> str:
    current = best[(strategy, ckpt)]
    more = "trainer.grad_accum" + (f" with a smaller {budget_key}" if budget_key else "")
    if fit:
        return (f"recommendation: {unit} {batch} per device fits on {gpu} with {strategy}"
                f"{' + checkpointing' if ckpt else ''} (up to {current} per device).")
    for option in (("ddp", False), ("fsdp", False), ("ddp", True), ("fsdp", True)):
        if option in best and best[option] >= batch:
            strat, with_ckpt = option
            return (f"recommendation: {unit} {batch} per device needs {total_gib:.1f} GiB before the allowance; "
                    f"use strategy={strat}{' activation_checkpointing=true' if with_ckpt else ''} "
                    f"(up to {best[option]} per device), or more devices / {more}.")
    most = max(best.values())
    return (f"recommendation: {unit} {batch} per device does not fit on {gpu} in any setting (at most {most} per "
            f"device); raise devices or {more} so that {unit} per device <= {most}.")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help", "help") for arg in argv):
        print(usage())
        return 0
    try:
        print(run(argv))
    except (ValueError, KeyError) as err:  # ConfigError (unknown keys, experiments) is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
