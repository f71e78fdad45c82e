"""Real meshes that ship inside installed wheels, their normalization, voxelization and sampling.

Sample meshes come from pymeshlab's test data (bunny, cow, airplane, bone, ...) and, when pyvista
is installed, from the meshes bundled with `pyvista.examples` (named "pyvista/<name>"). Nothing is
downloaded. Meshes are loaded with trimesh.

The voxel grid follows TRELLIS: a mesh normalized into [-0.5, 0.5]^3 and a grid of
`resolution`^3 cells, cell (i, j, k) covering [-0.5 + i / r, -0.5 + (i + 1) / r] x ... ; a cell is
occupied when a triangle touches the closed cell (exact triangle / box overlap test).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

_MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@functools.lru_cache(maxsize=1)
def _sample_mesh_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    pymeshlab = _package_dir("pymeshlab")
    if pymeshlab is not None:
        for path in sorted((pymeshlab / "tests" / "sample_meshes").rglob("*")):
            if path.suffix.lower() in _MESH_SUFFIXES:
                files[path.stem.replace("_textured", "")] = path
    pyvista = _package_dir("pyvista")
    if pyvista is not None:
        for path in sorted((pyvista / "examples").rglob("*")):
            if path.suffix.lower() in _MESH_SUFFIXES:
                files[f"pyvista/{path.stem}"] = path
    return files


def list_sample_meshes() -> list[str]:
    """Names of the meshes available offline (empty when neither pymeshlab nor pyvista is installed)."""
    return sorted(_sample_mesh_files())


def sample_mesh_path(name: str) -> Path:
    """File of a sample mesh; KeyError listing the valid names when `name` is unknown."""
    files = _sample_mesh_files()
    if name not in files:
        hint = ", ".join(sorted(files)) or "none (pip install -e '.[mesh]' to get pymeshlab's sample meshes)"
        raise KeyError(f"unknown sample mesh {name!r}; available: {hint}")
    return files[name]


# Rotations that turn the named axis of a file into +z (the world of learnlib.splat is z-up).
_TO_Z_UP = {
    "z": np.eye(3),
    "y": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),  # (x, y, z) -> (x, -z, y)
    "x": np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),  # (x, y, z) -> (-z, y, x)
}


def load_sample_mesh(name: str = "bunny", up_axis: str = "z"):
    """A sample mesh as a `trimesh.Trimesh` (a fresh copy each call).

    `up_axis` names the file's axis that points up ("x", "y" or "z"); the mesh is rotated so that
    it becomes +z, the up of `learnlib.splat` cameras. pymeshlab's bunny is y-up:
    `load_sample_mesh("bunny", up_axis="y")` stands it upright.
    """
    _check_up_axis(up_axis)
    return to_z_up(_load(str(sample_mesh_path(name))).copy(), up_axis)


def _check_up_axis(up_axis: str) -> None:
    if up_axis not in _TO_Z_UP:
        raise ValueError(f"up_axis must be one of {sorted(_TO_Z_UP)}, got {up_axis!r}")


def to_z_up(mesh, up_axis: str = "z"):
    """`mesh` rotated in place so that its `up_axis` ("x", "y" or "z") becomes +z; returns it."""
    _check_up_axis(up_axis)
    if up_axis != "z":
        transform = np.eye(4)
        transform[:3, :3] = _TO_Z_UP[up_axis]
        mesh.apply_transform(transform)
    return mesh


def load_mesh(name_or_path: str, up_axis: str = "z"):
    """A trimesh mesh from a sample-mesh name, a procedural name ("shapes/<seed>", learnlib.data.procedural,
    already z-up: `up_axis` is not applied) or a mesh file, rotated z-up (a fresh copy each call).

    FileNotFoundError when `name_or_path` is none of these; ValueError naming the file when it fails to load.
    """
    from learnlib.data.procedural import is_procedural, procedural_mesh

    if is_procedural(name_or_path):
        return procedural_mesh(name_or_path)
    if name_or_path in list_sample_meshes():
        return load_sample_mesh(name_or_path, up_axis=up_axis)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{name_or_path!r} is neither a sample mesh ({', '.join(list_sample_meshes())}), "
                                "a procedural one (shapes/<seed>) nor an existing mesh file")
    _check_up_axis(up_axis)
    import trimesh

    try:
        mesh = trimesh.load(str(path), force="mesh")
    except Exception as err:  # trimesh raises many types for unreadable files
        raise ValueError(f"could not load mesh {path}: {type(err).__name__}: {err}") from err
    if not _has_triangles(mesh):
        raise ValueError(f"could not load mesh {path}: it holds no triangles")
    return to_z_up(mesh, up_axis)


def _has_triangles(mesh) -> bool:
    import trimesh

    return isinstance(mesh, trimesh.Trimesh) and len(mesh.faces) > 0


@functools.lru_cache(maxsize=8)
def _load(path: str):
    import trimesh

    mesh = trimesh.load(path, force="mesh")
    if not _has_triangles(mesh):
        raise ValueError(f"{path} holds no triangles")
    return mesh


def normalize_to_unit_cube(mesh):
    """A copy of `mesh` centred on its bounding-box centre and scaled to fit [-0.5, 0.5]^3.

    The longest side of the bounding box becomes 1, so the aspect ratio is kept.
    """
    lo, hi = mesh.bounds
    extent = float((hi - lo).max())
    if extent <= 0:
        raise ValueError("the mesh has zero extent and cannot be normalized")
    out = mesh.copy()
    out.apply_translation(-(lo + hi) / 2.0)
    out.apply_scale(1.0 / extent)
    return out


def _min3(x: np.ndarray) -> np.ndarray:
    """Minimum over axis 1 of length 3 (much faster than .min(axis=1) for short axes)."""
    return np.minimum(np.minimum(x[:, 0], x[:, 1]), x[:, 2])


def _max3(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(x[:, 0], x[:, 1]), x[:, 2])


def _triangle_box_overlap(tri: np.ndarray, centre: np.ndarray, half: float) -> np.ndarray:
    """Closed box (centre (P, 3), half size) vs triangle (P, 3, 3) overlap, separating-axis test."""
    v = tri - centre[:, None, :]  # (P, 3, 3) vertices relative to the box centre
    eps = 1e-9 * half
    # 1) the box axes: the bounding boxes overlap
    hit = (_min3(v) <= half + eps).all(axis=1) & (_max3(v) >= -half - eps).all(axis=1)
    # 2) the triangle normal: its plane crosses the box
    e0, e1 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 1]
    normal = np.cross(e0, e1)  # (P, 3)
    slack = (half + eps) * np.abs(normal).sum(axis=1)
    hit &= np.abs(np.einsum("pi,pi->p", normal, v[:, 0])) <= slack
    # 3) the nine cross products of box axes and triangle edges, on the survivors only
    idx = np.nonzero(hit)[0]
    v = v[idx]
    edges = np.stack([v[:, 1] - v[:, 0], v[:, 2] - v[:, 1], v[:, 0] - v[:, 2]], axis=1)  # (Q, 3, 3)
    keep = np.ones(len(idx), dtype=bool)
    for a in range(3):
        b, c = (a + 1) % 3, (a + 2) % 3
        for e in range(3):
            # axis = unit_a x edge has components (b: -edge_c, c: edge_b) and 0 along a
            ax_b, ax_c = -edges[:, e, c], edges[:, e, b]
            proj = v[:, :, b] * ax_b[:, None] + v[:, :, c] * ax_c[:, None]  # (Q, 3)
            r = (half + eps) * (np.abs(ax_b) + np.abs(ax_c))
            keep &= (_min3(proj) <= r) & (_max3(proj) >= -r)
    hit[idx] = keep
    return hit


def voxelize(mesh, resolution: int = 64, chunk: int = 1 << 20) -> Tensor:
    """Occupied surface voxels of a mesh inside [-0.5, 0.5]^3: int64 coords (N, 3), sorted, unique.

    Normalize first (`normalize_to_unit_cube`); parts outside the cube are ignored. Each triangle is
    tested against every cell of its bounding box with the exact separating-axis overlap test.
    """
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    tris = verts[np.asarray(mesh.faces)]  # (F, 3, 3)
    size = 1.0 / resolution
    tri_lo, tri_hi = _min3(tris), _max3(tris)  # (F, 3) bounding boxes
    lo = np.clip(np.floor((tri_lo + 0.5) / size), 0, resolution - 1).astype(np.int64)  # first candidate cell
    hi = np.clip(np.floor((tri_hi + 0.5) / size), 0, resolution - 1).astype(np.int64)  # last candidate cell
    inside = (tri_hi >= -0.5).all(axis=1) & (tri_lo <= 0.5).all(axis=1)
    dims = np.where(inside[:, None], hi - lo + 1, 0)  # (F, 3) candidate cells per axis
    counts = dims.prod(axis=1)
    found = []
    ends = np.cumsum(counts)
    start = 0
    while start < len(tris):
        base = ends[start - 1] if start > 0 else 0
        stop = max(int(np.searchsorted(ends, base + chunk, side="right")), start + 1)
        idx = np.arange(start, stop)
        face = np.repeat(idx, counts[idx])  # (P,) which triangle
        k = np.arange(len(face)) - np.repeat(np.cumsum(counts[idx]) - counts[idx], counts[idx])
        d = dims[face]
        cell = lo[face] + np.stack([k // (d[:, 1] * d[:, 2]), (k // d[:, 2]) % d[:, 1], k % d[:, 2]], axis=1)  # (P, 3)
        centre = -0.5 + (cell + 0.5) * size
        keep = _triangle_box_overlap(tris[face], centre, 0.5 * size)
        found.append(cell[keep])
        start = stop
    cells = np.concatenate(found) if found else np.zeros((0, 3), dtype=np.int64)  # (P, 3)
    flat = np.unique((cells[:, 0] * resolution + cells[:, 1]) * resolution + cells[:, 2])  # sorted, unique
    coords = np.stack([flat // resolution ** 2, (flat // resolution) % resolution, flat % resolution], axis=1)  # (N, 3)
    return torch.from_numpy(coords.astype(np.int64))


def voxel_centres(coords: Tensor, resolution: int) -> Tensor:
    """World positions (N, 3) of voxel coords (N, 3) in the [-0.5, 0.5]^3 grid."""
    return -0.5 + (coords.float() + 0.5) / resolution


def sample_surface(mesh, num_points: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Area-uniform random points [n, 3] on the surface and their face normals [n, 3] (float32)."""
    import trimesh

    points, face_idx = trimesh.sample.sample_surface(mesh, num_points, seed=seed)
    normals = np.asarray(mesh.face_normals)[face_idx]
    return torch.from_numpy(np.asarray(points, dtype=np.float32)), torch.from_numpy(normals.astype(np.float32))
