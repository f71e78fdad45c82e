"""Pinhole cameras: look-at view matrices, intrinsics, cameras on a sphere.

Conventions (the same as gsplat and OpenCV):
- a view matrix is world -> camera, 4x4; camera axes are x right, y down, z forward
  (the camera looks along +z);
- pixel intrinsics K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] map a camera point
  (x, y, z) to the pixel position (fx x / z + cx, fy y / z + cy); pixel (row i,
  column j) covers [j, j+1] x [i, i+1], so its centre is (j + 0.5, i + 0.5) and the
  image centre is (W / 2, H / 2);
- normalized intrinsics divide the first row by W and the second by H (fx / W,
  cx / W, fy / H, cy / H), so they do not depend on the resolution;
- the world is z-up; a camera at yaw, pitch on a sphere sits at
  radius * (sin(yaw) cos(pitch), cos(yaw) cos(pitch), sin(pitch)) around its target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


def _as_tensor(x, dtype=None, device=None) -> Tensor:
    if isinstance(x, Tensor):
        return x.to(dtype=dtype or (x.dtype if x.is_floating_point() else torch.float32), device=device)
    return torch.as_tensor(x, dtype=dtype or torch.float32, device=device)


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> Tensor:
    """World -> camera view matrices [..., 4, 4] of cameras at `eye` [..., 3] looking at `target`.

    The camera's z axis points from eye to target, x = z cross up (right), y = z cross x (down).
    `up` must not be parallel to the viewing direction.
    """
    eye = _as_tensor(eye)
    target = _as_tensor(target, eye.dtype, eye.device)
    up = _as_tensor(up, eye.dtype, eye.device)
    if eye.shape[-1] != 3 or target.shape[-1] != 3 or up.shape[-1] != 3:
        raise ValueError(f"eye, target and up must end in 3, got {tuple(eye.shape)}, "
                         f"{tuple(target.shape)}, {tuple(up.shape)}")
    shape = torch.broadcast_shapes(eye.shape, target.shape, up.shape)
    eye, target, up = eye.expand(shape), target.expand(shape), up.expand(shape)  # (..., 3) each
    forward = target - eye
    if (forward.norm(dim=-1) < 1e-12).any():
        raise ValueError("eye and target coincide: the viewing direction is undefined")
    z = forward / forward.norm(dim=-1, keepdim=True)
    x = torch.linalg.cross(z, up, dim=-1)
    if (x.norm(dim=-1) < 1e-9).any():
        raise ValueError("up is parallel to the viewing direction; pass another up vector")
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x, dim=-1)
    rot = torch.stack([x, y, z], dim=-2)  # (..., 3, 3) rows are the camera axes in world coordinates
    trans = -(rot @ eye.unsqueeze(-1)).squeeze(-1)  # (..., 3)
    view = torch.zeros(shape[:-1] + (4, 4), dtype=eye.dtype, device=eye.device)
    view[..., :3, :3] = rot
    view[..., :3, 3] = trans
    view[..., 3, 3] = 1.0
    return view


def camera_to_world(viewmats: Tensor) -> Tensor:
    """Inverse of world -> camera view matrices [..., 4, 4] (rigid transforms)."""
    if viewmats.shape[-2:] != (4, 4):
        raise ValueError(f"viewmats must be [..., 4, 4], got {tuple(viewmats.shape)}")
    rot = viewmats[..., :3, :3]
    inv = torch.zeros_like(viewmats)
    inv[..., :3, :3] = rot.transpose(-1, -2)  # (..., 3, 3)
    inv[..., :3, 3] = -(rot.transpose(-1, -2) @ viewmats[..., :3, 3:]).squeeze(-1)  # (..., 3)
    inv[..., 3, 3] = 1.0
    return inv


def intrinsics_from_fov(fov_x: float, width: int, height: int, fov_y: float | None = None,
                        dtype=torch.float32) -> Tensor:
    """Pixel intrinsics K (3, 3) for horizontal field of view `fov_x` (radians).

    Without `fov_y` the pixels are square (fy = fx); the principal point is the image centre.
    """
    if not 0.0 < fov_x < math.pi:
        raise ValueError(f"fov_x must be in (0, pi) radians, got {fov_x}")
    fx = 0.5 * width / math.tan(0.5 * fov_x)
    fy = fx if fov_y is None else 0.5 * height / math.tan(0.5 * fov_y)
    return torch.tensor([[fx, 0.0, 0.5 * width], [0.0, fy, 0.5 * height], [0.0, 0.0, 1.0]], dtype=dtype)


def _check_K(K: Tensor) -> None:
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"intrinsics must be [..., 3, 3], got {tuple(K.shape)}")


def normalized_to_pixel_intrinsics(K_norm: Tensor, width: int, height: int) -> Tensor:
    """Pixel intrinsics [..., 3, 3] from normalized ones (first row scaled by W, second by H)."""
    _check_K(K_norm)
    scale = K_norm.new_tensor([[width], [height], [1.0]])  # (3, 1)
    return K_norm * scale


def pixel_to_normalized_intrinsics(K: Tensor, width: int, height: int) -> Tensor:
    """Normalized intrinsics [..., 3, 3] (fx / W, cx / W, fy / H, cy / H) from pixel ones."""
    _check_K(K)
    scale = K.new_tensor([[1.0 / width], [1.0 / height], [1.0]])  # (3, 1)
    return K * scale


def world_to_camera_points(points: Tensor, viewmats: Tensor) -> Tensor:
    """Camera-frame positions (C, N, 3) of world points (N, 3) seen by C view matrices (C, 4, 4): R p + t.

    The one world -> camera transform of the package: the rasterizer, the mesh renderer and the
    voxel-feature projection all call it.
    """
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3) world positions, got {tuple(points.shape)}")
    if viewmats.dim() != 3 or viewmats.shape[1:] != (4, 4):
        raise ValueError(f"viewmats must be (C, 4, 4), got {tuple(viewmats.shape)}")
    return torch.einsum("cij,nj->cni", viewmats[:, :3, :3], points) + viewmats[:, None, :3, 3]  # (C, N, 3)


def camera_to_pixels(points_c: Tensor, Ks: Tensor) -> Tensor:
    """Pixel positions (C, N, 2) of camera-frame points (C, N, 3) through pixel intrinsics Ks (C, 3, 3)."""
    _check_K(Ks)
    if points_c.dim() != 3 or points_c.shape[-1] != 3 or Ks.shape[0] != points_c.shape[0]:
        raise ValueError(f"expected points_c (C, N, 3) and Ks (C, 3, 3) with the same C, got "
                         f"{tuple(points_c.shape)} and {tuple(Ks.shape)}")
    uv = points_c[..., :2] / points_c[..., 2:3]  # (C, N, 2)
    focal = torch.stack([Ks[:, 0, 0], Ks[:, 1, 1]], dim=-1).unsqueeze(1)  # (C, 1, 2)
    centre = Ks[:, :2, 2].unsqueeze(1)  # (C, 1, 2)
    return uv * focal + centre


def project_points(points: Tensor, viewmat: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel positions [..., 2] and depths [...] of world points [..., 3] seen by one camera."""
    if points.shape[-1] != 3 or viewmat.shape != (4, 4):
        raise ValueError(f"expected points [..., 3] and viewmat (4, 4), got {tuple(points.shape)}, "
                         f"{tuple(viewmat.shape)}")
    _check_K(K)
    cam = world_to_camera_points(points.reshape(-1, 3), viewmat[None])  # (1, N, 3)
    uv = camera_to_pixels(cam, K[None])  # (1, N, 2)
    return uv[0].reshape(points.shape[:-1] + (2,)), cam[0, :, 2].reshape(points.shape[:-1])  # (..., 2), (...)


def sphere_eye(yaw, pitch, radius: float = 2.0, target=(0.0, 0.0, 0.0)) -> Tensor:
    """Camera positions [..., 3] at (yaw, pitch) radians on a sphere of `radius` around `target`."""
    yaw, pitch = _as_tensor(yaw), _as_tensor(pitch)
    direction = torch.stack([torch.sin(yaw) * torch.cos(pitch), torch.cos(yaw) * torch.cos(pitch),
                             torch.sin(pitch)], dim=-1)  # (..., 3)
    return _as_tensor(target, direction.dtype) + radius * direction


def van_der_corput(n: int, base: int = 2) -> Tensor:
    """Radical inverses of 0..n-1 in `base` (float64 [n]): the digits mirrored about the point."""
    idx = torch.arange(n, dtype=torch.int64)
    out = torch.zeros(n, dtype=torch.float64)
    scale = 1.0 / base
    while bool((idx > 0).any()):
        out += (idx % base).double() * scale
        idx = idx // base
        scale /= base
    return out


def hammersley_sequence(num_samples: int) -> Tensor:
    """The 2D Hammersley point set [num_samples, 2] in [0, 1)^2: (i / n, radical inverse of i)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    first = torch.arange(num_samples, dtype=torch.float64) / num_samples
    return torch.stack([first, van_der_corput(num_samples)], dim=-1)  # (n, 2)


def sphere_hammersley(num_samples: int, offset: Sequence[float] = (0.0, 0.0)) -> tuple[Tensor, Tensor]:
    """Evenly spread (yaw, pitch) radians [n] from the Hammersley set mapped to the unit sphere.

    sin(pitch) = 2u - 1 is uniform in [-1, 1) and yaw = 2 pi v, which is an area-preserving map;
    `offset` (du in units of 1 / n, dv in turns) shifts the set to draw a different one.
    """
    uv = hammersley_sequence(num_samples)
    u = (uv[:, 0] + offset[0] / num_samples) % 1.0
    v = (uv[:, 1] + offset[1]) % 1.0
    pitch = torch.asin(2.0 * u - 1.0)
    yaw = 2.0 * math.pi * v
    return yaw, pitch


@dataclass
class Cameras:
    """A batch of C pinhole cameras: view matrices (C, 4, 4), pixel intrinsics (C, 3, 3), image size."""

    viewmats: Tensor
    Ks: Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.viewmats.dim() != 3 or self.viewmats.shape[1:] != (4, 4):
            raise ValueError(f"viewmats must be (C, 4, 4), got {tuple(self.viewmats.shape)}")
        if self.Ks.shape != (self.viewmats.shape[0], 3, 3):
            raise ValueError(f"Ks must be [{self.viewmats.shape[0]}, 3, 3], got {tuple(self.Ks.shape)}")

    def __len__(self) -> int:
        return self.viewmats.shape[0]

    def __getitem__(self, idx) -> Cameras:
        idx = [idx] if isinstance(idx, int) else idx
        return Cameras(self.viewmats[idx], self.Ks[idx], self.width, self.height)

    def resized(self, width: int, height: int) -> Cameras:
        """The same cameras rendering at another resolution (intrinsics rescaled)."""
        K_norm = pixel_to_normalized_intrinsics(self.Ks, self.width, self.height)
        return Cameras(self.viewmats, normalized_to_pixel_intrinsics(K_norm, width, height), width, height)

    def to(self, device) -> Cameras:
        return Cameras(self.viewmats.to(device), self.Ks.to(device), self.width, self.height)


def orbit_cameras(yaws, pitches, radius: float = 2.0, fov: float = math.radians(40.0), width: int = 64,
                  height: int | None = None, target=(0.0, 0.0, 0.0)) -> Cameras:
    """Cameras at (yaw, pitch) radians on a sphere around `target`, all looking at it (z-up world)."""
    height = width if height is None else height
    eyes = sphere_eye(yaws, pitches, radius, target).reshape(-1, 3).float()  # (C, 3)
    up = torch.tensor([0.0, 0.0, 1.0]).expand_as(eyes)  # (C, 3)
    # Straight above or below the target, z-up is parallel to the view: use y as the up vector.
    vertical = torch.linalg.cross(eyes - torch.tensor(target, dtype=torch.float32), up, dim=-1).norm(dim=-1) < 1e-6
    up = torch.where(vertical.unsqueeze(-1), torch.tensor([0.0, 1.0, 0.0]).expand_as(eyes), up)  # (C, 3)
    viewmats = look_at(eyes, target, up)
    Ks = intrinsics_from_fov(fov, width, height).expand(len(eyes), 3, 3).clone()  # (C, 3, 3)
    return Cameras(viewmats, Ks, width, height)


def hammersley_cameras(num_views: int, radius: float = 2.0, fov: float = math.radians(40.0),
                       width: int = 64, height: int | None = None, offset=(0.0, 0.0)) -> Cameras:
    """`num_views` cameras spread evenly on a sphere (Hammersley), looking at the origin."""
    yaws, pitches = sphere_hammersley(num_views, offset)
    return orbit_cameras(yaws, pitches, radius, fov, width, height)
