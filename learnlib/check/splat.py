"""Graders of chapter 07 (Gaussian splatting): EWA projection, front-to-back compositing, 3D covariance."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from learnlib.check.core import Mismatch, assert_close, run_check, seeded
from learnlib.splat.cameras import look_at
from learnlib.splat.projection import covariance_3d as reference_covariance_3d
from learnlib.splat.projection import project_gaussian as reference_project_gaussian
from learnlib.splat.projection import quat_to_rotmat
from learnlib.splat.rasterize import TRANSMITTANCE_MIN
from learnlib.splat.rasterize import composite_front_to_back as reference_composite


def _close(a, b, atol: float = 1e-6, rtol: float = 1e-5) -> bool:
    return isinstance(a, Tensor) and a.shape == b.shape and torch.allclose(a.to(b.dtype), b, atol=atol, rtol=rtol)


def _diagnose(name: str, got: Tensor, expected: Tensor, variants: dict[str, Tensor], atol: float = 1e-5) -> None:
    """Compare; on a mismatch, name a known mistake when `got` equals one of its results."""
    try:
        assert_close(name, got, expected, atol=atol)
    except Mismatch:
        for hint, value in variants.items():
            if _close(got.detach() if isinstance(got, Tensor) else got, value.detach(), atol=atol):
                raise Mismatch(f"{name} differs from the reference: {hint}") from None
        raise


def _gradients(name: str, got_out, ref_out, got_inputs, ref_inputs, labels, generator, atol=1e-5) -> None:
    """Backpropagate the same random weighting of both outputs and compare the input gradients."""
    weights = [torch.randn(r.shape, dtype=r.dtype, generator=generator) for r in ref_out]
    sum(((r * w).sum() for r, w in zip(ref_out, weights)), torch.zeros((), dtype=torch.float64)).backward()
    got_loss = sum(((g * w).sum() for g, w in zip(got_out, weights)), torch.zeros((), dtype=torch.float64))
    if not got_loss.requires_grad:
        raise Mismatch(f"{name}: the outputs carry no gradient; compute them with torch operations "
                       "(no .numpy(), .item() or torch.no_grad())")
    got_loss.backward()
    for label, g, r in zip(labels, got_inputs, ref_inputs):
        if g.grad is None:
            raise Mismatch(f"{name}: no gradient reached {label}; keep it in the computation graph")
        assert_close(f"gradient of {label}", g.grad, r.grad, atol=atol)


def _leaves(*tensors: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Two independent copies of the inputs that require gradients (learner's, reference's)."""
    return ([t.detach().clone().requires_grad_() for t in tensors],
            [t.detach().clone().requires_grad_() for t in tensors])


def _random_camera_and_gaussian(generator: torch.Generator):
    """A camera on a sphere of radius 3-5 looking near the origin, and one Gaussian near the origin (float64)."""
    yaw = 2 * math.pi * torch.rand((), generator=generator, dtype=torch.float64)
    pitch = (torch.rand((), generator=generator, dtype=torch.float64) - 0.5) * 2.0
    radius = 3.0 + 2.0 * torch.rand((), generator=generator, dtype=torch.float64)
    eye = radius * torch.stack([torch.sin(yaw) * torch.cos(pitch), torch.cos(yaw) * torch.cos(pitch),
                                torch.sin(pitch)])
    target = 0.2 * torch.randn(3, generator=generator, dtype=torch.float64)
    viewmat = look_at(eye, target, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    fx, fy = (30.0 + 50.0 * torch.rand(2, generator=generator, dtype=torch.float64)).tolist()
    cx, cy = (10.0 + 30.0 * torch.rand(2, generator=generator, dtype=torch.float64)).tolist()
    K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64)
    mean = (torch.rand(3, generator=generator, dtype=torch.float64) - 0.5)
    quat = torch.randn(4, generator=generator, dtype=torch.float64)
    scales = 0.05 + 0.3 * torch.rand(3, generator=generator, dtype=torch.float64)
    return mean, reference_covariance_3d(quat, scales), viewmat, K


def project_gaussian(fn) -> bool:
    """Check fn(mean [3], cov3d [3, 3], viewmat [4, 4], K [3, 3]) -> (mean2d [2], cov2d [2, 2]): the EWA
    projection J W Sigma W^T J^T without the screen-space blur (values and gradients)."""
    generator = seeded(70)

    def case():
        inputs = _random_camera_and_gaussian(generator)
        (mean, cov, view, K), (r_mean, r_cov, r_view, r_K) = _leaves(*inputs)
        ref = reference_project_gaussian(r_mean, r_cov, r_view, r_K, eps2d=0.0)
        got = fn(mean, cov, view, K)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Mismatch(f"expected a tuple (mean2d, cov2d), got {type(got).__name__}")
        got_mean2d, got_cov2d = got
        assert_close("mean2d", got_mean2d, ref.mean2d.detach())
        with torch.no_grad():
            W = view[:3, :3]
            cov_cam = W @ cov @ W.T
            x, y, z = (W @ mean + view[:3, 3]).tolist()
            J = torch.tensor([[K[0, 0] / z, 0.0, -K[0, 0] * x / z**2], [0.0, K[1, 1] / z, -K[1, 1] * y / z**2]],
                             dtype=torch.float64)
            variants = {
                "it equals the top-left 2x2 block of W Sigma W^T: the Jacobian J of the projection is missing "
                "(cov2d = J W Sigma W^T J^T)": cov_cam[:2, :2],
                "it equals J Sigma J^T: rotate the covariance into the camera frame first (W Sigma W^T)":
                    J @ cov @ J.T,
            }
        _diagnose("cov2d", got_cov2d, ref.cov2d.detach(), variants)
        _gradients("project_gaussian", [got_mean2d, got_cov2d], [ref.mean2d, ref.cov2d], [mean, cov],
                   [r_mean, r_cov], ["mean", "cov3d"], generator)

    return run_check("project_gaussian", [case] * 5,
                     hint="camera-space t = W mu + w; J = [[fx/z, 0, -fx x/z^2], [0, fy/z, -fy y/z^2]]; "
                          "mean2d = (fx x/z + cx, fy y/z + cy); cov2d = J W Sigma W^T J^T.")


def _random_layers(generator: torch.Generator, shape: tuple[int, ...], K: int, D: int, opaque: bool):
    colors = torch.rand(shape + (K, D), generator=generator, dtype=torch.float64)
    alphas = torch.rand(shape + (K,), generator=generator, dtype=torch.float64) * 0.9
    if opaque:  # nearly opaque layers: the transmittance falls below TRANSMITTANCE_MIN part way
        dense = torch.rand(shape + (K,), generator=generator, dtype=torch.float64) < 0.5
        alphas = torch.where(dense, 0.9 + 0.099 * torch.rand(shape + (K,), generator=generator,
                                                             dtype=torch.float64), alphas)
    return colors, alphas


def composite_front_to_back(fn) -> bool:
    """Check fn(colors [..., K, D], alphas [..., K], background=None) -> (color [..., D], alpha [..., 1]),
    layers sorted front to back, with early termination at TRANSMITTANCE_MIN (values and gradients)."""
    generator = seeded(71)

    def case(shape, K, D, opaque, with_background):
        def run():
            colors, alphas = _random_layers(generator, shape, K, D, opaque)
            background = torch.rand(D, generator=generator, dtype=torch.float64) if with_background else None
            (c, a), (rc, ra) = _leaves(colors, alphas)
            ref = reference_composite(rc, ra, background)
            got = fn(c, a, background) if with_background else fn(c, a)
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise Mismatch(f"expected a tuple (color, alpha), got {type(got).__name__}")
            with torch.no_grad():
                t_final = 1.0 - ref[1]
                no_stop = 1.0 - torch.cumprod(1.0 - alphas, dim=-1)[..., -1:]
                weights_no_stop = alphas * torch.cumprod(
                    torch.cat([torch.ones_like(alphas[..., :1]), 1.0 - alphas[..., :-1]], dim=-1), dim=-1)
                color_no_stop = (weights_no_stop.unsqueeze(-1) * colors).sum(-2)
                if background is not None:
                    color_no_stop = color_no_stop + (1.0 - no_stop) * background
                reversed_color = reference_composite(colors.flip(-2), alphas.flip(-1), background)[0]
            _diagnose("color", got[0], ref[0].detach(), {
                "it equals blending the layers in reverse order; index 0 is the nearest layer and "
                "gets weight alpha_0": reversed_color,
                f"it equals blending every layer; stop before the layer that would bring T to "
                f"TRANSMITTANCE_MIN = {TRANSMITTANCE_MIN:g} or below": color_no_stop,
            })
            _diagnose("alpha", got[1], ref[1].detach(), {
                "it equals the final transmittance T; return the accumulated alpha 1 - T": t_final,
            })
            _gradients("composite_front_to_back", list(got), list(ref), [c, a], [rc, ra], ["colors", "alphas"],
                       generator)
        return run

    cases = [case((16,), 6, 3, False, False), case((32,), 12, 3, True, False), case((4, 5), 8, 2, True, True),
             case((8,), 1, 3, False, True), case((64,), 10, 4, True, False)]
    return run_check("composite_front_to_back", cases,
                     hint="T = 1; for each layer i front to back: stop if T (1 - alpha_i) <= TRANSMITTANCE_MIN; "
                          "color += alpha_i T c_i; T *= 1 - alpha_i. Return (color, 1 - T); "
                          "torch.cumprod avoids the Python loop.")


def covariance_3d(fn) -> bool:
    """Check fn(quats [N, 4] wxyz, not normalized, scales [N, 3]) -> covariances [N, 3, 3] = R S S^T R^T."""
    generator = seeded(72)

    def case(n):
        def run():
            quats = torch.randn(n, 4, generator=generator, dtype=torch.float64) * 2.0
            scales = 0.05 + torch.rand(n, 3, generator=generator, dtype=torch.float64)
            (q, s), (rq, rs) = _leaves(quats, scales)
            ref = reference_covariance_3d(rq, rs)
            got = fn(q, s)
            with torch.no_grad():
                R = quat_to_rotmat(quats)
                variants = {
                    "it equals reading the quaternion as (x, y, z, w); the convention here is (w, x, y, z)":
                        reference_covariance_3d(quats.roll(1, dims=-1), scales),
                    "it equals R S R^T; the covariance needs the squared scales, (R S)(R S)^T":
                        R @ torch.diag_embed(scales) @ R.transpose(-1, -2),
                }
            _diagnose("covariance", got, ref.detach(), variants)
            _gradients("covariance_3d", [got], [ref], [q, s], [rq, rs], ["quats", "scales"], generator)
        return run

    return run_check("covariance_3d", [case(n) for n in (1, 7, 64)],
                     hint="normalize q = (w, x, y, z); build R from it; M = R @ diag(scales); return M @ M^T.")

