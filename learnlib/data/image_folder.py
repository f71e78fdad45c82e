"""A folder of images sorted into class subfolders (root/<class>/<image>), read with Pillow."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

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
