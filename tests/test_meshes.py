"""Sample meshes, normalization, voxelization, surface sampling and the triangle rasterizer."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("trimesh")
pytest.importorskip("pymeshlab")

from learnlib.data.mesh_render import render_mesh, render_views
from learnlib.data.meshes import (
    list_sample_meshes,
    load_sample_mesh,
    normalize_to_unit_cube,
    sample_surface,
    voxel_centres,
    voxelize,
)
from learnlib.splat.cameras import hammersley_cameras, intrinsics_from_fov, project_points


@pytest.fixture(scope="module")
def bunny():
    return normalize_to_unit_cube(load_sample_mesh("bunny"))


def test_sample_meshes_listed_and_bunny_loads(bunny):
    names = list_sample_meshes()
    assert {"bunny", "cow", "airplane", "bone", "cube"} <= set(names)
    assert 20_000 <= len(bunny.vertices) <= 40_000 and 40_000 <= len(bunny.faces) <= 80_000
    with pytest.raises(KeyError, match="available: .*bunny"):
        load_sample_mesh("teapot")


def test_normalize_to_unit_cube(bunny):
    lo, hi = bunny.bounds
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-9)
    assert (hi - lo).max() == pytest.approx(1.0)
    assert lo.min() >= -0.5 - 1e-9 and hi.max() <= 0.5 + 1e-9


def test_voxelize_cube_shell_is_exact():
    cube = normalize_to_unit_cube(load_sample_mesh("cube"))
    for r in (4, 7, 12):
        coords = voxelize(cube, r)
        assert len(coords) == r ** 3 - (r - 2) ** 3  # the outer shell of the grid, nothing inside
        on_shell = ((coords == 0) | (coords == r - 1)).any(dim=1)
        assert on_shell.all() and coords.dtype == torch.int64


def test_voxelize_bunny_grows_with_resolution_and_covers_the_surface(bunny):
    grids = {r: voxelize(bunny, r) for r in (8, 16, 32)}
    for r, coords in grids.items():
        assert coords.min() >= 0 and coords.max() < r
        assert len(torch.unique(coords, dim=0)) == len(coords)
    counts = [len(grids[r]) for r in (8, 16, 32)]
    assert counts[0] < counts[1] < counts[2]
    assert 3.0 < counts[2] / counts[1] < 5.0  # a surface: about 4x more voxels per doubling
    # Every surface sample falls in an occupied voxel, and every voxel centre is near the surface.
    coords = grids[16]
    points, normals = sample_surface(bunny, 2000, seed=1)
    cells = torch.clamp(((points + 0.5) * 16).floor().long(), 0, 15)
    occupied = set(map(tuple, coords.tolist()))
    assert all(tuple(c) in occupied for c in cells.tolist())
    torch.testing.assert_close(normals.norm(dim=1), torch.ones(2000))
    dist = torch.cdist(voxel_centres(coords, 16), points).min(dim=1).values
    assert dist.max() < math.sqrt(3) / 16  # within the half-diagonal of a cell (plus sampling slack)


def test_render_single_triangle_covers_expected_pixels():
    # Triangle in the plane z = 2 seen from the origin with f = 10: pixel = 5 * (x, y) + 8.
    verts = np.array([[-0.6, -0.6, 2.0], [0.6, -0.6, 2.0], [-0.6, 0.6, 2.0]])
    K = torch.tensor([[10.0, 0, 8], [0, 10.0, 8], [0, 0, 1]])
    rgb, alpha, depth = render_mesh(verts, [[0, 1, 2]], torch.eye(4), K, 16, 16, shading=False,
                                    vertex_colors=np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]))
    # Screen triangle (5, 5), (11, 5), (5, 11): pixel centres (j + 0.5, i + 0.5) with j, i >= 5 and
    # (j + 0.5) + (i + 0.5) <= 16.
    i, j = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    expected = (i >= 5) & (j >= 5) & (i + j + 1 <= 16)
    assert torch.equal(alpha[..., 0] > 0, expected)
    torch.testing.assert_close(depth[expected], torch.full((int(expected.sum()),), 2.0))
    torch.testing.assert_close(rgb[expected].sum(-1), torch.ones(int(expected.sum())))  # barycentric weights
    assert rgb[5, 5, 0] > 0.8 and (rgb[~expected] == 0).all()


def test_render_zbuffer_keeps_nearest():
    near = np.array([[-1.0, -1, 2], [1, -1, 2], [0, 1, 2]])
    far = near * np.array([2.0, 2.0, 2.0])  # the same triangle at z = 4, twice as large
    verts = np.concatenate([far, near])
    colors = np.array([[0.0, 1, 0]] * 3 + [[1.0, 0, 0]] * 3)
    K = intrinsics_from_fov(math.radians(60), 16, 16)
    rgb, _, depth = render_mesh(verts, [[0, 1, 2], [3, 4, 5]], torch.eye(4), K, 16, 16, vertex_colors=colors,
                                shading=False)
    assert torch.equal(rgb[8, 8], torch.tensor([1.0, 0, 0])) and depth[8, 8] == 2.0


def test_render_views_alpha_is_zero_outside_the_silhouette(bunny):
    cams = hammersley_cameras(3, radius=2.0, width=32)
    images, alphas = render_views(bunny, cams, background=(1.0, 1.0, 1.0))
    assert images.shape == (3, 32, 32, 3) and alphas.shape == (3, 32, 32, 1)
    for c in range(3):
        mask = alphas[c, ..., 0] > 0
        assert 0.05 < mask.float().mean() < 0.6
        torch.testing.assert_close(images[c][~mask], torch.ones(int((~mask).sum()), 3))
        # Every projected vertex lands on a covered pixel (or right next to one).
        uv, _ = project_points(torch.as_tensor(bunny.vertices, dtype=torch.float32), cams.viewmats[c], cams.Ks[c])
        px = uv.floor().long().clamp(0, 31)
        dilated = torch.nn.functional.max_pool2d(mask[None, None].float(), 3, 1, 1)[0, 0] > 0
        assert dilated[px[:, 1], px[:, 0]].all()
        # Outside the silhouette's bounding box there is no mesh at all.
        assert not mask[:, : int(uv[:, 0].min().floor()) - 1].any()


def test_world_light_gives_a_face_the_same_shade_from_every_view():
    import trimesh

    from learnlib.splat.cameras import look_at

    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    K = intrinsics_from_fov(math.radians(40.0), 32, 32)
    eyes = [(3.0, 0.4, 0.3), (2.6, -1.2, 0.8)]  # both see the +x face
    face_centre = torch.tensor([0.5, 0.0, 0.0])
    shades = {}
    for frame in ("world", "camera"):
        light = (0.3, -0.4, 0.87) if frame == "world" else (-0.3, -0.5, -1.0)
        colours = []
        for eye in eyes:
            view = look_at(eye)
            rgb, alpha, _ = render_mesh(box.vertices, box.faces, view, K, 32, 32, light_dir=light,
                                        light_frame=frame)
            (u, v), _ = project_points(face_centre, view, K)
            i, j = int(v), int(u)
            assert alpha[i, j, 0] == 1.0
            colours.append(rgb[i, j])
        shades[frame] = (colours[0] - colours[1]).abs().max().item()
    assert shades["world"] < 1e-6  # a flat face lit from a fixed world direction
    assert shades["camera"] > 0.05  # a headlight: the shade follows the viewer


def test_render_rejects_an_unknown_light_frame():
    with pytest.raises(ValueError, match="light_frame"):
        render_mesh([[0, 0, 1], [1, 0, 1], [0, 1, 1]], [[0, 1, 2]], torch.eye(4), torch.eye(3), 4, 4,
                    light_frame="sun")
