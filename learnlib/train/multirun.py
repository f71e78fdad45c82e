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
from learnlib.errors import EXPECTED_ERRORS, ConfigError
from learnlib.train import distributed
from learnlib.train.run_dir import RunDirectory, lock_folder, unlock_folder
from learnlib.train.sweep import SWEEP_DIR_KEYS, Job, expand, take
from learnlib.train.sweep_summary import SUMMARY_NAME, JobRecord, format_table, read_summary, write_summary
from learnlib.train.trainer import fit

DEFAULT_SWEEP_ROOT = Path("runs/multirun")


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


def _claim(folder: str, refusal: str | None):
    """(the lock on the sweep folder or None, the refusal or None): one sweep per folder at a time."""
    if refusal is not None:
        return None, refusal
    try:
        return lock_folder(Path(folder), "sweep folder", "sweep_dir"), None
    except ConfigError as err:
        return None, str(err)


def _prepare_resume(cfg: DictConfig, record: JobRecord) -> None:
    """A resumed sweep starts the jobs that never wrote a checkpoint (not started, or stopped before it)."""
    if cfg.resume and not RunDirectory(record.run_dir).has_checkpoint():
        cfg.resume, cfg.overwrite = False, True  # overwrite removes only that job's own files


def _run_job(cfg: DictConfig, record: JobRecord, earlier: JobRecord | None) -> None:
    try:
        result = fit(cfg)
    except Exception as err:  # noqa: BLE001 (any failure ends this job only; the summary says why)
        if not isinstance(err, EXPECTED_ERRORS):
            traceback.print_exc()
        record.status, record.error = "failed", _error_text(err)
        return
    if result.already_complete and earlier is not None and earlier.status == "ok":
        record.__dict__.update(earlier.__dict__)  # a finished job keeps its record (time, metrics)
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
    lock = None
    try:
        folder, refusal = choose_folder(sweep_dir, run_dir, configs)
        if info.is_main:
            lock, refusal = _claim(folder, refusal)
        folder, refusal = distributed.rank0_value((folder, refusal), info)
        if refusal is not None:
            say(f"error: {refusal}", file=sys.stderr)
            return 1
        return _run_jobs(jobs, configs, Path(folder), arguments, info.is_main, say)
    finally:
        unlock_folder(lock)
        distributed.teardown(info)


def _run_jobs(jobs: list[Job], configs: list[DictConfig | Exception], folder: Path, arguments: list[str],
              is_main: bool, say) -> int:
    records = [JobRecord(index=j.index, overrides=list(j.swept), run_dir=str(folder / j.dirname)) for j in jobs]
    earlier = {(r.index, tuple(r.overrides), r.run_dir): r for r in read_summary(folder)}
    say(f"sweep of {len(jobs)} jobs in {folder}")
    for job, cfg, record in zip(jobs, configs, records):
        say(f"[job {job.index + 1}/{len(jobs)}] {' '.join(job.swept) or '(nothing swept)'} -> {record.run_dir}",
            flush=True)
        if isinstance(cfg, DictConfig):
            cfg.run_dir = record.run_dir
            _prepare_resume(cfg, record)
            try:
                _run_job(cfg, record, earlier.get((record.index, tuple(record.overrides), record.run_dir)))
            except KeyboardInterrupt:
                record.status, record.error = "interrupted", "KeyboardInterrupt: resume=true continues the sweep"
                if is_main:
                    write_summary(folder, arguments, records)
                raise
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
