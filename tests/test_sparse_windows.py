"""Shifted-window partition: invariants on random voxels, parity with the naive version."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from learnlib.sparse import (
    SparseTensor,
    naive_window_partition,
    random_coords,
    sparse_window_partition,
    swin_shift,
    window_partition,
)


def seeded_coords(seed, batch_size, n, resolution):
    return random_coords(batch_size, n, resolution, torch.Generator().manual_seed(seed))


def check_partition(coords, part, ws, shift):
    n = coords.shape[0]
    # inverse(forward) is the identity, both ways
    assert torch.equal(part.fwd[part.bwd], torch.arange(n))
    assert torch.equal(part.bwd[part.fwd], torch.arange(n))
    # every voxel lands in exactly one window, the runs tile the sorted sequence
    assert part.seqlens.sum().item() == n
    assert torch.equal(part.cu_seqlens[1:] - part.cu_seqlens[:-1], part.seqlens)
    assert torch.equal(torch.bincount(part.index, minlength=part.num_groups), part.seqlens.long())
    run = torch.repeat_interleave(torch.arange(part.num_groups), part.seqlens.long())
    assert torch.equal(part.index[part.fwd], run)
    # a window holds one batch and spans at most ws voxels per axis, at aligned cells
    c = coords.long()[part.fwd]
    shifted = c[:, 1:] + torch.tensor(shift)
    for w, (s, e) in enumerate(zip(part.cu_seqlens[:-1].tolist(), part.cu_seqlens[1:].tolist())):
        assert (c[s:e, 0] == part.batch[w]).all()
        span = shifted[s:e].amax(0) - shifted[s:e].amin(0)
        assert (span < torch.tensor(ws)).all()
        cells = shifted[s:e] // torch.tensor(ws)
        assert (cells == cells[0]).all()
    assert part.max_seqlen == part.seqlens.max().item()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch_size=st.integers(1, 3),
    n=st.integers(1, 60),
    resolution=st.integers(2, 12),
    ws=st.one_of(st.integers(1, 6), st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6))),
    data=st.data(),
)
def test_partition_invariants(seed, batch_size, n, resolution, ws, data):
    ws3 = (ws,) * 3 if isinstance(ws, int) else ws
    shift = tuple(data.draw(st.integers(0, w - 1)) for w in ws3)
    coords = seeded_coords(seed, batch_size, n, resolution)
    part = window_partition(coords, ws, shift)
    check_partition(coords, part, ws3, shift)
    naive = naive_window_partition(coords, ws, shift)
    for name in ("fwd", "bwd", "index", "seqlens", "cu_seqlens", "batch", "window_ids"):
        assert torch.equal(getattr(part, name), getattr(naive, name)), name
    assert part.num_windows == naive.num_windows


def test_resolution_gives_same_windows_without_extent():
    coords = seeded_coords(3, 2, 50, 10)
    a = window_partition(coords, 4, 2)
    b = window_partition(coords, 4, 2, resolution=10)
    assert torch.equal(a.fwd, b.fwd) and torch.equal(a.seqlens, b.seqlens) and torch.equal(a.batch, b.batch)
    assert b.num_windows == (3, 3, 3)


def test_swin_alternation_moves_borders():
    assert swin_shift(8, 0) == (0, 0, 0) and swin_shift(8, 1) == (4, 4, 4) and swin_shift((8, 4, 2), 3) == (4, 2, 1)
    # x = 7 and x = 8 are split by the unshifted grid and joined by the shifted one
    coords = torch.tensor([[0, 7, 0, 0], [0, 8, 0, 0], [0, 3, 0, 0]], dtype=torch.int32)
    plain = window_partition(coords, 8, swin_shift(8, 0))
    shifted = window_partition(coords, 8, swin_shift(8, 1))
    assert plain.index[0] != plain.index[1] and plain.index[0] == plain.index[2]
    assert shifted.index[0] == shifted.index[1] and shifted.index[0] != shifted.index[2]


def test_windows_never_cross_batches():
    coords = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1], [1, 2, 2, 2]], dtype=torch.int32)
    part = window_partition(coords, 4)
    assert part.seqlens.tolist() == [1, 2] and part.batch.tolist() == [0, 1]


def test_cache_and_validation():
    coords = seeded_coords(0, 2, 20, 8)
    x = SparseTensor(torch.randn(coords.shape[0], 3), coords, resolution=8)
    part = sparse_window_partition(x, 4, 2)
    assert sparse_window_partition(x.replace(x.feats * 2), 4, (2, 2, 2)) is part
    assert ("window", (4, 4, 4), (2, 2, 2)) in x.spatial_cache
    with pytest.raises(ValueError, match="shift"):
        window_partition(coords, 4, 4)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        window_partition(coords[:, 1:], 4)
