"""ImageFolder and the Pillow/torch transforms, on tiny images written to a temporary folder."""

import re

import numpy as np
import pytest
import torch
from PIL import Image

from learnlib.data.image_folder import ImageFolder, UnreadableImageError
from learnlib.data.transforms import (
    CenterCrop,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ResizeToCover,
    ToTensor,
    eval_transform,
    train_transform,
)


def _write(path, size=(12, 10), value=0, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    Image.fromarray(array).save(path, format=fmt)
    return path


@pytest.fixture
def folder(tmp_path):
    _write(tmp_path / "cat" / "a.png", value=10)
    _write(tmp_path / "cat" / "b.JPG", value=20, fmt="JPEG")
    _write(tmp_path / "dog" / "c.bmp", value=30)
    _write(tmp_path / "dog" / "nested" / "d.webp", value=40)
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    return tmp_path


def test_classes_samples_and_labels(folder):
    ds = ImageFolder(folder)
    assert ds.classes == ["cat", "dog"]
    assert [(p.name, y) for p, y in ds.samples] == [("a.png", 0), ("b.JPG", 0), ("c.bmp", 1), ("d.webp", 1)]
    image, label = ds[2]
    assert label == 1 and image.mode == "RGB" and image.size == (12, 10)
    assert np.asarray(image)[0, 0].tolist() == [30, 30, 30]


def test_transform_gives_normalized_tensor(folder):
    ds = ImageFolder(folder, transform=eval_transform(8, crop_pct=1.0, mean=(0.5,) * 3, std=(0.5,) * 3))
    x, _ = ds[0]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32
    torch.testing.assert_close(x, torch.full((3, 8, 8), (10 / 255 - 0.5) / 0.5))


def test_missing_empty_and_imageless_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        ImageFolder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "empty")) + ".*no class subfolders"):
        ImageFolder(tmp_path / "empty")
    (tmp_path / "text" / "a").mkdir(parents=True)
    (tmp_path / "text" / "a" / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="no readable images"):
        ImageFolder(tmp_path / "text")


def test_unreadable_image_raises_with_path_or_is_skipped(folder):
    bad = folder / "cat" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    ds = ImageFolder(folder)
    index = [p for p, _ in ds.samples].index(bad)
    with pytest.raises(UnreadableImageError, match="broken.png") as info:
        ds[index]
    assert info.value.path == bad
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        skipping = ImageFolder(folder, skip_unreadable=True)
    assert len(skipping) == 4 and [p for p, _ in skipping.skipped] == [bad]


def test_train_transform_is_seedable_and_varies(folder):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    a = [train_transform(16, seed=3)(img) for _ in range(2)]
    torch.testing.assert_close(a[0], a[1])
    t = train_transform(16, seed=3)
    first, second = t(img), t(img)
    assert first.shape == (3, 16, 16) and not torch.equal(first, second)


def test_random_resized_crop_box_respects_bounds_and_scale():
    generator = torch.Generator().manual_seed(0)
    crop = RandomResizedCrop(8, scale=(0.25, 0.5), ratio=(0.5, 2.0), generator=generator)
    for _ in range(200):
        left, top, right, bottom = crop.box(60, 40)
        assert 0 <= left < right <= 60 and 0 <= top < bottom <= 40
        area = (right - left) * (bottom - top) / (60 * 40)
        assert 0.2 <= area <= 0.55


def test_flip_resize_center_crop_and_to_tensor():
    array = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    img = Image.fromarray(array)
    flipped = RandomHorizontalFlip(p=1.0)(img)
    np.testing.assert_array_equal(np.asarray(flipped), array[:, ::-1])
    assert RandomHorizontalFlip(p=0.0)(img) is img
    assert Resize(8)(img).size == (12, 8)  # shorter side (height 4) -> 8, aspect kept
    np.testing.assert_array_equal(np.asarray(CenterCrop(2)(img)), array[1:3, 2:4])
    tensor = ToTensor()(img)
    assert tensor.shape == (3, 4, 6)
    torch.testing.assert_close(tensor[:, 1, 2], torch.tensor(array[1, 2], dtype=torch.float32) / 255)
    with pytest.raises(ValueError, match="at least 5x5"):
        CenterCrop(5)(img)
    with pytest.raises(ValueError, match=r"\(3, H, W\).*\(1, 4, 6\)"):
        Normalize()(torch.zeros(1, 4, 6))


def test_rectangular_targets_keep_the_aspect_ratio_until_the_crop():
    array = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)  # height 4, width 6
    img = Image.fromarray(array)
    assert ResizeToCover((8, 16))(img).size == (16, 11)  # width 16 covers, height 4 * 16 / 6 rounds to 11
    assert ResizeToCover((12, 12))(img).size == (18, 12)
    np.testing.assert_array_equal(np.asarray(CenterCrop((2, 4))(img)), array[1:3, 1:5])
    crop = RandomResizedCrop((8, 16), generator=torch.Generator().manual_seed(0))
    assert crop(img).size == (16, 8)
    with pytest.raises(ValueError, match=r"at least 8x2 \(width x height\), got 6x4"):
        CenterCrop((2, 8))(img)


def test_splits_with_different_class_folders_are_refused_naming_the_difference(tmp_path):
    from learnlib.data.image_datasets import build_image_folder

    for split in ("train", "val"):
        for label, value in (("cat", 10), ("dog", 20)):
            _write(tmp_path / split / label / "a.png", value=value)
    (tmp_path / "train" / "aardvark").mkdir()  # empty: it would make cat 1 in train but 0 in val
    cfg = {"root": str(tmp_path), "image_size": 8}
    with pytest.raises(ValueError, match=r"hold different class folders \(only in train/: aardvark; only in val/: -\)"):
        build_image_folder(**cfg)
    (tmp_path / "val" / "aardvark").mkdir()
    train, val = build_image_folder(**cfg)
    assert train.classes == val.classes == ["aardvark", "cat", "dog"]
    assert [label for _, label in train.samples] == [label for _, label in val.samples] == [1, 2]
