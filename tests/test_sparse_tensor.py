"""SparseTensor: validation, layout, arithmetic, batching, dense round trips."""

import pytest
import torch

from learnlib.sparse import SparseTensor, random_coords, sparse_cat


def random_sparse(batch_size=2, n_per_batch=30, resolution=8, channels=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    coords = random_coords(batch_size, n_per_batch, resolution, gen)
    feats = torch.randn(coords.shape[0], channels, generator=gen)
    return SparseTensor(feats, coords, resolution=resolution)


def test_layout_shape_and_batch_size():
    x = random_sparse(batch_size=3, n_per_batch=10)
    assert x.batch_size == 3
    assert x.shape == torch.Size([3, 4])
    assert x.layout == [slice(0, 10), slice(10, 20), slice(20, 30)]
    for b, sl in enumerate(x.layout):
        assert (x.coords[sl, 0] == b).all()


def test_validation_errors():
    feats, coords = torch.randn(3, 2), torch.tensor([[0, 1, 1, 1], [0, 2, 2, 2], [1, 0, 0, 0]], dtype=torch.int32)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        SparseTensor(feats, coords[:, :3])
    with pytest.raises(ValueError, match="int32"):
        SparseTensor(feats, coords.long())
    with pytest.raises(ValueError, match="rows like coords"):
        SparseTensor(torch.randn(4, 2), coords)
    with pytest.raises(ValueError, match="contiguous"):
        SparseTensor(feats, coords[[2, 0, 1]])
    with pytest.raises(ValueError, match="resolution"):
        SparseTensor(feats, coords, resolution=2)
    bad = coords.clone()
    bad[0, 1] = -1
    with pytest.raises(ValueError, match=">= 0"):
        SparseTensor(feats, bad)
    SparseTensor(feats, coords, resolution=3)  # valid


def test_arithmetic_matches_feats():
    x = random_sparse()
    y = x.replace(torch.randn_like(x.feats))
    bias = torch.randn(4)
    torch.testing.assert_close((x + y).feats, x.feats + y.feats)
    torch.testing.assert_close((x - 2.0).feats, x.feats - 2.0)
    torch.testing.assert_close((2.0 - x).feats, 2.0 - x.feats)
    torch.testing.assert_close((x * bias).feats, x.feats * bias)
    torch.testing.assert_close((x / 4).feats, x.feats / 4)
    torch.testing.assert_close((1.0 / (x * x + 1)).feats, 1.0 / (x.feats**2 + 1))
    torch.testing.assert_close((-x).feats, -x.feats)
    assert (x + y).coords is x.coords


def test_arithmetic_rejects_mismatch():
    x = random_sparse(seed=0)
    other = random_sparse(seed=1)
    with pytest.raises(ValueError, match="identical coords"):
        x + other
    with pytest.raises(ValueError, match="broadcast"):
        x * torch.randn(x.feats.shape[0] + 1, 4)


def test_batch_broadcast():
    x = random_sparse(batch_size=2)
    scale = torch.tensor([[1.0] * 4, [3.0] * 4])
    out = x * x.batch_broadcast(scale)
    torch.testing.assert_close(out.feats[x.layout[1]], 3 * x.feats[x.layout[1]])
    torch.testing.assert_close(out.feats[x.layout[0]], x.feats[x.layout[0]])


def test_replace_keeps_layout_and_cache():
    x = random_sparse()
    x.spatial_cache["probe"] = 1
    _ = x.layout
    y = x.replace(torch.zeros(x.feats.shape[0], 7))
    assert y.spatial_cache is x.spatial_cache and y.layout is x.layout
    assert y.shape == torch.Size([2, 7])
    with pytest.raises(ValueError, match="rows"):
        x.replace(torch.zeros(3, 4))
    moved = x.coords.clone()
    moved[:, 1] = 7 - moved[:, 1]  # mirrored in x: the same rows, other voxels
    z = x.replace(x.feats, moved)
    assert "probe" not in z.spatial_cache  # new coords, fresh cache


def test_split_and_cat_round_trip():
    x = random_sparse(batch_size=3, n_per_batch=5)
    parts = x.split()
    assert [p.feats.shape[0] for p in parts] == [5, 5, 5]
    assert all((p.coords[:, 0] == 0).all() for p in parts)
    back = sparse_cat(parts)
    assert torch.equal(back.coords, x.coords) and torch.equal(back.feats, x.feats)
    wide = sparse_cat([x, x * 2], dim=1)
    assert wide.feats.shape == (15, 8)
    torch.testing.assert_close(wide.feats[:, 4:], 2 * x.feats)


def test_dense_round_trip():
    x = random_sparse(resolution=6)
    dense = x.to_dense()
    assert dense.shape == (2, 4, 6, 6, 6)
    c = x.coords.long()
    torch.testing.assert_close(dense[c[:, 0], :, c[:, 1], c[:, 2], c[:, 3]], x.feats)
    assert dense.abs().sum() == pytest.approx(x.feats.abs().sum().item(), rel=1e-6)
    back = SparseTensor.from_dense(dense)  # voxels in (batch, x, y, z) lexicographic order
    c = x.coords.long()
    order = torch.argsort(((c[:, 0] * 6 + c[:, 1]) * 6 + c[:, 2]) * 6 + c[:, 3])
    assert torch.equal(back.coords, x.coords[order]) and torch.equal(back.feats, x.feats[order])
    assert back.resolution == (6, 6, 6)


def test_to_dtype_keeps_cache():
    x = random_sparse()
    x.spatial_cache["probe"] = 1
    y = x.to(torch.float64)
    assert y.dtype == torch.float64 and y.coords.dtype == torch.int32
    assert y.spatial_cache is x.spatial_cache
