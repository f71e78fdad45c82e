"""Graders of chapter 07 (Gaussian splatting): EWA projection, front-to-back compositing, 3D covariance.

Each grader compares values and gradients with learnlib.splat on seeded inputs, the smallest
(hand-made, readable) case first. A wrong result that equals a typical mistake on the same
inputs (no Jacobian, rotation transposed, the blur added, off-by-one early termination, the
background left out, a quaternion not normalized...) gets a message naming it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from learnlib.check.core import Mismatch, assert_close, failure, run_check, seeded
from learnlib.check.hints import register_hints
from learnlib.check.mistakes import compare
from learnlib.splat.cameras import look_at
from learnlib.splat.projection import covariance_3d as reference_covariance_3d
from learnlib.splat.projection import project_gaussian as reference_project_gaussian
from learnlib.splat.projection import quat_to_rotmat
from learnlib.splat.rasterize import TRANSMITTANCE_MIN
from learnlib.splat.rasterize import composite_front_to_back as reference_composite

HINTS = {
    "project_gaussian": (
        ("move the mean into the camera frame first (viewmat is world -> camera), then differentiate "
        "(fx x/z + cx, fy y/z + cy) with respect to (x, y, z) at that point: that 2x3 matrix is J."),
        ("W, w = viewmat[:3, :3], viewmat[:3, 3]; x, y, z = W @ mean + w; "
        "J = [[fx/z, 0, -fx x/z^2], [0, fy/z, -fy y/z^2]] (torch.stack, so gradients flow); "
        "mean2d = (fx x/z + cx, fy y/z + cy); cov2d = J @ W @ cov3d @ W.T @ J.T (no blur).")),
    "composite_front_to_back": (
        ("walk the layers front to back keeping the transmittance T (light still passing); a layer adds "
        "alpha_i T c_i. torch.cumprod(1 - alphas, dim=-1) gives T after each layer."),
        ("t_after = cumprod(1 - alphas); kept = alphas * (t_after > TRANSMITTANCE_MIN); T_before = cumprod of "
        "(1 - kept) shifted right by one (starting at 1); weights = kept * T_before; color = sum(weights c); "
        "alpha = sum(weights); with a background: color + (1 - alpha) * background.")),
    "covariance_3d": (
        ("a Gaussian is a unit sphere scaled along its axes (S), then rotated (R): the covariance of "
        "x = R S u with u ~ N(0, I). The quaternion is (w, x, y, z) and not normalized."),
        ("q = quats / quats.norm(dim=-1, keepdim=True); R from q (the standard unit-quaternion matrix); "
        "M = R * scales[:, None, :] (= R S); return M @ M.transpose(-1, -2).")),
}
register_hints(HINTS)


def _gradients(name: str, got_out, ref_out, got_inputs, ref_inputs, labels, generator, atol=1e-5,
               inputs: dict | None = None, variants: dict | None = None) -> None:
    """Backpropagate the same random weighting of both outputs and compare the input gradients.

    `variants` maps a message to a function returning the input gradients of a known mistake."""
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
    for i, (label, g, r) in enumerate(zip(labels, got_inputs, ref_inputs)):
        try:
            assert_close(f"gradient of {label}", g.grad, r.grad, atol=atol)
        except Mismatch as err:
            for message, make in (variants or {}).items():
                grads = make(weights)
                if torch.allclose(g.grad, grads[i], atol=atol) and not torch.allclose(r.grad, grads[i], atol=atol):
                    raise failure(f"gradient of {label} differs (the values agree): {message}",
                                  inputs, r.grad, g.grad) from None
            raise failure(str(err), inputs, r.grad, g.grad) from None


def _leaves(*tensors: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Two independent copies of the inputs that require gradients (learner's, reference's)."""
    return ([t.detach().clone().requires_grad_() for t in tensors],
            [t.detach().clone().requires_grad_() for t in tensors])


# --------------------------------------------------------------------------- EWA projection
def _simple_camera_and_gaussian():
    """A readable case: the camera turned 90 degrees about x (W is not symmetric), 4 units away."""
    f64 = torch.float64
    viewmat = torch.tensor([[1.0, 0.0, 0.0, 0.2], [0.0, 0.0, -1.0, -0.1], [0.0, 1.0, 0.0, 4.0],
                            [0.0, 0.0, 0.0, 1.0]], dtype=f64)
    K = torch.tensor([[50.0, 0.0, 32.0], [0.0, 40.0, 24.0], [0.0, 0.0, 1.0]], dtype=f64)
    mean = torch.tensor([0.5, 0.3, -0.4], dtype=f64)
    cov = reference_covariance_3d(torch.tensor([1.0, 0.3, -0.2, 0.4], dtype=f64), torch.tensor([0.3, 0.2, 0.1],
                                                                                               dtype=f64))
    return mean, cov, viewmat, K


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


def _jacobian(t: Tensor, K: Tensor, sign: float = -1.0, power: int = 2) -> Tensor:
    """J (2, 3) of the pinhole projection at camera point t; sign and power give its common misspellings."""
    x, y, z = t
    zero = torch.zeros_like(z)
    return torch.stack([torch.stack([K[0, 0] / z, zero, sign * K[0, 0] * x / z**power]),
                        torch.stack([zero, K[1, 1] / z, sign * K[1, 1] * y / z**power])])  # (2, 3)


def _pixel(t: Tensor, K: Tensor) -> Tensor:
    return torch.stack([K[0, 0] * t[0] / t[2] + K[0, 2], K[1, 1] * t[1] / t[2] + K[1, 2]])


def _projection_mistakes(mean, cov, view, K) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(mean2d variants, cov2d variants): the results of typical wrong projections of these inputs."""
    W, w = view[:3, :3], view[:3, 3]
    t = W @ mean + w
    J, cov_cam = _jacobian(t, K), W @ cov @ W.T
    principal = torch.stack([K[0, 2], K[1, 2]])
    swapped = K.clone()
    swapped[0, 0], swapped[1, 1] = K[1, 1], K[0, 0]
    mean_variants = {
        "the mean was projected in world coordinates; move it into the camera frame first: t = W mean + w "
        "(W = viewmat[:3, :3], w = viewmat[:3, 3])": _pixel(mean, K),
        "the translation is missing: t = W mean + w with w = viewmat[:3, 3]": _pixel(W @ mean, K),
        "the rotation is used transposed: viewmat maps world to camera, so t = W mean + w, not W^T mean + w":
            _pixel(W.T @ mean + w, K),
        "the principal point is missing: add (cx, cy) = (K[0, 2], K[1, 2]) after the focal scaling":
            _pixel(t, K) - principal,
        "fx and fy are swapped: u uses fx = K[0, 0], v uses fy = K[1, 1]": _pixel(t, swapped),
    }
    J_world = _jacobian(mean, K)
    cov_variants = {
        "it equals the top-left 2x2 block of W Sigma W^T: the Jacobian J of the projection is missing "
        "(cov2d = J W Sigma W^T J^T)": cov_cam[:2, :2],
        "it equals J Sigma J^T: rotate the covariance into the camera frame first (W Sigma W^T)": J @ cov @ J.T,
        "the third column of J has the wrong sign: d(fx x / z)/dz = -fx x / z^2":
            _jacobian(t, K, sign=1.0) @ cov_cam @ _jacobian(t, K, sign=1.0).T,
        "the third column of J divides by z; d(fx x / z)/dz = -fx x / z^2 (z squared)":
            _jacobian(t, K, power=1) @ cov_cam @ _jacobian(t, K, power=1).T,
        "the rotation is used transposed: the camera-frame covariance is W Sigma W^T, not W^T Sigma W":
            J @ W.T @ cov @ W @ J.T,
        "J was evaluated at the world-space mean; evaluate it at the camera-space point t = W mean + w":
            J_world @ cov_cam @ J_world.T,
        "the world-to-camera transform is missing: use t = W mean + w for J and W Sigma W^T for the covariance":
            J_world @ cov @ J_world.T,
        "the right-hand factor must be (J W)^T = W^T J^T; you used W J^T": J @ W @ cov @ W @ J.T,
        "you added the 0.3 screen-space blur; this exercise asks for cov2d without it (eps2d = 0)":
            J @ cov_cam @ J.T + 0.3 * torch.eye(2, dtype=cov.dtype),
    }
    return mean_variants, cov_variants


def _detached_jacobian_gradients(mean, cov, view, K):
    """Input gradients of the projection when J is built without a graph (torch.tensor, .item())."""
    def make(weights):
        m, c = mean.detach().clone().requires_grad_(), cov.detach().clone().requires_grad_()
        W, w = view[:3, :3], view[:3, 3]
        t = W @ m + w
        J = _jacobian(t.detach(), K)
        loss = (_pixel(t, K) * weights[0]).sum() + ((J @ W @ c @ W.T @ J.T) * weights[1]).sum()
        return torch.autograd.grad(loss, [m, c])
    return make


def project_gaussian(fn) -> bool:
    """Check fn(mean [3], cov3d (3, 3), viewmat (4, 4), K (3, 3)) -> (mean2d [2], cov2d (2, 2)): the EWA
    projection J W Sigma W^T J^T without the screen-space blur (values and gradients)."""
    generator = seeded(70)

    def case(simple):
        def run():
            inputs = _simple_camera_and_gaussian() if simple else _random_camera_and_gaussian(generator)
            (mean, cov, view, K), (r_mean, r_cov, r_view, r_K) = _leaves(*inputs)
            shown = dict(zip(("mean", "cov3d", "viewmat", "K"), inputs))
            ref = reference_project_gaussian(r_mean, r_cov, r_view, r_K, eps2d=0.0)
            got = fn(mean, cov, view, K)
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise Mismatch(f"expected a tuple (mean2d, cov2d), got {type(got).__name__}")
            got_mean2d, got_cov2d = got
            if isinstance(got_cov2d, Tensor) and got_cov2d.shape == (2, 3):
                raise Mismatch("cov2d has shape (2, 3): the right-hand factor W^T J^T is missing "
                               "(cov2d = J W Sigma W^T J^T is 2 x 2)")
            if isinstance(got_cov2d, Tensor) and got_cov2d.shape == (3, 3):
                raise Mismatch("cov2d has shape (3, 3): that is the camera-frame covariance W Sigma W^T; "
                               "project it with J on both sides")
            with torch.no_grad():
                mean_variants, cov_variants = _projection_mistakes(*inputs)
            compare("mean2d", got_mean2d, ref.mean2d.detach(), mean_variants, shown)
            compare("cov2d", got_cov2d, ref.cov2d.detach(), cov_variants, shown)
            _gradients("project_gaussian", [got_mean2d, got_cov2d], [ref.mean2d, ref.cov2d], [mean, cov],
                       [r_mean, r_cov], ["mean", "cov3d"], generator, inputs=shown, variants={
                           "J was built without a gradient (torch.tensor(...), .item() or a float): build it "
                           "from x, y, z with torch.stack so that the gradient of the mean flows through it":
                               _detached_jacobian_gradients(*inputs)})
        return run

    return run_check("project_gaussian", [case(True)] + [case(False)] * 5)


# --------------------------------------------------------------------------- compositing
def _random_layers(generator: torch.Generator, shape: tuple[int, ...], K: int, D: int, opaque: bool):
    colors = torch.rand(shape + (K, D), generator=generator, dtype=torch.float64)
    alphas = torch.rand(shape + (K,), generator=generator, dtype=torch.float64) * 0.9
    if opaque:  # nearly opaque layers: the transmittance falls below TRANSMITTANCE_MIN part way
        dense = torch.rand(shape + (K,), generator=generator, dtype=torch.float64) < 0.5
        alphas = torch.where(dense, 0.9 + 0.099 * torch.rand(shape + (K,), generator=generator,
                                                             dtype=torch.float64), alphas)
    return colors, alphas


def _before(alphas: Tensor) -> Tensor:
    """Transmittance in front of each layer, prod_{j<i} (1 - alpha_j)  (..., K)."""
    return torch.cumprod(torch.cat([torch.ones_like(alphas[..., :1]), 1.0 - alphas[..., :-1]], dim=-1), dim=-1)


def _blend(colors: Tensor, weights: Tensor, background: Tensor | None, fill: str = "rest") -> Tensor:
    color = (weights.unsqueeze(-1) * colors).sum(-2)  # (..., D)
    alpha = weights.sum(-1, keepdim=True)  # (..., 1)
    if background is None or fill == "none":
        return color
    return color + {"rest": 1.0 - alpha, "alpha": alpha, "full": torch.ones_like(alpha)}[fill] * background


def _compositing_mistakes(colors, alphas, background) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(color variants, alpha variants): the results of typical wrong compositing of these layers."""
    kept = alphas * (torch.cumprod(1.0 - alphas, dim=-1) > TRANSMITTANCE_MIN)  # the reference's layers
    crossing = alphas * (_before(alphas) > TRANSMITTANCE_MIN)  # also the layer that crosses the limit
    weights = kept * _before(kept)
    stop = f"TRANSMITTANCE_MIN = {TRANSMITTANCE_MIN:g}"
    colors_wrong = {
        "it equals blending the layers in reverse order; index 0 is the nearest layer and gets weight alpha_0":
            reference_composite(colors.flip(-2), alphas.flip(-1), background)[0],
        f"it equals blending every layer; stop before the layer that would bring T to {stop} or below":
            _blend(colors, alphas * _before(alphas), background),
        f"off by one: the layer that brings T to {stop} or below must be left out too (test T after the "
        "layer, T (1 - alpha_i), not T before it)": _blend(colors, crossing * _before(crossing), background),
        "T was updated before it was used: layer i gets alpha_i times the transmittance in front of it, "
        "T_i = prod_{j<i} (1 - alpha_j)": _blend(colors, kept * torch.cumprod(1.0 - kept, dim=-1), background),
        "each layer's weight is alpha_i T_i; you used T_i alone": _blend(colors, _before(kept) * (kept > 0),
                                                                        background),
        "each layer's weight is alpha_i T_i; you used alpha_i alone": _blend(colors, kept, background),
    }
    if background is not None:
        colors_wrong.update({
            "the background is not blended: add (1 - alpha) * background, the light left over":
                _blend(colors, weights, background, "none"),
            "the background gets weight alpha; it fills what the layers leave: (1 - alpha) * background":
                _blend(colors, weights, background, "alpha"),
            "the background was added at full weight; scale it by the remaining transmittance 1 - alpha":
                _blend(colors, weights, background, "full"),
        })
    alphas_wrong = {
        "it equals the final transmittance T; return the accumulated alpha 1 - T": 1.0 - weights.sum(-1, True),
        "it equals the sum of the kept alphas; the accumulated alpha is the sum of the weights alpha_i T_i "
        "(= 1 - T)": kept.sum(-1, keepdim=True),
        f"it equals blending every layer; stop before the layer that would bring T to {stop} or below":
            (alphas * _before(alphas)).sum(-1, keepdim=True),
        f"off by one: the layer that brings T to {stop} or below must be left out too":
            (crossing * _before(crossing)).sum(-1, keepdim=True),
    }
    return colors_wrong, alphas_wrong


def composite_front_to_back(fn) -> bool:
    """Check fn(colors [..., K, D], alphas [..., K], background=None) -> (color [..., D], alpha [..., 1]),
    layers sorted front to back, with early termination at TRANSMITTANCE_MIN (values and gradients)."""
    generator = seeded(71)

    def case(shape, K, D, opaque, with_background, fixed_alphas=None):
        def run():
            colors, alphas = _random_layers(generator, shape, K, D, opaque)
            if fixed_alphas is not None:
                alphas = torch.tensor(fixed_alphas, dtype=torch.float64).expand(shape + (K,)).clone()
            background = torch.rand(D, generator=generator, dtype=torch.float64) if with_background else None
            shown = {"colors": colors, "alphas": alphas}
            if background is not None:
                shown["background"] = background
            (c, a), (rc, ra) = _leaves(colors, alphas)
            ref = reference_composite(rc, ra, background)
            got = fn(c, a, background) if with_background else fn(c, a)
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise Mismatch(f"expected a tuple (color, alpha), got {type(got).__name__}")
            with torch.no_grad():
                color_variants, alpha_variants = _compositing_mistakes(colors, alphas, background)
            compare("color", got[0], ref[0].detach(), color_variants, shown)
            compare("alpha", got[1], ref[1].detach(), alpha_variants, shown)
            _gradients("composite_front_to_back", list(got), list(ref), [c, a], [rc, ra], ["colors", "alphas"],
                       generator, inputs=shown)
        return run

    # smallest first: one pixel whose third layer brings T below the limit, then random batches
    cases = [case((1,), 5, 3, False, True, fixed_alphas=[0.5, 0.3, 0.99, 0.99, 0.6]),
             case((1,), 4, 2, False, False), case((8,), 1, 3, False, True), case((16,), 6, 3, False, False),
             case((32,), 12, 3, True, False), case((4, 5), 8, 2, True, True), case((64,), 10, 4, True, False)]
    return run_check("composite_front_to_back", cases)


# --------------------------------------------------------------------------- 3D covariance
def _rotmat_unnormalized(quats: Tensor) -> Tensor:
    """The unit-quaternion rotation formula applied to raw quaternions (..., 4) -> (..., 3, 3)."""
    w, x, y, z = quats.unbind(-1)
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))  # (..., 3, 3)


def _covariance_mistakes(quats: Tensor, scales: Tensor) -> dict[str, Tensor]:
    R, S = quat_to_rotmat(quats), torch.diag_embed(scales)  # (N, 3, 3) each
    Rt = R.transpose(-1, -2)
    M_raw = _rotmat_unnormalized(quats) @ S
    return {
        "the quaternion was not normalized: divide it by its norm before building R (these quaternions "
        "are not unit length)": M_raw @ M_raw.transpose(-1, -2),
        "it equals reading the quaternion as (x, y, z, w); the convention here is (w, x, y, z)":
            reference_covariance_3d(quats.roll(1, dims=-1), scales),
        "the rotation is transposed: R rotates the Gaussian's axes into the world, Sigma = R S S^T R^T, "
        "not R^T S S^T R": Rt @ S @ S @ R,
        "it equals R S R^T; the covariance needs the squared scales, (R S)(R S)^T": R @ S @ Rt,
        "the scales are squared twice: with M = R S, M M^T already squares them": R @ S.pow(4) @ Rt,
        "it equals M^T M = S^2 (diagonal, no rotation); the covariance is M M^T with M = R S": S @ S,
    }


def covariance_3d(fn) -> bool:
    """Check fn(quats (N, 4) wxyz, not normalized, scales (N, 3)) -> covariances (N, 3, 3) = R S S^T R^T."""
    generator = seeded(72)

    def case(n):
        def run():
            quats = torch.randn(n, 4, generator=generator, dtype=torch.float64) * 2.0
            scales = 0.05 + torch.rand(n, 3, generator=generator, dtype=torch.float64)
            (q, s), (rq, rs) = _leaves(quats, scales)
            ref = reference_covariance_3d(rq, rs)
            got = fn(q, s)
            shown = {"quats": quats, "scales": scales}
            with torch.no_grad():
                variants = _covariance_mistakes(quats, scales)
            compare("covariance", got, ref.detach(), variants, shown)
            _gradients("covariance_3d", [got], [ref], [q, s], [rq, rs], ["quats", "scales"], generator,
                       inputs=shown)
        return run

    return run_check("covariance_3d", [case(n) for n in (1, 2, 7, 64)])
