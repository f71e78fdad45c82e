"""Datasets of the course and `build_datasets`, which the training path calls."""

from __future__ import annotations

from learnlib.data.digits import DigitsDataset, digits_split
from learnlib.data.registry import DATASETS, build_datasets, register_dataset

__all__ = ["DigitsDataset", "digits_split", "build_datasets", "register_dataset", "DATASETS"]
