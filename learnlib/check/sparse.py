"""Graders of chapter 06 (sparse voxel tensors and shifted windows).

Window ids and window orders are compared as groupings, not as numbers: any numbering
of the windows and any order of the windows in the sorted sequence is accepted, as long
as the same voxels end up together.
"""

from __future__ import annotations

import torch
from torch import Tensor

from learnlib.check.core import Mismatch, describe, run_check, seeded
from learnlib.check.hints import register_hints
from learnlib.sparse.serialize import morton_encode as reference_morton_encode
from learnlib.sparse.tensor import random_coords
from learnlib.sparse.windows import window_partition

HINTS = {
    "window_ids": (
        ("a voxel's window is its coordinate, shifted, divided by the window size (integer division) on each "
        "axis; voxels of different batch items never share a window."),
        ("cell = (xyz + shift) // window_size; with n = cell.amax(0) + 1 per axis, "
        "id = ((b * nx + cx) * ny + cy) * nz + cz.")),
    "group_windows": (
        ("sorting the voxels by window id makes each window one contiguous run; the inverse permutation "
        "undoes the sort, and the run lengths are the sequence lengths."),
        ("sorted_ids, fwd = torch.sort(window_ids, stable=True); bwd = torch.empty_like(fwd); "
        "bwd[fwd] = torch.arange(N); seqlens = torch.unique_consecutive(sorted_ids, return_counts=True)[1].")),
    "morton_encode": (
        ("interleave the bits: bit b of x, y and z land next to each other at positions 3b + 2, 3b + 1 "
        "and 3b; shifts and masks (>>, &, <<, |) do it bit by bit."),
        ("code = 0; for b in range(10): code |= ((x >> b) & 1) << (3 * b + 2) | ((y >> b) & 1) << (3 * b + 1) "
        "| ((z >> b) & 1) << (3 * b).")),
}
register_hints(HINTS)


def _voxel(coords: Tensor, i: int) -> str:
    b, x, y, z = coords[i].tolist()
    return f"voxel {i} (batch {b}, x={x}, y={y}, z={z})"


def _as_labels(name: str, got, n: int) -> Tensor:
    if not isinstance(got, Tensor):
        raise Mismatch(f"{name}: expected a tensor of shape ({n},), got {describe(got)}")
    if got.shape != (n,):
        raise Mismatch(f"{name}: expected shape ({n},), one entry per voxel, got shape {tuple(got.shape)}")
    if got.is_floating_point() or got.dtype == torch.bool or got.is_complex():
        raise Mismatch(f"{name}: expected an integer tensor, got dtype {got.dtype}")
    return got


def _first_split(expected: list[int], got: list[int]) -> tuple[int, int] | None:
    """Two voxels in one expected group that `got` puts in different groups, or None."""
    seen: dict[int, tuple[int, int]] = {}
    for i, (e, g) in enumerate(zip(expected, got)):
        if e in seen and seen[e][1] != g:
            return seen[e][0], i
        seen.setdefault(e, (i, g))
    return None


def same_grouping(expected: Tensor, got: Tensor) -> bool:
    """True when the two labelings put exactly the same voxels together."""
    e, g = expected.tolist(), got.tolist()
    return _first_split(e, g) is None and _first_split(g, e) is None


def window_ids(fn) -> bool:
    """Check fn(coords (N, 4), window_size, shift) -> window id (N,) of each voxel, batch folded in."""
    generator = seeded(6)

    def case(batch_size, count, resolution, window_size, shift):
        def run():
            coords = random_coords(batch_size, count, resolution, generator, sort=True)
            original = coords.clone()
            expected = window_partition(coords, window_size, shift).window_ids
            got = _as_labels("window ids", fn(coords, window_size, shift), coords.shape[0])
            if not torch.equal(coords, original):
                raise Mismatch("your function changed `coords` in place; work on a copy")
            where = f"(window_size={window_size}, shift={shift})"
            split = _first_split(expected.tolist(), got.tolist())
            merged = _first_split(got.tolist(), expected.tolist())
            if split is None and merged is None:
                return
            if shift and same_grouping(window_partition(coords, window_size, 0).window_ids, got):
                raise Mismatch(f"your windows {where} are those of shift 0: "
                               "add the shift to x, y, z before dividing by window_size")
            if split is not None:
                i, j = split
                raise Mismatch(f"{_voxel(coords, i)} and {_voxel(coords, j)} share a window {where}, "
                               f"but you gave them different ids {int(got[i])} and {int(got[j])}")
            i, j = merged
            message = (f"{_voxel(coords, i)} and {_voxel(coords, j)} lie in different windows {where}, "
                       f"but you gave both the id {int(got[i])}")
            if coords[i, 0] != coords[j, 0]:
                message += "; they belong to different batches: fold the batch id into the window id"
            raise Mismatch(message)
        return run

    cases = [case(1, 40, 8, 4, 0), case(1, 60, 9, 4, 2), case(2, 50, 10, 4, 0), case(3, 80, 12, 4, 2),
             case(2, 120, 16, 8, 4), case(2, 70, 11, 3, 1), case(4, 30, 7, 2, 1), case(1, 1, 5, 4, 3)]
    return run_check("window_ids", cases)


def group_windows(fn) -> bool:
    """Check fn(window_ids (N,)) -> (fwd, bwd, seqlens): sort voxels so each window is one contiguous run."""
    generator = seeded(7)

    def case(batch_size, count, resolution, window_size, shift):
        def run():
            coords = random_coords(batch_size, count, resolution, generator, sort=True)
            ids = window_partition(coords, window_size, shift).window_ids
            n = ids.shape[0]
            # shuffle the voxels so that an identity order is never already grouped
            ids = ids[torch.randperm(n, generator=generator)]
            original = ids.clone()
            got = fn(ids)
            if not isinstance(got, (tuple, list)) or len(got) != 3:
                raise Mismatch(f"expected a tuple (fwd, bwd, seqlens), got {describe(got)}")
            if not torch.equal(ids, original):
                raise Mismatch("your function changed `window_ids` in place; work on a copy")
            fwd = _as_labels("fwd", got[0], n).long()
            bwd = _as_labels("bwd", got[1], n).long()
            seqlens = got[2]
            if not isinstance(seqlens, Tensor) or seqlens.dim() != 1 or seqlens.is_floating_point():
                raise Mismatch(f"seqlens: expected a 1-D integer tensor, got {describe(seqlens)}")
            seqlens = seqlens.long()
            if not torch.equal(fwd.sort().values, torch.arange(n)):
                raise Mismatch("fwd is not a permutation of 0..N-1: every voxel must appear exactly once")
            bad = torch.nonzero(fwd[bwd] != torch.arange(n)).flatten()
            if bad.numel():
                i = int(bad[0])
                raise Mismatch(f"bwd is not the inverse of fwd: fwd[bwd[{i}]] = {int(fwd[bwd[i]])}, expected {i} "
                               "(bwd[v] is the position of voxel v in the sorted order)")
            windows = int(torch.unique(ids).numel())
            if seqlens.numel() != windows or (seqlens < 1).any() or int(seqlens.sum()) != n:
                raise Mismatch(f"seqlens: expected {windows} positive lengths (one per non-empty window) summing to "
                               f"{n}, got {seqlens.numel()} lengths summing to {int(seqlens.sum())}"
                               + (" with empty windows" if (seqlens < 1).any() else ""))
            run_of_position = torch.repeat_interleave(torch.arange(windows), seqlens)  # (N,)
            sorted_ids = ids[fwd]
            split = _first_split(run_of_position.tolist(), sorted_ids.tolist())
            if split is not None:
                i, j = split
                raise Mismatch(f"sorted positions {i} and {j} lie in one run of seqlens but hold different windows "
                               f"{int(sorted_ids[i])} and {int(sorted_ids[j])}")
            scattered = _first_split(sorted_ids.tolist(), run_of_position.tolist())
            if scattered is not None:
                i, j = scattered
                raise Mismatch(f"window {int(sorted_ids[i])} is not one contiguous run: it appears at sorted "
                               f"positions {i} and {j} in different runs")
        return run

    cases = [case(1, 40, 8, 4, 0), case(2, 60, 10, 4, 2), case(3, 90, 12, 3, 1), case(2, 150, 16, 8, 4),
             case(1, 1, 4, 2, 0)]
    return run_check("group_windows", cases)


def morton_encode(fn) -> bool:
    """Check fn(xyz (N, 3) int64) -> Morton code (N,) int64, bits interleaved x (most significant), y, z."""
    generator = seeded(8)

    def case(count, bits):
        def run():
            xyz = torch.randint(0, 2**bits, (count, 3), generator=generator)
            original = xyz.clone()
            expected = reference_morton_encode(xyz)
            got = _as_labels("codes", fn(xyz), count)
            if not torch.equal(xyz, original):
                raise Mismatch("your function changed `xyz` in place; work on a copy")
            if got.dtype != torch.int64:
                raise Mismatch(f"codes: expected dtype int64, got {got.dtype}")
            bad = torch.nonzero(got != expected).flatten()
            if bad.numel():
                i = int(bad[0])
                message = (f"{bad.numel()} of {count} codes differ; first at xyz={tuple(xyz[i].tolist())}: "
                           f"got {int(got[i])}, expected {int(expected[i])}")
                if torch.equal(got, reference_morton_encode(xyz.flip(1))):
                    message += "; your axes are reversed: x must be the most significant bit of each triple"
                raise Mismatch(message)
        return run

    xyz_cases = [case(1, 1), case(8, 1), case(50, 3), case(200, 6), case(200, 10)]
    return run_check("morton_encode", xyz_cases)
