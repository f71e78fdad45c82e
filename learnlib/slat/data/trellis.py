"""Read (and write) a dataset folder in the layout of TRELLIS's dataset_toolkits.

    <root>/metadata.csv                      one row per object: sha256, ... (build_metadata.py);
                                             optional columns used here: num_voxels (voxelize.py),
                                             feature_<model> (extract_feature.py), aesthetic_score
    <root>/features/<model>/<sha256>.npz     indices uint8 (N, 3) at 64^3, patchtokens float16 (N, C)
                                             (extract_feature.py; model "dinov2_vitl14_reg")
    <root>/renders/<sha256>/transforms.json  {"frames": [{"file_path": "000.png", "camera_angle_x": fov,
                                             "transform_matrix": 4x4 camera-to-world}, ...]} (render.py)
    <root>/renders/<sha256>/000.png ...      RGBA renders, 512 px in TRELLIS

transforms.json follows Blender / NeRF: `transform_matrix` is camera-to-world with OpenGL camera axes
(x right, y up, looking along -z) and `camera_angle_x` the horizontal field of view in radians.
learnlib cameras are world-to-camera with OpenCV axes (x right, y down, looking along +z), so the
camera's y and z columns are negated before inverting (as TRELLIS's own loaders do).
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from learnlib.slat.data.features import downsample_features, load_trellis_features, save_trellis_features
from learnlib.splat.cameras import Cameras, camera_to_world, intrinsics_from_fov

__all__ = [
    "TRELLIS_FEATURE_RESOLUTION",
    "TrellisSource",
    "blender_to_viewmat",
    "read_metadata",
    "read_transforms",
    "viewmat_to_blender",
    "write_metadata",
    "write_random_dataset",
    "write_trellis_object",
]

TRELLIS_FEATURE_RESOLUTION = 64
_FLIP_YZ = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def blender_to_viewmat(transform_matrix) -> Tensor:
    """World -> camera view matrix (4, 4) (OpenCV axes) from a Blender / NeRF camera-to-world matrix."""
    c2w = torch.as_tensor(np.asarray(transform_matrix, dtype=np.float64))
    if c2w.shape != (4, 4):
        raise ValueError(f"transform_matrix must be 4x4, got {tuple(c2w.shape)}")
    return torch.linalg.inv(c2w @ _FLIP_YZ).float()  # negate the camera's y and z columns, then invert


def viewmat_to_blender(viewmat: Tensor) -> Tensor:
    """Blender / NeRF camera-to-world (4, 4) (OpenGL axes) from a world -> camera view matrix (OpenCV axes)."""
    return camera_to_world(viewmat.double()) @ _FLIP_YZ


def _missing(path: Path, what: str, tool: str) -> FileNotFoundError:
    return FileNotFoundError(f"{path} does not exist: {what} (written by TRELLIS's dataset_toolkits/{tool})")


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0", "yes")


def read_metadata(root) -> list[dict[str, str]]:
    """Rows of `<root>/metadata.csv` as dicts; clear errors for a missing folder, file or sha256 column."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"TRELLIS dataset folder {root} does not exist")
    path = root / "metadata.csv"
    if not path.is_file():
        raise _missing(path, "the object list", "build_metadata.py")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} lists no objects (it is empty or holds only a header): run TRELLIS's "
                         "dataset_toolkits/build_metadata.py, or point data.root at another folder")
    if "sha256" not in rows[0]:
        raise ValueError(f"{path} has no 'sha256' column (columns: {sorted(rows[0])})")
    return rows


def _aesthetic_score(row: dict[str, str], path: Path) -> float | None:
    """The row's aesthetic_score as a float (None when empty); ValueError naming the row and the value."""
    value = (row.get("aesthetic_score") or "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{path}: object {row.get('sha256')} has aesthetic_score {value!r}, not a number; fix "
                         "the value (or leave it empty), or unset data.min_aesthetic_score") from None


def read_transforms(path, image_size: int | None = None) -> tuple[list[str], Cameras]:
    """Image file names and learnlib `Cameras` of a transforms.json, for images of `image_size` px.

    Without `image_size` the size is read from the first image. Square pixels (fy = fx from
    camera_angle_x), principal point at the image centre.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing(path, "the cameras of the renders", "render.py")
    with open(path) as f:
        frames = json.load(f).get("frames")
    if not frames:
        raise ValueError(f"{path} lists no frames")
    for i, frame in enumerate(frames):
        missing = {"file_path", "camera_angle_x", "transform_matrix"} - set(frame)
        if missing:
            raise ValueError(f"{path}: frame {i} lacks {sorted(missing)}")
    if image_size is None:
        from PIL import Image

        with Image.open(path.parent / frames[0]["file_path"]) as image:
            width, height = image.size
    else:
        width = height = int(image_size)
    viewmats = torch.stack([blender_to_viewmat(frame["transform_matrix"]) for frame in frames])  # (V, 4, 4)
    Ks = torch.stack([intrinsics_from_fov(float(frame["camera_angle_x"]), width, height) for frame in frames])
    return [frame["file_path"] for frame in frames], Cameras(viewmats, Ks, width, height)


def _load_rgba(path: Path, image_size: int) -> tuple[Tensor, Tensor]:
    from PIL import Image

    if not path.is_file():
        raise _missing(path, "a render listed in transforms.json", "render.py")
    with Image.open(path) as image:
        image = image.convert("RGBA")
        if image.size != (image_size, image_size):
            image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
        rgba = torch.from_numpy(np.array(image)).float() / 255.0  # (H, W, 4)
    return rgba[..., :3].permute(2, 0, 1), rgba[..., 3:].permute(2, 0, 1)  # (3, H, W), (1, H, W)


class TrellisSource:
    """The objects of a TRELLIS dataset folder (see the module docstring).

    Keeps the rows of metadata.csv whose `feature_<model>` is true (when the column exists), whose
    aesthetic_score is at least `min_aesthetic_score` (when given) and whose features file exists.
    `resolution` below 64 merges voxels and averages their features (as TRELLIS's SparseFeat2Render).
    """

    def __init__(self, root, model: str = "dinov2_vitl14_reg", image_size: int = 512, resolution: int = 64,
                 min_aesthetic_score: float | None = None, instances=None):
        if resolution < 1 or TRELLIS_FEATURE_RESOLUTION % resolution:
            raise ValueError(f"resolution must divide {TRELLIS_FEATURE_RESOLUTION}, got {resolution}")
        self.root = Path(root).expanduser()
        rows = read_metadata(self.root)
        self.model, self.image_size, self.resolution = model, int(image_size), int(resolution)
        self.feature_dir = self.root / "features" / model
        if not self.feature_dir.is_dir():
            raise _missing(self.feature_dir, f"the per-voxel features of model {model!r}", "extract_feature.py")
        if not (self.root / "renders").is_dir():
            raise _missing(self.root / "renders", "the multiview renders", "render.py")
        column = f"feature_{model}"
        if rows and column in rows[0]:
            rows = [r for r in rows if _truthy(r[column])]
        if min_aesthetic_score is not None and rows and "aesthetic_score" in rows[0]:
            scores = [_aesthetic_score(r, self.root / "metadata.csv") for r in rows]
            rows = [r for r, score in zip(rows, scores) if score is not None and score >= min_aesthetic_score]
        if instances is not None:
            wanted = set(instances)
            rows = [r for r in rows if r["sha256"] in wanted]
        self.rows = [r for r in rows if (self.feature_dir / f"{r['sha256']}.npz").is_file()]
        self.missing = [r["sha256"] for r in rows if not (self.feature_dir / f"{r['sha256']}.npz").is_file()]
        if self.missing:
            warnings.warn(f"{len(self.missing)} objects of {self.root / 'metadata.csv'} have no feature file in "
                          f"{self.feature_dir} and are skipped (first: {self.missing[0]}); run TRELLIS's "
                          "dataset_toolkits/extract_feature.py for them", stacklevel=2)
        self.names = [r["sha256"] for r in self.rows]
        if not self.rows and instances is None:
            raise ValueError(f"no object of {self.root / 'metadata.csv'} is usable: none has a feature file in "
                             f"{self.feature_dir} with {column} true and aesthetic_score >= {min_aesthetic_score}")
        self._num_voxels: dict[int, int] = {}
        self._listed: dict[int, int] = {}  # num_voxels of metadata.csv, checked against the file when loaded

    def __len__(self) -> int:
        return len(self.names)

    def num_voxels(self, index: int) -> int:
        """Voxel count at `resolution` (from metadata.csv's num_voxels at 64, else from the feature file).

        A listed count is checked against the feature file when the object is loaded (`load_voxels`)."""
        if index not in self._num_voxels:
            value = self.rows[index].get("num_voxels")
            if self.resolution == TRELLIS_FEATURE_RESOLUTION and value not in (None, "", "0"):
                try:
                    self._listed[index] = self._num_voxels[index] = int(float(value))
                except ValueError:
                    raise ValueError(f"{self.root / 'metadata.csv'}: object {self.names[index]} has num_voxels "
                                     f"{value!r}, not a number; fix it or empty the column") from None
            else:
                self._num_voxels[index] = len(self.load_voxels(index)[0])
        return self._num_voxels[index]

    def load_voxels(self, index: int) -> tuple[Tensor, Tensor]:
        """Coords int64 (N, 3) in [0, resolution) and features float32 (N, C) of object `index`.

        ValueError naming the file when it cannot be read or holds another voxel count than metadata.csv
        lists (the voxel budget of the batches is made from those counts)."""
        path = self.feature_dir / f"{self.names[index]}.npz"
        try:
            coords, feats = load_trellis_features(path, TRELLIS_FEATURE_RESOLUTION)
        except (ValueError, FileNotFoundError):
            raise
        except Exception as err:  # noqa: BLE001 numpy and zipfile raise many types for a damaged file
            raise ValueError(f"feature file {path} cannot be read ({type(err).__name__}: {str(err)[:120]}); it is "
                             "damaged: extract it again (TRELLIS's dataset_toolkits/extract_feature.py)") from None
        listed = self._listed.get(index)
        if listed is not None and listed != len(coords):
            raise ValueError(f"{self.root / 'metadata.csv'} lists num_voxels {listed} for {self.names[index]}, but "
                             f"{path} holds {len(coords)} voxels: fix the num_voxels column (or empty it to count "
                             "from the files); the voxel-budget batches are made from these counts")
        return downsample_features(coords, feats, TRELLIS_FEATURE_RESOLUTION // self.resolution)

    def views_file(self, index: int) -> Path:
        return self.root / "renders" / self.names[index] / "transforms.json"

    def num_views(self, index: int) -> int:
        return len(read_transforms(self.views_file(index), self.image_size)[0])

    def load_views(self, index: int, view_ids=None) -> tuple[Tensor, Tensor, Cameras]:
        """Images [k, 3, S, S], alphas [k, 1, S, S] (S = image_size) and cameras of the chosen views."""
        files, cameras = read_transforms(self.views_file(index), self.image_size)
        ids = list(range(len(files))) if view_ids is None else [int(i) for i in view_ids]
        if any(i < 0 or i >= len(files) for i in ids):
            raise IndexError(f"view ids {ids} out of range for {len(files)} views of {self.names[index]}")
        pairs = [_load_rgba(self.views_file(index).parent / files[i], self.image_size) for i in ids]
        images = torch.stack([p[0] for p in pairs])  # (k, 3, S, S)
        alphas = torch.stack([p[1] for p in pairs])  # (k, 1, S, S)
        return images, alphas, cameras[ids]


def write_trellis_object(root, sha256: str, coords: Tensor, feats: Tensor, images: Tensor, alphas: Tensor,
                         cameras: Cameras, model: str = "dinov2_vitl14_reg") -> dict[str, str]:
    """Write one object in the TRELLIS layout (features .npz, RGBA PNGs, transforms.json); its metadata row.

    coords (N, 3) at resolution 64, feats (N, C), images (V, 3, H, W) and alphas (V, 1, H, W) in [0, 1].
    Pass the returned rows to `write_metadata` to finish the folder.
    """
    from PIL import Image

    if len(images) != len(cameras) or len(alphas) != len(cameras):
        raise ValueError(f"views and cameras must have the same count, got images {len(images)}, "
                         f"alphas {len(alphas)}, cameras {len(cameras)}")
    root = Path(root)
    (root / "features" / model).mkdir(parents=True, exist_ok=True)
    save_trellis_features(root / "features" / model / f"{sha256}.npz", coords, feats)
    render_dir = root / "renders" / sha256
    render_dir.mkdir(parents=True, exist_ok=True)
    frames = []
    rgba = torch.cat([images, alphas], dim=1).permute(0, 2, 3, 1)  # (V, H, W, 4)
    rgba = (rgba.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()
    for i in range(len(cameras)):
        Image.fromarray(rgba[i], mode="RGBA").save(render_dir / f"{i:03d}.png")
        fov = 2.0 * math.atan(0.5 * cameras.width / float(cameras.Ks[i, 0, 0]))
        frames.append({"file_path": f"{i:03d}.png", "camera_angle_x": fov,
                       "transform_matrix": viewmat_to_blender(cameras.viewmats[i]).tolist()})
    with open(render_dir / "transforms.json", "w") as f:
        json.dump({"aabb": [[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]], "frames": frames}, f, indent=2)
    return {"sha256": sha256, "rendered": "True", "voxelized": "True", "num_voxels": str(len(coords)),
            f"feature_{model}": "True"}


def write_metadata(root, rows: list[dict[str, str]]) -> Path:
    """Write `<root>/metadata.csv` from rows (the union of their keys, sha256 first)."""
    keys = ["sha256"] + sorted({k for row in rows for k in row} - {"sha256"})
    path = Path(root) / "metadata.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_random_dataset(root, count: int = 3, views: int = 4, image_size: int = 16, channels: int = 8,
                         seed: int = 0, model: str = "dinov2_vitl14_reg") -> dict[str, tuple]:
    """A tiny TRELLIS folder of random objects (voxels at 64^3, features, RGBA renders) for trying the reader.

    Returns {sha256: (coords, feats, images, alphas)}; every object shares `slat_cameras(views, image_size)`.
    """
    from learnlib.slat.data.features import slat_cameras

    g = torch.Generator().manual_seed(seed)
    rows, objects = [], {}
    cameras = slat_cameras(views, image_size)
    for i in range(count):
        sha = f"{i:064x}"
        coords = torch.unique(torch.randint(0, TRELLIS_FEATURE_RESOLUTION, (30 + 10 * i, 3), generator=g), dim=0)
        feats = torch.randn(len(coords), channels, generator=g)
        images = torch.rand(views, 3, image_size, image_size, generator=g)
        alphas = torch.rand(views, 1, image_size, image_size, generator=g)
        row = write_trellis_object(root, sha, coords, feats, images, alphas, cameras, model=model)
        row["aesthetic_score"] = str(4.0 + i)
        rows.append(row)
        objects[sha] = (coords, feats, images, alphas)
    write_metadata(root, rows)
    return objects
