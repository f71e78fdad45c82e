"""On-disk cache of preprocessed SLat objects, keyed by mesh name, the mesh file's content and the settings.

One file per object, `<cache_dir>/<name>-<hash of the settings and content>.npz`, holding
  coords int16 (N, 3), feats float16 (N, C), images uint8 (V, H, W, 3), alphas uint8 (V, H, W, 1),
  viewmats float32 (V, 4, 4), Ks float32 (V, 3, 3), meta (a JSON string: name, resolution,
  width, height, settings).
Images and alphas are stored as 8-bit (like the PNG renders of TRELLIS) and features as float16 (like
its feature files); `load_or_create` always returns what the file holds, so a notebook and a training
run see identical objects. Files are written to a temporary file in the same folder, then renamed:
a failed or interrupted run leaves every cached file as it was; temporary files a killed run left
behind are removed once they are an hour old. When the name is a mesh file, the key holds a hash of
its bytes: a mesh edited in place is preprocessed again; a procedural mesh ("shapes/<seed>") is keyed by its
recipe's version. A cached file that cannot be read (truncated,
empty) is rebuilt by `load_or_create` with a warning naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from learnlib.atomic import atomic_open
from learnlib.data.procedural import PROCEDURAL_VERSION, is_procedural
from learnlib.slat.data.features import SLatObject
from learnlib.splat.cameras import Cameras

__all__ = ["SLatCache", "settings_key"]

_FORMAT_VERSION = 1
ORPHAN_AGE_S = 3600.0  # a temporary file this old belongs to no running write
_content_hashes: dict[tuple, str] = {}


def content_hash(name: str) -> str | None:
    """SHA-1 of the file `name` when it is a file (kept per path, size and mtime), the recipe's version for a
    procedural mesh (learnlib.data.procedural), else None (a sample mesh)."""
    if is_procedural(name):
        return f"procedural-v{PROCEDURAL_VERSION}"
    path = Path(name).expanduser()
    if not path.is_file():
        return None
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _content_hashes:
        digest = hashlib.sha1()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _content_hashes[key] = digest.hexdigest()
    return _content_hashes[key]


def settings_key(name: str, settings: dict) -> str:
    """File stem for an object: its name (made file-safe) and a hash of the JSON of its settings and, when
    the name is a file, of that file's content."""
    content = content_hash(name)
    extra = {} if content is None else {"content_sha1": content}
    blob = json.dumps({"version": _FORMAT_VERSION, "name": name, **settings, **extra}, sort_keys=True, default=str)
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
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"data.cache_dir {self.root} is a file, not a folder: point data.cache_dir at a folder")
        self._checked_writable = False
        self.remove_orphans()

    def remove_orphans(self, age_s: float = ORPHAN_AGE_S) -> list[Path]:
        """Delete temporary files of interrupted writes older than `age_s` seconds; returns them."""
        if not self.root.is_dir():
            return []
        now, removed = time.time(), []
        for tmp in self.root.glob(".*.npz.*.tmp"):
            try:
                if now - tmp.stat().st_mtime > age_s:
                    tmp.unlink()
                    removed.append(tmp)
            except OSError:  # removed meanwhile by another process, or not ours to remove
                pass
        return removed

    def check_writable(self) -> None:
        """Raise OSError naming the folder (and what to do) when cache files cannot be written there."""
        if self._checked_writable:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-probe-{os.getpid()}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise OSError(f"cannot write the SLat cache in {self.root} ({err.strerror or err}): set data.cache_dir "
                          "to a writable folder") from None
        self._checked_writable = True

    def path(self, name: str, settings: dict) -> Path:
        return self.root / f"{settings_key(name, settings)}.npz"

    def __contains__(self, item: tuple[str, dict]) -> bool:
        return self.path(*item).is_file()

    def save(self, obj: SLatObject, settings: dict) -> Path:
        """Write `obj` atomically (temporary file + rename) and return its path."""
        self.check_writable()
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
        try:
            with atomic_open(path) as handle:
                np.savez(handle, **arrays)
        except OSError as err:
            raise OSError(f"cannot write the SLat cache file {path} ({err.strerror or err}): free space there or "
                          "set data.cache_dir to another folder") from None
        return path

    def load(self, name: str, settings: dict) -> SLatObject:
        """The cached object; FileNotFoundError naming the file when it is not cached."""
        path = self.path(name, settings)
        if not path.is_file():
            raise FileNotFoundError(f"{name!r} with these settings is not cached: {path} does not exist")
        return read_cached_object(path)

    def num_voxels(self, name: str, settings: dict) -> int:
        """Voxel count of a cached object, reading only its coords."""
        path = self.path(name, settings)
        try:
            with np.load(path) as data:
                return int(data["coords"].shape[0])
        except Exception as err:  # noqa: BLE001 numpy and zipfile raise many types for a damaged file
            raise _unreadable(path, err) from None

    def load_or_create(self, name: str, settings: dict, build: Callable[[], SLatObject],
                       overwrite: bool = False) -> SLatObject:
        """The cached object, or `build()` written to the cache first (also when `overwrite`)."""
        path = self.path(name, settings)
        if not overwrite and path.is_file():
            try:
                return read_cached_object(path)
            except ValueError as err:
                warnings.warn(f"{err}; preprocessing {name!r} again", stacklevel=2)
        self.check_writable()  # before the preprocessing work, not after it
        obj = build()
        if obj.name != name:
            raise ValueError(f"build() returned an object named {obj.name!r}, expected {name!r}")
        self.save(obj, settings)
        return read_cached_object(path)


def _unreadable(path, err: BaseException) -> ValueError:
    return ValueError(f"SLat cache file {path} cannot be read ({type(err).__name__}: {str(err)[:120]}); it is "
                      "truncated or damaged: delete it and it is preprocessed again")


def read_cached_object(path) -> SLatObject:
    """Read one cache file (see the module docstring for its arrays); ValueError naming a damaged file."""
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float() / 255.0  # (V, 3, H, W)
            alphas = torch.from_numpy(data["alphas"]).permute(0, 3, 1, 2).float() / 255.0  # (V, 1, H, W)
            cameras = Cameras(torch.from_numpy(data["viewmats"]), torch.from_numpy(data["Ks"]), meta["width"],
                              meta["height"])
            return SLatObject(meta["name"], meta["resolution"], torch.from_numpy(data["coords"].astype(np.int64)),
                              torch.from_numpy(data["feats"].astype(np.float32)), images, alphas, cameras)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 numpy and zipfile raise many types for a damaged file
        raise _unreadable(path, err) from None
