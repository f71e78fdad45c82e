"""Image transforms in Pillow and torch: the minimal ImageNet-style train and eval pipelines.

Random transforms draw from an optional `torch.Generator` (seeded, reproducible); without
one they use torch's global generator, which DataLoader seeds differently in each worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CenterCrop",
    "Compose",
    "Normalize",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "ResizeToCover",
    "ToTensor",
    "bucket_eval_transform",
    "bucket_train_transform",
    "eval_transform",
    "train_transform",
]


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) of a side length or of a (height, width) pair."""
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


class Compose:
    """Apply transforms one after another."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class RandomResizedCrop:
    """Crop a random region (area fraction in `scale`, aspect ratio width / height in `ratio`)
    and resize it to size x size, or to (height, width) if `size` is a pair; after 10 failed
    draws, fall back to the largest central crop."""

    def __init__(self, size: int | tuple[int, int], scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 interpolation=Image.Resampling.BILINEAR, generator: torch.Generator | None = None):
        if not (0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
        self.size, self.scale, self.ratio = size, scale, ratio
        self.interpolation, self.generator = interpolation, generator

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the crop for an image of this size."""
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * _uniform(*self.scale, self.generator)
            aspect = math.exp(_uniform(*log_ratio, self.generator))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                left = int(torch.randint(0, width - w + 1, (), generator=self.generator))
                top = int(torch.randint(0, height - h + 1, (), generator=self.generator))
                return left, top, left + w, top + h
        aspect = min(max(width / height, self.ratio[0]), self.ratio[1])
        if width / height <= aspect:
            w, h = width, round(width / aspect)
        else:
            w, h = round(height * aspect), height
        left, top = (width - w) // 2, (height - h) // 2
        return left, top, left + w, top + h

    def __call__(self, img: Image.Image) -> Image.Image:
        height, width = _pair(self.size)
        return img.resize((width, height), self.interpolation, box=self.box(*img.size))

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    """Mirror the image left-right with probability p."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        self.p, self.generator = p, generator

    def __call__(self, img: Image.Image) -> Image.Image:
        if torch.rand((), generator=self.generator).item() < self.p:
            return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Resize:
    """Resize so that the shorter side equals `size`, keeping the aspect ratio."""

    def __init__(self, size: int, interpolation=Image.Resampling.BILINEAR):
        self.size, self.interpolation = size, interpolation

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        scale = self.size / min(w, h)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        return img.resize(new, self.interpolation) if new != (w, h) else img

    def __repr__(self) -> str:
        return f"Resize(shorter_side={self.size})"


class ResizeToCover:
    """Resize, keeping the aspect ratio, to the smallest image that covers (height, width)."""

    def __init__(self, size: tuple[int, int], interpolation=Image.Resampling.BILINEAR):
        self.size, self.interpolation = _pair(size), interpolation

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        height, width = self.size
        scale = max(height / h, width / w)
        new = (max(width, round(w * scale)), max(height, round(h * scale)))
        return img.resize(new, self.interpolation) if new != (w, h) else img

    def __repr__(self) -> str:
        return f"ResizeToCover(size={self.size})"


class CenterCrop:
    """Cut the central size x size square, or (height, width) region if `size` is a pair
    (the image must be at least that large)."""

    def __init__(self, size: int | tuple[int, int]):
        self.size = size

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        height, width = _pair(self.size)
        if w < width or h < height:
            raise ValueError(f"CenterCrop({self.size}) needs an image at least {width}x{height} (width x height), "
                             f"got {w}x{h}")
        left, top = (w - width) // 2, (h - height) // 2
        return img.crop((left, top, left + width, top + height))

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class ToTensor:
    """PIL image -> float32 tensor (C, H, W) with values in [0, 1]."""

    def __call__(self, img: Image.Image) -> torch.Tensor:
        array = np.asarray(img, dtype=np.float32) / 255.0  # (H, W) or (H, W, C)
        if array.ndim == 2:
            array = array[:, :, None]  # (H, W, 1)
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()  # (C, H, W)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """(x - mean) / std per channel of a (C, H, W) tensor."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)  # (C, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)  # (C, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[0] != self.mean.shape[0]:
            raise ValueError(f"Normalize expects a ({self.mean.shape[0]}, H, W) tensor, got {tuple(x.shape)}")
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


def train_transform(size: int = 224, scale=(0.08, 1.0), hflip: float = 0.5, mean=IMAGENET_MEAN,
                    std=IMAGENET_STD, seed: int | None = None) -> Compose:
    """Random resized crop + horizontal flip + to tensor + normalize; `seed` makes it reproducible."""
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return Compose([RandomResizedCrop(size, scale=scale, generator=generator),
                    RandomHorizontalFlip(hflip, generator=generator), ToTensor(), Normalize(mean, std)])


def bucket_train_transform(shape: tuple[int, int], scale=(0.08, 1.0), hflip: float = 0.5, mean=IMAGENET_MEAN,
                           std=IMAGENET_STD) -> Compose:
    """`train_transform` for a (height, width) target: random crops whose aspect ratio lies within
    3/4 and 4/3 of the target's, resized to exactly (height, width)."""
    height, width = _pair(shape)
    aspect = width / height
    return Compose([RandomResizedCrop((height, width), scale=scale, ratio=(aspect * 3 / 4, aspect * 4 / 3)),
                    RandomHorizontalFlip(hflip), ToTensor(), Normalize(mean, std)])


def bucket_eval_transform(shape: tuple[int, int], crop_pct: float = 0.875, mean=IMAGENET_MEAN,
                          std=IMAGENET_STD) -> Compose:
    """`eval_transform` for a (height, width) target: resize to cover (height, width) / crop_pct,
    keeping the aspect ratio, then center-crop (height, width)."""
    height, width = _pair(shape)
    cover = (math.floor(height / crop_pct), math.floor(width / crop_pct))
    return Compose([ResizeToCover(cover), CenterCrop((height, width)), ToTensor(), Normalize(mean, std)])


def eval_transform(size: int = 224, crop_pct: float = 0.875, mean=IMAGENET_MEAN,
                   std=IMAGENET_STD) -> Compose:
    """Resize the shorter side to size / crop_pct, center-crop size x size, to tensor, normalize."""
    return Compose([Resize(math.floor(size / crop_pct)), CenterCrop(size), ToTensor(), Normalize(mean, std)])
