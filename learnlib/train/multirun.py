"""`python -m learnlib.train -m ...`: the jobs of a sweep run one after the other, each in its own folder.

The sweep folder (`sweep_dir=PATH`, else a given `run_dir=PATH`, else
`runs/multirun/<name>/<date>_<time>`) holds one run folder per job, `<index>_<swept overrides>/`,
and `multirun.yaml` (see `sweep_summary`), rewritten after each job. A failing job is recorded and
the sweep goes on. Under torchrun every rank runs the same jobs; rank 0 writes the summary and prints,
and one process group serves every job.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

from hydra import initialize_config_module
from omegaconf import DictConfig

from learnlib.configs.compose import CONFIG_MODULE, compose
from learnlib.errors import CheckpointError, ConfigError, NonFiniteLossError
from learnlib.train import distributed
from learnlib.train.sweep import SWEEP_DIR_KEYS, Job, expand, take
from learnlib.train.sweep_summary import SUMMARY_NAME, JobRecord, format_table, write_summary
from learnlib.train.trainer import fit

DEFAULT_SWEEP_ROOT = Path("runs/multirun")
EXPECTED_ERRORS = (ConfigError, CheckpointError, NonFiniteLossError, FileNotFoundError, ValueError, KeyError)


def _error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _compose_all(jobs: list[Job]) -> list[DictConfig | Exception]:
    """Each job's config, or the error composing it raised."""
    configs = []
    for job in jobs:
        try:
            configs.append(compose(overrides=list(job.overrides)))
        except EXPECTED_ERRORS as err:
            configs.append(err)
    return configs


def choose_folder(sweep_dir: str | None, run_dir: str | None,
                  configs: list[DictConfig | Exception]) -> tuple[str, str | None]:
    """(the sweep folder, or why it cannot be used): sweep_dir, else the given run_dir, else a new dated one."""
    composed = [c for c in configs if isinstance(c, DictConfig)]
    if sweep_dir is not None:
        folder = Path(sweep_dir)
    elif run_dir is not None:  # as composed, with interpolations such as ${name} resolved
        folder = Path(composed[0].run_dir if composed else run_dir)
    else:
        name = "+".join(dict.fromkeys(str(c.name) for c in composed)) or "sweep"
        folder = DEFAULT_SWEEP_ROOT / name / time.strftime("%Y-%m-%d_%H-%M-%S")
    restarting = bool(composed) and all(c.resume or c.overwrite for c in composed)
    if (folder / SUMMARY_NAME).exists() and not restarting:
        return str(folder), (f"sweep folder {folder} already holds a sweep ({SUMMARY_NAME}); pass overwrite=true "
                             "to replace its runs, resume=true to continue them, or another sweep_dir=...")
    return str(folder), None


def _run_job(cfg: DictConfig, record: JobRecord) -> None:
    try:
        result = fit(cfg)
    except Exception as err:  # noqa: BLE001 (any failure ends this job only; the summary says why)
        if not isinstance(err, EXPECTED_ERRORS):
            traceback.print_exc()
        record.status, record.error = "failed", _error_text(err)
        return
    record.status, record.steps, record.seconds = "ok", result.steps, round(result.seconds, 2)
    record.metrics = {k: float(v) for k, v in sorted(result.metrics.items())}
    record.checkpoint = None if result.checkpoint is None else str(result.checkpoint)


def _join_ranks(configs: list[DictConfig | Exception]) -> distributed.DistInfo:
    """One process group for every job of the sweep under torchrun (on the first job's device)."""
    composed = [c for c in configs if isinstance(c, DictConfig)]
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return distributed.setup("cpu")  # one process, no group: each job still picks its own device
    return distributed.setup(str(composed[0].trainer.device) if composed else "auto")


def run_sweep(arguments: list[str]) -> int:
    """Run every job of the sweep that `arguments` describe; 0 if all succeeded, 1 if any failed."""
    say = print if int(os.environ.get("RANK", "0")) == 0 else (lambda *args, **kwargs: None)
    try:
        sweep_dir, overrides = take(arguments, SWEEP_DIR_KEYS)
        run_dir, _ = take(overrides, ("run_dir",))
        with initialize_config_module(config_module=CONFIG_MODULE, version_base=None):
            jobs = expand(overrides)
    except ConfigError as err:
        say(f"error: {err}", file=sys.stderr)
        return 2
    configs = _compose_all(jobs)
    info = _join_ranks(configs)
    try:
        folder, refusal = distributed.rank0_value(choose_folder(sweep_dir, run_dir, configs), info)
        if refusal is not None:
            say(f"error: {refusal}", file=sys.stderr)
            return 1
        return _run_jobs(jobs, configs, Path(folder), arguments, info.is_main, say)
    finally:
        distributed.teardown(info)


def _run_jobs(jobs: list[Job], configs: list[DictConfig | Exception], folder: Path, arguments: list[str],
              is_main: bool, say) -> int:
    records = [JobRecord(index=j.index, overrides=list(j.swept), run_dir=str(folder / j.dirname)) for j in jobs]
    say(f"sweep of {len(jobs)} jobs in {folder}")
    for job, cfg, record in zip(jobs, configs, records):
        say(f"[job {job.index + 1}/{len(jobs)}] {' '.join(job.swept) or '(nothing swept)'} -> {record.run_dir}",
            flush=True)
        if isinstance(cfg, DictConfig):
            cfg.run_dir = record.run_dir
            _run_job(cfg, record)
        else:
            record.status, record.error = "failed", _error_text(cfg)
        done = record.error.splitlines()[0] if record.error else ", ".join(f"{k}={v:.4f}" for k, v in
                                                                           record.metrics.items())
        say(f"  {record.status}: {done}", flush=True)
        if is_main:
            write_summary(folder, arguments, records)
    failed = sum(r.status != "ok" for r in records)
    say(f"\n{format_table(records)}\n\n{len(jobs) - failed} of {len(jobs)} jobs ok; "
        f"summary: {folder / SUMMARY_NAME}")
    return 1 if failed else 0
