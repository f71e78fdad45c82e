"""Surface-point Gaussians: placed on the mesh, coloured from it, with the fixed shape asked for."""

import numpy as np
import pytest
import torch
import trimesh

from learnlib.splat.baselines import surface_point_gaussians


def coloured_box():
    mesh = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    mesh.visual.vertex_colors = np.tile(np.array([[255, 0, 0, 255]], dtype=np.uint8), (len(mesh.vertices), 1))
    return mesh


def test_points_lie_on_the_surface_with_the_mesh_colour_and_fixed_shape():
    g = surface_point_gaussians(coloured_box(), 200, scale=0.05, opacity=0.8, seed=0)
    assert len(g) == 200
    assert torch.allclose(g.means.abs().max(dim=1).values, torch.full((200,), 0.5), atol=1e-5)  # on a face
    assert torch.allclose(g.colors, torch.tensor([1.0, 0.0, 0.0]).expand(200, 3), atol=1e-4)
    assert torch.allclose(g.scales, torch.full((200, 3), 0.05), atol=1e-5)
    assert torch.allclose(g.opacities.flatten(), torch.full((200,), 0.8), atol=1e-5)


def test_default_scale_is_the_nearest_neighbour_distance_and_bad_input_is_rejected():
    g = surface_point_gaussians(coloured_box(), 300, seed=1)
    d = torch.cdist(g.means, g.means) + torch.eye(300) * 1e9
    assert g.scales[0, 0].item() == pytest.approx(d.min(dim=1).values.mean().item(), rel=1e-4)
    with pytest.raises(ValueError, match="opacity"):
        surface_point_gaussians(coloured_box(), 10, opacity=1.0)
    with pytest.raises(ValueError, match="colour per vertex"):
        surface_point_gaussians(trimesh.creation.box(), 10)
