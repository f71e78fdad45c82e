"""A folder of images sorted into class subfolders (root/<class>/<image>), read with Pillow."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

from learnlib.data.registry import register_dataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class UnreadableImageError(OSError):
    """An image file that Pillow cannot decode; `path` names the file."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = path


def load_image(path: str | Path, mode: str = "RGB") -> Image.Image:
    """Open and decode an image, converted to `mode`; UnreadableImageError names a bad file."""
    try:
        with Image.open(path) as img:
            return img.convert(mode)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UnreadableImageError(Path(path), str(err)) from err


def class_names(root: Path) -> list[str]:
    """The class subfolders of `root`, sorted: a class's index is its position here."""
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def check_same_classes(train_root: Path, val_root: Path) -> None:
    """ValueError naming the class folders that only one split holds (they would shift the labels)."""
    if not (train_root.is_dir() and val_root.is_dir()):
        return  # ImageFolder names a missing split
    train, val = class_names(train_root), class_names(val_root)
    if train != val:
        only = [f"only in {split.name}/: {', '.join(sorted(set(a) - set(b))) or '-'}"
                for split, a, b in ((train_root, train, val), (val_root, val, train))]
        raise ValueError(f"{train_root.name}/ and {val_root.name}/ under {train_root.parent} hold different class "
                         f"folders ({'; '.join(only)}), which would give one class two labels: give both splits the "
                         "same class folders (an empty one counts)")


class ImageFolder(Dataset):
    """(image, class index) pairs from root/<class_name>/<file>; classes sorted by name.

    `transform` maps a PIL image (converted to `mode`) to what the model takes. With
    `skip_unreadable=True` every file is decoded once at construction and the ones that fail
    are left out and listed in `self.skipped` as (path, reason); otherwise a bad file raises
    UnreadableImageError naming it when it is read.
    """

    def __init__(self, root: str | Path, transform: Callable | None = None,
                 extensions: tuple[str, ...] = IMAGE_EXTENSIONS, mode: str = "RGB",
                 skip_unreadable: bool = False):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist (or is not a directory)")
        self.transform, self.mode = transform, mode
        extensions = tuple(e.lower() for e in extensions)
        self.classes = class_names(self.root)
        if not self.classes:
            raise ValueError(
                f"image folder {self.root} has no class subfolders; expected root/<class>/<image>"
            )
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples: list[tuple[Path, int]] = [
            (path, self.class_to_idx[name])
            for name in self.classes
            for path in sorted((self.root / name).rglob("*"))
            if path.is_file() and path.suffix.lower() in extensions
        ]
        self.skipped: list[tuple[Path, str]] = []
        if skip_unreadable:
            self._drop_unreadable()
        if not self.samples:
            raise ValueError(f"image folder {self.root} contains no readable images with extensions "
                             f"{', '.join(extensions)} under its class subfolders {self.classes}")
        self.targets = [label for _, label in self.samples]

    def _drop_unreadable(self) -> None:
        kept = []
        for path, label in self.samples:
            try:
                load_image(path, self.mode)
            except UnreadableImageError as err:
                self.skipped.append((path, str(err.__cause__ or err)))
            else:
                kept.append((path, label))
        self.samples = kept
        if self.skipped:
            first = ", ".join(str(p) for p, _ in self.skipped[:3])
            warnings.warn(f"skipped {len(self.skipped)} unreadable image(s) in {self.root}: {first}"
                          + (" ..." if len(self.skipped) > 3 else ""), stacklevel=3)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        image = load_image(path, self.mode)
        return (self.transform(image) if self.transform is not None else image), label

    def __repr__(self) -> str:
        return f"ImageFolder(root={str(self.root)!r}, images={len(self)}, classes={len(self.classes)})"


@register_dataset("image_folder")
def build_image_folder(cfg) -> tuple[Dataset, ImageFolder]:
    """Train and val ImageFolders under `cfg.root` (train/ and val/ class subfolders) with their transforms.

    `resolution: variable` makes the training set a VariableResolutionImages: each image about
    its own aspect ratio, at a bucket shape of at most `max_pixels` (default image_size^2)
    with sides multiples of `patch_size`, for `aspect_ratios` (width / height) and `scales`;
    it needs budgeted batches (trainer.batching=budget). The val set stays image_size square.
    """
    if cfg.get("root") is None:
        raise ValueError("data.root is not set: pass data.root=/path/to/dataset "
                         "(a folder with train/ and val/ class subfolders)")
    root = Path(str(cfg.root)).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data.root {root} does not exist")
    from learnlib.data.transforms import (
        IMAGENET_MEAN,
        IMAGENET_STD,
        bucket_train_transform,
        eval_transform,
        train_transform,
    )

    resolution = cfg.get("resolution", "fixed")
    if resolution not in ("fixed", "variable"):
        raise ValueError(f"data.resolution must be 'fixed' or 'variable', got {resolution!r}")
    size = cfg.get("image_size", 224)
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    scale, hflip = tuple(cfg.get("crop_scale", (0.08, 1.0))), cfg.get("hflip", 0.5)
    eval_tf = eval_transform(size, crop_pct=cfg.get("crop_pct", 0.875), mean=mean, std=std)
    skip = cfg.get("skip_unreadable", False)
    train_root = root / cfg.get("train_split", "train")
    check_same_classes(train_root, root / cfg.get("val_split", "val"))
    if resolution == "variable":
        from learnlib.data.variable_resolution import (
            DEFAULT_ASPECT_RATIOS,
            ResolutionBuckets,
            VariableResolutionImages,
        )

        buckets = ResolutionBuckets(cfg.get("max_pixels") or size * size, cfg.get("patch_size") or 16,
                                    tuple(cfg.get("aspect_ratios") or DEFAULT_ASPECT_RATIOS),
                                    tuple(cfg.get("scales") or (1.0,)))
        train = VariableResolutionImages(
            ImageFolder(train_root, skip_unreadable=skip), buckets,
            lambda shape: bucket_train_transform(shape, scale=scale, hflip=hflip, mean=mean, std=std))
    else:
        train_tf = train_transform(size, scale=scale, hflip=hflip, mean=mean, std=std)
        train = ImageFolder(train_root, transform=train_tf, skip_unreadable=skip)
    val = ImageFolder(root / cfg.get("val_split", "val"), transform=eval_tf, skip_unreadable=skip)
    return train, val
