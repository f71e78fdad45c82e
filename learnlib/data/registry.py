"""The dataset registry: `build_datasets(cfg.data)` gives the (train, val) pair of a training config.

Dataset modules register a builder `cfg -> (train, val)` with `@register_dataset("name")`.
"""

from __future__ import annotations

from learnlib.registry import Registry

# Modules whose import registers datasets. Each chapter adds its module here.
DATASET_MODULES = ("learnlib.data.digits", "learnlib.data.image_folder", "learnlib.slat.data.dataset")
DATASETS = Registry("dataset", DATASET_MODULES)
register_dataset = DATASETS.register


def build_datasets(cfg):
    """(train, val) datasets for a `data` config whose `name` is a registered dataset."""
    return DATASETS.get(cfg.get("name"))(cfg)
