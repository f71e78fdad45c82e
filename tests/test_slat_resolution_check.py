"""The slat_vae task refuses data on another voxel grid than the model's, naming both config keys."""

import pytest
import torch

from learnlib.models import create
from learnlib.slat.data.dataset import MeshSource, SLatDataset
from learnlib.tasks import build_task

pytest.importorskip("trimesh")


@pytest.fixture(scope="module")
def batch16(tmp_path_factory):
    source = MeshSource(["cube"], tmp_path_factory.mktemp("cache"), resolution=16, num_views=2, image_size=16)
    dataset = SLatDataset(source, views_per_item=1)
    return dataset.collate_fn([dataset[0]])


def vae(resolution):
    torch.manual_seed(0)
    return create("slat_vae_tiny", decoder={"num_gaussians": 2}, resolution=resolution, model_channels=32,
                  num_blocks=1, num_heads=2)


def test_batch_carries_the_data_resolution(batch16):
    assert batch16["resolution"] == 16


@pytest.mark.parametrize("method", ["training_loss", "eval_sums"])
def test_mismatched_resolution_is_refused_naming_both_keys(batch16, method):
    task = build_task({"name": "slat_vae", "lpips": 0.0})
    with pytest.raises(ValueError, match="data.resolution=16 but model.resolution=32"):
        getattr(task, method)(vae(32), batch16)


def test_matching_resolution_runs(batch16):
    task = build_task({"name": "slat_vae", "lpips": 0.0})
    loss, _ = task.training_loss(vae(16), batch16)
    assert torch.isfinite(loss)
