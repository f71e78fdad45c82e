"""`python -m learnlib.train -m ...`: the jobs of a sweep run one after the other, each in its own folder.

The sweep folder (`sweep_dir=PATH`, else a given `run_dir=PATH`, else
`runs/multirun/<name>/<date>_<time>`) holds one run folder per job, `<index>_<swept overrides>/`,
and `multirun.yaml`: every job's overrides, status, final metrics or error, rewritten after each job.
A failing job is recorded and the sweep goes on. Under torchrun every rank runs the same jobs;
rank 0 writes the summary and prints.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from hydra import initialize_config_module

from learnlib.train import distributed
from learnlib.train.config import CONFIG_MODULE, compose
from learnlib.train.errors import CheckpointError, ConfigError, NonFiniteLossError
from learnlib.train.sweep import SWEEP_DIR_KEYS, Job, expand, take
from learnlib.train.trainer import fit

DEFAULT_SWEEP_ROOT = Path("runs/multirun")
SUMMARY_NAME = "multirun.yaml"
EXPECTED_ERRORS = (ConfigError, CheckpointError, NonFiniteLossError, FileNotFoundError, ValueError, KeyError)


@dataclass
class JobRecord:
    """What `multirun.yaml` says about one job."""

    index: int
    overrides: list[str]  # the swept values of this job
    run_dir: str
    status: str = "pending"  # pending | ok | failed
    steps: int | None = None
    seconds: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None
    error: str | None = None


def _sweep_folder(given_sweep_dir: str | None, given_run_dir: str | None, names: list[str]) -> Path:
    if given_sweep_dir is not None:
        return Path(given_sweep_dir)
    if given_run_dir is not None:
        return Path(given_run_dir)
    stamp = distributed.rank0_value(time.strftime("%Y-%m-%d_%H-%M-%S"))
    return DEFAULT_SWEEP_ROOT / ("+".join(dict.fromkeys(names)) or "sweep") / stamp


def _error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _compose_all(jobs: list[Job]) -> list[object]:
    """Each job's config, or the error composing it raised."""
    configs = []
    for job in jobs:
        try:
            configs.append(compose(overrides=list(job.overrides)))
        except EXPECTED_ERRORS as err:
            configs.append(err)
    return configs


def _run_job(cfg, record: JobRecord) -> None:
    try:
        result = fit(cfg)
    except Exception as err:  # noqa: BLE001 (any failure ends this job only; the summary says why)
        if not isinstance(err, EXPECTED_ERRORS):
            traceback.print_exc()
        record.status, record.error = "failed", _error_text(err)
        return
    record.status, record.steps, record.seconds = "ok", result.steps, round(result.seconds, 2)
    record.metrics = {k: float(v) for k, v in sorted(result.metrics.items())}
    record.checkpoint = str(result.checkpoint) if result.checkpoint is not None else None


def write_summary(folder: Path, argv: list[str], records: list[JobRecord]) -> Path:
    """Write `multirun.yaml` in the sweep folder (replacing it atomically); returns its path."""
    path = folder / SUMMARY_NAME
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"sweep_dir": str(folder), "arguments": list(argv),
                           "jobs": [asdict(r) for r in records]}, sort_keys=False)
    partial = path.with_name(f".{SUMMARY_NAME}.tmp")
    partial.write_text(text)
    os.replace(partial, path)
    return path


def format_table(records: list[JobRecord]) -> str:
    """One line per job: index, status, swept overrides, steps and each final metric (or the error)."""
    metric_names = list(dict.fromkeys(name for r in records for name in r.metrics))
    head = ["job", "status", "overrides", "steps", *metric_names]
    table, failed_rows = [head], set()
    for r in records:
        first = [str(r.index), r.status, " ".join(r.overrides) or "-", "-" if r.steps is None else str(r.steps)]
        if r.error is not None:
            failed_rows.add(len(table))
            table.append([*first, r.error.splitlines()[0]])
        else:
            table.append([*first, *(f"{r.metrics[n]:.4f}" if n in r.metrics else "-" for n in metric_names)])
    widths = [max(len(row[i]) for n, row in enumerate(table) if i < len(row) and not (n in failed_rows and i >= 4))
              for i in range(len(head))]
    lines = []
    for n, row in enumerate(table):
        cells = [c if (n in failed_rows and i >= 4) else c.ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run_sweep(overrides: list[str], argv: list[str] | None = None) -> int:
    """Run every job of the sweep in `overrides`; 0 if all succeeded, 1 if any failed."""
    is_main = int(os.environ.get("RANK", "0")) == 0
    say = print if is_main else (lambda *args, **kwargs: None)
    try:
        given_sweep_dir, overrides = take(overrides, SWEEP_DIR_KEYS)
        given_run_dir, overrides = take(overrides, ("run_dir",))
        with initialize_config_module(config_module=CONFIG_MODULE, version_base=None):
            jobs = expand(overrides)
    except ConfigError as err:
        say(f"error: {err}", file=sys.stderr)
        return 2
    configs = _compose_all(jobs)
    folder = _sweep_folder(given_sweep_dir, given_run_dir,
                           [str(c.name) for c in configs if not isinstance(c, Exception)])
    records = [JobRecord(index=j.index, overrides=list(j.swept), run_dir=str(folder / j.dirname)) for j in jobs]
    summary = folder / SUMMARY_NAME
    say(f"sweep of {len(jobs)} jobs in {folder}")
    for job, cfg, record in zip(jobs, configs, records):
        say(f"[job {job.index + 1}/{len(jobs)}] {' '.join(job.swept) or '(no swept values)'} -> {record.run_dir}",
            flush=True)
        if isinstance(cfg, Exception):
            record.status, record.error = "failed", _error_text(cfg)
        else:
            cfg.run_dir = record.run_dir
            _run_job(cfg, record)
        say(f"  {record.status}: " + (record.error.splitlines()[0] if record.error else
                                      ", ".join(f"{k}={v:.4f}" for k, v in record.metrics.items())), flush=True)
        if is_main:
            write_summary(folder, argv if argv is not None else overrides, records)
    failed = sum(r.status != "ok" for r in records)
    say(f"\n{format_table(records)}\n\n{len(jobs) - failed} of {len(jobs)} jobs ok; summary: {summary}")
    return 1 if failed else 0
