"""A no-training baseline for fitted Gaussians: small fixed isotropic Gaussians on the mesh surface."""

from __future__ import annotations

import numpy as np
import torch

from learnlib.splat.gaussians import Gaussians


def surface_point_gaussians(mesh, num_points: int, scale: float | None = None, opacity: float = 0.9,
                            seed: int = 0) -> Gaussians:
    """`num_points` isotropic Gaussians at area-uniform surface samples of a coloured trimesh mesh.

    Each takes the mean vertex colour of the face it lies on (the reference's own colours); all share
    one `scale` (default: the mean nearest-neighbour distance, so neighbours overlap) and `opacity`.
    Nothing is fitted: it is what the point cloud alone gives, before any optimization.
    """
    import trimesh

    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}")
    if not 0.0 < opacity < 1.0:
        raise ValueError(f"opacity must lie strictly inside (0, 1), got {opacity}")
    if getattr(mesh.visual, "kind", None) != "vertex":
        raise ValueError("mesh must carry one colour per vertex (e.g. learnlib.splat.fit.color_by_normals(mesh))")
    points, face_idx = trimesh.sample.sample_surface(mesh, num_points, seed=seed)
    corner_colors = np.asarray(mesh.visual.vertex_colors)[np.asarray(mesh.faces)[face_idx], :3]  # (N, 3 corners, 3)
    colors = torch.from_numpy(corner_colors.mean(axis=1).astype(np.float32) / 255.0)  # (N, 3)
    return Gaussians.from_points(torch.from_numpy(np.asarray(points, dtype=np.float32)), colors=colors,
                                 scale=scale, opacity=opacity)
