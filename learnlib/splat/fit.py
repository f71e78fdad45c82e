"""Fit 3D Gaussians to posed images by gradient descent: the optimization at the heart of 3DGS.

`fit_gaussians` starts from points (e.g. mesh surface samples, or random points from
`initial_points`) or from given `Gaussians`, renders a random batch of training views per step with
`rasterize`, and follows the L1 photometric loss with Adam (one learning rate per kind of parameter,
as in 3DGS, the position's decaying exponentially). It has no densification or pruning: the number
of Gaussians stays fixed, and colours are degree-0 spherical harmonics (no view dependence), so the
targets should look the same from every side. The caller renders them first, e.g. with
`learnlib.data.mesh_render.mesh_targets` (a mesh coloured by its normals, unshaded, supersampled so
that edges are anti-aliased like a Gaussian render).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from learnlib.metrics import psnr
from learnlib.splat.cameras import Cameras
from learnlib.splat.gaussians import Gaussians

# Adam learning rates per raw tensor of `Gaussians` (scene of unit size, a few hundred steps).
DEFAULT_LRS = {"raw_means": 1e-3, "raw_scales": 3e-2, "raw_quats": 5e-3, "raw_opacities": 5e-2, "sh_dc": 5e-2}


@dataclass
class FitHistory:
    """What `fit_gaussians` measured: the loss of every step and PSNRs at the evaluation steps.

    `eval_steps[i]` is the number of optimization steps done when `train_psnr[i]`, `eval_psnr[i]`
    (NaN without held-out views), `wall_s[i]` and `cpu_s[i]` (training time so far, evaluation
    excluded; process CPU time) were taken; step 0 is the initialization.
    """

    loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    train_psnr: list[float] = field(default_factory=list)
    eval_psnr: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)


def initial_points(num_points: int, *, seed: int = 0, extent: float = 1.0) -> Tensor:
    """Starting positions [num_points, 3]: uniform random points in the cube [-extent / 2, extent / 2]^3.

    Points on a mesh surface are `learnlib.data.meshes.sample_surface(mesh, num_points, seed)[0]`.
    """
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}")
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(num_points, 3, generator=generator) - 0.5) * extent


def color_by_normals(mesh):
    """A copy of a trimesh mesh whose vertex colours are 0.5 + 0.5 * (vertex normal): a colour per
    surface direction that looks the same from every view."""
    out = mesh.copy()
    normals = np.asarray(out.vertex_normals)
    out.visual.vertex_colors = np.clip(np.round(255.0 * (0.5 + 0.5 * normals)), 0, 255).astype(np.uint8)
    return out


def _check_views(images: Tensor, cameras: Cameras, what: str) -> None:
    expected = (len(cameras), cameras.height, cameras.width, 3)
    if tuple(images.shape) != expected:
        raise ValueError(f"{what} must be (C, H, W, 3) = {list(expected)} for these cameras, "
                         f"got {list(images.shape)}")


@torch.no_grad()
def render_images(gaussians: Gaussians, cameras: Cameras, background=(1.0, 1.0, 1.0), chunk: int = 8) -> Tensor:
    """Images (C, H, W, 3) of `gaussians` seen by every camera (no gradients), over `background`."""
    out = []
    for start in range(0, len(cameras), chunk):
        cams = cameras[list(range(start, min(start + chunk, len(cameras))))]
        bg = torch.as_tensor(background, dtype=gaussians.raw_means.dtype).expand(len(cams), 3)  # (C, 3)
        img, _, _ = gaussians.render(cams.viewmats, cams.Ks, cams.width, cams.height, backgrounds=bg)
        out.append(img)
    return torch.cat(out)  # (C, H, W, 3)


def fit_gaussians(images: Tensor, cameras: Cameras, init: Gaussians | Tensor, steps: int = 300,
                  batch_views: int = 4, lrs: dict[str, float] | None = None, background=(1.0, 1.0, 1.0),
                  eval_images: Tensor | None = None, eval_cameras: Cameras | None = None,
                  eval_every: int = 50, init_opacity: float = 0.5, means_lr_final: float = 0.1,
                  seed: int | None = None, progress: bool = True) -> tuple[Gaussians, FitHistory]:
    """Optimize Gaussians so that their renders match `images` (C, H, W, 3) seen by `cameras`.

    `init` is either `Gaussians` (copied, then optimized) or points (N, 3) (isotropic grey
    Gaussians of opacity `init_opacity`, sized by the nearest-neighbour distance). Each step renders
    `batch_views` random training views over `background` and takes one Adam step on the mean L1
    error; `lrs` overrides entries of DEFAULT_LRS, and the means' rate decays exponentially to
    `means_lr_final` times its start over the `steps`. Every `eval_every` steps (and at step 0 and the
    end) the PSNR over all training views and over the held-out `eval_images` / `eval_cameras` is
    recorded. `seed` fixes the order of the views (the only randomness of the fit).
    Returns the fitted Gaussians (detached) and the `FitHistory`.
    """
    _check_views(images, cameras, "images")
    if (eval_images is None) != (eval_cameras is None):
        raise ValueError("pass both eval_images and eval_cameras, or neither")
    if eval_images is not None:
        _check_views(eval_images, eval_cameras, "eval_images")
    if steps < 0 or batch_views < 1 or eval_every < 1:
        raise ValueError(f"need steps >= 0, batch_views >= 1 and eval_every >= 1, got {steps}, {batch_views}, "
                         f"{eval_every}")
    unknown = set(lrs or {}) - set(DEFAULT_LRS)
    if unknown:
        raise ValueError(f"unknown learning-rate keys {sorted(unknown)}; expected some of {sorted(DEFAULT_LRS)}")
    if seed is None:
        seed = int(torch.randint(0, 2**62, ()))  # from torch's global generator
    generator = torch.Generator().manual_seed(seed)

    if isinstance(init, Gaussians):
        gaussians = init.to(torch.float32)
    else:
        if init.dim() != 2 or init.shape[1] != 3:
            raise ValueError(f"init must be Gaussians or points (N, 3), got {tuple(init.shape)}")
        gaussians = Gaussians.from_points(init.float(), opacity=init_opacity)
    gaussians.requires_grad_(True)
    rates = {**DEFAULT_LRS, **(lrs or {})}
    optimizer = torch.optim.Adam([{"params": [t], "lr": rates[name], "name": name}
                                  for name, t in gaussians.raw_tensors().items()], eps=1e-15)
    bg = torch.as_tensor(background, dtype=torch.float32)
    decay = means_lr_final ** (1.0 / max(steps, 1))

    history = FitHistory()
    wall = cpu = 0.0

    def evaluate(step: int) -> None:
        history.eval_steps.append(step)
        history.train_psnr.append(psnr(render_images(gaussians, cameras, bg), images))
        history.eval_psnr.append(psnr(render_images(gaussians, eval_cameras, bg), eval_images)
                                 if eval_images is not None else float("nan"))
        history.wall_s.append(wall)
        history.cpu_s.append(cpu)

    evaluate(0)
    bar = tqdm(range(1, steps + 1), disable=not progress, desc="fit", leave=False, mininterval=1.0)
    for step in bar:
        t0, c0 = time.perf_counter(), time.process_time()
        idx = torch.randperm(len(cameras), generator=generator)[:batch_views].tolist()
        cams = cameras[idx]
        rendered, _, _ = gaussians.render(cams.viewmats, cams.Ks, cams.width, cams.height,
                                          backgrounds=bg.expand(len(idx), 3))  # (B, H, W, 3)
        loss = (rendered - images[idx]).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for group in optimizer.param_groups:
            if group["name"] == "raw_means":
                group["lr"] *= decay
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        history.loss.append(loss.item())
        if step % eval_every == 0 or step == steps:
            evaluate(step)
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}", psnr=f"{history.train_psnr[-1]:.2f}")
    bar.close()
    return gaussians.requires_grad_(False), history
