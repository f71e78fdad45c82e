"""The structured-latent VAE on CPU: held-out-view scores on the object's pixels of the stored slat_vae_meshes
model, against chapter 07's per-scene fit, voxel splats and the all-black render (`learnlib.slat.evaluate`).

Measured on every mesh of the stored run (its training meshes and its never-seen `data.unseen_meshes`) at
each mesh's held-out views (`data.heldout_views`: a second Hammersley set interleaved with the training
one, never used for the voxel features nor as training targets), over black: PSNR over the object's
pixels (union of the reference's and the render's silhouettes, alpha > 0.05), SSIM, silhouette IoU and
the full-image PSNR. The baselines see only the training views; the per-scene fit's time is its
optimization per object.

Prints the tables and appends one dated section to benchmarks/RESULTS.md.

    python benchmarks/bench_slat_vae.py [--checkpoint checkpoints/slat_vae_meshes] [--fit-steps 150]
                                        [--threads 1] [--meshes NAME ...] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from machine import Figure, append_results, cpu_model
from omegaconf import OmegaConf

from learnlib.slat.data.dataset import MeshSource, SLatDataset
from learnlib.slat.evaluate import METHODS, evaluate_object
from learnlib.train import load_model
from learnlib.weights import resolve_path

SCORES = (("masked_psnr", "masked PSNR dB", 2), ("ssim", "SSIM", 3), ("iou", "IoU", 3), ("psnr", "full PSNR dB", 2))


def mesh_source(data, names) -> MeshSource:
    """The stored run's mesh preprocessing settings for `names`."""
    return MeshSource(list(names), data.get("cache_dir") or "~/.cache/learnlib/slat", resolution=data.resolution,
                      num_views=data.num_views, image_size=data.image_size, backend=data.backend,
                      visibility=bool(data.get("visibility", False)), up_axes=dict(data.get("up_axes") or {}),
                      lighting=str(data.get("lighting", "world")), heldout_views=int(data.get("heldout_views", 0)))


def mean_over(results: dict, names, method: str, key: str) -> float:
    values = [results[n][method][key] for n in names if method in results[n]]
    return float(torch.cat(values).nanmean()) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/slat_vae_meshes")
    parser.add_argument("--fit-steps", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--meshes", nargs="*", default=None, help="a subset of the run's meshes (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = resolve_path(args.checkpoint)
    cfg = OmegaConf.load(Path(folder) / "config.yaml")
    recorded = json.loads((Path(folder) / "metrics.json").read_text())
    data = cfg.data
    if not int(data.get("heldout_views", 0)):
        raise SystemExit(f"{args.checkpoint} was trained without data.heldout_views: retrain it first")
    seen, unseen = list(data.meshes), list(data.get("unseen_meshes") or [])
    if args.meshes is not None:
        seen, unseen = [n for n in seen if n in args.meshes], [n for n in unseen if n in args.meshes]
    model = load_model(folder)
    torch.manual_seed(0)
    start = time.perf_counter()

    results, voxels = {}, {}
    for name in seen + unseen:
        source = mesh_source(data, [name])
        item = SLatDataset(source, views_per_item=None, max_voxels=None)[0]
        results[name] = evaluate_object(model, item, list(range(data.num_views)), source.heldout_ids(0),
                                        data.resolution, args.fit_steps)
        voxels[name] = len(item["coords"])
        print(name, {m: round(float(r["masked_psnr"].nanmean()), 2) for m, r in results[name].items()}, flush=True)
    load, wall = os.getloadavg()[0], time.perf_counter() - start

    lines = ["| method | meshes | " + " | ".join(label for _, label, _ in SCORES) + " | s per object |",
             "|---|---|" + "---:|" * (len(SCORES) + 1)]
    for method in METHODS:
        for group, names in (("training", seen), ("never seen", unseen)):
            seconds = sum(results[n][method]["seconds"] for n in names) / max(len(names), 1)
            lines.append(f"| {method} | {group} ({len(names)}) | "
                         + " | ".join(f"{mean_over(results, names, method, key):.{digits}f}" for key, _, digits in SCORES)
                         + f" | {seconds:.2f} |")
    lines += ["", "| mesh | voxels | " + " | ".join(f"{m} masked PSNR" for m in METHODS) + " |",
              "|---|---:|" + "---:|" * len(METHODS)]
    for name in results:
        label = f"{name} (never seen)" if name in unseen else name
        lines.append(f"| {label} | {voxels[name]} | "
                     + " | ".join(f"{float(results[name][m]['masked_psnr'].nanmean()):.2f}" for m in METHODS) + " |")
    train_s = recorded.get("train_seconds")
    header = [
        (f"`python benchmarks/bench_slat_vae.py --fit-steps {args.fit_steps} --threads {args.threads}`; model "
         f"`{args.checkpoint}` ({recorded['step']} steps, trained with `{recorded.get('command', '?')}`"
         + (f" in {train_s:.0f} s" if train_s else "")
         + f"; recorded val/psnr {recorded['metrics'].get('val/psnr', float('nan')):.2f})."),
        (f"Scores at the {data.heldout_views} held-out views of each mesh (a second Hammersley set interleaved with "
         f"the {data.num_views} training views, never used for the features), {data.image_size} px, over black; means "
         "over views. Masked PSNR: over the pixels where the reference's or the render's alpha exceeds 0.05; IoU of "
         f"the silhouettes at alpha 0.5. Voxels at {data.resolution}^3, {data.backend} features; the per-scene fit "
         f"starts from one Gaussian per voxel centre and takes {args.fit_steps} steps of 4 training views; voxel "
         "splats: one Gaussian per voxel, std half a voxel, coloured by the mean of its projections into the "
         "training views."),
        (f"Machine: {cpu_model()}, {os.cpu_count()} cores, torch.set_num_threads({args.threads}), torch "
         f"{torch.__version__}, Python {platform.python_version()}, 1-min load average {load:.1f} at the end "
         f"(shared machine); {wall:.0f} s wall."),
    ]
    body = "\n".join(header) + "\n\n" + "\n".join(lines)
    print(body)
    if not args.no_write:
        vae, fit, splats, black = (mean_over(results, unseen, m, "masked_psnr") for m in METHODS)
        fit_s = sum(results[n]["per-scene fit"]["seconds"] for n in unseen if "per-scene fit" in results[n])
        figure = Figure("bench_slat_vae", f"SLat VAE ({recorded['step']} steps), {data.heldout_views} interleaved "
                        f"held-out views, never-seen {' and '.join(unseen)}: masked PSNR",
                        f"{vae:.2f} dB (voxel splats {splats:.2f}, all black {black:.2f})",
                        f"{fit:.2f} dB per-scene fit, {args.fit_steps} steps ({fit_s / max(len(unseen), 1):.1f} s per "
                        "object)" if args.fit_steps else "", f"{vae - splats:+.2f} dB over voxel splats",
                        f"{cpu_model().split('(')[0].strip()}, {args.threads} thread(s)")
        append_results("Structured-latent VAE on CPU: object-level scores at interleaved held-out views", body,
                       [figure])


if __name__ == "__main__":
    main()
