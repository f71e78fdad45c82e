"""Sparse convolution and resampling: parity with dense conv3d and brute-force references."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from learnlib.sparse import (
    SparseDownsample,
    SparseTensor,
    SparseUpsample,
    SubMConv3d,
    random_coords,
    submanifold_neighbors,
)


def random_sparse(seed=0, batch_size=2, n=40, resolution=7, channels=3):
    gen = torch.Generator().manual_seed(seed)
    coords = random_coords(batch_size, n, resolution, gen)
    return SparseTensor(torch.randn(coords.shape[0], channels, generator=gen), coords, resolution=resolution)


def test_neighbors_match_brute_force():
    x = random_sparse(n=25, resolution=5)
    nbr = submanifold_neighbors(x.coords, kernel_size=3)
    row_of = {tuple(c): i for i, c in enumerate(x.coords.tolist())}
    n = x.coords.shape[0]
    for i, (b, px, py, pz) in enumerate(x.coords.tolist()):
        for k, (dx, dy, dz) in enumerate(itertools.product((-1, 0, 1), repeat=3)):
            assert nbr[i, k].item() == row_of.get((b, px + dx, py + dy, pz + dz), n)


@pytest.mark.parametrize("kernel_size,dilation", [(3, 1), (3, 2), (5, 1)])
def test_submconv_matches_dense_conv_at_active_sites(kernel_size, dilation):
    x = random_sparse()
    conv = SubMConv3d(3, 5, kernel_size=kernel_size, dilation=dilation, backend="torch")
    out = conv(x)
    dense = F.conv3d(x.to_dense(), conv.weight, conv.bias, padding=dilation * (kernel_size // 2), dilation=dilation)
    c = x.coords.long()
    expected = dense[c[:, 0], :, c[:, 1], c[:, 2], c[:, 3]]  # (N, 5)
    torch.testing.assert_close(out.feats, expected, atol=1e-5, rtol=1e-5)
    assert out.coords is x.coords
    assert ("submconv", kernel_size, dilation) in x.spatial_cache


def test_submconv_gradients_match_dense():
    x = random_sparse(n=20, resolution=5)
    conv = SubMConv3d(3, 4, bias=False, backend="torch")
    conv(x).feats.square().sum().backward()
    weight = conv.weight.detach().clone().requires_grad_(True)
    dense = F.conv3d(x.to_dense(), weight, padding=1)
    c = x.coords.long()
    dense[c[:, 0], :, c[:, 1], c[:, 2], c[:, 3]].square().sum().backward()
    torch.testing.assert_close(conv.weight.grad, weight.grad, atol=1e-4, rtol=1e-4)


def test_submconv_rejects_bad_input():
    with pytest.raises(ValueError, match="odd"):
        SubMConv3d(3, 3, kernel_size=2)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        SubMConv3d(4, 3, backend="torch")(random_sparse())


def test_spconv_matches_torch():
    pytest.importorskip("spconv.pytorch")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = random_sparse().to(device)
    conv = SubMConv3d(3, 5, backend="torch").to(device)
    ref = conv(x).feats
    conv.backend = "spconv"
    torch.testing.assert_close(conv(x).feats, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["mean", "max"])
def test_downsample_matches_reference(mode):
    x = random_sparse(resolution=7)
    down = SparseDownsample(2, mode)(x)
    groups = {}
    for i, (b, px, py, pz) in enumerate(x.coords.tolist()):
        groups.setdefault((b, px // 2, py // 2, pz // 2), []).append(i)
    keys = sorted(groups)
    assert down.coords.tolist() == [list(k) for k in keys]
    reduce = (lambda f: f.mean(0)) if mode == "mean" else (lambda f: f.amax(0))
    expected = torch.stack([reduce(x.feats[groups[k]]) for k in keys])
    torch.testing.assert_close(down.feats, expected)
    assert down.resolution == (4, 4, 4) and down.batch_size == 2


def test_upsample_returns_to_cached_layout():
    x = random_sparse(resolution=7)
    down = SparseDownsample(2)(x)
    up = SparseUpsample(2)(down * 2.0)  # arithmetic keeps the cache
    assert torch.equal(up.coords, x.coords) and up.resolution == x.resolution
    assert up.spatial_cache is x.spatial_cache
    parent = {tuple(c): i for i, c in enumerate(down.coords.tolist())}
    rows = [parent[(b, px // 2, py // 2, pz // 2)] for b, px, py, pz in x.coords.tolist()]
    torch.testing.assert_close(up.feats, 2.0 * down.feats[rows])


def test_upsample_without_cache_makes_children():
    x = random_sparse(n=5, resolution=4)
    up = SparseUpsample(2, use_cache=False)(x)
    assert up.feats.shape[0] == 8 * 10 and up.resolution == (8, 8, 8)  # 2 batches x 5 voxels
    assert torch.equal(up.feats, x.feats.repeat_interleave(8, 0))
    parents = up.coords.clone()
    parents[:, 1:] //= 2
    assert torch.equal(parents, x.coords.repeat_interleave(8, 0))
    assert len({tuple(c) for c in up.coords.tolist()}) == 80
    assert (up.coords[1:, 0] >= up.coords[:-1, 0]).all()
