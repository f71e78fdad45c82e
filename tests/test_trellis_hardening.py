"""TRELLIS-layout reader under a hostile user: wrong voxel counts, empty lists, damaged files, odd values."""

import csv

import pytest
import torch

from learnlib.slat.data.dataset import SLatDataset, collate_slat
from learnlib.slat.data.features import save_trellis_features
from learnlib.slat.data.trellis import TrellisSource, write_random_dataset

pytest.importorskip("PIL")
MODEL = "dinov2_vitl14_reg"


def rewrite_metadata(root, change):
    path = root / "metadata.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        change(row)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_wrong_num_voxels_in_metadata_is_caught_when_loading(tmp_path):
    objects = write_random_dataset(tmp_path, count=2, views=2, image_size=8)
    rewrite_metadata(tmp_path, lambda row: row.update(num_voxels="3"))  # the budget would see 3 voxels each
    dataset = SLatDataset(TrellisSource(tmp_path, image_size=8), max_voxels=None)
    first = min(objects)
    with pytest.raises(ValueError, match=f"lists num_voxels 3 for {first}.*holds {len(objects[first][0])} voxels"):
        dataset[0]


def test_right_num_voxels_in_metadata_loads(tmp_path):
    objects = write_random_dataset(tmp_path, count=2, views=2, image_size=8)
    dataset = SLatDataset(TrellisSource(tmp_path, image_size=8), max_voxels=None)
    assert dataset.sizes == [len(objects[name][0]) for name in sorted(objects)]
    assert len(dataset[1]["coords"]) == dataset.sizes[1]


def test_empty_metadata_is_named(tmp_path):
    write_random_dataset(tmp_path, count=1, views=2, image_size=8)
    (tmp_path / "metadata.csv").write_text("sha256,num_voxels\n")
    with pytest.raises(ValueError, match=f"{tmp_path / 'metadata.csv'} lists no objects"):
        TrellisSource(tmp_path, image_size=8)


def test_filters_that_keep_nothing_are_named(tmp_path):
    write_random_dataset(tmp_path, count=2, views=2, image_size=8)  # aesthetic scores 4 and 5
    with pytest.raises(ValueError, match="no object of .*metadata.csv is usable.*aesthetic_score >= 9"):
        TrellisSource(tmp_path, image_size=8, min_aesthetic_score=9.0)


def test_non_numeric_aesthetic_score_names_the_object(tmp_path):
    objects = write_random_dataset(tmp_path, count=2, views=2, image_size=8)
    first = min(objects)
    rewrite_metadata(tmp_path, lambda row: row.update(aesthetic_score="n/a") if row["sha256"] == first else None)
    with pytest.raises(ValueError, match=f"object {first} has aesthetic_score 'n/a'"):
        TrellisSource(tmp_path, image_size=8, min_aesthetic_score=4.5)
    assert len(TrellisSource(tmp_path, image_size=8)) == 2  # without the filter the score is not read


def test_damaged_feature_file_is_named(tmp_path):
    objects = write_random_dataset(tmp_path, count=1, views=2, image_size=8)
    path = tmp_path / "features" / MODEL / f"{next(iter(objects))}.npz"
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with pytest.raises(ValueError, match=f"feature file {path} cannot be read.*extract_feature.py"):
        TrellisSource(tmp_path, image_size=8).load_voxels(0)


def test_object_with_another_feature_width_is_named(tmp_path):
    objects = write_random_dataset(tmp_path, count=2, views=2, image_size=8, channels=8)
    odd = sorted(objects)[1]
    coords = objects[odd][0]
    save_trellis_features(tmp_path / "features" / MODEL / f"{odd}.npz", coords, torch.randn(len(coords), 6))
    dataset = SLatDataset(TrellisSource(tmp_path, image_size=8), max_voxels=None)
    with pytest.raises(ValueError, match=f"same feature width.*{min(objects)}: 8, {odd}: 6"):
        collate_slat([dataset[0], dataset[1]])
