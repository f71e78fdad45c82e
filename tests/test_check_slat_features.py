"""Grader of the SLat data chapter: it accepts the library and a written-out answer, names typical mistakes."""

import torch
import torch.nn.functional as F

from learnlib import check
from learnlib.data.meshes import voxel_centres
from learnlib.slat.data.projection import project_voxel_features


def library_answer(coord, resolution, feature_maps, cameras):
    return project_voxel_features(feature_maps, voxel_centres(coord[None], resolution), cameras)[0]


def written_out(coord, resolution, feature_maps, cameras, align_corners=False, half=0.5, pixel=False,
                map_size=False, divide=True):
    centre = -0.5 + (coord.float() + half) / resolution  # (3,)
    feats = []
    for v in range(len(cameras)):
        x, y, z = cameras.viewmats[v, :3, :3] @ centre + cameras.viewmats[v, :3, 3]
        K = cameras.Ks[v]
        depth = z if divide else 1.0
        u, w = K[0, 0] * x / depth + K[0, 2], K[1, 1] * y / depth + K[1, 2]
        width, height = feature_maps.shape[-1:-3:-1] if map_size else (cameras.width, cameras.height)
        grid = torch.stack([u, w]) if pixel else torch.stack([2 * u / width - 1, 2 * w / height - 1])
        sample = F.grid_sample(feature_maps[v:v + 1], grid.view(1, 1, 1, 2), align_corners=align_corners)
        feats.append(sample.flatten())  # (C,)
    return torch.stack(feats).mean(0)


def not_implemented(*args, **kwargs):
    raise NotImplementedError("exercise: write your code here, then run the check below")


def test_project_voxel_features_accepts_library_and_written_out_answer():
    assert check.project_voxel_features(library_answer)
    assert check.project_voxel_features(written_out)


def test_project_voxel_features_names_align_corners_and_pixel_grid():
    result = check.project_voxel_features(lambda *a: written_out(*a, align_corners=True))
    assert not result and "align_corners=True" in result.message and "input coord" in result.message
    result = check.project_voxel_features(lambda *a: written_out(*a, pixel=True))
    assert not result and ("pixel positions" in result.message or "outside [-1, 1]" in result.message)


def test_project_voxel_features_does_not_misname_map_size_or_missing_divide():
    for wrong, name in (({"map_size": True}, "feature map's size"), ({"divide": False}, "perspective divide")):
        result = check.project_voxel_features(lambda *a, wrong=wrong: written_out(*a, **wrong))
        assert not result and "grid_sample got pixel positions" not in result.message
        named = name in result.message
        shown = "input coord" in result.message and "expected:" in result.message and "received:" in result.message
        assert named or shown, result.message


def test_project_voxel_features_names_missing_half_voxel_offset():
    result = check.project_voxel_features(lambda *a: written_out(*a, half=0.0))
    assert not result and "(i + 0.5)" in result.message


def test_project_voxel_features_stub_fails_cleanly():
    result = check.project_voxel_features(not_implemented)
    assert not result and "not implemented yet" in result.message and "Hint" in result.message


def test_project_voxel_features_reports_wrong_shape():
    result = check.project_voxel_features(lambda *a: library_answer(*a)[None])
    assert not result and "shape" in result.message
