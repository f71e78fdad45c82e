"""SLat preprocessing on CPU: the stages of mesh -> voxels -> views -> per-voxel features, and voxel counts.

Measured: `learnlib.slat.data.features.preprocess_mesh` on pymeshlab's bunny (upright) at resolution R
with V Hammersley views (radius 2, fov 40 degrees) at S x S px and the offline `patch_pool` backend
(RGB, alpha, depth, normals; 4 px patches, 2 x 2 cells: 32 channels), with and without the depth-tested
visibility; then each stage alone. Best wall seconds of interleaved runs after a warm-up. Peer in the same
run: the stages summed. Also the voxel counts of every sample mesh at R and 2R.

Prints a table and appends one dated section to benchmarks/RESULTS.md.

    python benchmarks/bench_slat_preprocess.py [--resolution 32] [--views 8] [--size 64] [--repeats 3]
                                               [--threads 1] [--no-write]
"""

from __future__ import annotations

import argparse
import math
import os
import platform

import torch
from machine import append_results, best_wall_and_cpu, cpu_model

from learnlib.data.meshes import (
    list_sample_meshes,
    load_sample_mesh,
    normalize_to_unit_cube,
    voxel_centres,
    voxelize,
)
from learnlib.slat.data.dataset import DEFAULT_UP_AXES
from learnlib.slat.data.extractors import PatchPoolBackend
from learnlib.slat.data.features import preprocess_mesh, render_object_views, slat_cameras, view_stack
from learnlib.slat.data.projection import project_voxel_features, visibility_from_depth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    R, V, S = args.resolution, args.views, args.size

    raw = load_sample_mesh("bunny", up_axis="y")
    backend = PatchPoolBackend()
    mesh = normalize_to_unit_cube(raw)
    cameras = slat_cameras(V, S)
    coords = voxelize(mesh, R)
    points = voxel_centres(coords, R)
    views = render_object_views(mesh, cameras, with_normals=True)
    stack = view_stack(views, True)
    maps = backend(stack)
    stages = {
        "normalize (copy, centre, scale)": lambda: normalize_to_unit_cube(raw),
        f"voxelize at {R}": lambda: voxelize(mesh, R),
        f"render {V} views: RGB, alpha, depth": lambda: render_object_views(mesh, cameras),
        f"render {V} views + normals pass": lambda: render_object_views(mesh, cameras, with_normals=True),
        "patch_pool backend": lambda: backend(stack),
        "project + average over views": lambda: project_voxel_features(maps, points, cameras),
        "visibility (depth test)": lambda: visibility_from_depth(points, cameras, views.depths, math.sqrt(3) / R),
    }
    totals = {
        "preprocess_mesh, all views (TRELLIS)": lambda: preprocess_mesh(raw, backend, R, V, S),
        "preprocess_mesh, visible views only": lambda: preprocess_mesh(raw, backend, R, V, S, visibility=True),
    }
    times = best_wall_and_cpu({**totals, **stages}, args.repeats)
    load = os.getloadavg()[0]
    summed = sum(times[k][0] for k in stages if "+ normals" not in k and "visibility" not in k
                 and "RGB, alpha, depth" not in k) + times[f"render {V} views + normals pass"][0]

    lines = ["| measured | wall s | CPU s (process) |", "|---|---:|---:|"]
    lines += [f"| {name} | {wall:.4f} | {cpu:.4f} |" for name, (wall, cpu) in times.items()]
    lines.append(f"| stages summed (normalize, voxelize, render + normals, backend, project) | {summed:.4f} | - |")
    counts = [f"| sample mesh | faces | voxels at {R} | voxels at {2 * R} |", "|---|---:|---:|---:|"]
    for name in list_sample_meshes():
        m = normalize_to_unit_cube(load_sample_mesh(name, up_axis=DEFAULT_UP_AXES.get(name, "z")))
        counts.append(f"| {name} | {len(m.faces)} | {len(voxelize(m, R))} | {len(voxelize(m, 2 * R))} |")
    body = "\n".join([
        (f"`python benchmarks/bench_slat_preprocess.py --resolution {R} --views {V} --size {S}`; best of "
         f"{args.repeats} interleaved runs after a warm-up; bunny ({len(raw.faces)} faces, {len(coords)} voxels "
         f"at {R})."),
        (f"Machine: {cpu_model()}, torch.set_num_threads({args.threads}), torch {torch.__version__}, "
         f"Python {platform.python_version()}, 1-min load average {load:.1f}."),
        "", *lines, "", *counts,
    ])
    print(body)
    if not args.no_write:
        append_results(f"SLat preprocessing, CPU: bunny at {R}^3, {V} views at {S} px", body)


if __name__ == "__main__":
    main()
