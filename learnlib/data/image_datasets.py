"""The registered "image_folder" dataset: train/ and val/ class folders with their transforms."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import Dataset

from learnlib.data.image_folder import ImageFolder, check_same_classes
from learnlib.data.registry import register_dataset
from learnlib.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    bucket_train_transform,
    eval_transform,
    train_transform,
)
from learnlib.data.variable_resolution import (
    DEFAULT_ASPECT_RATIOS,
    ResolutionBuckets,
    VariableResolutionImages,
)


@register_dataset("image_folder")
def build_image_folder(root: str | None = None, image_size: int = 224, resolution: str = "fixed",
                       mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                       crop_scale: Sequence[float] = (0.08, 1.0), hflip: float = 0.5, crop_pct: float = 0.875,
                       skip_unreadable: bool = False, train_split: str = "train", val_split: str = "val",
                       max_pixels: int | None = None, patch_size: int | None = None,
                       aspect_ratios: Sequence[float] | None = None,
                       scales: Sequence[float] | None = None) -> tuple[Dataset, ImageFolder]:
    """Train and val ImageFolders under `root` (train/ and val/ class subfolders) with their transforms.

    `resolution="variable"` makes the training set a VariableResolutionImages: each image about
    its own aspect ratio, at a bucket shape of at most `max_pixels` (default image_size^2)
    with sides multiples of `patch_size` (default 16), for `aspect_ratios` (width / height) and
    `scales`; it needs budgeted batches (trainer.batching=budget). The val set stays image_size square.
    """
    if root is None:
        raise ValueError("data.root is not set: pass data.root=/path/to/dataset "
                         "(a folder with train/ and val/ class subfolders)")
    folder = Path(str(root)).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"data.root {folder} does not exist")
    if resolution not in ("fixed", "variable"):
        raise ValueError(f"data.resolution must be 'fixed' or 'variable', got {resolution!r}")
    mean, std, scale = tuple(mean), tuple(std), tuple(crop_scale)
    eval_tf = eval_transform(image_size, crop_pct=crop_pct, mean=mean, std=std)
    train_root = folder / train_split
    check_same_classes(train_root, folder / val_split)
    if resolution == "variable":
        buckets = ResolutionBuckets(max_pixels or image_size * image_size, patch_size or 16,
                                    tuple(aspect_ratios or DEFAULT_ASPECT_RATIOS), tuple(scales or (1.0,)))
        train = VariableResolutionImages(
            ImageFolder(train_root, skip_unreadable=skip_unreadable), buckets,
            lambda shape: bucket_train_transform(shape, scale=scale, hflip=hflip, mean=mean, std=std))
    else:
        train_tf = train_transform(image_size, scale=scale, hflip=hflip, mean=mean, std=std)
        train = ImageFolder(train_root, transform=train_tf, skip_unreadable=skip_unreadable)
    val = ImageFolder(folder / val_split, transform=eval_tf, skip_unreadable=skip_unreadable)
    return train, val
