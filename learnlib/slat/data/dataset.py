"""Training data of the structured-latent VAE: per object voxels + features + views, and their batching.

Two sources share one interface (`names`, `resolution`, `num_voxels(i)`, `num_views(i)`,
`load_voxels(i)`, `load_views(i, view_ids)`):
- `MeshSource`: meshes (sample meshes by name, or mesh files) preprocessed by
  `learnlib.slat.data.features.preprocess_mesh` once and kept in a `SLatCache` folder;
- `learnlib.slat.data.trellis.TrellisSource`: a folder written by TRELLIS's dataset_toolkits.

`SLatDataset` returns one object per item (coords, feats, and one random view by default, as
TRELLIS's SparseFeat2Render), drops objects over `max_voxels`, and exposes `sizes` (voxel counts)
for the training loader's voxel-budget batches (`trainer.batching=budget`, one
`learnlib.train.batching.BudgetBatchSampler` for every dataset of the course). `collate_slat` packs items into one `learnlib.sparse.SparseTensor`.
`build(cfg) -> (train, val)` makes both splits from a `data` config.
"""

from __future__ import annotations

import hashlib
import math
import warnings

import torch
from torch import Tensor
from torch.utils.data import Dataset

from learnlib.data.meshes import load_mesh
from learnlib.data.procedural import procedural_names
from learnlib.data.registry import register_dataset
from learnlib.slat.data.cache import SLatCache
from learnlib.slat.data.extractors import make_backend
from learnlib.slat.data.features import (
    LIGHTINGS,
    TRELLIS_FOV_DEG,
    TRELLIS_RADIUS,
    SLatObject,
    preprocess_mesh,
)
from learnlib.sparse import SparseTensor
from learnlib.splat.cameras import Cameras

__all__ = ["DEFAULT_UP_AXES", "TRELLIS_MAX_VOXELS", "MeshSource", "SLatDataset", "build", "collate_slat", "load_mesh"]

TRELLIS_MAX_VOXELS = 32768
VIEW_SPLITS = ("all", "train", "heldout")
DEFAULT_UP_AXES = {"bunny": "y", "bunny10k": "y"}  # pymeshlab's bunnies are stored y-up


class MeshSource:
    """Meshes preprocessed once into `cache_dir` (voxels at `resolution`, `num_views` views at `image_size` px).

    `backend` is "patch_pool" (offline) or "dinov2" (`backend_kwargs` e.g. {"weights": path,
    "device": "cuda"}); the cache key holds the mesh name and every setting, so changing one
    preprocesses again into another file. `vary_cameras` shifts each object's Hammersley set by an
    offset drawn from its name (TRELLIS draws a random offset per object), so objects are not all
    seen from the same directions; the offset is reproducible, so the cache stays valid.
    `heldout_views` > 0 adds that many views from a second Hammersley set interleaved with the first
    (`learnlib.slat.data.features.heldout_offset`): views num_views.. of each object, never used for
    its voxel features; `SLatDataset(views="train" | "heldout")` splits on them.
    """

    def __init__(self, names, cache_dir, resolution: int = 32, num_views: int = 8, image_size: int = 64,
                 backend: str = "patch_pool", backend_kwargs: dict | None = None, visibility: bool = False,
                 radius: float = TRELLIS_RADIUS, fov_deg: float = TRELLIS_FOV_DEG, up_axes: dict | None = None,
                 vary_cameras: bool = True, lighting: str = "world", heldout_views: int = 0):
        if heldout_views < 0:
            raise ValueError(f"heldout_views must be >= 0, got {heldout_views}")
        self.heldout_views = int(heldout_views)
        self.names = [str(n) for n in names]
        if not self.names:
            raise ValueError("MeshSource needs at least one mesh name")
        self.cache = SLatCache(cache_dir)
        self.resolution, self.num_views_per_object, self.image_size = int(resolution), int(num_views), int(image_size)
        self.backend_name, self.backend_kwargs = backend, dict(backend_kwargs or {})
        self.visibility, self.radius, self.fov_deg = bool(visibility), float(radius), float(fov_deg)
        self.up_axes = {**DEFAULT_UP_AXES, **(up_axes or {})}
        self.vary_cameras = bool(vary_cameras)
        if lighting not in LIGHTINGS:
            raise ValueError(f"data.lighting must be one of {LIGHTINGS}, got {lighting!r}")
        self.lighting = lighting
        self._backend = None
        self._sizes: dict[int, int] = {}
        self._last: tuple[int, SLatObject] | None = None

    def settings(self, index: int) -> dict:
        name = self.names[index]
        kwargs = {k: str(v) for k, v in self.backend_kwargs.items() if k not in ("device", "batch_size", "model")}
        settings = {"resolution": self.resolution, "num_views": self.num_views_per_object,
                    "image_size": self.image_size, "radius": self.radius, "fov_deg": self.fov_deg,
                    "visibility": self.visibility, "backend": self.backend_name, "backend_kwargs": kwargs,
                    "up_axis": self.up_axes.get(name, "z"), "camera_offset": self.camera_offset(index),
                    "lighting": self.lighting}
        if self.heldout_views:  # absent when 0: caches made before held-out views existed stay valid
            settings["heldout_views"] = self.heldout_views
        return settings

    def camera_offset(self, index: int) -> tuple[float, float]:
        """The (du, dv) shift of object `index`'s Hammersley cameras: from its name, or (0, 0)."""
        if not self.vary_cameras:
            return (0.0, 0.0)
        digest = hashlib.sha1(self.names[index].encode()).digest()
        return (digest[0] / 256.0, digest[1] / 256.0)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def backend(self):
        if self._backend is None:
            self._backend = make_backend(self.backend_name, **self.backend_kwargs)
        return self._backend

    def _build(self, index: int) -> SLatObject:
        name = self.names[index]
        mesh = load_mesh(name, self.up_axes.get(name, "z"))
        return preprocess_mesh(mesh, self.backend, resolution=self.resolution, num_views=self.num_views_per_object,
                               image_size=self.image_size, radius=self.radius, fov_deg=self.fov_deg,
                               offset=self.camera_offset(index), visibility=self.visibility, name=name,
                               lighting=self.lighting, heldout_views=self.heldout_views)

    def prepare(self, index: int) -> None:
        """Preprocess object `index` into the cache unless it is there already."""
        settings = self.settings(index)
        if (self.names[index], settings) not in self.cache:
            self.cache.load_or_create(self.names[index], settings, lambda: self._build(index))

    def load(self, index: int) -> SLatObject:
        """The cached object `index` (preprocessed first when needed)."""
        return self.cache.load_or_create(self.names[index], self.settings(index), lambda: self._build(index))

    def num_voxels(self, index: int) -> int:
        if index not in self._sizes:
            self.prepare(index)
            self._sizes[index] = self.cache.num_voxels(self.names[index], self.settings(index))
        return self._sizes[index]

    def num_views(self, index: int) -> int:
        return self.num_views_per_object + self.heldout_views

    def heldout_ids(self, index: int) -> list[int]:
        """The ids of object `index`'s held-out views (after its training views); [] without held-out views."""
        return list(range(self.num_views_per_object, self.num_views_per_object + self.heldout_views))

    def _object(self, index: int) -> SLatObject:
        """The object `index`, reusing the last one read (an item reads voxels, then views)."""
        if self._last is None or self._last[0] != index:
            self._last = (index, self.load(index))
        return self._last[1]

    def load_voxels(self, index: int) -> tuple[Tensor, Tensor]:
        obj = self._object(index)
        return obj.coords, obj.feats

    def load_views(self, index: int, view_ids=None) -> tuple[Tensor, Tensor, Cameras]:
        obj = self._object(index)
        ids = list(range(len(obj.cameras))) if view_ids is None else [int(i) for i in view_ids]
        return obj.images[ids], obj.alphas[ids], obj.cameras[ids]


class SLatDataset(Dataset):
    """One item per object: dict(name, coords (N, 3) int64, feats (N, C) float32, images (k, 3, H, W),
    alphas (k, 1, H, W), cameras (k views)).

    `views_per_item` views are drawn at random per item (1, as TRELLIS); None returns all views.
    `views` picks which of an object's views the item may use: "all", "train" or "heldout", where
    with `holdout_every` = k > 0 the views i with i % k == k - 1 are held out (k = 0: none is), and
    a source with held-out views of its own (`MeshSource(heldout_views=...)`) holds those out.
    Objects with more than `max_voxels` voxels are skipped with a warning naming them
    (`on_too_large="error"` raises instead). `sizes` lists the voxel counts of the kept objects.
    """

    def __init__(self, source, views_per_item: int | None = 1, max_voxels: int | None = TRELLIS_MAX_VOXELS,
                 on_too_large: str = "skip", views: str = "all", holdout_every: int = 0):
        if on_too_large not in ("skip", "error"):
            raise ValueError(f"on_too_large must be 'skip' or 'error', got {on_too_large!r}")
        if views not in VIEW_SPLITS:
            raise ValueError(f"views must be one of {VIEW_SPLITS}, got {views!r}")
        own_heldout = bool(getattr(source, "heldout_views", 0))
        if own_heldout and holdout_every:
            raise ValueError(f"the source has {source.heldout_views} held-out views of its own; holdout_every must be "
                             f"0 then, got {holdout_every}")
        if not own_heldout and (holdout_every < 0 or holdout_every == 1 or (views == "heldout" and holdout_every == 0)):
            raise ValueError(f"holdout_every must be 0 (no held-out views) or >= 2, and >= 2 for views='heldout'; "
                             f"got {holdout_every} with views={views!r}")
        self.views, self.holdout_every = views, int(holdout_every)
        if views_per_item is not None and views_per_item < 1:
            raise ValueError(f"views_per_item must be >= 1 or None (all views), got {views_per_item}")
        self.source, self.views_per_item, self.max_voxels = source, views_per_item, max_voxels
        counts = [source.num_voxels(i) for i in range(len(source))]
        too_large = [(source.names[i], n) for i, n in enumerate(counts) if max_voxels is not None and n > max_voxels]
        if too_large:
            listed = ", ".join(f"{name} ({n} voxels)" for name, n in too_large[:5])
            message = (f"{len(too_large)} of {len(counts)} objects have more than max_voxels={max_voxels} voxels: "
                       f"{listed}{' ...' if len(too_large) > 5 else ''}")
            if on_too_large == "error":
                raise ValueError(message)
            warnings.warn(message + "; they are skipped", stacklevel=2)
        self.indices = [i for i, n in enumerate(counts) if max_voxels is None or n <= max_voxels]
        self.sizes = [counts[i] for i in self.indices]
        self.names = [source.names[i] for i in self.indices]
        self.skipped = [name for name, _ in too_large]

    def __len__(self) -> int:
        return len(self.indices)

    def view_ids(self, total: int, index: int | None = None) -> list[int]:
        """The ids of the views this dataset uses among an object's `total` views (`index`: the source's object)."""
        ids = list(range(total))
        if getattr(self.source, "heldout_views", 0) and self.views != "all":
            held = set(self.source.heldout_ids(self.indices[0] if index is None else index))
            return [i for i in ids if (i in held) == (self.views == "heldout")]
        k = self.holdout_every
        if self.views == "all" or k == 0:
            return ids
        held = [i for i in ids if i % k == k - 1]
        return held if self.views == "heldout" else [i for i in ids if i % k != k - 1]

    def collate_fn(self, items: list[dict]) -> dict:
        """The training loader's collate: `collate_slat`."""
        return collate_slat(items)

    def __getitem__(self, item: int) -> dict:
        index = self.indices[item]
        coords, feats = self.source.load_voxels(index)
        resolution = self.source.resolution
        if len(coords) == 0:
            raise ValueError(f"object {self.names[item]} has no voxels")
        if coords.min() < 0 or coords.max() >= resolution:
            raise ValueError(f"object {self.names[item]}: voxel coords must lie in [0, {resolution}), got "
                             f"[{int(coords.min())}, {int(coords.max())}]")
        allowed = self.view_ids(self.source.num_views(index), index)
        if not allowed:
            raise ValueError(f"object {self.names[item]} has no {self.views} views (holdout_every={self.holdout_every})")
        if self.views_per_item is None:
            view_ids = allowed
        else:
            picks = torch.randperm(len(allowed))[:min(self.views_per_item, len(allowed))].tolist()
            view_ids = [allowed[i] for i in picks]
        images, alphas, cameras = self.source.load_views(index, view_ids)
        if len(images) != len(cameras) or len(alphas) != len(cameras):
            raise ValueError(f"object {self.names[item]}: {len(images)} images, {len(alphas)} alphas and "
                             f"{len(cameras)} cameras; expected one of each per view")
        return {"name": self.names[item], "coords": coords, "feats": feats, "images": images, "alphas": alphas,
                "cameras": cameras, "resolution": resolution}


def _stack_or_list(tensors: list[Tensor]):
    return torch.stack(tensors) if len({tuple(t.shape) for t in tensors}) == 1 else tensors


def collate_slat(items: list[dict]) -> dict:
    """Pack SLatDataset items: feats = SparseTensor (features [sum N, C], coords int32 (batch, x, y, z),
    batch-contiguous), images (B, k, 3, H, W), alphas (B, k, 1, H, W) (lists when the objects' view
    counts or sizes differ), cameras (list of Cameras), names, and resolution (the items' voxel grid)
    when every item carries it."""
    if not items:
        raise ValueError("collate_slat needs at least one item")
    channels = {it["feats"].shape[1] for it in items}
    if len(channels) != 1:
        widths = ", ".join(f"{it['name']}: {it['feats'].shape[1]}" for it in items)
        raise ValueError(f"every object must have the same feature width, got {widths}")
    coords = torch.cat([torch.cat([torch.full((len(it["coords"]), 1), b, dtype=torch.int32), it["coords"].int()], dim=1)
                        for b, it in enumerate(items)])  # (sum N, 4)
    feats = torch.cat([it["feats"] for it in items])  # (sum N, C)
    resolution = max(it.get("resolution", int(it["coords"].max()) + 1) for it in items)
    sparse = SparseTensor(feats, coords, resolution=resolution, batch_size=len(items))
    batch = {"feats": sparse, "images": _stack_or_list([it["images"] for it in items]),
             "alphas": _stack_or_list([it["alphas"] for it in items]),
             "cameras": [it["cameras"] for it in items], "names": [it["name"] for it in items]}
    if all("resolution" in it for it in items):
        batch["resolution"] = resolution  # the data's voxel grid (data.resolution), checked by the task
    return batch


def _split(names: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = min(math.ceil(val_fraction * len(names)), len(names) - 1) if val_fraction > 0 else 0
    val = sorted(names[i] for i in order[:n_val])
    return [n for n in names if n not in set(val)], val


@register_dataset("slat")
def build(source: str = "meshes", views_per_item: int | None = 1, val_views_per_item: int | None = None,
          max_voxels: int | None = TRELLIS_MAX_VOXELS, val_fraction: float = 0.25, split_seed: int = 0,
          holdout_every: int = 0, resolution: int | None = None, image_size: int | None = None,
          meshes=None, procedural_meshes: int = 0, val_meshes=None, unseen_meshes=None, cache_dir: str | None = None, num_views: int = 8,
          backend: str = "patch_pool", backend_kwargs: dict | None = None, dinov2_weights: str | None = None,
          feature_device: str = "cpu", visibility: bool = False, up_axes: dict | None = None,
          vary_cameras: bool = True, lighting: str = "world", heldout_views: int = 0, root: str | None = None,
          model: str = "dinov2_vitl14_reg", min_aesthetic_score: float | None = None):
    """(train, val) SLatDatasets; the keywords are the keys of a `data` config.

    source: "meshes" | "trellis". views_per_item (1), val_views_per_item (None: every view of a
    held-out object), max_voxels (32768), val_fraction (0.25), split_seed (0), holdout_every (0: the
    training split uses every view and the validation split every view; k >= 2: views i with
    i % k == k - 1 are left out of training and are the validation split's views).
    For "meshes": meshes (names or files; default every sample mesh), val_meshes (explicit validation
    list, overrides val_fraction), procedural_meshes (0; k > 0: k procedural meshes
    "shapes/0" ... added to the training split only, learnlib.data.procedural), unseen_meshes (not loaded here: meshes an experiment keeps out of
    training and validation, for reports such as benchmarks/bench_slat_vae.py), cache_dir
    (~/.cache/learnlib/slat), resolution (32), num_views (8), image_size (64), backend ("patch_pool" |
    "dinov2"), backend_kwargs, dinov2_weights, feature_device ("cpu"), visibility (False), up_axes ({}),
    vary_cameras (True), lighting ("world" | "camera"), heldout_views (0; k > 0: k more views per mesh from a
    second Hammersley set interleaved with the first, never used for the features, are the validation
    split's views and never training targets; holdout_every must then be 0).
    For "trellis": root (required), model ("dinov2_vitl14_reg"), image_size (512), resolution (64),
    min_aesthetic_score (None).
    A validation split that would be empty falls back to the training objects.
    """
    val_fraction, seed = float(val_fraction), int(split_seed)
    if source == "meshes":
        from learnlib.data.meshes import list_sample_meshes

        names = list(meshes or list_sample_meshes())
        if not names:
            raise ValueError("no meshes: set data.meshes or install the mesh extra (pip install -e '.[mesh]')")
        if val_meshes is not None:
            val_names = list(val_meshes)
            train_names = [n for n in names if n not in set(val_names)]
        else:
            train_names, val_names = _split(names, val_fraction, seed)
        if not val_names and val_fraction == 0:  # validation falls back to the training objects: the named ones
            val_names = list(train_names)
        train_names += procedural_names(int(procedural_meshes))
        backend_kwargs = dict(backend_kwargs or {})
        if backend == "dinov2":
            backend_kwargs.setdefault("weights", dinov2_weights)
            backend_kwargs.setdefault("device", feature_device)
        common = {"cache_dir": cache_dir or "~/.cache/learnlib/slat",
                  "resolution": int(resolution or 32), "num_views": int(num_views),
                  "image_size": int(image_size or 64), "backend": backend, "backend_kwargs": backend_kwargs,
                  "visibility": bool(visibility), "up_axes": dict(up_axes or {}),
                  "vary_cameras": bool(vary_cameras), "lighting": str(lighting),
                  "heldout_views": int(heldout_views)}

        def make(subset):
            return MeshSource(subset, **common)
    elif source == "trellis":
        from learnlib.slat.data.trellis import TrellisSource

        if root is None:
            raise ValueError("data.root is not set: pass the folder written by TRELLIS's dataset_toolkits")
        full = TrellisSource(root, model=model, image_size=int(image_size or 512), resolution=int(resolution or 64),
                             min_aesthetic_score=min_aesthetic_score)
        train_names, val_names = _split(full.names, val_fraction, seed)

        def make(subset):
            return TrellisSource(full.root, model=full.model, image_size=full.image_size,
                                 resolution=full.resolution, min_aesthetic_score=min_aesthetic_score,
                                 instances=subset)
    else:
        raise ValueError(f"data.source must be 'meshes' or 'trellis', got {source!r}")
    holdout = int(holdout_every)
    split = bool(holdout) or (source == "meshes" and int(heldout_views) > 0)
    train = SLatDataset(make(train_names), views_per_item=views_per_item, max_voxels=max_voxels,
                        views="train" if split else "all", holdout_every=holdout)
    val = SLatDataset(make(val_names or train_names), views_per_item=val_views_per_item,
                      max_voxels=max_voxels, views="heldout" if split else "all", holdout_every=holdout)
    return train, val
