"""Variable-resolution images: each image of a folder keeps about its aspect ratio and is cropped
and resized to one shape of a small set (resolution buckets), as in NaViT- and VGGT-style training.

A bucket is a (height, width) whose sides are multiples of the patch size and whose pixels are
at most `max_pixels` (times scale^2 for each extra scale). The dataset exposes `sizes` (pixels
per item) and `groups` (bucket id per item), so budgeted batches (`BudgetBatchSampler` with
`groups`) hold one bucket's images, about the same number of pixels each.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image
from torch.utils.data import Dataset

from learnlib.data.collate import stack_collate
from learnlib.data.image_folder import ImageFolder, UnreadableImageError, load_image

# width / height: portrait 1:2 to landscape 2:1
DEFAULT_ASPECT_RATIOS = (1 / 2, 2 / 3, 3 / 4, 1.0, 4 / 3, 3 / 2, 2.0)


def bucket_shape(max_pixels: int, aspect: float, patch_size: int) -> tuple[int, int]:
    """The largest (height, width), both multiples of patch_size, with width / height close to
    `aspect` and height * width <= max_pixels (at least one patch)."""
    patches = max_pixels / patch_size**2
    rows = max(1, math.floor(math.sqrt(patches / aspect)))
    cols = max(1, math.floor(math.sqrt(patches * aspect)))
    return rows * patch_size, cols * patch_size


class ResolutionBuckets:
    """A small set of image shapes (height, width): one per aspect ratio and scale.

    `scales` (each in (0, 1]) add levels of scale^2 * max_pixels pixels; an image goes to the
    largest level it has the pixels for (the smallest level if none), and there to the shape
    whose aspect ratio is nearest its own (in log ratio).
    """

    def __init__(self, max_pixels: int, patch_size: int = 16, aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
                 scales: Sequence[float] = (1.0,)):
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}")
        if max_pixels < patch_size**2:
            raise ValueError(f"max_pixels ({max_pixels}) must hold at least one {patch_size}x{patch_size} patch")
        if not aspect_ratios or any(a <= 0 for a in aspect_ratios):
            raise ValueError(f"aspect_ratios (width / height) must be positive numbers, got {list(aspect_ratios)}")
        if not scales or any(not 0 < s <= 1 for s in scales):
            raise ValueError(f"scales must be numbers in (0, 1], got {list(scales)}")
        self.max_pixels, self.patch_size = int(max_pixels), int(patch_size)
        self.aspect_ratios = tuple(float(a) for a in aspect_ratios)
        self.scales = tuple(sorted({float(s) for s in scales}, reverse=True))  # largest first
        self.levels = [[bucket_shape(self.max_pixels * s * s, a, self.patch_size) for a in self.aspect_ratios]
                       for s in self.scales]
        self.shapes: list[tuple[int, int]] = sorted({shape for level in self.levels for shape in level})
        self._ids = {shape: i for i, shape in enumerate(self.shapes)}

    def assign(self, width: int, height: int) -> int:
        """The bucket id (index into `shapes`) of an image `width` x `height` pixels."""
        if width < 1 or height < 1:
            raise ValueError(f"an image needs a positive size, got {width}x{height}")
        pixels = width * height
        level = next((lv for s, lv in zip(self.scales, self.levels) if self.max_pixels * s * s <= pixels),
                     self.levels[-1])
        log_aspect = math.log(width / height)
        shape = min(level, key=lambda hw: abs(math.log(hw[1] / hw[0]) - log_aspect))
        return self._ids[shape]

    def __repr__(self) -> str:
        return f"ResolutionBuckets(max_pixels={self.max_pixels}, patch_size={self.patch_size}, shapes={self.shapes})"


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UnreadableImageError(Path(path), str(err)) from err


class VariableResolutionImages(Dataset):
    """(image (C, H, W), class index) pairs of an ImageFolder, image i at shape `shapes[groups[i]]`.

    `make_transform(shape)` gives the transform of one bucket shape (height, width): a PIL image
    to a (C, height, width) tensor. `sizes[i]` is the pixels of item i's bucket; `collate_fn`
    stacks the images of one bucket. Every image's header is read once, at construction, for
    its size.
    """

    collate_fn = staticmethod(stack_collate)

    def __init__(self, folder: ImageFolder, buckets: ResolutionBuckets,
                 make_transform: Callable[[tuple[int, int]], Callable]):
        self.folder, self.buckets = folder, buckets
        self.classes, self.targets = folder.classes, folder.targets
        self.shapes = buckets.shapes
        self.groups = [buckets.assign(*image_size(path)) for path, _ in folder.samples]
        self.sizes = [self.shapes[g][0] * self.shapes[g][1] for g in self.groups]
        self.transforms = {g: make_transform(self.shapes[g]) for g in sorted(set(self.groups))}

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int):
        path, label = self.folder.samples[index]
        image = load_image(path, self.folder.mode)
        return self.transforms[self.groups[index]](image), label

    def __repr__(self) -> str:
        used = sorted(set(self.groups))
        return (f"VariableResolutionImages(root={str(self.folder.root)!r}, images={len(self)}, "
                f"shapes={[self.shapes[g] for g in used]})")
