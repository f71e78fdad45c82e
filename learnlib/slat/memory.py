"""The structured-latent VAE's memory workload: activations per device as a function of its voxel budget.

The SLat VAE's workload unit is voxels per device (`trainer.batching=budget`,
`trainer.batch_budget`), not items: an object has any number of voxels, and its windows hold a
data-dependent number of them, so a FakeTensor trace cannot run the window partition. Instead the
estimate measures real tensors on the CPU (learnlib.slat.memory_step) and extrapolates:

- The model is measured at its real widths with two blocks per half (one unshifted, one
  shifted window; every other block repeats one of them) on the synthetic shell object at
  N1 = 512 and N2 = 1024 voxels, each rendered at one view of 32 px and of 64 px.
- One block saves a N + k S(N): a bytes per voxel (norms, q, k, v, MLP hidden, residuals) and k
  per unit of the attention's own statistic S of the block's window partition, counted per
  backend as for the other families: "reference" (the sparse loop) saves three (H, L, L)
  score tensors per window, S = H sum_w L_w^2; "sdpa" saves q, k, v, output and logsumexp of
  windows padded to their length bucket, S = sum_w bucket(L_w); "flash" (and "auto", what
  CUDA runs with flash-attn installed) saves the same without padding, a + k per voxel and no S.
  a and k are solved from N1 and N2; S is computed exactly on the synthetic object at the
  requested voxels per object (the partition is cheap; the attention is not run).
- Everything outside the blocks (input layer, position embedding, output layers, Gaussian
  activations, rendering, SSIM/LPIPS/KL/regularizers) is o0 + o_v N + o_p P + o_vp N P_obj, P the
  pixels rendered (objects x views x image_size^2), P_obj one object's: the per-pixel part is the
  render and the loss (LPIPS's VGG features above all), o_vp the PyTorch rasterizer's
  (pixel, Gaussian) pairs, which grow with the Gaussians and with the pixels each one covers.
  With "auto"/"flash" (the CUDA run, whose task renders with gsplat: it saves per
  (Gaussian, tile), not per pixel pair) the pair term is left out.
- A budget of V voxels is split into `objects` (trainer.batch_max_items) equal shells of V /
  objects voxels, each rendered at `views` (data.views_per_item) views of data.image_size px.
- Activation checkpointing (learnlib.nn.checkpointing over `SLatVAE.blocks`) keeps what is saved
  outside the blocks plus the blocks' input features (N x width fp32 per block), plus one block's
  saved tensors while it is recomputed.
- fp16 is counted as bf16 (the same bytes; the CPU runs bf16 autocast only). Under bf16 each block
  also saves autocast's bf16 copies of its Linear weights, once per step whatever the voxels: that
  constant (2 bytes per Linear weight) is taken out before a and k are solved and added back per block.
- Transient: the whole step (forward, backward, AdamW step) is measured at the four calibration
  points with torch's CPU allocator events (learnlib.slat.memory_step.measure_peak); its peak above
  the saved tensors is fitted as t0 + t_v N + t_p P + t_vp N P_obj like the outside part. It is the
  PyTorch rasterizer's (pixel, Gaussian) intersection temporaries (built under no_grad) and the
  backward's temporaries. Measured (once, lazily) for "reference" and "sdpa" only: with "auto"/"flash"
  (the CUDA run, which renders with gsplat) the transient is not counted, gsplat's own temporaries
  (per tile, on the GPU) being unknown here; say so when reading such an estimate.

`SLatWorkload` registers all this with learnlib.memory: its unit is voxels per device
(`trainer.batch_budget`), its saved profile and largest-budget search are the ones below.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from learnlib.models import state_bytes
from learnlib.slat.losses import TINY_LOSS_WEIGHTS, SLatLossWeights
from learnlib.slat.memory_step import measure_peak, measure_saved, synthetic_coords, training_step
from learnlib.slat.vae import SLatVAE
from learnlib.workloads import (
    ConfigExtras,
    FamilyWorkload,
    SavedProfile,
    Workload,
    cpu_precision,
    positive_int,
    register_workload,
)

CALIBRATION_VOXELS = (512, 1024)
CALIBRATION_PIXELS = (32, 64)  # render sizes in px
# learnlib.nn.backends attention name -> the sparse backend the CPU calibration runs
SPARSE_BACKENDS = {"reference": "reference", "sdpa": "sdpa", "flash": "sdpa", "auto": "sdpa", None: "sdpa"}


@dataclass(frozen=True)
class RenderSetting:
    """What one SLat step renders per device: objects, views per object, image side in px, the loss weights."""

    image_size: int = 64
    views: int = 1
    objects: int = 1
    weights: SLatLossWeights = TINY_LOSS_WEIGHTS


def slat_setting(workload: Workload) -> RenderSetting:
    """The RenderSetting stored in `workload.task` (the defaults for a bare model)."""
    return workload.task.get("render", RenderSetting())


def calibration_model(model: nn.Module, num_blocks: int = 2) -> nn.Module:
    """A real (CPU) SLatVAE of `model`'s widths with `num_blocks` blocks per half (fewer if it has fewer)."""
    from learnlib.slat import SLatEncoder, SLatGaussianDecoder, SLatVAE

    enc, dec = model.encoder, model.decoder
    block = enc.blocks[0]
    trunk = {"resolution": enc.resolution, "model_channels": enc.model_channels, "num_heads": enc.num_heads,
             "latent_channels": enc.latent_channels, "window_size": enc.window_size,
             "mlp_ratio": block.mlp.mlp[0].out_features / enc.model_channels, "backend": block.attn.backend}
    decoder = {k: getattr(dec, k) for k in ("num_gaussians", "voxel_size", "perturb_offset", "scaling_bias",
                                            "opacity_bias", "min_kernel_size", "filter_2d_kernel_size", "lr")}
    with torch.device("cpu"):
        torch.manual_seed(0)
        return SLatVAE(SLatEncoder(in_channels=enc.in_channels, num_blocks=min(num_blocks, enc.num_blocks), **trunk),
                       SLatGaussianDecoder(num_blocks=min(num_blocks, dec.num_blocks), **trunk, **decoder))


def lpips_network(weights: SLatLossWeights) -> nn.Module | None:
    """LPIPS-VGG with random weights (shapes are what memory needs) when the lpips weight is on."""
    if weights.lpips <= 0:
        return None
    from learnlib.slat.lpips_vgg import LPIPSVGG

    return LPIPSVGG(load_backbone=False, load_heads=False)


def lpips_bytes(weights: SLatLossWeights) -> int:
    """Bytes of the frozen LPIPS network the loss runs (0 without LPIPS)."""
    if weights.lpips <= 0:
        return 0
    from learnlib.slat.lpips_vgg import LPIPSVGG

    with torch.device("meta"):
        return state_bytes(LPIPSVGG(load_backbone=False, load_heads=False))


@functools.lru_cache(maxsize=4096)
def attention_statistic(num_voxels: int, objects: int, resolution: int, window: int, shift: tuple, heads: int,
                        backend: str) -> int:
    """S of one block: H sum L^2 ("reference"), sum of bucketed lengths ("sdpa") or N ("flash")."""
    if backend == "flash":
        return num_voxels * objects
    from learnlib.sparse.attention import bucket_length
    from learnlib.sparse.windows import window_partition

    part = window_partition(synthetic_coords(num_voxels, resolution), (window,) * 3, shift,
                            resolution=(resolution,) * 3)
    lengths = part.seqlens.long()
    per_object = heads * int((lengths * lengths).sum()) if backend == "reference" else int(bucket_length(lengths).sum())
    return objects * per_object


@dataclass(frozen=True)
class SLatFit:
    """The fitted coefficients (bytes) of the module docstring, per calibration block."""

    per_voxel: tuple[float, ...]  # a of each calibration block
    per_statistic: tuple[float, ...]  # k of each calibration block
    shifts: tuple[tuple, ...]
    outside: tuple[float, float, float, float]  # o0, o_v, o_p, o_vp
    inputs: tuple[float, float]  # block-input bytes: intercept and per voxel, of all calibration blocks
    calibration_blocks: tuple[int, int]  # blocks per half in the calibration model
    weight_copies: tuple[int, ...] = ()  # autocast's low-precision weight copies each calibration block saves
    saved_totals: tuple[tuple[tuple[int, int], int], ...] = ()  # ((voxels, px), saved bytes) at the four points


def _solve2(n1: float, s1: float, y1: float, n2: float, s2: float, y2: float) -> tuple[float, float]:
    """a, k with a n + k s = y at both points (k = 0 when s is proportional to n)."""
    det = n1 * s2 - n2 * s1
    if abs(det) < 1e-9 * abs(n1 * s2):
        return y2 / n2, 0.0
    return (y1 * s2 - y2 * s1) / det, (n1 * y2 - n2 * y1) / det


def weight_copy_bytes(block: nn.Module, precision: str) -> int:
    """Bytes of the low-precision weight copies autocast makes (and saves) for `block`'s Linear layers."""
    if precision == "fp32":
        return 0
    return 2 * sum(m.weight.numel() for m in block.modules() if isinstance(m, nn.Linear))


def _fit_bilinear(values: dict, n1: int, n2: int, p1: int, p2: int) -> tuple[float, float, float, float]:
    """c0, c_v, c_p, c_vp with c0 + c_v n + c_p p^2 + c_vp n p^2 = values[n, p] at the four points."""
    c_vp = ((values[n2, p2] - values[n1, p2]) - (values[n2, p1] - values[n1, p1])) / ((n2 - n1) * (p2**2 - p1**2))
    c_v = (values[n2, p1] - values[n1, p1]) / (n2 - n1) - c_vp * p1**2
    c_p = (values[n1, p2] - values[n1, p1]) / (p2**2 - p1**2) - c_vp * n1
    c0 = values[n1, p1] - c_v * n1 - c_p * p1**2 - c_vp * n1 * p1**2
    return c0, c_v, c_p, c_vp


def calibrate(model: nn.Module, precision: str, backend: str | None, setting: RenderSetting) -> SLatFit:
    """Measure the calibration model (see the module docstring) and solve for the coefficients.

    `backend` is a canonical learnlib.nn.backends attention name or None."""
    calib = calibration_model(model)
    sparse_backend = SPARSE_BACKENDS[backend]
    lpips_fn = lpips_network(setting.weights)
    (n1, n2), (p1, p2) = CALIBRATION_VOXELS, CALIBRATION_PIXELS
    runs = {(n, p): measure_saved(calib, n, p, 1, 1, cpu_precision(precision), sparse_backend, False,
                                  setting.weights, lpips_fn)
            for n in (n1, n2) for p in (p1, p2)}
    blocks = list(calib.blocks)
    shifts = tuple(b.attn.shift_window for b in blocks)
    resolution, window, heads = calib.encoder.resolution, calib.encoder.window_size, calib.encoder.num_heads
    copies = tuple(weight_copy_bytes(b, cpu_precision(precision)) for b in blocks)
    per_voxel, per_stat = [], []
    for j, shift in enumerate(shifts):
        s1, s2 = (attention_statistic(n, 1, resolution, window, shift, heads, sparse_backend) for n in (n1, n2))
        # the weight copies are one constant per block; the rest grows with the voxels and the statistic
        a, k = _solve2(n1, s1, runs[n1, p1].per_block[j] - copies[j], n2, s2, runs[n2, p1].per_block[j] - copies[j])
        per_voxel.append(a)
        per_stat.append(k)
    outside = _fit_bilinear({key: run.outside for key, run in runs.items()}, n1, n2, p1, p2)
    i_v = (runs[n2, p1].block_inputs - runs[n1, p1].block_inputs) / (n2 - n1)
    inputs = (runs[n1, p1].block_inputs - i_v * n1, i_v)
    return SLatFit(tuple(per_voxel), tuple(per_stat), shifts, outside, inputs,
                   (len(calib.encoder.blocks), len(calib.decoder.blocks)), copies,
                   tuple((key, run.total) for key, run in runs.items()))


def calibrate_transient(model: nn.Module, precision: str, backend: str | None, setting: RenderSetting,
                        fit: SLatFit) -> tuple[float, float, float, float]:
    """t0, t_v, t_p, t_vp of the step's peak above its saved tensors: whole CPU steps of the calibration model
    at the four calibration points (see the module docstring), less what `fit` measured they save."""
    calib = calibration_model(model)
    lpips_fn = lpips_network(setting.weights)
    (n1, n2), (p1, p2) = CALIBRATION_VOXELS, CALIBRATION_PIXELS
    saved = dict(fit.saved_totals)
    peaks = {(n, p): measure_peak(calib, n, p, 1, 1, cpu_precision(precision), SPARSE_BACKENDS[backend],
                                  setting.weights, lpips_fn).step_peak - saved[n, p]
             for n in (n1, n2) for p in (p1, p2)}
    return _fit_bilinear(peaks, n1, n2, p1, p2)


def slat_transient(workload: Workload, precision: str, backend: str | None) -> tuple[float, float, float, float]:
    """The transient calibration of `workload`, measured once (only for the PyTorch rasterizer's backends)."""
    key = ("slat-transient", precision, SPARSE_BACKENDS[backend])
    if key not in workload.traces:
        workload.traces[key] = calibrate_transient(workload.model, precision, backend, slat_setting(workload),
                                                   slat_fit(workload, precision, backend))
    return workload.traces[key]


def slat_fit(workload: Workload, precision: str, backend: str | None) -> SLatFit:
    """The calibration of `workload` for `precision` and `backend`, measured once and kept in `workload.traces`."""
    key = ("slat", precision, SPARSE_BACKENDS[backend])
    if key not in workload.traces:
        workload.traces[key] = calibrate(workload.model, precision, backend, slat_setting(workload))
    return workload.traces[key]


def slat_saved_profile(workload: Workload, voxels: int, precision: str, backend: str | None) -> SavedProfile:
    """Saved-for-backward bytes of one SLat step at a budget of `voxels` per device (see the module docstring)."""
    if not isinstance(voxels, int) or voxels < 1:
        raise ValueError(f"the SLat VAE's workload is voxels per device (trainer.batch_budget), a positive int; "
                         f"got {voxels!r}")
    fit = slat_fit(workload, precision, backend)
    setting = slat_setting(workload)
    model = workload.model
    objects = min(setting.objects, voxels)
    per_object = max(1, round(voxels / objects))
    flash = backend in ("flash", "auto", None)
    sparse = "flash" if flash else SPARSE_BACKENDS[backend]
    enc = model.encoder
    per_block = []
    half_blocks = (enc.num_blocks, model.decoder.num_blocks)
    for half, count in enumerate(half_blocks):
        for i in range(count):
            j = half * fit.calibration_blocks[0] + i % fit.calibration_blocks[half]
            stat = attention_statistic(per_object, objects, enc.resolution, enc.window_size, fit.shifts[j],
                                       enc.num_heads, sparse)
            a, k = fit.per_voxel[j], fit.per_statistic[j]
            copies = fit.weight_copies[j] if fit.weight_copies else 0
            per_block.append(copies + max(0, round((a + k) * voxels if flash else a * voxels + k * stat)))
    pixels = setting.views * setting.image_size**2  # per object
    o0, o_v, o_p, o_vp = fit.outside
    pairs = 0.0 if flash else o_vp * voxels * pixels  # gsplat (CUDA) saves per (Gaussian, tile), not per pixel
    outside = max(0, round(o0 + o_v * voxels + o_p * objects * pixels + pairs))
    calib_blocks = sum(fit.calibration_blocks)
    inputs = max(0, round((fit.inputs[0] + fit.inputs[1] * voxels) * sum(half_blocks) / calib_blocks))
    trained = frozenset(name for name, p in model.named_parameters() if p.requires_grad)
    transient = 0  # "auto"/"flash": the CUDA run renders with gsplat, whose transient is not measured here
    if not flash:  # the PyTorch rasterizer's (pixel, Gaussian) temporaries and the backward's, measured on CPU
        t0, t_v, t_p, t_vp = slat_transient(workload, precision, backend)
        transient = max(0, round(t0 + t_v * voxels + t_p * objects * pixels + t_vp * voxels * pixels))
    return SavedProfile(outside + sum(per_block), outside + inputs, max(per_block, default=0), trained, transient)


def largest_voxels(total_at, budget_bytes: float, upper: int) -> int:
    """The largest voxel budget V with total_at(V) <= budget_bytes (0 when V = 1 does not fit); bisection."""
    if total_at(1) > budget_bytes:
        return 0
    lo, hi = 1, 2
    while hi < upper and total_at(hi) <= budget_bytes:
        lo, hi = hi, min(2 * hi, upper)
    if hi == upper and total_at(upper) <= budget_bytes:
        return upper
    while hi - lo > max(1, lo // 1024):  # to 0.1 %: memory is not known better than that
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if total_at(mid) <= budget_bytes else (lo, mid)
    return lo


def slat_workload(model: nn.Module, setting: RenderSetting = RenderSetting()) -> Workload:
    """A Workload of an SLatVAE rendering `setting` (LPIPS's network counted as frozen when it is on)."""
    return Workload(model, type(model).__name__, {"render": setting}, lpips_bytes(setting.weights))


@register_workload("slat")
class SLatWorkload(FamilyWorkload):
    """The SLat VAE: voxels per device (`trainer.batch_budget`), calibrated on CPU tensors and extrapolated."""

    unit = "voxels"
    batch_word = "voxel budget"
    budget_key = "trainer.batch_budget"

    def model_class(self) -> type:
        return SLatVAE

    def training_step(self, model, batch, generator=None, render: RenderSetting | None = None):
        """The `slat_vae` step on one synthetic object of `batch` voxels rendered at one view of 64 px (the
        `render` setting of an experiment is what the calibrated profile extrapolates to)."""
        return training_step(model, batch, image_size=64, generator=generator)

    def from_config(self, cfg) -> ConfigExtras:
        """What the step renders: data.image_size x data.views_per_item views of trainer.batch_max_items
        objects, the task's loss weights (LPIPS's network counted as frozen), model.use_checkpoint."""
        from learnlib.slat.task import LOSS_WEIGHT_NAMES, TRELLIS_LOSS_WEIGHTS

        task = cfg.task
        weights = SLatLossWeights(**{k: task.get(k, getattr(TRELLIS_LOSS_WEIGHTS, k)) for k in LOSS_WEIGHT_NAMES})
        setting = RenderSetting(int(cfg.data.image_size), int(cfg.data.get("views_per_item") or 1),
                                int(cfg.trainer.get("batch_max_items") or 1), weights)
        return ConfigExtras({"render": setting}, lpips_bytes(weights), bool(cfg.model.get("use_checkpoint")))

    def saved_profile(self, workload, batch, precision, backend):
        return slat_saved_profile(workload, batch, precision, backend)

    def largest(self, workload, total_at, budget_bytes):
        upper = slat_setting(workload).objects * workload.model.encoder.resolution**3
        return largest_voxels(total_at, budget_bytes, upper)

    def cli_batch(self, workload, devices):
        """The micro-batch per device: trainer.batch_budget voxels (trainer.batching=budget)."""
        trainer = workload.config.trainer
        if trainer.get("batching") != "budget" or not trainer.get("batch_budget"):
            raise ValueError(f"experiment {workload.name}: the SLat VAE's memory is per voxel budget; set "
                             f"trainer.batching=budget and trainer.batch_budget=VOXELS per device")
        budget = positive_int("trainer.batch_budget", trainer.batch_budget)
        accum = positive_int("trainer.grad_accum", trainer.grad_accum)
        setting = slat_setting(workload)
        header = [(f"experiment {workload.name}: {budget} voxels per device (trainer.batch_budget) x {devices} "
                   f"devices x {accum} accumulation steps"),
                  ("workload unit: voxels per device (trainer.batching=budget), not items: up to "
                   f"{setting.objects} objects (trainer.batch_max_items) sharing the budget, each rendered at "
                   f"{setting.views} view(s) of {setting.image_size} x {setting.image_size} px"),
                  ("activations: measured on CPU at 512 and 1024 voxels and 32/64 px, extrapolated per voxel and "
                   "per pixel (learnlib.slat.memory); attention auto counts flash-attn (CUDA's choice with the gpu "
                   f"extra); budgets stop at {setting.objects} x {workload.model.encoder.resolution}^3 voxels "
                   "(every grid cell)")]
        return budget, header
