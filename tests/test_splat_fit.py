"""Fitting Gaussians to multi-view renders (learnlib.splat.fit) and the y-up sample-mesh option."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("trimesh")
pytest.importorskip("pymeshlab")

from learnlib.data.mesh_render import mesh_targets, render_views
from learnlib.data.meshes import load_sample_mesh, normalize_to_unit_cube, sample_surface
from learnlib.metrics import psnr
from learnlib.splat import Gaussians, hammersley_cameras
from learnlib.splat.fit import color_by_normals, fit_gaussians, initial_points


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The fits here work on tiny tensors: one thread avoids oversubscribing a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bunny():
    return color_by_normals(normalize_to_unit_cube(load_sample_mesh("bunny", up_axis="y")))


def test_up_axis_rotates_the_named_axis_to_z():
    raw = load_sample_mesh("bunny")
    upright = load_sample_mesh("bunny", up_axis="y")
    np.testing.assert_allclose(upright.vertices[:, 2], raw.vertices[:, 1])  # file y becomes z
    np.testing.assert_allclose(upright.vertices[:, 1], -raw.vertices[:, 2])  # a rotation, not a mirror
    np.testing.assert_allclose(load_sample_mesh("bunny", up_axis="x").vertices[:, 2], raw.vertices[:, 0])
    with pytest.raises(ValueError, match="up_axis"):
        load_sample_mesh("bunny", up_axis="w")


def test_psnr_and_initial_points(bunny):
    target = torch.zeros(2, 4, 4, 3)
    assert psnr(torch.full_like(target, 0.1), target) == pytest.approx(20.0)
    assert psnr(torch.full_like(target, -1.0), target) > 100  # predictions are clamped to [0, 1]
    cube = initial_points(500, seed=3, extent=0.8)
    assert cube.shape == (500, 3) and cube.abs().max() <= 0.4 and cube.abs().max() > 0.35
    with pytest.raises(TypeError):
        initial_points(300, bunny)  # surface points come from learnlib.data.meshes.sample_surface
    surface = sample_surface(bunny, 300, seed=1)[0]
    closest = torch.cdist(surface, torch.as_tensor(bunny.vertices, dtype=torch.float32)).min(dim=1).values
    assert closest.max() < 0.02  # on the surface (vertices are about 0.005 apart)


def test_mesh_targets_supersampling_is_a_box_filter(bunny):
    cams = hammersley_cameras(2, width=8)
    fine, _ = render_views(bunny, cams.resized(16, 16), background=(1.0, 1.0, 1.0), shading=False)
    coarse = mesh_targets(bunny, cams, supersample=2)
    torch.testing.assert_close(coarse, fine.reshape(2, 8, 2, 8, 2, 3).mean(dim=(2, 4)))
    with pytest.raises(ValueError, match="images must be"):
        fit_gaussians(coarse, hammersley_cameras(3, width=8), initial_points(10))


def test_tiny_fit_improves_psnr_by_a_clear_margin(bunny):
    torch.manual_seed(0)
    train_cams = hammersley_cameras(8, width=16)
    eval_cams = hammersley_cameras(4, width=16, offset=(0.5, 0.37))
    train, held_out = mesh_targets(bunny, train_cams, supersample=2), mesh_targets(bunny, eval_cams, supersample=2)
    gaussians, history = fit_gaussians(train, train_cams, sample_surface(bunny, 400, seed=0)[0], steps=60,
                                       eval_images=held_out, eval_cameras=eval_cams, eval_every=30, seed=0,
                                       progress=False)
    assert isinstance(gaussians, Gaussians) and len(gaussians) == 400
    assert history.eval_steps == [0, 30, 60] and len(history.loss) == 60
    assert not gaussians.raw_means.requires_grad
    assert history.train_psnr[-1] > history.train_psnr[0] + 5.0
    assert history.eval_psnr[-1] > history.eval_psnr[0] + 4.0  # novel views improve too
    assert np.mean(history.loss[-10:]) < 0.5 * np.mean(history.loss[:5])
    assert all(math.isfinite(v) for v in history.train_psnr + history.eval_psnr)


def test_fit_from_random_points_and_from_gaussians(bunny):
    cams = hammersley_cameras(6, width=12)
    images = mesh_targets(bunny, cams, supersample=2)
    start = Gaussians.from_points(initial_points(300, seed=0, extent=0.8), opacity=0.3)
    _, history = fit_gaussians(images, cams, start, steps=40, eval_every=40, seed=1, progress=False)
    assert history.train_psnr[-1] > history.train_psnr[0] + 3.0
    assert math.isnan(history.eval_psnr[-1])  # no held-out views given
    again = fit_gaussians(images, cams, start, steps=40, eval_every=40, seed=1, progress=False)[1]
    assert again.loss == pytest.approx(history.loss, rel=1e-4)  # the seed fixes the run
