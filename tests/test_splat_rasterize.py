"""Gaussians, EWA projection and the differentiable rasterizer (learnlib.splat)."""

import math

import pytest
import torch

from learnlib.splat import (
    ALPHA_MAX,
    SH_C0,
    Gaussians,
    add_blur,
    composite_front_to_back,
    covariance_3d,
    gaussian_alpha,
    intrinsics_from_fov,
    look_at,
    normalize_quats,
    project_gaussian,
    project_gaussians,
    quat_to_rotmat,
    rasterize,
)


def _camera(W=16, H=16, f=20.0, dtype=torch.float32):
    view = torch.eye(4, dtype=dtype)[None]  # camera at the origin looking along +z
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], dtype=dtype)[None]
    return view, K


def _scene(n=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.cat([(torch.rand(n, 2, generator=g) - 0.5) * 0.8, 3 + torch.rand(n, 1, generator=g)], 1)
    quats = torch.randn(n, 4, generator=g)
    scales = 0.15 + 0.2 * torch.rand(n, 3, generator=g)
    opacities = 0.3 + 0.4 * torch.rand(n, generator=g)
    colors = torch.rand(n, 3, generator=g)
    return [t.to(dtype) for t in (means, quats, scales, opacities, colors)]


# --- Gaussians and projection ------------------------------------------------------------------
def test_gaussians_defaults_and_round_trip():
    n = 5
    zeros = Gaussians(torch.zeros(n, 3), torch.zeros(n, 3), torch.zeros(n, 4), torch.zeros(n, 1), torch.zeros(n, 3),
                      scaling_bias=0.02, opacity_bias=0.1)
    torch.testing.assert_close(zeros.scales, torch.full((n, 3), 0.02))
    torch.testing.assert_close(zeros.opacities, torch.full((n,), 0.1))
    torch.testing.assert_close(zeros.quats, torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4))
    torch.testing.assert_close(zeros.colors, torch.full((n, 3), 0.5))
    assert SH_C0 == pytest.approx(0.5 / math.sqrt(math.pi))
    means, quats, scales, opacities, colors = _scene(n, torch.float32)
    g = Gaussians.from_activated(means, scales, quats, opacities, colors, min_kernel_size=0.01)
    torch.testing.assert_close(g.scales, scales, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g.opacities, opacities, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g.colors, colors, atol=1e-6, rtol=0)
    torch.testing.assert_close(g.quats, quats / quats.norm(dim=-1, keepdim=True))
    with pytest.raises(ValueError, match="raw_quats"):
        Gaussians(torch.zeros(n, 3), torch.zeros(n, 3), torch.zeros(n, 3), torch.zeros(n, 1), torch.zeros(n, 3))


def test_zero_quaternion_falls_back_to_identity():
    q = torch.tensor([[0.0, 0, 0, 0], [2.0, 0, 0, 0], [0.0, 0, 0, 3.0]], requires_grad=True)
    unit = normalize_quats(q)
    torch.testing.assert_close(unit, torch.tensor([[1.0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]]))
    unit.sum().backward()
    assert torch.isfinite(q.grad).all() and (q.grad[0] == 0).all()
    # Raw (-1, 0, 0, 0) cancels the identity bias: the activated quaternion is the identity, not NaN.
    n = 1
    g = Gaussians(torch.zeros(n, 3), torch.zeros(n, 3), torch.tensor([[-1.0, 0, 0, 0]]), torch.zeros(n, 1),
                  torch.zeros(n, 3))
    torch.testing.assert_close(g.covariances(), torch.eye(3)[None] * 0.01 ** 2)


def test_from_points_uses_nearest_neighbour_spacing():
    grid = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * 3, indexing="ij"), -1).reshape(-1, 3) * 0.1
    g = Gaussians.from_points(grid, opacity=0.3)
    torch.testing.assert_close(g.scales, torch.full((64, 3), 0.1), atol=1e-5, rtol=0)
    torch.testing.assert_close(g.opacities, torch.full((64,), 0.3), atol=1e-6, rtol=0)


def test_covariance_is_rotated_diagonal():
    quats = torch.randn(6, 4, dtype=torch.float64)
    scales = torch.rand(6, 3, dtype=torch.float64) + 0.1
    R = quat_to_rotmat(quats)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(6, 3, 3))
    torch.testing.assert_close(torch.det(R), torch.ones(6, dtype=torch.float64))
    cov = covariance_3d(quats, scales)
    torch.testing.assert_close(cov, R @ torch.diag_embed(scales ** 2) @ R.transpose(-1, -2))
    # A quarter turn about z (w = cos 45deg, z = sin 45deg) maps x to y.
    q = torch.tensor([math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)], dtype=torch.float64)
    torch.testing.assert_close(quat_to_rotmat(q) @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                               torch.tensor([0.0, 1, 0], dtype=torch.float64))


def test_single_and_batched_projection_agree():
    means, quats, scales, _, _ = _scene(4)
    view = look_at(torch.tensor([0.5, -1.0, 0.2], dtype=torch.float64), (0, 0, 3.0))
    K = intrinsics_from_fov(math.radians(60), 32, 24, dtype=torch.float64)
    cov = covariance_3d(quats, scales)
    batch = project_gaussians(means, cov, view[None], K[None], 32, 24)
    for i in range(4):
        one = project_gaussian(means[i], cov[i], view, K, width=32, height=24)
        torch.testing.assert_close(one.mean2d, batch.means2d[0, i])
        torch.testing.assert_close(one.conic, batch.conics[0, i])
        torch.testing.assert_close(one.cov2d @ torch.tensor([[one.conic[0], one.conic[1]], [one.conic[1], one.conic[2]]]),
                                   torch.eye(2, dtype=torch.float64))
    blurred, comp = add_blur(torch.eye(2) * 0.7, 0.3)
    torch.testing.assert_close(blurred, torch.eye(2))
    assert comp.item() == pytest.approx(0.7)


# --- rasterizer ---------------------------------------------------------------------------------
def _isotropic(f=100.0, z=2.0, sigma_px2=4.0, eps2d=0.3, opacity=0.8, W=32):
    """One isotropic Gaussian on the optical axis; the principal point sits on pixel (16, 16)'s centre."""
    s = math.sqrt(sigma_px2 - eps2d) * z / f  # f s / z = sqrt(sigma_px^2 - eps2d)
    view = torch.eye(4)[None]
    K = torch.tensor([[f, 0, W / 2 + 0.5], [0, f, W / 2 + 0.5], [0, 0, 1]])[None]
    return (torch.tensor([[0.0, 0.0, z]]), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), s),
            torch.tensor([opacity]), torch.tensor([[0.2, 0.6, 1.0]]), view, K, W, W)


def test_isotropic_gaussian_peak_and_footprint():
    colors, alphas, info = rasterize(*_isotropic())
    # gsplat 1.5: ceil(min(3.33, sqrt(2 ln(0.8 * 255))) * sqrt(Sigma_xx = 4)) = ceil(6.52) per axis
    assert info["backend"] == "torch" and info["radii"][0, 0].tolist() == [7, 7]
    torch.testing.assert_close(alphas[0, 16, 16, 0], torch.tensor(0.8))
    torch.testing.assert_close(colors[0, 16, 16], 0.8 * torch.tensor([0.2, 0.6, 1.0]))
    # sigma_px = 2: one sigma away (two pixels) the alpha is exp(-1/2) of the peak, in x and in y.
    for i, j in [(16, 18), (18, 16), (16, 14)]:
        torch.testing.assert_close(alphas[0, i, j, 0], torch.tensor(0.8 * math.exp(-0.5)))
    torch.testing.assert_close(alphas[0, 17, 17, 0], torch.tensor(0.8 * math.exp(-0.25)))
    assert alphas[0, 0, 0, 0] == 0 and alphas[0, 16, 31, 0] == 0  # beyond the alpha threshold
    # antialiased: opacity times sqrt(det / det_blurred) = sqrt(3.7^2 / 4^2) (isotropic)
    _, aa, _ = rasterize(*_isotropic(), antialiased=True)
    torch.testing.assert_close(aa[0, 16, 16, 0], torch.tensor(0.8 * 3.7 / 4.0))


def test_expected_depth_and_background():
    args = _isotropic()
    colors, alphas, _ = rasterize(*args, render_mode="RGB+ED", backgrounds=torch.tensor([[1.0, 1, 1]]))
    covered = alphas[0, ..., 0] > 0
    torch.testing.assert_close(colors[0][covered][:, 3], torch.full((int(covered.sum()),), 2.0))
    torch.testing.assert_close(colors[0, 0, 0, :3], torch.ones(3))  # empty pixel shows the background
    torch.testing.assert_close(colors[0, 16, 16, :3], 0.8 * torch.tensor([0.2, 0.6, 1.0]) + 0.2)
    depth, _, _ = rasterize(*args, render_mode="D")
    torch.testing.assert_close(depth[0, 16, 16, 0], torch.tensor(0.8 * 2.0))


def test_depth_ordering_near_hides_far():
    means = torch.tensor([[0.0, 0.0, 5.0], [0.0, 0.0, 3.0]])  # green far (listed first), red near
    quats = torch.tensor([[1.0, 0, 0, 0]]).expand(2, 4)
    scales = torch.full((2, 3), 0.3)
    opacities = torch.tensor([0.99, 0.99])
    colors = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    view, K = _camera()
    K[0, :2, 2] += 0.5  # pixel (8, 8) centred on the axis: the red alpha there is 0.99
    img, _, info = rasterize(means, quats, scales, opacities, colors, view, K, 16, 16)
    centre = img[0, 8, 8]
    assert centre[0].item() == pytest.approx(0.99) and centre[1] < 0.01
    torch.testing.assert_close(info["depths"][0], torch.tensor([5.0, 3.0]))
    # Seen from the other side (a camera at z = 8 looking back), green is in front.
    back = look_at(torch.tensor([0.0, 0.0, 8.0]), (0, 0, 0), up=(0, 1, 0))[None]
    img, _, _ = rasterize(means, quats, scales, opacities, colors, back, K, 16, 16)
    assert img[0, 8, 8, 1].item() == pytest.approx(0.99) and img[0, 8, 8, 0] < 0.01


def test_alpha_clamp_and_early_termination():
    # Two fully opaque Gaussians: the first is clamped to ALPHA_MAX, leaving T = 1e-3; the second
    # would bring T to 1e-6 <= 1e-4, so compositing stops before it and its colour never leaks.
    means = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 4.0]])
    quats = torch.tensor([[1.0, 0, 0, 0]]).expand(2, 4)
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    view, K = _camera(W=16, H=16)
    K[0, :2, 2] += 0.5  # pixel (8, 8) centred on the axis
    img, alpha, _ = rasterize(means, quats, torch.full((2, 3), 0.3), torch.ones(2), colors, view, K, 16, 16)
    assert alpha[0, 8, 8, 0].item() == pytest.approx(ALPHA_MAX)
    assert img[0, 8, 8, 2].item() == 0.0 and img[0, 8, 8, 0].item() == pytest.approx(ALPHA_MAX)
    # A Gaussian below the 1/255 alpha threshold is skipped everywhere.
    _, alpha, _ = rasterize(means[:1], quats[:1], torch.full((1, 3), 0.3), torch.tensor([0.003]), colors[:1],
                            view, K, 16, 16)
    assert alpha.abs().max() == 0


def test_near_plane_culls_gaussians_behind_the_camera():
    means = torch.tensor([[0.0, 0.0, -2.0], [0.0, 0.0, 0.005]])
    view, K = _camera()
    _, alpha, info = rasterize(means, torch.tensor([[1.0, 0, 0, 0]]).expand(2, 4), torch.full((2, 3), 0.3),
                               torch.ones(2) * 0.9, torch.ones(2, 3), view, K, 16, 16)
    assert (info["radii"] == 0).all() and alpha.abs().max() == 0


def test_rasterize_refuses_non_finite_colors():
    means, quats, scales, opacities, colors = _scene(4, torch.float32, seed=2)
    view, K = _camera()
    colors[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"colors\[2\].*not finite"):
        rasterize(means, quats, scales, opacities, colors, view, K, 16, 16)
    per_camera = torch.rand(1, 4, 3)
    per_camera[0, 3, 0] = float("inf")
    with pytest.raises(ValueError, match=r"colors\[3\].*not finite"):
        rasterize(means, quats, scales, opacities, per_camera, view, K, 16, 16)


def test_matches_naive_per_pixel_compositing():
    """Two cameras, per-camera colours, backgrounds: equal to a per-pixel loop over sorted Gaussians."""
    means, quats, scales, opacities, _ = _scene(12, torch.float32, seed=1)
    scales = scales * 0.5
    view0, K = _camera(W=20, H=12, f=18.0)
    view1 = look_at(torch.tensor([0.4, 0.3, -0.5]), (0, 0, 3.5), up=(0, -1, 0))[None]
    viewmats, Ks = torch.cat([view0, view1]), K.expand(2, 3, 3)
    colors = torch.rand(2, 12, 3)
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]])
    img, alpha, info = rasterize(means, quats, scales, opacities, colors, viewmats, Ks, 20, 12, backgrounds=bg,
                                 tile_size=4)
    for c in range(2):
        order = torch.argsort(info["depths"][c])
        order = order[(info["radii"][c, order] > 0).all(-1)]
        ys, xs = torch.meshgrid(torch.arange(12.0), torch.arange(20.0), indexing="ij")
        pix = torch.stack([xs, ys], -1).reshape(-1, 1, 2) + 0.5  # (P, 1, 2)
        a = gaussian_alpha(pix - info["means2d"][c, order], info["conics"][c, order], opacities[order])
        ref, ref_a = composite_front_to_back(colors[c, order].expand(len(pix), -1, -1), a, bg[c])
        torch.testing.assert_close(img[c].reshape(-1, 3), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(alpha[c].reshape(-1, 1), ref_a, atol=1e-5, rtol=1e-5)
    assert alpha.max() > 0.5


def test_gradcheck_float64():
    means, quats, scales, opacities, colors = _scene(3)
    scales = scales * 4.0  # footprints of 2-6 pixels cover the whole image
    view, K = _camera(W=8, H=8, f=10.0, dtype=torch.float64)
    bg = torch.tensor([[0.3, 0.1, 0.2]], dtype=torch.float64)
    inputs = [t.clone().requires_grad_() for t in (means, quats, scales, opacities, colors)]

    def render(m, q, s, o, c):
        img, alpha, _ = rasterize(m, q, s, o, c, view, K, 8, 8, backgrounds=bg, antialiased=True,
                                  render_mode="RGB+ED")
        return img, alpha

    _, alpha = render(*inputs)
    assert (alpha > 0.02).all()  # every pixel sees the Gaussians
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_rasterize_validates_shapes():
    means, quats, scales, opacities, colors = _scene(3, torch.float32)
    view, K = _camera()
    with pytest.raises(ValueError, match=r"quats \(N, 4\)"):
        rasterize(means, quats[:, :3], scales, opacities, colors, view, K, 16, 16)
    with pytest.raises(ValueError, match="Ks"):
        rasterize(means, quats, scales, opacities, colors, view, K[0], 16, 16)
    with pytest.raises(ValueError, match="render_mode"):
        rasterize(means, quats, scales, opacities, colors, view, K, 16, 16, render_mode="RGBA")
    with pytest.raises((ImportError, ValueError)):
        rasterize(means, quats, scales, opacities, colors, view, K, 16, 16, backend="gsplat")


def test_fit_colours_by_gradient_descent():
    """Optimizing SH colours through the renderer reproduces a target image's colours."""
    means, quats, scales, _, _ = _scene(6, torch.float32, seed=3)
    view, K = _camera(W=12, H=12, f=14.0)
    target_colors = torch.rand(6, 3)
    g = Gaussians.from_activated(means, scales, quats, torch.full((6,), 0.6), torch.full((6, 3), 0.5))
    target, _, _ = rasterize(means, quats, scales, g.opacities, target_colors, view, K, 12, 12)
    g.requires_grad_()
    opt = torch.optim.Adam([g.sh_dc], lr=0.2)
    for _ in range(50):
        img, _, _ = g.render(view, K, 12, 12)
        loss = (img - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-4


@pytest.mark.gpu
def test_parity_with_gsplat():
    pytest.importorskip("gsplat")
    means, quats, scales, opacities, colors = _scene(200, torch.float32, seed=5)
    scales = scales * 0.3
    view0, K = _camera(W=48, H=32, f=40.0)
    view1 = look_at(torch.tensor([0.3, -0.2, -0.4]), (0, 0, 3.5), up=(0, -1, 0))[None]
    args = [t.cuda() for t in (means, quats, scales, opacities, colors, torch.cat([view0, view1]), K.expand(2, 3, 3))]
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]], device="cuda")
    for antialiased in (False, True):
        ref, ref_a, ref_info = rasterize(*args, 48, 32, backend="torch", antialiased=antialiased,
                                         render_mode="RGB+ED", backgrounds=bg)
        out, out_a, info = rasterize(*args, 48, 32, backend="gsplat", antialiased=antialiased,
                                     render_mode="RGB+ED", backgrounds=bg)
        assert info["backend"] == "gsplat" and set(info) == set(ref_info)
        assert torch.equal(info["radii"], ref_info["radii"])  # the same footprint rule (gsplat 1.5)
        torch.testing.assert_close(out_a, ref_a, atol=1e-4, rtol=0)
        torch.testing.assert_close(out[..., :3], ref[..., :3], atol=1e-4, rtol=0)
