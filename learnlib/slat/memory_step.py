"""One SLat VAE training step on a synthetic object, and what it saves for backward, measured on real tensors.

The synthetic object of N voxels is the N cells of the grid nearest to a sphere of radius
0.35 x resolution (a shell that thickens as N grows, like the surface voxels of a real object);
its features are random. The step is the `slat_vae` task's: encode, sample, decode, render every
object at `views` cameras of `image_size` px in fp32 outside autocast, and `slat_vae_loss`
(L1, SSIM, LPIPS when a network is given, KL, volume and opacity regularizers).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from learnlib.nn.checkpointing import apply_activation_checkpointing, remove_activation_checkpointing
from learnlib.nn.precision import autocast
from learnlib.nn.saved_tensors import SavedTensorTracker, storage_key
from learnlib.nn.step_peak import StepPeak, measure_step_peak
from learnlib.slat.losses import TINY_LOSS_WEIGHTS, SLatLossWeights, render_views, slat_vae_loss
from learnlib.sparse import SparseTensor
from learnlib.splat.cameras import hammersley_cameras

SHELL_RADIUS = 0.35  # of the resolution


@functools.lru_cache(maxsize=4)
def _shell_order(resolution: int) -> torch.Tensor:
    """Every cell (R^3, 3) of the grid, nearest to the sphere first (stable: ties in index order)."""
    axis = torch.arange(resolution)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)  # (R^3, 3)
    distance = ((grid.float() + 0.5 - resolution / 2).norm(dim=1) - SHELL_RADIUS * resolution).abs()
    return grid[torch.sort(distance, stable=True).indices].int()


def synthetic_coords(num_voxels: int, resolution: int, objects: int = 1) -> torch.Tensor:
    """int32 coords (objects * num_voxels, 4) (object, x, y, z): `objects` copies of the synthetic shell."""
    if not isinstance(num_voxels, int) or not 1 <= num_voxels <= resolution**3:
        raise ValueError(f"num_voxels must be an int in [1, {resolution ** 3}] for resolution {resolution}, "
                         f"got {num_voxels!r}")
    xyz = _shell_order(resolution)[:num_voxels]  # (N, 3)
    batch = torch.arange(objects, dtype=torch.int32).repeat_interleave(num_voxels)[:, None]  # (B*N, 1)
    return torch.cat([batch, xyz.repeat(objects, 1)], dim=1)  # (B*N, 4)


def synthetic_object(num_voxels: int, resolution: int, in_channels: int, objects: int = 1,
                     generator: torch.Generator | None = None, device="cpu") -> SparseTensor:
    """A SparseTensor of `objects` synthetic shells of `num_voxels` voxels each with random features."""
    coords = synthetic_coords(num_voxels, resolution, objects).to(device)
    feats = torch.randn(len(coords), in_channels, generator=generator).to(device)  # (B*N, C_in)
    return SparseTensor(feats, coords, resolution=resolution, batch_size=objects)


def training_step(model: nn.Module, num_voxels: int, image_size: int, views: int = 1, objects: int = 1,
                  weights: SLatLossWeights = TINY_LOSS_WEIGHTS, lpips_fn: nn.Module | None = None,
                  generator: torch.Generator | None = None):
    """A function computing the `slat_vae` loss of `model` (an SLatVAE) on synthetic objects of `num_voxels`."""
    device = next(model.parameters()).device
    x = synthetic_object(num_voxels, model.encoder.resolution, model.encoder.in_channels, objects, generator, device)
    cameras = hammersley_cameras(views, width=image_size).to(device)
    backgrounds = torch.zeros(objects, views, 3, device=device)  # (B, V, 3)
    targets = torch.rand(objects, views, 3, image_size, image_size, generator=generator).to(device)  # (B, V, 3, H, W)

    def step() -> torch.Tensor:
        out = model(x, generator=generator)
        with torch.autocast(device.type, enabled=False):  # the task renders in fp32
            gaussians = [g.to(torch.float32) for g in out.gaussians]
            renders = render_views(gaussians, [cameras] * objects, backgrounds, **model.decoder.render_kwargs)
        loss, _ = slat_vae_loss(renders, targets, out.gaussians, out.mean.float(), out.logvar.float(), weights,
                                lpips_fn)
        return loss
    return step


@dataclass
class SLatSaved:
    """Saved-for-backward bytes of one SLat step: per block, outside the blocks, and the blocks' inputs."""

    per_block: list[int]
    outside: int  # the stem, heads, Gaussian activation, render and loss
    block_inputs: int  # the blocks' input features not already saved outside them (what checkpointing adds)
    total: int  # what this forward keeps for backward


class _SparseBlockInputs:
    """Forward pre-hooks on `blocks` recording the storages of their SparseTensor inputs' features."""

    def __init__(self, blocks, skip: set):
        self.inputs, self._skip, self._handles = {}, skip, []
        for block in blocks:
            self._handles.append(block.register_forward_pre_hook(self._record))

    def _record(self, module, args):
        for arg in args:
            feats = getattr(arg, "feats", arg)
            if isinstance(feats, torch.Tensor) and torch.is_grad_enabled() and storage_key(feats) not in self._skip:
                self.inputs[storage_key(feats)] = feats.untyped_storage().nbytes()

    def remove(self):
        for handle in self._handles:
            handle.remove()


def measure_saved(model: nn.Module, num_voxels: int, image_size: int, views: int = 1, objects: int = 1,
                  precision: str = "fp32", backend: str | None = None, activation_checkpointing: bool = False,
                  weights: SLatLossWeights = TINY_LOSS_WEIGHTS, lpips_fn: nn.Module | None = None,
                  seed: int = 0) -> SLatSaved:
    """What one SLat training forward saves for backward (real tensors, each storage once; parameters and
    buffers of the model and of `lpips_fn` excluded). With `activation_checkpointing` every block of
    `model.blocks` is checkpointed and `total` adds the blocks' inputs, which the checkpoints keep alive.
    `backend` is a sparse attention backend ("reference" or "sdpa"); fp16 runs on CUDA only."""
    generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    blocks = list(model.blocks)
    changed = [(block.attn, block.attn.backend) for block in blocks] if backend is not None else []
    for attn, _ in changed:
        attn.backend = backend
    was_training = model.training
    model.train()
    if activation_checkpointing:
        apply_activation_checkpointing(model)
    exclude = list(lpips_fn.parameters()) + list(lpips_fn.buffers()) if lpips_fn is not None else []
    tracker = SavedTensorTracker(model, exclude)
    state = {storage_key(t) for t in (*model.parameters(), *model.buffers(), *exclude)}
    inputs = _SparseBlockInputs(blocks, state)
    try:
        step = training_step(model, num_voxels, image_size, views, objects, weights, lpips_fn, generator)
        with tracker as saved, autocast(precision, next(model.parameters()).device.type):
            loss = step()
        del loss
    finally:
        inputs.remove()
        if activation_checkpointing:
            remove_activation_checkpointing(model)
        for attn, old in changed:
            attn.backend = old
        model.train(was_training)
    outside = {k: n for k, n in saved.nbytes.items() if saved.owner[k] is None}
    new_inputs = {k: n for k, n in inputs.inputs.items() if k not in outside}
    total = sum({**saved.nbytes, **(inputs.inputs if activation_checkpointing else {})}.values())
    return SLatSaved(saved.per_block(len(blocks)), sum(outside.values()), sum(new_inputs.values()), total)


def measure_peak(model: nn.Module, num_voxels: int, image_size: int, views: int = 1, objects: int = 1,
                 precision: str = "fp32", backend: str | None = None,
                 weights: SLatLossWeights = TINY_LOSS_WEIGHTS, lpips_fn: nn.Module | None = None,
                 seed: int = 0, with_saved: bool = False) -> StepPeak:
    """The measured total peak of one SLat training step on CPU tensors (learnlib.nn.step_peak).

    `state` is what lives before the measured step (parameters, zeroed gradients, AdamW moments,
    buffers), `step_peak` the highest point above that during forward, backward (the rasterizer's
    (pixel, Gaussian) temporaries, the gradients of activations) and the optimizer step. `backend` is a
    sparse attention backend ("reference" or "sdpa"). `with_saved` also runs `measure_saved` for `saved`."""
    blocks = list(model.blocks)
    changed = [(block.attn, block.attn.backend) for block in blocks] if backend is not None else []
    for attn, _ in changed:
        attn.backend = backend
    try:
        step = training_step(model, num_voxels, image_size, views, objects, weights, lpips_fn,
                             torch.Generator().manual_seed(seed))
        peak = measure_step_peak(model, step, precision)
    finally:
        for attn, old in changed:
            attn.backend = old
    if with_saved:
        peak.saved = measure_saved(model, num_voxels, image_size, views, objects, precision, backend, False, weights,
                                   lpips_fn, seed).total
    return peak
