"""Reader of TRELLIS's dataset folders: layout, Blender camera convention, and the errors for missing pieces."""

import json
import math
import warnings

import numpy as np
import pytest
import torch

from learnlib.slat.data.features import save_trellis_features, slat_cameras
from learnlib.slat.data.trellis import (
    TrellisSource,
    blender_to_viewmat,
    read_metadata,
    read_transforms,
    write_random_dataset,
)
from learnlib.splat.cameras import look_at, project_points

pytest.importorskip("PIL")


def make_dataset(root, count=3, views=4, size=16):
    """A tiny TRELLIS folder of random objects and the cameras every object shares."""
    return write_random_dataset(root, count, views, size), slat_cameras(views, size)


def test_written_layout_matches_trellis(tmp_path):
    make_dataset(tmp_path, count=1)
    sha = f"{0:064x}"
    assert (tmp_path / "metadata.csv").is_file()
    with np.load(tmp_path / "features" / "dinov2_vitl14_reg" / f"{sha}.npz") as data:
        assert data["indices"].dtype == np.uint8 and data["patchtokens"].dtype == np.float16
    meta = json.loads((tmp_path / "renders" / sha / "transforms.json").read_text())
    frame = meta["frames"][0]
    assert frame["file_path"] == "000.png" and frame["camera_angle_x"] == pytest.approx(math.radians(40.0))
    assert np.asarray(frame["transform_matrix"]).shape == (4, 4)
    assert np.linalg.norm(np.asarray(frame["transform_matrix"])[:3, 3]) == pytest.approx(2.0, abs=1e-5)


def test_tiny_dataset_reads_back(tmp_path):
    objects, cameras = make_dataset(tmp_path)
    source = TrellisSource(tmp_path, image_size=16)
    assert source.names == sorted(objects)
    for i, sha in enumerate(source.names):
        coords, feats, images, alphas = objects[sha]
        got_coords, got_feats = source.load_voxels(i)
        assert torch.equal(got_coords, coords) and source.num_voxels(i) == len(coords)
        torch.testing.assert_close(got_feats, feats, atol=5e-3, rtol=1e-3)
        got_images, got_alphas, got_cameras = source.load_views(i, [1, 3])
        torch.testing.assert_close(got_images, images[[1, 3]], atol=0.5 / 255 + 1e-6, rtol=0)
        torch.testing.assert_close(got_alphas, alphas[[1, 3]], atol=0.5 / 255 + 1e-6, rtol=0)
        torch.testing.assert_close(got_cameras.viewmats, cameras.viewmats[[1, 3]], atol=1e-5, rtol=0)
        torch.testing.assert_close(got_cameras.Ks, cameras.Ks[[1, 3]], atol=1e-4, rtol=0)
    assert len(TrellisSource(tmp_path, image_size=16, min_aesthetic_score=5.0)) == 2
    coarse = TrellisSource(tmp_path, image_size=16, resolution=32)
    assert coarse.load_voxels(0)[0].max() < 32


def test_blender_camera_converts_to_opencv_view_matrix():
    # a Blender camera at (2, 0, 0) looking at the origin with z up: OpenGL axes x = +y_world,
    # y (up) = +z_world, z (backwards) = +x_world
    c2w = [[0.0, 0.0, 1.0, 2.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    view = blender_to_viewmat(c2w)
    torch.testing.assert_close(view, look_at(torch.tensor([2.0, 0.0, 0.0])), atol=1e-6, rtol=0)
    K = torch.tensor([[20.0, 0.0, 16.0], [0.0, 20.0, 16.0], [0.0, 0.0, 1.0]])
    uv, depth = project_points(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.3], [0.0, 0.3, 0.0]]), view, K)
    assert depth[0] == pytest.approx(2.0)
    assert uv[0].tolist() == pytest.approx([16.0, 16.0])
    assert uv[1, 1] < 16.0  # world up appears above the centre (smaller row)
    assert uv[2, 0] > 16.0  # +y is to the right when looking along -x


def test_missing_pieces_name_the_path_and_the_trellis_tool(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TrellisSource(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="build_metadata.py"):
        read_metadata(tmp_path)
    make_dataset(tmp_path, count=2)
    with pytest.raises(FileNotFoundError, match="extract_feature.py"):
        TrellisSource(tmp_path, model="dinov2_vitg14")
    sha = f"{1:064x}"
    (tmp_path / "renders" / sha / "transforms.json").unlink()
    source = TrellisSource(tmp_path, image_size=16)
    with pytest.raises(FileNotFoundError, match=r"transforms\.json does not exist.*render\.py"):
        source.load_views(1)
    (tmp_path / "features" / "dinov2_vitl14_reg" / f"{0:064x}.npz").unlink()
    with pytest.warns(UserWarning, match="no feature file"):
        assert TrellisSource(tmp_path, image_size=16).names == [sha]


def test_out_of_range_indices_and_bad_frames_are_errors(tmp_path):
    make_dataset(tmp_path, count=1)
    sha = f"{0:064x}"
    save_trellis_features(tmp_path / "features" / "dinov2_vitl14_reg" / f"{sha}.npz",
                          torch.tensor([[0, 0, 0], [70, 1, 2]]), torch.zeros(2, 8))
    with pytest.raises(ValueError, match=r"must lie in \[0, 64\)"):
        TrellisSource(tmp_path).load_voxels(0)
    path = tmp_path / "renders" / sha / "transforms.json"
    path.write_text(json.dumps({"frames": [{"file_path": "000.png"}]}))
    with pytest.raises(ValueError, match="lacks"):
        read_transforms(path, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(TrellisSource(tmp_path)) == 1
