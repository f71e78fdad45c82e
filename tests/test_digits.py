"""Digits dataset: the stratified split, shift augmentation, batched fetching."""

import itertools

import numpy as np
import pytest
import torch

from learnlib.data.digits import DigitsDataset, digits_split, random_shift, random_shift_batch


def shifts_of(image: torch.Tensor, out: torch.Tensor, max_shift: int, fill: float) -> list[tuple[int, int]]:
    """Every translation (dy, dx) within max_shift that maps `image` to `out`."""
    size = image.shape[-1]
    padded = torch.nn.functional.pad(image, (max_shift,) * 4, value=fill)
    return [
        (dy, dx) for dy, dx in itertools.product(range(-max_shift, max_shift + 1), repeat=2)
        if torch.equal(padded[:, max_shift - dy: max_shift - dy + size, max_shift - dx: max_shift - dx + size], out)
    ]


def test_split_is_stratified_and_disjoint():
    train_idx, val_idx = digits_split()
    assert len(np.intersect1d(train_idx, val_idx)) == 0
    assert len(train_idx) + len(val_idx) == 1797
    labels = DigitsDataset("all").labels.numpy()
    val_counts = np.bincount(labels[val_idx], minlength=10)
    assert val_counts.min() >= 35 and val_counts.max() <= 37  # 20% of each class (174..183 digits)


@pytest.mark.parametrize("max_shift", [1, 2])
def test_batched_shift_translates_each_image_within_bounds(max_shift):
    torch.manual_seed(0)
    images = DigitsDataset("train").images[:200]  # (200, 1, 8, 8)
    out = random_shift_batch(images, max_shift, fill=-1.0)
    assert out.shape == images.shape
    seen = set()
    for image, shifted in zip(images, out):
        found = shifts_of(image, shifted, max_shift, -1.0)
        assert found, "a batched shift is not a translation within max_shift"
        seen.update(found)
    assert len(seen) == (2 * max_shift + 1) ** 2  # every offset occurs over 200 draws


def test_single_shift_is_a_translation():
    torch.manual_seed(1)
    image = DigitsDataset("train").images[7]
    assert shifts_of(image, random_shift(image, 1, -1.0), 1, -1.0)


def test_getitems_matches_getitem_without_augmentation():
    data = DigitsDataset("val")
    items = data.__getitems__([0, 5, 17])
    for index, (image, label) in zip([0, 5, 17], items):
        expected_image, expected_label = data[index]
        assert torch.equal(image, expected_image) and label == expected_label


def test_dataloader_uses_batched_fetch_with_shifts():
    data = DigitsDataset("train", max_shift=1)
    torch.manual_seed(0)
    images, labels = next(iter(torch.utils.data.DataLoader(data, batch_size=64)))
    assert images.shape == (64, 1, 8, 8) and torch.equal(labels, data.labels[:64])
    moved = sum(shifts_of(a, b, 1, -1.0) != [(0, 0)] for a, b in zip(data.images[:64], images))
    assert moved > 32  # 8 of 9 offsets move the digit
