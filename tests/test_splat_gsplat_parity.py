"""learnlib's rasterizer against gsplat 1.5's own `rasterization` on CPU (CUDA kernels stood in).

`backend="gsplat"` runs gsplat's public `rasterization` body unmodified (tests/gsplat_cpu.py
replaces only its four CUDA entry points), so these tests pin the contract of the GPU path:
the same pixels, alphas, gradients and info as the PyTorch reference, in every render mode,
with and without a background, classic and antialiased.
"""

import math

import pytest
import torch

from learnlib.splat import look_at, rasterize

MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
W, H, NEAR, FAR = 40, 30, 0.5, 8.0


def _intrinsics(f: float = 40.0):
    return torch.tensor([[f, 0.0, W / 2], [0.0, f, H / 2], [0.0, 0.0, 1.0]])


def _scene(seed: int = 0, n: int = 60):
    """Gaussians in front of two cameras, plus ones behind, too near, too far and off-screen."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g) * 2.0 - 1.0
    edge = torch.tensor([[0.0, 0.0, 5.0],    # behind camera 0
                         [0.0, 0.0, 2.8],    # 0.2 in front of camera 0: too near
                         [0.1, 0.0, -9.0],   # beyond the far plane of camera 0
                         [9.0, 0.0, 0.0],    # far off-screen
                         [1.9, 0.3, 0.0]])   # near the image border
    means = torch.cat([means, edge])
    m = len(means)
    quats = torch.randn(m, 4, generator=g)
    scales = torch.exp(torch.empty(m, 3).uniform_(math.log(0.03), math.log(0.25), generator=g))
    opacities = torch.empty(m).uniform_(0.05, 0.999, generator=g)
    colors = torch.rand(m, 3, generator=g)
    views = torch.stack([look_at(torch.tensor([0.0, 0.0, 3.0]), (0, 0, 0), up=(0, 1, 0)),
                         look_at(torch.tensor([2.0, 1.0, -2.0]), (0, 0, 0))])  # (2, 4, 4)
    Ks = torch.stack([_intrinsics(), _intrinsics(34.0)])  # (2, 3, 3)
    backgrounds = torch.tensor([[0.9, 0.2, 0.4], [0.1, 0.7, 0.3]])
    return [t.requires_grad_() for t in (means, quats, scales, opacities, colors)], views, Ks, backgrounds


def _render(backend, params, views, Ks, mode, background, antialiased):
    bg = None
    if background is not None:
        bg = background[:, :1] + 2.0 if mode in ("D", "ED") else background
    return rasterize(*params, views, Ks, W, H, near_plane=NEAR, far_plane=FAR, backgrounds=bg,
                     antialiased=antialiased, backend=backend, render_mode=mode)


def _grads(params, colors, alphas):
    for p in params:
        p.grad = None
    weights = torch.linspace(0.5, 1.5, colors.numel()).reshape(colors.shape)
    ((colors * weights).sum() + alphas.sum()).backward()
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]


@pytest.mark.parametrize("antialiased", [False, True])
@pytest.mark.parametrize("with_background", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_gsplat_rasterization_matches_reference(gsplat_on_cpu, mode, with_background, antialiased):
    params, views, Ks, backgrounds = _scene()
    bg = backgrounds if with_background else None
    ref_c, ref_a, ref_info = _render("torch", params, views, Ks, mode, bg, antialiased)
    ref_grads = _grads(params, ref_c, ref_a)
    gs_c, gs_a, gs_info = _render("gsplat", params, views, Ks, mode, bg, antialiased)
    gs_grads = _grads(params, gs_c, gs_a)
    assert gs_info["backend"] == "gsplat" and ref_info["backend"] == "torch"
    assert gs_c.shape == ref_c.shape and gs_a.shape == ref_a.shape
    scale = 1.0 if mode in ("RGB", "RGB+D") else 1.0 / 8.0  # depths reach ~6: compare relative to that range
    if mode in ("ED", "RGB+ED"):  # expected depth divides by alpha: compare where a Gaussian covers the pixel
        covered = (ref_a > 1e-3).expand_as(ref_c)
        gs_c, ref_c = gs_c[covered], ref_c[covered]
    torch.testing.assert_close(gs_c * scale, ref_c * scale, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gs_a, ref_a, atol=1e-5, rtol=0)
    names = ("means", "quats", "scales", "opacities", "colors")
    for name, g_ref, g_gs in zip(names, ref_grads, gs_grads):
        tol = 1e-4 * max(float(g_ref.abs().max()), 1e-12)
        torch.testing.assert_close(g_gs, g_ref, atol=tol, rtol=1e-4, msg=f"d/d{name} ({mode})")
    assert set(gs_info) == set(ref_info)


def test_info_keys_shapes_and_culling_agree(gsplat_on_cpu):
    params, views, Ks, backgrounds = _scene(seed=1)
    _, _, ref = _render("torch", params, views, Ks, "RGB", backgrounds, True)
    _, _, gs = _render("gsplat", params, views, Ks, "RGB", backgrounds, True)
    assert set(gs) == set(ref)
    for key, value in ref.items():
        if torch.is_tensor(value):
            assert gs[key].shape == value.shape and gs[key].dtype == value.dtype, key
        else:
            assert type(gs[key]) is type(value), key
    assert ref["radii"].shape == (2, 65, 2)
    torch.testing.assert_close(gs["radii"], ref["radii"], atol=0, rtol=0)
    visible = (ref["radii"] > 0).all(-1)
    assert visible.any() and (~visible).any()
    n = 60
    assert not visible[0, n:n + 4].any()  # behind, too near, too far, off-screen: culled by both
    for key in ("means2d", "depths", "conics", "opacities", "compensations"):
        torch.testing.assert_close(gs[key][visible], ref[key][visible], atol=1e-5, rtol=1e-5, msg=key)


def test_near_plane_edge_is_kept_by_both(gsplat_on_cpu):
    """A Gaussian exactly at z == near_plane is rendered (gsplat culls z < near only)."""
    means = torch.tensor([[0.0, 0.0, 1.0]])
    args = (means, torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.05), torch.tensor([0.9]),
            torch.tensor([[1.0, 0.5, 0.2]]), torch.eye(4)[None], _intrinsics()[None], W, H)
    ref_c, ref_a, ref = rasterize(*args, near_plane=1.0, backend="torch")
    gs_c, _, gs = rasterize(*args, near_plane=1.0, backend="gsplat")
    assert (ref["radii"] > 0).all() and ref_a.max() > 0.5
    torch.testing.assert_close(gs_c, ref_c, atol=1e-5, rtol=0)
    torch.testing.assert_close(gs["radii"], ref["radii"], atol=0, rtol=0)


def test_depth_modes_ignore_the_background_on_both_backends(gsplat_on_cpu):
    params, views, Ks, _ = _scene(seed=2)
    for backend in ("torch", "gsplat"):
        plain, _, _ = rasterize(*params, views, Ks, W, H, backend=backend, render_mode="D")
        with_bg, _, _ = rasterize(*params, views, Ks, W, H, backend=backend, render_mode="D",
                                  backgrounds=torch.full((2, 1), 0.9))
        torch.testing.assert_close(with_bg, plain, atol=0, rtol=0)
