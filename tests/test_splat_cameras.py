"""Cameras: look-at extrinsics, intrinsics, sphere sampling (learnlib.splat.cameras)."""

import math

import pytest
import torch

from learnlib.splat.cameras import (
    Cameras,
    camera_to_world,
    hammersley_cameras,
    hammersley_sequence,
    intrinsics_from_fov,
    look_at,
    normalized_to_pixel_intrinsics,
    orbit_cameras,
    pixel_to_normalized_intrinsics,
    project_points,
    sphere_eye,
    sphere_hammersley,
    van_der_corput,
)


def test_look_at_known_matrix():
    # Camera on -y looking at the origin, z up: right = +x, down = -z, forward = +y.
    view = look_at(torch.tensor([0.0, -3.0, 0.0]))
    expected = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 3], [0, 0, 0, 1]])
    torch.testing.assert_close(view, expected)


def test_target_projects_to_image_centre_and_up_is_up():
    eye = torch.tensor([1.3, -2.0, 0.7])
    target = torch.tensor([0.1, 0.2, -0.3])
    view = look_at(eye, target)
    K = intrinsics_from_fov(math.radians(50), 64, 48)
    uv, z = project_points(target, view, K)
    torch.testing.assert_close(uv, torch.tensor([32.0, 24.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(z, (target - eye).norm())
    above, _ = project_points(target + torch.tensor([0.0, 0.0, 0.1]), view, K)
    assert above[1] < 24.0  # image y points down, so a point above the target has a smaller row
    R = view[:3, :3]
    torch.testing.assert_close(R @ R.T, torch.eye(3), atol=1e-6, rtol=0)
    assert torch.det(R) == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(camera_to_world(view)[:3, 3], eye, atol=1e-5, rtol=0)


def test_look_at_rejects_degenerate_inputs():
    with pytest.raises(ValueError, match="parallel"):
        look_at(torch.tensor([0.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="coincide"):
        look_at(torch.zeros(3))


def test_intrinsics_from_fov_and_normalized_round_trip():
    K = intrinsics_from_fov(math.radians(90), 64, 32)
    torch.testing.assert_close(K, torch.tensor([[32.0, 0, 32], [0, 32, 16], [0, 0, 1]]))
    Kn = pixel_to_normalized_intrinsics(K, 64, 32)
    torch.testing.assert_close(Kn, torch.tensor([[0.5, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]]))
    torch.testing.assert_close(normalized_to_pixel_intrinsics(Kn, 64, 32), K)
    # A point at the edge of a 90 degree field of view lands on the image border.
    uv, _ = project_points(torch.tensor([1.0, 0.0, 1.0]), torch.eye(4), K)
    torch.testing.assert_close(uv, torch.tensor([64.0, 16.0]))
    with pytest.raises(ValueError):
        intrinsics_from_fov(4.0, 8, 8)


def test_hammersley_values():
    torch.testing.assert_close(van_der_corput(6), torch.tensor([0, 0.5, 0.25, 0.75, 0.125, 0.625],
                                                                 dtype=torch.float64))
    pts = hammersley_sequence(4)
    torch.testing.assert_close(pts[:, 0], torch.tensor([0, 0.25, 0.5, 0.75], dtype=torch.float64))
    yaw, pitch = sphere_hammersley(256)
    # sin(pitch) = 2 i / n - 1 is evenly spaced: the area-preserving map of a uniform u.
    torch.testing.assert_close(torch.sin(pitch), torch.arange(256, dtype=torch.float64) / 128 - 1)
    dirs = sphere_eye(yaw, pitch, radius=1.0)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(256, dtype=torch.float64))
    assert dirs.mean(0).norm() < 0.02  # evenly spread: the mean direction is near zero


def test_orbit_cameras_look_at_the_target():
    cams = hammersley_cameras(12, radius=2.5, width=32)
    assert isinstance(cams, Cameras) and len(cams) == 12
    eyes = camera_to_world(cams.viewmats)[:, :3, 3]
    torch.testing.assert_close(eyes.norm(dim=-1), torch.full((12,), 2.5), atol=1e-5, rtol=0)
    for i in range(12):  # includes the camera straight below the origin (pitch = -pi/2)
        uv, _ = project_points(torch.zeros(3), cams.viewmats[i], cams.Ks[i])
        torch.testing.assert_close(uv, torch.tensor([16.0, 16.0]), atol=1e-4, rtol=0)
    eye = sphere_eye(torch.tensor(0.0), torch.tensor(0.0), radius=2.0)
    torch.testing.assert_close(eye, torch.tensor([0.0, 2.0, 0.0]))
    big = orbit_cameras(torch.tensor([0.5]), torch.tensor([0.1]), width=32).resized(64, 64)
    assert big.Ks[0, 0, 2] == 32.0 and big.width == 64
