"""scikit-learn's 8x8 handwritten digits as torch Datasets (the data ships in the wheel)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from learnlib.data.registry import register_dataset

DIGITS_MAX = 16.0  # pixel values of load_digits lie in [0, 16]


def digits_split(val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified train / held-out split of the 1,797 digits."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    labels = load_digits().target
    train_idx, val_idx = train_test_split(
        np.arange(len(labels)), test_size=val_fraction, stratify=labels, random_state=seed
    )
    return np.sort(train_idx), np.sort(val_idx)


class DigitsDataset(Dataset):
    """Digits as (image, label) pairs: image float32 (1, size, size) in `value_range`.

    `max_shift` > 0 translates each item by a random number of pixels in [-max_shift, max_shift]
    along each axis (background fills the border): a cheap augmentation for training.
    """

    def __init__(self, split: str = "train", val_fraction: float = 0.2, seed: int = 0,
                 size: int = 8, value_range: tuple[float, float] = (-1.0, 1.0), max_shift: int = 0):
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
        if size < 8:
            raise ValueError(f"size must be >= 8 (the native resolution), got {size}")
        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32) / DIGITS_MAX  # (1797, 8, 8)
        images = images.unsqueeze(1)  # (1797, 1, 8, 8)
        if size != 8:
            images = torch.nn.functional.interpolate(
                images, size=(size, size), mode="bilinear", align_corners=False
            ).clamp(0, 1)  # (1797, 1, size, size)
        low, high = value_range
        images = images * (high - low) + low
        labels = torch.tensor(digits.target, dtype=torch.long)
        if split != "all":
            train_idx, val_idx = digits_split(val_fraction, seed)
            idx = torch.as_tensor(train_idx if split == "train" else val_idx)
            images, labels = images[idx], labels[idx]
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.images, self.labels = images, labels
        self.num_classes, self.max_shift, self.background = 10, max_shift, low

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        if self.max_shift:
            image = random_shift(image, self.max_shift, self.background)
        return image, self.labels[index]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A batch of items at once (DataLoader calls this when it exists); shifts drawn in one go."""
        index = torch.as_tensor(indices, dtype=torch.long)
        images = self.images[index]  # (B, C, H, W)
        if self.max_shift:
            images = random_shift_batch(images, self.max_shift, self.background)
        return list(zip(images.unbind(0), self.labels[index].unbind(0)))


def random_shift(image: torch.Tensor, max_shift: int, fill: float) -> torch.Tensor:
    """`image` (C, H, W) translated by random integers in [-max_shift, max_shift] (torch's global RNG)."""
    return random_shift_batch(image[None], max_shift, fill)[0]  # (C, H, W)


def random_shift_batch(images: torch.Tensor, max_shift: int, fill: float) -> torch.Tensor:
    """Each image of `images` (B, C, H, W) translated by its own random integers in [-max_shift, max_shift]."""
    batch, _, size_h, size_w = images.shape
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2, batch, 1))  # 2 x (B, 1)
    padded = torch.nn.functional.pad(images, (max_shift,) * 4, value=fill)  # (B, C, H + 2s, W + 2s)
    rows = max_shift - dy + torch.arange(size_h)  # (B, H) source row of each output row
    cols = max_shift - dx + torch.arange(size_w)  # (B, W)
    picked = padded[torch.arange(batch)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return picked.permute(0, 3, 1, 2)  # (B, C, H, W)


@register_dataset("digits")
def build_digits(size: int = 8, max_shift: int = 0, value_range: tuple[float, float] = (-1.0, 1.0),
                 val_fraction: float = 0.2, split_seed: int = 0) -> tuple[DigitsDataset, DigitsDataset]:
    """Train (with `max_shift` augmentation) and held-out digits; the keywords are the `data` config's keys."""
    kwargs = {"val_fraction": val_fraction, "seed": split_seed, "size": size, "value_range": tuple(value_range)}
    return DigitsDataset("train", max_shift=max_shift, **kwargs), DigitsDataset("val", **kwargs)
