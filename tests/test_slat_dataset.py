"""SLatDataset over both sources, collate_slat into one SparseTensor, build(**cfg), and bad input."""

import pytest
import torch

from learnlib.slat.data import dataset as slat_dataset
from learnlib.slat.data.dataset import (
    MeshSource,
    SLatDataset,
    build,
    collate_slat,
    load_mesh,
)
from learnlib.slat.data.trellis import TrellisSource, write_random_dataset
from learnlib.sparse import SparseTensor

pytest.importorskip("trimesh")


def test_items_and_collate_over_a_trellis_folder(tmp_path):
    objects = write_random_dataset(tmp_path, count=3, views=4)
    dataset = SLatDataset(TrellisSource(tmp_path, image_size=16))
    assert dataset.sizes == [len(objects[name][0]) for name in dataset.names]
    item = dataset[0]
    assert item["images"].shape == (1, 3, 16, 16) and item["alphas"].shape == (1, 1, 16, 16)
    assert len(item["cameras"]) == 1 and item["feats"].shape == (len(item["coords"]), 8)
    batch = collate_slat([dataset[i] for i in range(3)])
    sparse = batch["feats"]
    assert isinstance(sparse, SparseTensor) and sparse.batch_size == 3 and sparse.coords.dtype == torch.int32
    assert [s.stop - s.start for s in sparse.layout] == dataset.sizes
    for b in range(3):
        rows = sparse.layout[b]
        assert (sparse.coords[rows, 0] == b).all()
        assert torch.equal(sparse.coords[rows, 1:].long(), dataset[b]["coords"])
    assert batch["images"].shape == (3, 1, 3, 16, 16) and set(batch) == {"feats", "images", "alphas", "cameras", "names",
                                                                          "resolution"}
    assert [len(c) for c in batch["cameras"]] == [1, 1, 1]
    all_views = SLatDataset(TrellisSource(tmp_path, image_size=16), views_per_item=None)[0]
    assert all_views["images"].shape == (4, 3, 16, 16)


def test_random_view_changes_between_draws(tmp_path):
    write_random_dataset(tmp_path, count=1, views=4)
    dataset = SLatDataset(TrellisSource(tmp_path, image_size=16))
    centres = {tuple(dataset[0]["cameras"].viewmats[0, 2, :3].round(decimals=4).tolist()) for _ in range(20)}
    assert len(centres) > 1


def test_objects_over_max_voxels_are_skipped_or_rejected(tmp_path):
    objects = write_random_dataset(tmp_path, count=3)
    limit = sorted(len(c) for c, *_ in objects.values())[1]
    with pytest.warns(UserWarning, match=f"more than max_voxels={limit}"):
        dataset = SLatDataset(TrellisSource(tmp_path, image_size=16), max_voxels=limit)
    assert len(dataset) == 2 and max(dataset.sizes) <= limit and len(dataset.skipped) == 1
    with pytest.raises(ValueError, match="max_voxels"):
        SLatDataset(TrellisSource(tmp_path, image_size=16), max_voxels=limit, on_too_large="error")


def test_build_from_omegaconf_config(tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"source": "meshes", "meshes": ["cube", "cow"], "val_fraction": 0.5,
                            "cache_dir": str(tmp_path), "resolution": 8, "num_views": 2, "image_size": 16,
                            "up_axes": {"cow": "y"}, "views_per_item": None})
    train, val = build(**cfg)
    assert len(train) == 1 and len(val) == 1 and train[0]["images"].shape == (2, 3, 16, 16)


def test_build_from_sample_meshes_uses_the_cache(tmp_path, monkeypatch):
    cfg = {"source": "meshes", "meshes": ["bunny", "cube", "cow"], "val_meshes": ["cow"], "cache_dir": str(tmp_path),
           "resolution": 8, "num_views": 2, "image_size": 16}
    train, val = build(**cfg)
    assert train.names == ["bunny", "cube"] and val.names == ["cow"]
    item = train[1]
    assert item["feats"].shape[1] == 32 and item["coords"].max() < 8 and item["images"].shape == (1, 3, 16, 16)
    assert collate_slat([train[0], train[1]])["feats"].resolution == (8, 8, 8)
    bunny, cube = (train.source.load(i).cameras.viewmats for i in range(2))
    assert not torch.allclose(bunny, cube)  # each object gets its own shifted Hammersley cameras

    def no_recompute(*args, **kwargs):
        raise AssertionError("the cache should have served this object")

    monkeypatch.setattr(slat_dataset, "preprocess_mesh", no_recompute)
    again, _ = build(**cfg)
    assert again.sizes == train.sizes


def test_build_from_a_trellis_root_splits_the_objects(tmp_path):
    write_random_dataset(tmp_path, count=4)
    train, val = build(source="trellis", root=str(tmp_path), image_size=16, val_fraction=0.25)
    assert len(train) == 3 and len(val) == 1 and not set(train.names) & set(val.names)
    with pytest.raises(ValueError, match="data.root"):
        build(source="trellis")
    with pytest.raises(ValueError, match="data.source"):
        build(source="shapenet")


def test_bad_mesh_file_and_mismatched_views_are_clear_errors(tmp_path):
    bad = tmp_path / "broken.obj"
    bad.write_text("this is not a mesh\n")
    with pytest.raises(ValueError, match="broken.obj"):
        load_mesh(str(bad))
    with pytest.raises(FileNotFoundError, match="neither a sample mesh"):
        load_mesh(str(tmp_path / "absent.obj"))

    class MismatchedSource(TrellisSource):
        def load_views(self, index, view_ids=None):
            images, alphas, cameras = super().load_views(index, None)
            return images, alphas, cameras[[0]]

    write_random_dataset(tmp_path / "ds", count=1)
    dataset = SLatDataset(MismatchedSource(tmp_path / "ds", image_size=16), views_per_item=None)
    with pytest.raises(ValueError, match="4 images, 4 alphas and 1 cameras"):
        dataset[0]
    with pytest.raises(ValueError, match="at least one mesh"):
        MeshSource([], tmp_path)


