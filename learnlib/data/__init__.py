"""Datasets of the course and `build_datasets`, which the training path calls."""

from __future__ import annotations

from pathlib import Path

from learnlib.data.digits import DigitsDataset, digits_split

__all__ = ["DigitsDataset", "digits_split", "build_datasets", "DATASETS"]


def _digits(cfg):
    kwargs = dict(val_fraction=cfg.get("val_fraction", 0.2), seed=cfg.get("split_seed", 0),
                  size=cfg.get("size", 8), value_range=tuple(cfg.get("value_range", (-1.0, 1.0))))
    return DigitsDataset("train", max_shift=cfg.get("max_shift", 0), **kwargs), DigitsDataset("val", **kwargs)


def _image_folder(cfg):
    if cfg.get("root") is None:
        raise ValueError("data.root is not set: pass data.root=/path/to/dataset "
                         "(a folder with train/ and val/ class subfolders)")
    root = Path(str(cfg.root)).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data.root {root} does not exist")
    from learnlib.data.image_folder import ImageFolder
    from learnlib.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform

    size = cfg.get("image_size", 224)
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    train_tf = train_transform(size, scale=tuple(cfg.get("crop_scale", (0.08, 1.0))), hflip=cfg.get("hflip", 0.5),
                               mean=mean, std=std)
    eval_tf = eval_transform(size, crop_pct=cfg.get("crop_pct", 0.875), mean=mean, std=std)
    skip = cfg.get("skip_unreadable", False)
    train = ImageFolder(root / cfg.get("train_split", "train"), transform=train_tf, skip_unreadable=skip)
    val = ImageFolder(root / cfg.get("val_split", "val"), transform=eval_tf, skip_unreadable=skip)
    return train, val


DATASETS = {"digits": _digits, "image_folder": _image_folder}


def build_datasets(cfg):
    """(train, val) datasets for a `data` config whose `name` is one of DATASETS."""
    name = cfg.get("name")
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; available datasets: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](cfg)
