"""On-disk cache of preprocessed SLat objects, keyed by mesh name + preprocessing settings.

One file per object, `<cache_dir>/<name>-<hash of the settings>.npz`, holding
  coords int16 (N, 3), feats float16 (N, C), images uint8 (V, H, W, 3), alphas uint8 (V, H, W, 1),
  viewmats float32 (V, 4, 4), Ks float32 (V, 3, 3), meta (a JSON string: name, resolution,
  width, height, settings).
Images and alphas are stored as 8-bit (like the PNG renders of TRELLIS) and features as float16 (like
its feature files); `load_or_create` always returns what the file holds, so a notebook and a training
run see identical objects. Files are written to a temporary file in the same folder, then renamed:
a failed or interrupted run leaves every cached file as it was.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from learnlib.atomic import atomic_open
from learnlib.slat.data.features import SLatObject
from learnlib.splat.cameras import Cameras

__all__ = ["SLatCache", "settings_key"]

_FORMAT_VERSION = 1


def settings_key(name: str, settings: dict) -> str:
    """File stem for an object: its name (made file-safe) and a hash of the JSON of its settings."""
    blob = json.dumps({"version": _FORMAT_VERSION, "name": name, **settings}, sort_keys=True, default=str)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "object"
    return f"{safe}-{digest}"


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()


class SLatCache:
    """Folder of cached `SLatObject`s; `load_or_create(name, settings, build)` computes each one once."""

    def __init__(self, root):
        if root is None:
            raise ValueError("a cache directory is required (data.cache_dir)")
        self.root = Path(root).expanduser()

    def path(self, name: str, settings: dict) -> Path:
        return self.root / f"{settings_key(name, settings)}.npz"

    def __contains__(self, item: tuple[str, dict]) -> bool:
        return self.path(*item).is_file()

    def save(self, obj: SLatObject, settings: dict) -> Path:
        """Write `obj` atomically (temporary file + rename) and return its path."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(obj.name, settings)
        meta = {"name": obj.name, "resolution": obj.resolution, "width": obj.cameras.width,
                "height": obj.cameras.height, "settings": settings, "version": _FORMAT_VERSION}
        arrays = {
            "coords": obj.coords.numpy().astype(np.int16),
            "feats": obj.feats.detach().float().numpy().astype(np.float16),
            "images": _to_uint8(obj.images.permute(0, 2, 3, 1)),  # (V, H, W, 3)
            "alphas": _to_uint8(obj.alphas.permute(0, 2, 3, 1)),  # (V, H, W, 1)
            "viewmats": obj.cameras.viewmats.float().numpy(),
            "Ks": obj.cameras.Ks.float().numpy(),
            "meta": np.array(json.dumps(meta, default=str)),
        }
        with atomic_open(path) as handle:
            np.savez(handle, **arrays)
        return path

    def load(self, name: str, settings: dict) -> SLatObject:
        """The cached object; FileNotFoundError naming the file when it is not cached."""
        path = self.path(name, settings)
        if not path.is_file():
            raise FileNotFoundError(f"{name!r} with these settings is not cached: {path} does not exist")
        return read_cached_object(path)

    def num_voxels(self, name: str, settings: dict) -> int:
        """Voxel count of a cached object, reading only its coords."""
        with np.load(self.path(name, settings)) as data:
            return int(data["coords"].shape[0])

    def load_or_create(self, name: str, settings: dict, build: Callable[[], SLatObject],
                       overwrite: bool = False) -> SLatObject:
        """The cached object, or `build()` written to the cache first (also when `overwrite`)."""
        path = self.path(name, settings)
        if overwrite or not path.is_file():
            obj = build()
            if obj.name != name:
                raise ValueError(f"build() returned an object named {obj.name!r}, expected {name!r}")
            self.save(obj, settings)
        return read_cached_object(path)


def read_cached_object(path) -> SLatObject:
    """Read one cache file (see the module docstring for its arrays)."""
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float() / 255.0  # (V, 3, H, W)
        alphas = torch.from_numpy(data["alphas"]).permute(0, 3, 1, 2).float() / 255.0  # (V, 1, H, W)
        cameras = Cameras(torch.from_numpy(data["viewmats"]), torch.from_numpy(data["Ks"]), meta["width"], meta["height"])
        return SLatObject(meta["name"], meta["resolution"], torch.from_numpy(data["coords"].astype(np.int64)),
                          torch.from_numpy(data["feats"].astype(np.float32)), images, alphas, cameras)
