"""What a sweep reports: one record per job, `multirun.yaml` in the sweep folder, and a table."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

SUMMARY_NAME = "multirun.yaml"


@dataclass
class JobRecord:
    """One job of a sweep as `multirun.yaml` lists it."""

    index: int
    overrides: list[str]  # the swept values of this job, e.g. ["trainer.lr=0.001", "seed=0"]
    run_dir: str
    status: str = "pending"  # pending | ok | failed | interrupted
    steps: int | None = None
    seconds: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None
    error: str | None = None  # "ExceptionType: message" of a failed job


def write_summary(folder: Path, arguments: list[str], records: list[JobRecord]) -> Path:
    """Write `multirun.yaml` in the sweep folder (replacing it atomically); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SUMMARY_NAME
    text = yaml.safe_dump({"sweep_dir": str(folder), "arguments": list(arguments),
                           "jobs": [asdict(r) for r in records]}, sort_keys=False)
    partial = path.with_name(f".{SUMMARY_NAME}.tmp")
    partial.write_text(text)
    os.replace(partial, path)
    return path


def read_summary(folder: Path) -> list[JobRecord]:
    """The job records of the `multirun.yaml` in `folder` (none when it is missing or unreadable)."""
    path = Path(folder) / SUMMARY_NAME
    try:
        jobs = yaml.safe_load(path.read_text())["jobs"]
        return [JobRecord(**job) for job in jobs]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return []


def format_table(records: list[JobRecord]) -> str:
    """One line per job: index, status, swept overrides, steps and each final metric (or the error)."""
    metric_names = list(dict.fromkeys(name for r in records for name in r.metrics))
    head = ["job", "status", "overrides", "steps", *metric_names]
    table, error_rows = [head], set()
    for r in records:
        first = [str(r.index), r.status, " ".join(r.overrides) or "-", "-" if r.steps is None else str(r.steps)]
        if r.error is not None:
            error_rows.add(len(table))
            table.append([*first, r.error.splitlines()[0]])
        else:
            table.append([*first, *(f"{r.metrics[n]:.4f}" if n in r.metrics else "-" for n in metric_names)])

    def padded(n: int, i: int) -> bool:  # an error message is the free-length last cell of its row
        return not (n in error_rows and i >= len(first))

    widths = [max(len(row[i]) for n, row in enumerate(table) if i < len(row) and padded(n, i))
              for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(widths[i]) if padded(n, i) else cell for i, cell in enumerate(row)).rstrip()
                     for n, row in enumerate(table))
