"""Training runs of experiment slat_vae_meshes across seeds and thread counts: their held-out curves, the VAE's
masked PSNR and IoU on the training and never-seen meshes, and their training time.

Each RUN is a run folder of `python -m learnlib.train experiment=slat_vae_meshes seed=S trainer.num_threads=T
run_dir=RUN > RUN.log`: its config gives the seed and threads, its metrics.csv the validation curve, its
last checkpoint the model (scored by `learnlib.slat.evaluate` at each mesh's held-out views, VAE only; the
baselines are in bench_slat_vae.py's table), and RUN.log the trainer's closing line ("N steps in S s").

    python benchmarks/bench_slat_vae_runs.py RUN [RUN ...] [--note TEXT] [--no-write]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
from pathlib import Path

import torch
from bench_slat_vae import mesh_source
from machine import append_results, cpu_model
from omegaconf import OmegaConf

from learnlib.slat.data.dataset import SLatDataset
from learnlib.slat.evaluate import evaluate_object
from learnlib.weights import load_checkpoint, load_model


def training_seconds(run: Path) -> str:
    """The trainer's "N steps in S s" from RUN.log, or "?"."""
    log = run.with_name(run.name + ".log")
    found = re.search(r"(\d+) steps in ([0-9.]+) s", log.read_text()) if log.exists() else None
    return found.group(2) if found else "?"


def val_curve(run: Path) -> list[tuple[int, float]]:
    with open(run / "metrics.csv") as fh:
        return [(int(r["step"]), float(r["value"])) for r in csv.DictReader(fh) if r["key"] == "val/psnr"]


def vae_scores(checkpoint: Path, names: list[str]) -> dict[str, dict[str, float]]:
    """{mesh: {masked_psnr, iou}} of the checkpoint's VAE at each mesh's held-out views."""
    data = OmegaConf.create(load_checkpoint(checkpoint)["config"]).data
    model = load_model(checkpoint)
    out = {}
    for name in names:
        source = mesh_source(data, [name])
        item = SLatDataset(source, views_per_item=None, max_voxels=None)[0]
        scores = evaluate_object(model, item, list(range(data.num_views)), source.heldout_ids(0), data.resolution,
                                 methods=("SLat VAE",))["SLat VAE"]
        out[name] = {k: float(scores[k].nanmean()) for k in ("masked_psnr", "iou")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--note", default="", help="a sentence on the machine's load during the runs")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = [("| run | threads | val/psnr dB (step: value) | masked PSNR training / never seen | "
              "IoU training / never seen | training s |"), "|---|---:|---|---|---|---:|"]
    for run in args.runs:
        cfg = OmegaConf.load(run / "config.yaml")
        seen, unseen = list(cfg.data.meshes), list(cfg.data.unseen_meshes or [])
        scores = vae_scores(run / "checkpoints" / "last.pt", seen + unseen)

        def mean(names, key, scores=scores):
            return sum(scores[n][key] for n in names) / len(names)

        curve = " / ".join(f"{step}: {value:.2f}" for step, value in val_curve(run))
        lines.append(f"| seed {cfg.seed} | {cfg.trainer.num_threads} | {curve} | "
                     f"{mean(seen, 'masked_psnr'):.2f} / {mean(unseen, 'masked_psnr'):.2f} | "
                     f"{mean(seen, 'iou'):.3f} / {mean(unseen, 'iou'):.3f} | {training_seconds(run)} |")
        print(lines[-1], flush=True)
    body = (f"`python benchmarks/bench_slat_vae_runs.py RUN ...`; each run `python -m learnlib.train "
            f"experiment=slat_vae_meshes seed=S trainer.num_threads=T`; val = full-image PSNR at the six training "
            f"meshes' held-out views; masked PSNR and IoU of the last checkpoint at the held-out views of the "
            f"training meshes ({', '.join(seen)}) and of the never-seen ones ({', '.join(unseen)}). Machine: "
            f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}. {args.note}\n\n" + "\n".join(lines))
    print(body)
    if not args.no_write:
        append_results("SLat VAE training runs: seeds and thread counts", body)


if __name__ == "__main__":
    main()
