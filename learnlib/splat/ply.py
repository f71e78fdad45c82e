"""Gaussians to and from the standard 3DGS PLY file, the one the reference 3DGS viewer, SuperSplat
and gsplat's exporter read.

The file holds one binary little-endian element `vertex` with one float32 property per value,
in this order:

    x, y, z              centre, in the course's world coordinates (z-up; no axis swap)
    nx, ny, nz           normals: unused by splatting, written as zeros, optional on load
    f_dc_0, f_dc_1, f_dc_2
                         degree-0 SH coefficients (rgb - 0.5) / C0 (`Gaussians.sh_dc`),
                         C0 = 0.28209479177387814
    f_rest_0 ...         higher SH bands: none by default (degree 0, as TRELLIS and gsplat write
                         them); `sh_degree=3` writes 45 zeros for viewers that expect degree 3
    opacity              the logit of the opacity (sigmoid gives it back)
    scale_0, scale_1, scale_2
                         the logs of the three standard deviations (exp gives them back)
    rot_0, rot_1, rot_2, rot_3
                         the rotation quaternion w, x, y, z, unit length

The file stores the activated Gaussian (what `rasterize` sees: for a decoder's output the scale
includes its 3D filter `min_kernel_size`), not the raw tensors of one parametrization, so any
viewer draws what the course renders. TRELLIS's own exporter also rotates its y-up world to z-up;
the course's world is already z-up, so positions are written as they are.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from learnlib.atomic import write_bytes_atomic
from learnlib.splat.gaussians import Gaussians, inverse_softplus, logit, rgb_to_sh

GAUSSIAN_TENSOR_KEYS = ("means", "scales", "quats", "opacities")
_GROUPS = {  # stored group -> property names
    "xyz": ("x", "y", "z"),
    "normal": ("nx", "ny", "nz"),
    "f_dc": ("f_dc_0", "f_dc_1", "f_dc_2"),
    "opacity": ("opacity",),
    "scale": ("scale_0", "scale_1", "scale_2"),
    "rot": ("rot_0", "rot_1", "rot_2", "rot_3"),
}
REQUIRED_PROPERTIES = tuple(name for group, names in _GROUPS.items() if group != "normal" for name in names)


def ply_property_names(sh_degree: int = 0) -> tuple[str, ...]:
    """The standard 3DGS property names, in file order, for SH degree `sh_degree` (0 to 3)."""
    if sh_degree not in (0, 1, 2, 3):
        raise ValueError(f"sh_degree must be 0, 1, 2 or 3, got {sh_degree}")
    rest = tuple(f"f_rest_{i}" for i in range(3 * ((sh_degree + 1) ** 2 - 1)))
    return (*_GROUPS["xyz"], *_GROUPS["normal"], *_GROUPS["f_dc"], *rest, *_GROUPS["opacity"], *_GROUPS["scale"],
            *_GROUPS["rot"])


def _check_finite(name: str, value: Tensor) -> None:
    bad = ~torch.isfinite(value.reshape(len(value), -1)).all(dim=1)  # (N,)
    if bool(bad.any()):
        index = int(bad.nonzero()[0])
        raise ValueError(f"{name} must be finite (no NaN or inf), but {name}[{index}] = {value[index].tolist()} "
                         f"({int(bad.sum())} bad row(s) in all)")


def _check_shape(name: str, value: Tensor, shape: tuple[int, ...]) -> None:
    if tuple(value.shape) != shape:
        raise ValueError(f"{name} must be {list(shape)}, got {list(value.shape)}")


def _stored_from_tensors(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Stored groups (float64) from activated tensors: means, scales, quats, opacities, colors or sh_dc."""
    colour_keys = [k for k in ("colors", "sh_dc") if k in tensors]
    missing = [k for k in GAUSSIAN_TENSOR_KEYS if k not in tensors]
    unknown = sorted(set(tensors) - set(GAUSSIAN_TENSOR_KEYS) - {"colors", "sh_dc"})
    if missing or unknown or len(colour_keys) != 1:
        raise ValueError(f"expected the keys {list(GAUSSIAN_TENSOR_KEYS)} and one of 'colors' or 'sh_dc'; "
                         f"missing {missing}, unknown {unknown}, colour keys given {colour_keys}")
    t = {k: torch.as_tensor(v).detach().cpu().double() for k, v in tensors.items()}
    if t["means"].dim() != 2 or t["means"].shape[1] != 3:
        raise ValueError(f"means must be (N, 3), got {list(t['means'].shape)}")
    n = t["means"].shape[0]
    if t["opacities"].dim() == 2:
        _check_shape("opacities", t["opacities"], (n, 1))
        t["opacities"] = t["opacities"][:, 0]  # (N,)
    for name, shape in {"means": (n, 3), "scales": (n, 3), "quats": (n, 4), "opacities": (n,),
                        colour_keys[0]: (n, 3)}.items():
        _check_shape(name, t[name], shape)
        _check_finite(name, t[name])
    if bool((t["scales"] <= 0).any()):
        raise ValueError("scales must be > 0 (the file stores their logs)")
    if bool(((t["opacities"] <= 0) | (t["opacities"] >= 1)).any()):
        raise ValueError("opacities must lie strictly inside (0, 1) (the file stores their logits)")
    norms = t["quats"].norm(dim=1, keepdim=True)  # (N, 1)
    if bool((norms == 0).any()):
        raise ValueError(f"quats must be non-zero; row {int((norms[:, 0] == 0).nonzero()[0])} is all zeros")
    sh_dc = t["sh_dc"] if "sh_dc" in t else rgb_to_sh(t["colors"])
    return {"xyz": t["means"], "f_dc": sh_dc, "opacity": logit(t["opacities"])[:, None],  # (N, 1)
            "scale": t["scales"].log(), "rot": t["quats"] / norms}


def _stored_from_gaussians(g: Gaussians) -> dict[str, Tensor]:
    """Stored groups (float64) of `Gaussians`; the opacity logit is exactly what its sigmoid sees."""
    raw = {name: value.detach().cpu() for name, value in g.raw_tensors().items()}
    for name, value in raw.items():
        _check_finite(name, value)
    g = Gaussians(**raw, scaling_bias=g.scaling_bias, opacity_bias=g.opacity_bias,
                  min_kernel_size=g.min_kernel_size)
    opacity_logit = raw["raw_opacities"] + float(logit(g.opacity_bias))  # (N, 1)
    return {"xyz": g.means.double(), "f_dc": g.sh_dc.double(), "opacity": opacity_logit.double(),
            "scale": g.scales.double().log(), "rot": g.quats.double()}


def ply_vertices(gaussians: Gaussians | Mapping[str, Tensor], sh_degree: int = 0) -> np.ndarray:
    """The structured float32 array [N] of the file's `vertex` element, fields in `ply_property_names` order.

    `gaussians` is a `Gaussians` or a mapping of activated tensors: means (N, 3), scales (N, 3) > 0,
    quats (N, 4) wxyz (normalized here), opacities [N] or (N, 1) in (0, 1), and colors (N, 3) or
    sh_dc (N, 3). Raises ValueError for wrong shapes, NaN or inf, and values outside those ranges.
    """
    names = ply_property_names(sh_degree)
    if isinstance(gaussians, Gaussians):
        stored = _stored_from_gaussians(gaussians)
    elif isinstance(gaussians, Mapping):
        stored = _stored_from_tensors(gaussians)
    else:
        raise TypeError(f"expected Gaussians or a mapping of tensors, got {type(gaussians).__name__}")
    out = np.zeros(stored["xyz"].shape[0], dtype=[(name, "<f4") for name in names])
    for group, value in stored.items():
        value32 = value.float()  # (N, width); a value beyond float32's range becomes inf here
        _check_finite(f"stored {group} {list(_GROUPS[group])}", value32)
        for column, name in enumerate(_GROUPS[group]):
            out[name] = value32[:, column].numpy()
    return out


def save_ply(path: str | os.PathLike, gaussians: Gaussians | Mapping[str, Tensor], sh_degree: int = 0) -> Path:
    """Write Gaussians as a 3DGS PLY file at `path` (atomically: temporary file, then rename).

    `gaussians`: as for `ply_vertices`. `sh_degree` > 0 zero-fills the f_rest_* properties that
    viewers configured for that degree expect; the colours stay the degree-0 ones.
    """
    from plyfile import PlyData, PlyElement

    vertices = ply_vertices(gaussians, sh_degree)
    buffer = io.BytesIO()
    PlyData([PlyElement.describe(vertices, "vertex")], text=False, byte_order="<").write(buffer)
    return write_bytes_atomic(buffer.getvalue(), path)


def read_ply_vertices(path: str | os.PathLike) -> np.ndarray:
    """The `vertex` element of a 3DGS PLY file as a structured float32 array [N], as stored.

    Raises FileNotFoundError for a missing file and ValueError for a file without a `vertex`
    element or without one of the required properties (naming the missing ones).
    """
    from plyfile import PlyData

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no PLY file at {path}")
    data = PlyData.read(str(path))
    if "vertex" not in [element.name for element in data.elements]:
        raise ValueError(f"{path} has no 'vertex' element (found {[e.name for e in data.elements]}); "
                         "a 3DGS PLY file stores one Gaussian per vertex")
    element = data["vertex"]
    present = [prop.name for prop in element.properties]
    missing = [name for name in REQUIRED_PROPERTIES if name not in present]
    if missing:
        raise ValueError(f"{path} lacks the 3DGS properties {missing}; a Gaussian needs "
                         f"{list(REQUIRED_PROPERTIES)} (found {present})")
    out = np.empty(len(element.data), dtype=[(name, "<f4") for name in present])
    for name in present:
        out[name] = np.asarray(element.data[name], dtype=np.float32)
    return out


def _group(vertices: np.ndarray, group: str) -> Tensor:
    columns = [torch.from_numpy(np.ascontiguousarray(vertices[name])) for name in _GROUPS[group]]
    return torch.stack(columns, dim=1)  # (N, width)


def load_ply(path: str | os.PathLike, scaling_bias: float = 0.01, opacity_bias: float = 0.1,
             min_kernel_size: float = 0.0) -> Gaussians:
    """Float32 `Gaussians` from a 3DGS PLY file (inverse of `save_ply`).

    The activations of the result give back the stored Gaussian: means and sh_dc exactly,
    opacities = sigmoid(opacity), scales = exp(scale) and the normalized rot quaternion up to
    float32 rounding. scaling_bias, opacity_bias, min_kernel_size choose the raw parametrization
    (every stored scale must exceed min_kernel_size). Higher SH bands (f_rest_*) are not used by
    the course's degree-0 Gaussians: non-zero ones are dropped with a warning.
    """
    if not (scaling_bias > 0 and 0 < opacity_bias < 1 and min_kernel_size >= 0):
        raise ValueError("need scaling_bias > 0, 0 < opacity_bias < 1 and min_kernel_size >= 0, got "
                         f"{scaling_bias}, {opacity_bias}, {min_kernel_size}")
    vertices = read_ply_vertices(path)
    for group in ("xyz", "f_dc", "opacity", "scale", "rot"):
        values = _group(vertices, group)
        bad = ~torch.isfinite(values).all(dim=1)  # (N,)
        if bool(bad.any()):
            index = int(bad.nonzero()[0])
            raise ValueError(f"{path}: property group {group} {list(_GROUPS[group])} must be finite, but vertex "
                             f"{index} holds {values[index].tolist()} ({int(bad.sum())} bad vertices in all)")
    rest = [name for name in vertices.dtype.names if name.startswith("f_rest_")]
    if rest and any(np.any(vertices[name] != 0) for name in rest):
        warnings.warn(f"{path}: non-zero f_rest_* (view-dependent colour) dropped; the course's Gaussians "
                      "keep SH degree 0", stacklevel=2)
    scales = _group(vertices, "scale").double().exp()  # (N, 3)
    if bool((scales <= min_kernel_size).any()):
        raise ValueError(f"{path}: every stored scale must exceed min_kernel_size={min_kernel_size}; "
                         f"the smallest is {float(scales.min()):.3g}")
    quats = _group(vertices, "rot").double()  # (N, 4)
    norms = quats.norm(dim=1, keepdim=True)  # (N, 1)
    if bool((norms == 0).any()):
        raise ValueError(f"{path}: vertex {int((norms[:, 0] == 0).nonzero()[0])} has an all-zero rot quaternion")
    raw_scales = inverse_softplus(torch.sqrt(scales * scales - min_kernel_size ** 2)) \
        - float(inverse_softplus(scaling_bias))
    raw_quats = quats / norms - quats.new_tensor((1.0, 0.0, 0.0, 0.0))
    raw_opacities = _group(vertices, "opacity").double() - float(logit(opacity_bias))  # (N, 1)
    return Gaussians(_group(vertices, "xyz"), raw_scales.float(), raw_quats.float(), raw_opacities.float(),
                     _group(vertices, "f_dc"), scaling_bias=scaling_bias, opacity_bias=opacity_bias,
                     min_kernel_size=min_kernel_size)
