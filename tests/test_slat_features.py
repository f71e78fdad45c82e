"""SLat features: projection conventions, visibility, mesh preprocessing and TRELLIS's feature file."""

import math

import numpy as np
import pytest
import torch

from learnlib.data.meshes import load_sample_mesh, normalize_to_unit_cube, voxel_centres
from learnlib.slat.data.extractors import Dinov2Backend, PatchPoolBackend, make_backend
from learnlib.slat.data.features import (
    RenderedViews,
    downsample_features,
    load_trellis_features,
    preprocess_mesh,
    render_object_views,
    save_trellis_features,
    slat_cameras,
)
from learnlib.slat.data.projection import project_to_grid, project_voxel_features, visibility_from_depth
from learnlib.splat.cameras import orbit_cameras, project_points
from learnlib.vit.dinov2 import DinoV2

pytest.importorskip("trimesh")


def random_cameras(views=5, width=48, height=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    yaw = torch.rand(views, generator=g) * 2 * math.pi
    pitch = (torch.rand(views, generator=g) - 0.5) * 2.0
    return orbit_cameras(yaw, pitch, radius=2.0, fov=math.radians(40.0), width=width, height=height)


def test_grid_is_pixel_position_over_image_size_and_origin_maps_to_centre():
    cameras = random_cameras()
    points = torch.rand(20, 3) - 0.5
    grid, z = project_to_grid(points, cameras)
    for v in range(len(cameras)):
        uv, depth = project_points(points, cameras.viewmats[v], cameras.Ks[v])
        torch.testing.assert_close(grid[v], 2 * uv / torch.tensor([48.0, 40.0]) - 1)
        torch.testing.assert_close(z[v], depth)
    origin, _ = project_to_grid(torch.zeros(1, 3), cameras)
    torch.testing.assert_close(origin, torch.zeros(5, 1, 2), atol=1e-6, rtol=0)


def test_features_of_a_ramp_map_are_the_projected_positions_in_patch_units():
    # a map whose value at patch column j is j + 0.5 samples, bilinearly with align_corners=False,
    # to u / patch at pixel position u: the mean over views is the mean projected column
    cameras = random_cameras(width=48, height=40)
    patch = 4
    h, w = 40 // patch, 48 // patch
    ramp_u = (torch.arange(w) + 0.5).view(1, 1, 1, w).expand(5, 1, h, w)
    ramp_v = (torch.arange(h) + 0.5).view(1, 1, h, 1).expand(5, 1, h, w)
    maps = torch.cat([ramp_u, ramp_v], dim=1)  # (V, 2, h, w)
    points = (torch.rand(30, 3) - 0.5) * 0.5  # near the centre: inside every image, away from the borders
    feats = project_voxel_features(maps, points, cameras)
    uv = torch.stack([project_points(points, cameras.viewmats[v], cameras.Ks[v])[0] for v in range(5)])  # (V, N, 2)
    torch.testing.assert_close(feats, (uv / patch).mean(0), atol=1e-4, rtol=0)


def test_visibility_masks_occluded_views_and_falls_back_when_none_sees_the_point():
    cameras = random_cameras(views=3, width=16, height=16)
    point = torch.zeros(1, 3)
    depths = torch.zeros(3, 1, 16, 16)
    depths[0] = 1.0  # a surface at depth 1 in front of the point (depth 2): occluded
    depths[1] = 2.0  # the point lies on the surface: visible
    visible = visibility_from_depth(point, cameras, depths, tolerance=0.05)
    assert visible[:, 0].tolist() == [False, True, True]  # view 2 is empty: nothing hides the point
    maps = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 4, 4)  # view v has the constant feature v
    assert project_voxel_features(maps, point, cameras).item() == pytest.approx(1.0)  # all views (TRELLIS)
    assert project_voxel_features(maps, point, cameras, visible).item() == pytest.approx(1.5)
    none = torch.zeros(3, 1, dtype=torch.bool)
    assert project_voxel_features(maps, point, cameras, none).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one feature map per camera"):
        project_voxel_features(maps[:2], point, cameras)


def test_patch_pool_backend_averages_cells_per_patch():
    views = torch.arange(2 * 8 * 8, dtype=torch.float32).view(1, 2, 8, 8)
    out = PatchPoolBackend(patch_size=4, sub_cells=2)(views)  # (1, 8, 2, 2)
    assert out.shape == (1, 8, 2, 2)
    assert out[0, 0, 0, 0] == views[0, 0, :2, :2].mean()  # channel 0, top-left cell of patch (0, 0)
    assert out[0, 3, 1, 0] == views[0, 0, 6:, 2:4].mean()  # channel 0, bottom-right cell of patch (1, 0)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        PatchPoolBackend(patch_size=3, sub_cells=1)(views)
    with pytest.raises(ValueError, match="unknown feature backend"):
        make_backend("clip")


def test_dinov2_backend_gives_one_token_map_per_view_from_premultiplied_rgb():
    model = DinoV2(img_size=28, patch_size=14, embed_dim=16, depth=1, num_heads=2, num_register_tokens=4)
    backend = Dinov2Backend(model=model, image_size=28)
    views = torch.rand(3, 4, 32, 32)
    assert backend(views).shape == (3, 16, 2, 2)
    black = views.clone()
    black[:, :3] = torch.rand(3, 3, 32, 32)
    black[:, 3] = 0.0  # fully transparent: the colour behind must not matter
    views[:, 3] = 0.0
    torch.testing.assert_close(backend(black), backend(views))
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        Dinov2Backend()


def test_preprocess_bunny_voxels_views_and_features():
    mesh = load_sample_mesh("bunny", up_axis="y")
    obj = preprocess_mesh(mesh, PatchPoolBackend(), resolution=16, num_views=4, image_size=64, name="bunny")
    assert obj.coords.dtype == torch.int64 and obj.coords.min() >= 0 and obj.coords.max() < 16
    assert obj.feats.shape == (len(obj.coords), 32)
    assert obj.images.shape == (4, 3, 64, 64) and obj.alphas.shape == (4, 1, 64, 64)
    assert 0.05 < obj.alphas.mean() < 0.9
    # voxel centres project onto (or next to) the bunny: their alpha cells (channels 12-15) are high,
    # and much higher than those of random points of the cube
    alpha_of_voxels = obj.feats[:, 12:16].mean()
    maps = PatchPoolBackend()(torch.cat([obj.images, obj.alphas], dim=1))  # (V, 16, 16, 16): RGB + alpha
    alpha_of_random = project_voxel_features(maps, torch.rand(500, 3) - 0.5, obj.cameras)[:, 12:16].mean()
    assert alpha_of_voxels > 0.6 and alpha_of_voxels > 1.5 * alpha_of_random


def test_visibility_makes_the_depth_feature_match_the_voxels_own_depth():
    # with the depth test, a voxel's depth feature is the depth of the voxel itself in the views that see
    # it; averaged over all views (TRELLIS) it mixes in the depth of the surfaces in front of it
    mesh = normalize_to_unit_cube(load_sample_mesh("bunny", up_axis="y"))
    settings = {"resolution": 32, "num_views": 6, "image_size": 64, "name": "bunny"}
    backend = PatchPoolBackend(patch_size=2, sub_cells=1)  # channels: RGB, alpha, depth (4), normals
    objs = {vis: preprocess_mesh(mesh, backend, visibility=vis, **settings) for vis in (False, True)}
    cameras = objs[True].cameras
    points = voxel_centres(objs[True].coords, 32)
    _, z = project_to_grid(points, cameras)  # (V, N)
    own = (z - (2.0 - 0.5 * math.sqrt(3))) / math.sqrt(3)  # (V, N) each voxel's depth, scaled as the renders
    depths = render_object_views(mesh, cameras).depths
    seen = visibility_from_depth(points, cameras, depths, tolerance=math.sqrt(3) / 32).float()  # (V, N)
    own_seen = (own * seen).sum(0) / seen.sum(0).clamp(min=1)
    error_seen = (objs[True].feats[:, 4] - own_seen)[seen.sum(0) > 0].abs().mean()
    error_all = (objs[False].feats[:, 4] - own.mean(0)).abs().mean()
    assert error_seen < 0.5 * error_all


def test_empty_object_and_mismatched_views_are_clear_errors():
    mesh = load_sample_mesh("cube")
    mesh.apply_translation([5.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="no voxel inside"):
        preprocess_mesh(mesh, PatchPoolBackend(), resolution=8, num_views=2, image_size=16, normalize=False)
    cameras = slat_cameras(3, 16)
    with pytest.raises(ValueError, match="same count"):
        RenderedViews(torch.zeros(2, 3, 16, 16), torch.zeros(2, 1, 16, 16), torch.zeros(2, 1, 16, 16), cameras)


def test_trellis_feature_file_keys_dtypes_and_bad_indices(tmp_path):
    coords = torch.randint(0, 64, (50, 3))
    feats = torch.randn(50, 8)
    path = tmp_path / "obj.npz"
    save_trellis_features(path, coords, feats)
    with np.load(path) as data:
        assert sorted(data.files) == ["indices", "patchtokens"]
        assert data["indices"].dtype == np.uint8 and data["indices"].shape == (50, 3)
        assert data["patchtokens"].dtype == np.float16 and data["patchtokens"].shape == (50, 8)
    got_coords, got_feats = load_trellis_features(path)
    assert torch.equal(got_coords, coords)
    torch.testing.assert_close(got_feats, feats, atol=2e-3, rtol=1e-3)
    with pytest.raises(ValueError, match=r"must lie in \[0, 32\)"):
        load_trellis_features(path, resolution=32)
    np.savez(tmp_path / "bad.npz", indices=np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="missing keys"):
        load_trellis_features(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="extract_feature.py"):
        load_trellis_features(tmp_path / "absent.npz")


def test_downsample_features_averages_merged_voxels():
    coords = torch.tensor([[0, 0, 0], [1, 1, 1], [2, 0, 0]])
    feats = torch.tensor([[1.0], [3.0], [5.0]])
    coarse, merged = downsample_features(coords, feats, 2)
    assert coarse.tolist() == [[0, 0, 0], [1, 0, 0]] and merged.flatten().tolist() == [2.0, 5.0]
