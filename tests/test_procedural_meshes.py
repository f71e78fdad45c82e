"""Procedural training meshes ("shapes/<seed>"): deterministic, coloured, z-up, cached by recipe version, and
added to the SLat training split only."""

import numpy as np
import pytest

from learnlib.data.mesh_render import mesh_vertex_colors
from learnlib.data.meshes import load_mesh
from learnlib.data.procedural import PROCEDURAL_VERSION, is_procedural, procedural_mesh, procedural_names
from learnlib.slat.data.cache import content_hash, settings_key
from learnlib.slat.data.dataset import build


def test_names_and_their_parsing():
    assert procedural_names(3, start=5) == ["shapes/5", "shapes/6", "shapes/7"]
    assert procedural_names(0) == []
    assert is_procedural("shapes/12") and not is_procedural("shapes/x") and not is_procedural("bunny")
    assert not is_procedural("shapes/-1") and not is_procedural(None)
    with pytest.raises(ValueError, match="count"):
        procedural_names(-1)
    with pytest.raises(ValueError, match="shapes/<seed>"):
        procedural_mesh("bunny")


def test_same_name_same_mesh_other_name_other_mesh():
    a, b, c = procedural_mesh("shapes/3"), procedural_mesh("shapes/3"), procedural_mesh("shapes/4")
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.faces, b.faces)
    assert np.array_equal(mesh_vertex_colors(a), mesh_vertex_colors(b))
    assert a.vertices.shape != c.vertices.shape or not np.allclose(a.vertices, c.vertices)


def test_meshes_are_coloured_closed_parts_inside_the_unit_ball():
    colours = []
    for name in procedural_names(12):
        mesh = procedural_mesh(name)
        rgb = mesh_vertex_colors(mesh)
        assert rgb is not None and rgb.shape == (len(mesh.vertices), 3)
        assert rgb.min() >= 0.09 and rgb.max() <= 0.96
        assert np.linalg.norm(mesh.vertices, axis=1).max() < 1.2
        assert 2 <= mesh.body_count <= 4  # 2 to 4 primitives (touching ones may merge)
        colours.append(rgb.mean(axis=0))
    assert np.std(colours, axis=0).min() > 0.05  # the shapes' colours differ


def test_load_mesh_and_the_cache_key_know_procedural_names():
    assert np.array_equal(load_mesh("shapes/2").vertices, procedural_mesh("shapes/2").vertices)
    assert content_hash("shapes/2") == f"procedural-v{PROCEDURAL_VERSION}"
    assert settings_key("shapes/2", {"r": 8}) != settings_key("shapes/3", {"r": 8})


def test_build_adds_procedural_meshes_to_training_only(tmp_path):
    train, val = build(source="meshes", meshes=["cube"], procedural_meshes=2, val_fraction=0.0,
                       cache_dir=str(tmp_path), resolution=8, num_views=4, image_size=16, heldout_views=2,
                       views_per_item=None)
    assert train.source.names == ["cube", "shapes/0", "shapes/1"]
    assert val.source.names == ["cube"]
    assert train[1]["images"].shape[0] == 4 and float(train[1]["alphas"].mean()) > 0.05
