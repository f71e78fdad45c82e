"""The structured-latent VAE on CPU: held-out-view PSNR and SSIM of the stored slat_vae_meshes model, and two baselines.

Measured on every mesh of the stored run (its training meshes and its never-seen `data.unseen_meshes`),
at the held-out views of its data config (views i with i % holdout_every == holdout_every - 1, over black):
- the SLat VAE: voxel features -> posterior mean -> Gaussians -> render (one forward pass per object);
- chapter 07's per-scene fit (`learnlib.splat.fit.fit_gaussians`): one Gaussian per voxel centre, optimized on
  the mesh's training views for `--fit-steps` steps (4 views per step), its optimization time per object;
- voxel splats: one isotropic Gaussian per voxel (std half a voxel, opacity 0.95) coloured by the mean
  reference colour of its projections into the training views (alpha-weighted), no optimization.
The voxel features the VAE reads are averaged from every view, held-out ones included (as TRELLIS's
features come from the same renders it trains on); the two baselines see only the training views.

Prints the tables and appends one dated section to benchmarks/RESULTS.md.

    python benchmarks/bench_slat_vae.py [--checkpoint checkpoints/slat_vae_meshes] [--fit-steps 300]
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
from machine import append_results, cpu_model
from omegaconf import OmegaConf

from learnlib.data.meshes import voxel_centres
from learnlib.metrics import psnr_per_image, ssim_per_image
from learnlib.slat.data.dataset import MeshSource, SLatDataset, collate_slat
from learnlib.slat.data.projection import project_voxel_features
from learnlib.slat.losses import composite_target, render_views
from learnlib.splat import Gaussians
from learnlib.splat.fit import fit_gaussians, render_images
from learnlib.train import load_model
from learnlib.weights import resolve_path

METHODS = ("SLat VAE (slat_vae_tiny)", "per-scene fit (chapter 07)", "voxel splats")


def mesh_source(data, names) -> MeshSource:
    """The stored run's mesh preprocessing settings for `names`."""
    return MeshSource(list(names), data.get("cache_dir") or "~/.cache/learnlib/slat", resolution=data.resolution,
                      num_views=data.num_views, image_size=data.image_size, backend=data.backend,
                      visibility=bool(data.get("visibility", False)), up_axes=dict(data.get("up_axes") or {}),
                      lighting=str(data.get("lighting", "world")))


def scores(renders: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-view PSNR (dB) and SSIM of renders / targets [V, 3, H, W] in [0, 1]."""
    return psnr_per_image(renders, targets, value_range=(0.0, 1.0)), ssim_per_image(renders.clamp(0, 1), targets)


def voxel_colours(centres, images, alphas, cameras) -> torch.Tensor:
    """Alpha-weighted mean colour [N, 3] of each point's projections into views images [V, 3, H, W]."""
    maps = torch.cat([images * alphas, alphas], dim=1)  # (V, 4, H, W)
    mean = project_voxel_features(maps, centres, cameras)  # (N, 4)
    return (mean[:, :3] / mean[:, 3:].clamp_min(1e-4)).clamp(0, 1)


def evaluate_mesh(model, item, train_ids, held_ids, resolution, fit_steps) -> dict[str, tuple]:
    """{method: (psnr per view, ssim per view, seconds)} at the held-out views of one object."""
    cams, images, alphas = item["cameras"], item["images"], item["alphas"][:, 0]  # alphas (V, H, W)
    black = torch.zeros(len(cams), 3)
    targets = composite_target(images, alphas, black)  # (V, 3, H, W) over black
    held_cams, train_cams = cams[held_ids], cams[train_ids]
    out = {}

    t0 = time.perf_counter()
    with torch.no_grad():
        feats = collate_slat([item])["feats"]
        gaussians = model(feats, sample_posterior=False).gaussians
        render = render_views(gaussians, [held_cams], black[None, held_ids], **model.decoder.render_kwargs)[0]
    out[METHODS[0]] = (*scores(render, targets[held_ids]), time.perf_counter() - t0)

    centres = voxel_centres(item["coords"], resolution)  # (N, 3)
    train_targets = targets[train_ids].permute(0, 2, 3, 1).contiguous()  # (V, H, W, 3)
    fitted, history = fit_gaussians(train_targets, train_cams, centres, steps=fit_steps, batch_views=4,
                                    background=(0.0, 0.0, 0.0), eval_every=max(fit_steps, 1), seed=0, progress=False)
    seconds = history.wall_s[-1]  # optimization only, its evaluations excluded
    render = render_images(fitted, held_cams, background=(0.0, 0.0, 0.0)).permute(0, 3, 1, 2)  # (V, 3, H, W)
    out[METHODS[1]] = (*scores(render, targets[held_ids]), seconds)

    t0 = time.perf_counter()
    colours = voxel_colours(centres, images[train_ids], alphas[train_ids, None], train_cams)
    splats = Gaussians.from_points(centres, colours, scale=0.5 / resolution, opacity=0.95)
    render = render_images(splats, held_cams, background=(0.0, 0.0, 0.0)).permute(0, 3, 1, 2)  # (V, 3, H, W)
    out[METHODS[2]] = (*scores(render, targets[held_ids]), time.perf_counter() - t0)
    return out


def mean_over(results: dict, names, method: str, index: int) -> float:
    if not names:
        return float("nan")
    return float(torch.cat([results[n][method][index] for n in names]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/slat_vae_meshes")
    parser.add_argument("--fit-steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--meshes", nargs="*", default=None, help="a subset of the run's meshes (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = resolve_path(args.checkpoint)
    cfg = OmegaConf.load(Path(folder) / "config.yaml")
    recorded = json.loads((Path(folder) / "metrics.json").read_text())
    data, k = cfg.data, int(cfg.data.holdout_every)
    seen, unseen = list(data.meshes), list(data.get("unseen_meshes") or [])
    if args.meshes is not None:
        seen, unseen = [n for n in seen if n in args.meshes], [n for n in unseen if n in args.meshes]
    model = load_model(folder)
    torch.manual_seed(0)

    results, voxels = {}, {}
    for name in seen + unseen:
        dataset = SLatDataset(mesh_source(data, [name]), views_per_item=None, max_voxels=None)
        item = dataset[0]
        ids = list(range(len(item["cameras"])))
        train_ids, held_ids = [i for i in ids if i % k != k - 1], [i for i in ids if i % k == k - 1]
        results[name] = evaluate_mesh(model, item, train_ids, held_ids, data.resolution, args.fit_steps)
        voxels[name] = len(item["coords"])
        print(name, {m: round(float(r[0].mean()), 2) for m, r in results[name].items()}, flush=True)
    load = os.getloadavg()[0]

    per_view = f"{data.num_views // k} held-out views of {data.num_views}, {data.image_size} px"
    lines = [(f"| method | training meshes ({len(seen)}): PSNR dB | SSIM | never seen ({', '.join(unseen) or '-'}): "
              "PSNR dB | SSIM | wall s per object |"), "|---|---:|---:|---:|---:|---:|"]
    for method in METHODS:
        seconds = sum(results[n][method][2] for n in results) / max(len(results), 1)
        lines.append(f"| {method} | {mean_over(results, seen, method, 0):.2f} | {mean_over(results, seen, method, 1):.3f} "
                     f"| {mean_over(results, unseen, method, 0):.2f} | {mean_over(results, unseen, method, 1):.3f} "
                     f"| {seconds:.2f} |")
    lines += ["", "| mesh | voxels | " + " | ".join(f"{m} PSNR" for m in METHODS) + " |",
              "|---|---:|" + "---:|" * len(METHODS)]
    for name in results:
        label = f"{name} (never seen)" if name in unseen else name
        lines.append(f"| {label} | {voxels[name]} | "
                     + " | ".join(f"{float(results[name][m][0].mean()):.2f}" for m in METHODS) + " |")
    command = recorded.get("command", "?")
    train_s = recorded.get("train_seconds")
    header = [
        (f"`python benchmarks/bench_slat_vae.py --fit-steps {args.fit_steps} --threads {args.threads}`; model "
         f"`{args.checkpoint}` ({recorded['step']} steps, trained with `{command}`"
         + (f" in {train_s:.0f} s" if train_s else "")
         + f"; recorded val/psnr {recorded['metrics'].get('val/psnr', float('nan')):.2f})."),
        (f"Scores at the {per_view} of each mesh, over black; PSNR and SSIM are means over views. Voxels at "
         f"{data.resolution}^3, patch_pool features; the per-scene fit starts from one Gaussian per voxel centre "
         f"and takes {args.fit_steps} steps of 4 training views; voxel splats: one Gaussian per voxel, std half a voxel, "
         "coloured by the mean of its projections into the training views."),
        (f"Machine: {cpu_model()}, {os.cpu_count()} cores, torch.set_num_threads({args.threads}), torch {torch.__version__}, "
         f"Python {platform.python_version()}, 1-min load average {load:.1f} (shared machine)."),
    ]
    body = "\n".join(header) + "\n\n" + "\n".join(lines)
    print(body)
    if not args.no_write:
        append_results("Structured-latent VAE on CPU: held-out views, training and never-seen meshes", body)


if __name__ == "__main__":
    main()
