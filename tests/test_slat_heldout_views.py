"""Held-out views of the SLat mesh data: a second Hammersley set interleaved with the training one, around
the whole object, that never feeds the voxel features and is never a training target."""

import math

import pytest
import torch

from learnlib.data.meshes import load_sample_mesh
from learnlib.slat.data.dataset import MeshSource, SLatDataset, build
from learnlib.slat.data.extractors import make_backend
from learnlib.slat.data.features import heldout_offset, preprocess_mesh, slat_cameras
from learnlib.splat.cameras import camera_to_world


def azimuths(cameras) -> torch.Tensor:
    """Camera azimuths in degrees [0, 360) around the z axis."""
    eyes = camera_to_world(cameras.viewmats)[:, :3, 3]  # (C, 3)
    return torch.rad2deg(torch.atan2(eyes[:, 1], eyes[:, 0])) % 360.0


@pytest.mark.parametrize("offset", [(0.0, 0.0), (0.3, 0.7), (0.93, 0.12)])
def test_heldout_cameras_cover_every_azimuth_quarter_and_sit_between_training_cameras(offset):
    train = slat_cameras(24, 64, offset=offset)
    held = slat_cameras(8, 64, offset=heldout_offset(offset, 24))
    quarters = set((azimuths(held) // 90).long().tolist())
    assert quarters == {0, 1, 2, 3}
    eyes_t = camera_to_world(train.viewmats)[:, :3, 3]  # (24, 3)
    eyes_h = camera_to_world(held.viewmats)[:, :3, 3]  # (8, 3)
    assert torch.cdist(eyes_h, eyes_t).min() > 0.03  # no held-out camera repeats a training one (1 degree apart at least)


def test_every_4th_view_of_one_set_was_one_side_of_the_object():
    # the protocol this replaces: with 24 views, views i = 3 mod 4 have yaws in one quarter-turn
    yaws = azimuths(slat_cameras(24, 64))[3::4]
    assert float(yaws.max() - yaws.min()) < 90.0


class CountingBackend:
    """patch_pool that remembers how many views it was given."""

    def __init__(self):
        self.inner, self.calls = make_backend("patch_pool"), []
        self.needs_geometry = self.inner.needs_geometry

    def __call__(self, views):
        self.calls.append(len(views))
        return self.inner(views)


def test_no_heldout_view_feeds_the_voxel_features():
    mesh = load_sample_mesh("cube")
    backend = CountingBackend()
    with_held = preprocess_mesh(mesh, backend, resolution=8, num_views=6, image_size=16, heldout_views=4)
    without = preprocess_mesh(mesh, make_backend("patch_pool"), resolution=8, num_views=6, image_size=16)
    assert backend.calls == [6]  # the feature backend saw the 6 training views only
    assert torch.equal(with_held.feats, without.feats)
    assert len(with_held.cameras) == 10 and with_held.images.shape == (10, 3, 16, 16)
    assert torch.equal(with_held.images[:6], without.images)  # training views first, held-out ones after
    assert with_held.alphas[6:].sum() > 0  # the held-out views show the object


def test_dataset_splits_training_and_heldout_views(tmp_path):
    source = MeshSource(["cube"], tmp_path, resolution=8, num_views=6, image_size=16, heldout_views=4)
    train = SLatDataset(source, views_per_item=None, views="train")
    held = SLatDataset(source, views_per_item=None, views="heldout")
    assert train.view_ids(10) == list(range(6)) and held.view_ids(10) == [6, 7, 8, 9]
    obj = source.load(0)
    assert torch.equal(train[0]["images"], obj.images[:6]) and torch.equal(held[0]["images"], obj.images[6:])
    for _ in range(20):  # random training draws never pick a held-out view
        one = SLatDataset(source, views_per_item=1, views="train")[0]["cameras"].viewmats
        assert any(torch.equal(one[0], v) for v in obj.cameras.viewmats[:6])
    with pytest.raises(ValueError, match="holdout_every"):
        SLatDataset(source, views="train", holdout_every=4)
    with pytest.raises(ValueError, match="heldout_views"):
        MeshSource(["cube"], tmp_path, heldout_views=-1)


def test_build_with_heldout_views_validates_on_them(tmp_path):
    train, val = build(source="meshes", meshes=["cube"], val_fraction=0.0, cache_dir=str(tmp_path), resolution=8,
                       num_views=6, image_size=16, heldout_views=4, views_per_item=None)
    assert train[0]["images"].shape[0] == 6 and val[0]["images"].shape[0] == 4
    assert math.isclose(float(val[0]["alphas"].mean()), float(val.source.load(0).alphas[6:].mean()))
