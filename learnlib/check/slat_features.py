"""Graders of the structured-latent data chapter (TRELLIS SLat: multiview features on voxels).

The grader runs the learner's function and the library (learnlib.slat.data.projection) on fresh
seeded random cameras, feature maps and voxels and compares the results. When a wrong answer
fits exactly one typical mistake (align_corners=True, the voxel corner instead of its centre, x and y
swapped, the feature map's size instead of the image's, no perspective divide...), the message names
it; when the numbers fit several (pixel positions and a missing divide both land outside [-1, 1], so
grid_sample returns zeros for both), it shows the inputs, the expected and the received feature.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from learnlib.check.core import Mismatch, expect_tensor_like, failure, run_check, seeded
from learnlib.check.hints import register_hints
from learnlib.slat.data.projection import project_voxel_features as reference_projection
from learnlib.splat.cameras import Cameras, orbit_cameras, world_to_camera_points

__all__ = ["project_voxel_features"]


HINTS = {
    "project_voxel_features": (
        ("project the voxel's centre (not its corner) into every view with the camera, turn pixels into "
         "grid_sample's [-1, 1] coordinates, sample each view's feature map there and average over the views."),
        ("centre = -0.5 + (coord + 0.5) / resolution; per view: camera point = R centre + t, u = fx x / z + cx, "
         "v = fy y / z + cy; grid = (2 u / W - 1, 2 v / H - 1); F.grid_sample(maps, grid.view(V, 1, 1, 2), "
         "align_corners=False); mean over views.")),
}
register_hints(HINTS)


def _centre(coord: Tensor, resolution: int, offset: float = 0.5) -> Tensor:
    return -0.5 + (coord.double() + offset) / resolution  # (3,)


def _variant(maps: Tensor, coord: Tensor, resolution: int, cameras: Cameras, *, offset: float = 0.5,
             grid_kind: str = "normalized", align_corners: bool = False, mode: str = "bilinear",
             reduce: str = "mean", divide: bool = True, map_size: bool = False) -> Tensor:
    """One voxel's feature computed with the given (possibly wrong) choices."""
    point = _centre(coord, resolution, offset).float()
    cam = world_to_camera_points(point[None], cameras.viewmats)[:, 0]  # (V, 3)
    xy = cam[:, :2] / cam[:, 2:] if divide else cam[:, :2]  # (V, 2)
    uv = xy * torch.stack([cameras.Ks[:, 0, 0], cameras.Ks[:, 1, 1]], -1) + cameras.Ks[:, :2, 2]
    size = uv.new_tensor([maps.shape[-1], maps.shape[-2]] if map_size else [cameras.width, cameras.height])
    grid = {"normalized": 2.0 * uv / size - 1.0, "pixel": uv, "unit": uv / size,
            "swapped": (2.0 * uv / size - 1.0).flip(-1)}[grid_kind]  # (V, 2)
    samples = F.grid_sample(maps, grid.view(-1, 1, 1, 2), mode=mode, align_corners=align_corners)  # (V, C, 1, 1)
    samples = samples.flatten(1)  # (V, C)
    return samples.sum(0) if reduce == "sum" else samples.mean(0)


_MISTAKES = [
    ("the voxel corner was projected: the centre of voxel i is -0.5 + (i + 0.5) / resolution, not -0.5 + i / resolution",
     {"offset": 0.0}),
    ("grid_sample got pixel positions: it expects coordinates in [-1, 1], x = 2 u / W - 1 and y = 2 v / H - 1",
     {"grid_kind": "pixel"}),
    ("grid_sample got coordinates in [0, 1] (u / W): it expects [-1, 1], x = 2 u / W - 1",
     {"grid_kind": "unit"}),
    (("align_corners=True: the feature map covers the whole image, so -1 and +1 are the image's outer edges "
     "(align_corners=False, as TRELLIS)"), {"align_corners": True}),
    ("x and y are swapped: grid_sample's last dimension is (x, y) = (column, row), i.e. (u, v)",
     {"grid_kind": "swapped"}),
    ("the views were summed: average the samples over the views (divide by V)", {"reduce": "sum"}),
    ("nearest-neighbour sampling: sample the patch map bilinearly (mode='bilinear')", {"mode": "nearest"}),
    (("the pixel position was divided by the feature map's size (w, h): the map covers the whole W x H image, "
      "so x = 2 u / W - 1 with the image's width W (cameras.width), not the map's"), {"map_size": True}),
    (("the perspective divide is missing: the camera-space point (x, y, z) lands at pixel u = fx x / z + cx, "
      "v = fy y / z + cy"), {"divide": False}),
]


def _random_case(generator: torch.Generator):
    views = int(torch.randint(2, 6, (1,), generator=generator))
    channels = int(torch.randint(3, 9, (1,), generator=generator))
    patch = int(torch.randint(2, 5, (1,), generator=generator))
    grid_w, grid_h = (int(v) for v in torch.randint(6, 14, (2,), generator=generator))
    width, height = grid_w * patch, grid_h * patch
    yaw = torch.rand(views, generator=generator) * 2.0 * math.pi
    pitch = (torch.rand(views, generator=generator) - 0.5) * 0.9 * math.pi
    cameras = orbit_cameras(yaw, pitch, radius=2.0, fov=math.radians(40.0), width=width, height=height)
    resolution = int(torch.randint(4, 33, (1,), generator=generator))
    coord = torch.randint(0, resolution, (3,), generator=generator)
    maps = torch.randn(views, channels, grid_h, grid_w, generator=generator)
    return coord, resolution, maps, cameras


def project_voxel_features(fn) -> bool:
    """Check fn(coord (3,) int, resolution, feature_maps (V, C, h, w), cameras) -> feature (C,) of one voxel.

    The feature is the mean over the V views of the map sampled bilinearly (grid_sample,
    align_corners=False) where the voxel centre projects; the maps cover the cameras' W x H images.
    """
    generator = seeded(70)

    def case():
        def run():
            coord, resolution, maps, cameras = _random_case(generator)
            expected = reference_projection(maps, _centre(coord, resolution).float()[None], cameras)[0]  # (C,)
            got = fn(coord.clone(), resolution, maps.clone(), cameras)
            if isinstance(got, Tensor) and got.shape == (1, *expected.shape):
                raise Mismatch(f"return the feature of the one voxel as shape {tuple(expected.shape)}, "
                               f"got {tuple(got.shape)}")
            got = expect_tensor_like(f"feature of voxel {coord.tolist()} at resolution {resolution}", got, expected)
            if torch.allclose(got.float(), expected, atol=1e-4, rtol=1e-4):
                return
            fits = []
            for message, choices in _MISTAKES:
                variant = _variant(maps, coord, resolution, cameras, **choices)
                if (torch.allclose(got.float(), variant, atol=1e-4, rtol=1e-4)
                        and not torch.allclose(variant, expected, atol=1e-4, rtol=1e-4)):
                    fits.append(message)
            inputs = {"coord": coord, "resolution": resolution,
                      "feature_maps": f"{tuple(maps.shape)} (V, C, h, w)",
                      "cameras": f"{len(cameras)} views of {cameras.width} x {cameras.height} pixels"}
            if len(fits) == 1:  # the numbers fit this one mistake only
                raise failure(fits[0], inputs)
            message = f"the feature of voxel {coord.tolist()} differs from the reference"
            if not got.detach().any():
                message += (": every sample is zero, which grid_sample returns for coordinates outside [-1, 1] "
                            "(the projected point missed every feature map)")
            raise failure(message, inputs, expected, got.detach().float())
        return run

    return run_check("project_voxel_features", [case() for _ in range(8)],
                     hint="centre = -0.5 + (coord + 0.5) / resolution; per view: camera point = R centre + t, "
                          "u = fx x / z + cx, v = fy y / z + cy; grid = (2 u / W - 1, 2 v / H - 1); "
                          "F.grid_sample(maps, grid.view(V, 1, 1, 2), align_corners=False); mean over views.")
