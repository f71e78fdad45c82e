"""Procedural meshes: a few coloured trimesh primitives composed from a seed, named "shapes/<seed>".

Each shape joins 2 to 4 primitives (box, sphere, cylinder, cone, capsule, torus) of random size,
orientation and position; every primitive has its own colour, either flat or a gradient between two
colours along a random direction, stored as vertex colours. The same name gives the same mesh on
every machine (numpy's PCG64 stream, trimesh's primitive builders); `PROCEDURAL_VERSION` changes
whenever the recipe does, so caches keyed on it are rebuilt. Nothing is read or downloaded.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PREFIX", "PROCEDURAL_VERSION", "is_procedural", "procedural_mesh", "procedural_names"]

PREFIX = "shapes/"
PROCEDURAL_VERSION = 1
KINDS = ("box", "sphere", "cylinder", "cone", "capsule", "torus")


def procedural_names(count: int, start: int = 0) -> list[str]:
    """The names "shapes/<start>" ... "shapes/<start + count - 1>"."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be an int >= 0, got {count!r}")
    return [f"{PREFIX}{i}" for i in range(start, start + count)]


def is_procedural(name) -> bool:
    """True for a name "shapes/<non-negative int>"."""
    return isinstance(name, str) and name.startswith(PREFIX) and name[len(PREFIX):].isdigit()


def _primitive(kind: str, rng: np.random.Generator):
    import trimesh.creation as create

    size = rng.uniform(0.15, 0.45)
    if kind == "box":
        return create.box(extents=rng.uniform(0.3, 1.0, 3) * size * 1.6)
    if kind == "sphere":
        return create.icosphere(subdivisions=2, radius=size * 0.6)
    if kind == "cylinder":
        return create.cylinder(radius=size * rng.uniform(0.2, 0.5), height=size * rng.uniform(1.0, 2.2), sections=24)
    if kind == "cone":
        return create.cone(radius=size * rng.uniform(0.3, 0.6), height=size * rng.uniform(0.8, 1.8), sections=24)
    if kind == "capsule":
        return create.capsule(height=size * rng.uniform(0.6, 1.6), radius=size * rng.uniform(0.15, 0.35),
                              count=[16, 16])
    return create.torus(major_radius=size * 0.6, minor_radius=size * rng.uniform(0.12, 0.25), major_sections=24,
                        minor_sections=12)


def _colours(vertices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(V, 3) in [0, 1]: one colour, or a gradient between two along a random direction."""
    first = rng.uniform(0.1, 0.95, 3)
    if rng.random() < 0.5:
        return np.broadcast_to(first, vertices.shape).copy()
    second = rng.uniform(0.1, 0.95, 3)
    direction = rng.normal(size=3)
    t = vertices @ (direction / np.linalg.norm(direction))  # (V,)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-9)
    return first + (second - first) * t[:, None]  # (V, 3)


def procedural_mesh(name: str):
    """The `trimesh.Trimesh` named "shapes/<seed>" (z-up, vertex colours), a fresh copy each call."""
    import trimesh
    from trimesh.transformations import random_rotation_matrix

    if not is_procedural(name):
        raise ValueError(f"{name!r} is not a procedural mesh name ({PREFIX}<seed>, e.g. {PREFIX}0)")
    rng = np.random.default_rng([PROCEDURAL_VERSION, int(name[len(PREFIX):])])
    vertices, faces, colours, offset = [], [], [], 0
    for _ in range(int(rng.integers(2, 5))):
        part = _primitive(KINDS[int(rng.integers(len(KINDS)))], rng)
        transform = random_rotation_matrix(rng.random(3))
        transform[:3, 3] = rng.uniform(-0.3, 0.3, 3)
        part.apply_transform(transform)
        vertices.append(np.asarray(part.vertices))
        faces.append(np.asarray(part.faces) + offset)
        colours.append(_colours(vertices[-1], rng))
        offset += len(part.vertices)
    rgba = np.concatenate([np.concatenate(colours), np.ones((offset, 1))], axis=1)  # (V, 4)
    return trimesh.Trimesh(np.concatenate(vertices), np.concatenate(faces),
                           vertex_colors=np.round(rgba * 255).astype(np.uint8), process=False)
