"""The dataset registry: `build_datasets(cfg.data)` gives the (train, val) pair of a training config.

Dataset modules register a builder with `@register_dataset("name")`: a function whose keyword
arguments are the keys of its `data` config (all but `name`) and that returns (train, val).
"""

from __future__ import annotations

from collections.abc import Mapping

from learnlib.registry import Registry

# Modules whose import registers datasets, listed by name (a family's data lives in its own room).
DATASET_MODULES = ("learnlib.data.digits", "learnlib.data.image_datasets", "learnlib.slat.data.dataset")
DATASETS = Registry("dataset", DATASET_MODULES)
register_dataset = DATASETS.register


def build_datasets(cfg: Mapping):
    """(train, val) datasets for a `data` config whose `name` is a registered dataset.

    The other keys go to the builder as keyword arguments; an unknown key is a ValueError naming it
    and the builder's valid keys.
    """
    options = {str(key): value for key, value in cfg.items() if key != "name"}
    return DATASETS.build(cfg.get("name"), **options)
