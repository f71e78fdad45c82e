"""Rank-0 run logging: CSV, TensorBoard and a curves PNG at the end."""

from __future__ import annotations

import csv
import warnings
from collections import defaultdict
from pathlib import Path


class RunLogger:
    """Writes scalars to metrics.csv (step, key, value) and TensorBoard; keeps a history.

    `resume_step` continues a run from its checkpoint at that step: the rows logged after it
    (written before a crash, about to be written again) are dropped from metrics.csv and
    TensorBoard, and the history holds the whole run up to it.
    """

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True, resume_step: int | None = None):
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.history: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self._writer = None
        self._csv = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "metrics.csv"
        if resume_step is not None and path.exists():
            for key, points in read_metrics_csv(path).items():
                self.history[key] = [(step, value) for step, value in points if step <= resume_step]
        self._csv_file = open(path, "w", newline="")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(["step", "key", "value"])
        rows = sorted((step, key, value) for key, points in self.history.items() for step, value in points)
        self._csv.writerows([step, key, f"{value:.6g}"] for step, key, value in rows)
        self._csv_file.flush()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_step is None else resume_step + 1
            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=purge)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            value = float(value)
            self.history[key].append((step, value))
            if self.enabled:
                self._csv.writerow([step, key, f"{value:.6g}"])
                if self._writer is not None:
                    self._writer.add_scalar(key, value, step)
        if self.enabled:
            self._csv_file.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._csv is not None:
            self._csv_file.close()
            self._csv = None


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """The history stored in a run's metrics.csv: key -> [(step, value), ...].

    A torn tail (a row cut short by a crash, NUL bytes left by a power loss) is dropped with a warning.
    """
    history: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(path, newline="", errors="replace") as handle:
        lines = [(n, line) for n, line in enumerate(handle.read().splitlines(), start=1) if line.strip("\x00 ")]
    for index, (number, line) in enumerate(lines[1:], start=1):  # the first line is the header
        try:
            step, key, value = next(csv.reader([line]))
            history[key].append((int(step), float(value)))
        except (ValueError, csv.Error):
            warnings.warn(f"{path}: dropped a torn tail of {len(lines) - index} row(s) from line {number} "
                          f"({line[:30]!r}), as a crash leaves it; the run resumes from its checkpoint", stacklevel=2)
            break
    return dict(history)


def plot_curves(history: dict[str, list[tuple[int, float]]], path: str | Path | None = None, title: str = ""):
    """Loss curves (left) and validation metrics (right); saved to `path` when given."""
    if path is not None:  # a figure of its own: saving never touches the caller's backend or pyplot state
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 3.5))
        ax_loss, ax_metric = fig.subplots(1, 2)
    else:
        import matplotlib.pyplot as plt

        fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key, points in sorted(history.items()):
        if not points or key.endswith("lr") or key.endswith("grad_norm"):
            continue
        steps, values = zip(*points)
        target = ax_loss if "loss" in key else ax_metric
        target.plot(steps, values, label=key, marker="." if key.startswith("val/") else None)
    ax_loss.set(xlabel="optimizer step", ylabel="loss", title="loss")
    ax_metric.set(xlabel="optimizer step", title="validation metrics")
    for ax in (ax_loss, ax_metric):
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
