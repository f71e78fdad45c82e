"""Digits as variable-length sequences: one (row, column, intensity) triple per inked pixel."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from learnlib.data.digits import DigitsDataset


class DigitPixelSequences(Dataset):
    """Each digit becomes a sequence of its inked pixels (length varies per digit).

    Items are (sequence (L, 3), label) with columns row/7, column/7, intensity in [0, 1].
    """

    def __init__(self, split: str = "train", threshold: float = 0.25, **kwargs):
        images = DigitsDataset(split, value_range=(0.0, 1.0), **kwargs)
        self.sequences, self.labels = [], images.labels
        for image in images.images:
            rows, cols = torch.nonzero(image[0] > threshold, as_tuple=True)
            values = image[0, rows, cols]
            self.sequences.append(torch.stack([rows / 7.0, cols / 7.0, values], dim=1))  # (L, 3)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.sequences[index], int(self.labels[index])
