"""Graders of chapter 08 (structured-latent VAE).

`gaussian_params` grades the decoder's output layout -> Gaussian parameters (offset bound and
Hammersley perturbation); `diagonal_gaussian_kl` grades the KL term. Each runs the learner's
function and the library (learnlib.slat) on fresh seeded random inputs; when a wrong answer equals
exactly one typical mistake (no atanh, wrong channel order, KL summed or without the 0.5...), the
message names it; every failing case shows its inputs (small tensors written out, large ones by shape).
"""

from __future__ import annotations

import torch
from torch import Tensor

from learnlib.check.core import Mismatch, assert_close, expect_tensor_like, failure, run_check, seeded
from learnlib.check.hints import register_hints
from learnlib.slat.encoder import diagonal_gaussian_kl as reference_kl
from learnlib.slat.gaussian_layout import GAUSSIAN_CHANNELS, hammersley_points
from learnlib.slat.gaussian_layout import gaussian_params as reference_params

PARAM_KEYS = ("raw_means", "sh_dc", "raw_scales", "raw_quats", "raw_opacities")
ROTATION_LR = 0.1


# --------------------------------------------------------------------------- Gaussian parameters
def _layout_variant(raw: Tensor, coords: Tensor, resolution: int, points: Tensor, voxel_size: float, *,
                    atanh: bool = True, divide: bool = True, bound: float | None = None, centre: float = 0.5,
                    world_shift: float = -0.5, rotation_lr: float = ROTATION_LR,
                    order: tuple[str, ...] = tuple(GAUSSIAN_CHANNELS), gaussian_major: bool = True) -> dict:
    """The reference computation with one knob turned: how a typical mistake computes the parameters."""
    n, g = raw.shape[0], raw.shape[1] // 14
    blocks, start = {}, 0
    for name in order:
        width = GAUSSIAN_CHANNELS[name]
        chunk = raw[:, start:start + g * width]
        start += g * width
        if gaussian_major:  # channel g * width + c
            blocks[name] = chunk.reshape(n, g, width)  # (N, G, width)
        else:  # channel c * G + g
            blocks[name] = chunk.reshape(n, width, g).transpose(1, 2)  # (N, G, width)
    p = points / voxel_size if divide else points
    perturb = torch.atanh(p) if atanh else p
    bound = 0.5 * voxel_size if bound is None else bound
    offset = torch.tanh(blocks["xyz"] + perturb) * bound / resolution  # (N, G, 3)
    means = (coords.to(raw.dtype) + centre) / resolution  # (N, 3)
    means = means[:, None, :] + offset + world_shift  # (N, G, 3)
    return {"raw_means": means.reshape(n * g, 3), "sh_dc": blocks["features_dc"].reshape(n * g, 3),
            "raw_scales": blocks["scaling"].reshape(n * g, 3),
            "raw_quats": (blocks["rotation"] * rotation_lr).reshape(n * g, 4),
            "raw_opacities": blocks["opacity"].reshape(n * g, 1)}


HINTS = {
    "gaussian_params": (
        ("the decoder's 14 channels per Gaussian come in blocks (xyz, colour, scaling, rotation, opacity); the "
         "offset is a tanh bounded to the voxel's neighbourhood, started at the Hammersley point through atanh."),
        ("split raw into (N, G, 3/3/3/4/1) blocks in that order; offset = tanh(raw_xyz + atanh(points / "
         "voxel_size)) * 0.5 * voxel_size / R; means = (coords + 0.5) / R + offset - 0.5; raw_quats = 0.1 * "
         "rotation block.")),
    "diagonal_gaussian_kl": (
        ("KL(N(mean, exp(logvar)) || N(0, I)) has a closed form per element; TRELLIS averages it over every "
         "element rather than summing."),
        "0.5 * torch.mean(mean ** 2 + logvar.exp() - logvar - 1)"),
}
register_hints(HINTS)


def _same(got: dict, variant: dict) -> bool:
    return all(isinstance(got.get(k), Tensor) and got[k].shape == variant[k].shape
               and bool(torch.allclose(got[k].to(variant[k].dtype), variant[k], atol=1e-5, rtol=1e-4))
               for k in PARAM_KEYS)


def _layout_mistakes(voxel_size: float) -> list[tuple[str, dict]]:
    swapped = ("xyz", "scaling", "rotation", "opacity", "features_dc")
    return [
        (("the perturbation is added without atanh: add atanh(points / voxel_size) to the raw offsets, so that "
         "tanh(0 + atanh(p)) = p puts an untrained Gaussian exactly at its Hammersley point"), {"atanh": False}),
        (("the points are not divided by voxel_size before atanh: use atanh(points / voxel_size), so that an "
         "untrained Gaussian sits at its Hammersley point inside its own voxel (atanh(-1) is infinite)"),
         {"divide": False}),
        ((f"the bound is tanh(...) / resolution: the offset may reach half of voxel_size = {voxel_size} voxels, "
         "so multiply by 0.5 * voxel_size / resolution"), {"bound": 1.0}),
        (("the bound is tanh(...) * voxel_size / resolution: the box is voxel_size voxels wide, centred on the "
         "voxel, so the offset reaches at most 0.5 * voxel_size voxels"), {"bound": voxel_size}),
        ("the voxel centre is missing its + 0.5: voxel v of an R^3 grid is centred at (v + 0.5) / R",
         {"centre": 0.0}),
        ("the means are in [0, 1]^3: subtract 0.5 to put the object in TRELLIS's world box [-0.5, 0.5]^3",
         {"world_shift": 0.0}),
        ("the rotations are not scaled: TRELLIS multiplies the raw rotation channels by lr = 0.1",
         {"rotation_lr": 1.0}),
        (("the channel blocks are in the wrong order: it is offsets (3G), colour (3G), scales (3G), "
         "rotations (4G), opacities (G)"), {"order": swapped}),
        (("inside a block the channels are grouped per Gaussian: channel g * width + c is component c of "
         "Gaussian g (reshape to (N, G, width), not (N, width, G))"), {"gaussian_major": False}),
    ]


def gaussian_params(fn) -> bool:
    """Check fn(raw (N, 14G), coords (N, 3), resolution, points (G, 3), voxel_size) -> dict of the five
    raw Gaussian tensors (raw_means in world units, sh_dc, raw_scales, raw_quats, raw_opacities)."""
    generator = seeded(80)

    def case(n, g, resolution, voxel_size, scale):
        def run():
            raw = torch.randn(n, 14 * g, generator=generator) * scale
            coords = torch.randint(0, resolution, (n, 3), generator=generator)
            points = hammersley_points(g).float() * 2 - 1  # (G, 3) in [-1, 1)
            expected = reference_params(raw, coords, resolution, torch.atanh(points / voxel_size), voxel_size)
            got = fn(raw.clone(), coords.clone(), resolution, points.clone(), voxel_size)
            if not isinstance(got, dict) or set(got) != set(PARAM_KEYS):
                raise Mismatch(f"return a dict with the keys {list(PARAM_KEYS)}, got "
                               f"{sorted(got) if isinstance(got, dict) else type(got).__name__}")
            means = expect_tensor_like("raw_means", got["raw_means"], expected["raw_means"])
            if not torch.isfinite(means).all():
                raise Mismatch("raw_means has inf/nan: atanh(-1) is infinite; divide the points by voxel_size "
                               "before atanh (atanh(points / voxel_size))")
            if _same(got, expected):
                return
            inputs = {"raw": raw, "coords": coords, "resolution": resolution, "points": points,
                      "voxel_size": voxel_size}
            fits = [message for message, knobs in _layout_mistakes(voxel_size)
                    if _same(got, _layout_variant(raw, coords, resolution, points, voxel_size, **knobs))]
            if len(fits) == 1:
                raise failure(fits[0], inputs)
            for key in PARAM_KEYS:
                try:
                    assert_close(key, got[key], expected[key])
                except Mismatch as err:
                    raise failure(str(err), inputs, expected[key], got[key]) from None
        return run

    cases = [case(5, 4, 8, 1.5, 1.0), case(7, 32, 64, 1.5, 1.0), case(3, 8, 16, 2.0, 0.5),
             case(1, 32, 32, 1.5, 3.0), case(10, 2, 4, 1.25, 1.0)]
    return run_check("gaussian_params", cases,
                     hint="split raw into (N, G, 3/3/3/4/1) blocks in that order; offset = tanh(raw_xyz + "
                          "atanh(points / voxel_size)) * 0.5 * voxel_size / R; means = (coords + 0.5) / R + "
                          "offset - 0.5; raw_quats = 0.1 * rotation block.")


# --------------------------------------------------------------------------- KL divergence
def _kl_mistakes(mean: Tensor, logvar: Tensor) -> list[tuple[str, Tensor]]:
    kl_elements = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1)  # (N, C)
    return [
        (("the KL is summed over every element; TRELLIS averages it over voxels and channels "
         "(0.5 * mean(...), not sum)"), kl_elements.sum()),
        (("the KL is summed over the channels and averaged over voxels; TRELLIS averages over every element "
         "(voxels and channels)"), kl_elements.sum(dim=-1).mean()),
        ("the factor 0.5 is missing: KL = 0.5 * mean(mean^2 + exp(logvar) - logvar - 1)", 2 * kl_elements.mean()),
        ("the sign is flipped: the KL is >= 0, 0.5 * mean(mean^2 + exp(logvar) - logvar - 1)", -kl_elements.mean()),
        ("exp(logvar) is the variance; you used the standard deviation exp(0.5 * logvar)",
         0.5 * (mean.pow(2) + (0.5 * logvar).exp() - logvar - 1).mean()),
    ]


def diagonal_gaussian_kl(fn) -> bool:
    """Check fn(mean (N, C), logvar (N, C)) -> scalar KL(N(mean, exp(logvar)) || N(0, I)), TRELLIS's reduction."""
    generator = seeded(81)

    def case(n, c, spread):
        def run():
            mean = torch.randn(n, c, generator=generator) * spread
            logvar = torch.randn(n, c, generator=generator) * spread
            expected = reference_kl(mean, logvar)
            m, lv = mean.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
            got = fn(m, lv)
            if isinstance(got, Tensor) and got.numel() != 1:
                raise Mismatch(f"return one number (a scalar tensor), the mean over every element; got shape "
                               f"{tuple(got.shape)}")
            if not isinstance(got, Tensor):
                raise Mismatch(f"return a scalar tensor, got {type(got).__name__}")
            got = got.reshape(())
            inputs = {"mean": mean, "logvar": logvar}
            if not torch.isclose(got.detach(), expected, atol=1e-5, rtol=1e-4):
                fits = [message for message, variant in _kl_mistakes(mean, logvar)
                        if torch.isclose(got.detach(), variant, atol=1e-5, rtol=1e-4)]
                message = fits[0] if len(fits) == 1 else "the KL differs from the reference"
                raise failure(message, inputs, expected, got.detach())
            if not got.requires_grad:
                raise Mismatch("the KL carries no gradient: compute it with torch operations on mean and logvar")
            got.backward()
            for label, grad, reference in (("d KL / d mean", m.grad, mean / mean.numel()),
                                           ("d KL / d logvar", lv.grad, 0.5 * (logvar.exp() - 1) / mean.numel())):
                try:
                    assert_close(label, grad, reference)
                except Mismatch as err:
                    raise failure(str(err), inputs, reference, grad) from None
        return run

    cases = [case(6, 8, 1.0), case(50, 8, 0.5), case(3, 2, 2.0), case(100, 16, 1.0), case(1, 8, 1.5)]
    return run_check("diagonal_gaussian_kl", cases,
                     hint="0.5 * torch.mean(mean ** 2 + logvar.exp() - logvar - 1)")
