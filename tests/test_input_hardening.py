"""Hostile inputs to the sparse layers, the rasterizer and the VAR sampler: each ends in a clear
ValueError or in the documented result (empty tensors, the background image)."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from learnlib.models import create
from learnlib.sparse import (
    SparseDownsample,
    SparseMultiHeadAttention,
    SparseTensor,
    SparseUpsample,
    SubMConv3d,
    random_coords,
    sparse_cat,
    sparse_serialized_self_attention,
    sparse_windowed_self_attention,
)
from learnlib.sparse.conv import _spconv_available
from learnlib.splat import Gaussians, rasterize, rasterize_torch
from learnlib.var import autoregressive_sample, cfg_mix, sample_images, top_k_top_p_filter
from learnlib.var.sampling import check_guidance, sample_from_logits


def _coords(rows):
    return torch.tensor(rows, dtype=torch.int32)


def _first_repeat(rows):
    """(row, earlier row) of the first voxel seen twice, by a Python scan."""
    seen = {}
    for i, row in enumerate(rows):
        if tuple(row) in seen:
            return i, seen[tuple(row)]
        seen[tuple(row)] = i
    return None


# --------------------------------------------------------------------- duplicate coordinates
def test_duplicate_coords_are_rejected_naming_the_first_repeat():
    coords = _coords([[0, 1, 1, 1], [0, 2, 2, 2], [0, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0]])
    feats = torch.randn(5, 2)
    with pytest.raises(ValueError, match=r"row 2 \(batch, x, y, z\) = \(0, 1, 1, 1\) repeats row 0 "
                                         r"\(2 repeated rows in all\).*SparseTensor\.coalesce"):
        SparseTensor(feats, coords)
    with pytest.raises(ValueError, match="repeats row 0"):
        SparseTensor(feats, coords, resolution=4, batch_size=2)
    x = SparseTensor(feats, _coords([[0, 1, 1, 1], [0, 2, 2, 2], [0, 3, 3, 3], [1, 0, 0, 0], [1, 0, 0, 1]]))
    moved = x.coords.clone()
    moved[4, 3] = 0  # new coords through replace are validated too
    with pytest.raises(ValueError, match=r"row 4 .* = \(1, 0, 0, 0\) repeats row 3 \(1 repeated row in all\)"):
        x.replace(feats, moved)


@pytest.mark.parametrize("voxel_order", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_duplicate_check_agrees_with_a_python_scan(seed, voxel_order):
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(2, 40, (1,), generator=gen))
    batch = torch.randint(0, 3, (n, 1), generator=gen).sort(dim=0).values
    xyz = torch.randint(0, 4 if seed % 2 else 9, (n, 3), generator=gen)  # small grids repeat voxels
    coords = torch.cat([batch, xyz], dim=1).int()  # (n, 4)
    if voxel_order:  # rows sorted by (batch, x, y, z), as from_dense and voxelizers give them
        coords = torch.tensor(sorted(coords.tolist()), dtype=torch.int32)
    expected = _first_repeat(coords.tolist())
    if expected is None:
        SparseTensor(torch.randn(n, 3), coords)
    else:
        row, earlier = expected
        with pytest.raises(ValueError, match=rf"row {row} .* repeats row {earlier} "):
            SparseTensor(torch.randn(n, 3), coords)


def _coalesce_reference(feats, coords, reduce):
    groups = {}
    for f, c in zip(feats, coords.tolist()):
        groups.setdefault(tuple(c), []).append(f)
    keys = sorted(groups)
    merged = [torch.stack(groups[k]).mean(0) if reduce == "mean" else torch.stack(groups[k]).sum(0) for k in keys]
    return torch.tensor(keys, dtype=torch.int32), torch.stack(merged)


@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_coalesce_merges_repeated_voxels(reduce):
    gen = torch.Generator().manual_seed(3)
    n = 60
    coords = torch.cat([torch.randint(0, 2, (n, 1), generator=gen), torch.randint(0, 3, (n, 3), generator=gen)], 1).int()
    feats = torch.randn(n, 2, 3, dtype=torch.float64, generator=gen, requires_grad=True)  # any trailing shape
    x = SparseTensor.coalesce(feats, coords, reduce, resolution=3, batch_size=3)  # rows in any batch order
    ref_coords, ref_feats = _coalesce_reference(feats.detach(), coords, reduce)
    assert torch.equal(x.coords, ref_coords)
    torch.testing.assert_close(x.feats, ref_feats)
    assert x.resolution == (3, 3, 3) and x.batch_size == 3 and x.coords.dtype == torch.int32
    x.feats.sum().backward()  # gradients reach every input row: 1 / count (mean) or 1 (sum)
    counts = {tuple(c): 0 for c in coords.tolist()}
    for c in coords.tolist():
        counts[tuple(c)] += 1
    expected = torch.tensor([1.0 / counts[tuple(c)] if reduce == "mean" else 1.0 for c in coords.tolist()],
                            dtype=torch.float64)
    torch.testing.assert_close(feats.grad, expected[:, None, None].expand_as(feats))


def test_coalesce_validates_its_inputs():
    coords = _coords([[0, 1, 1, 1], [0, 1, 1, 1]])
    with pytest.raises(ValueError, match="reduce must be 'mean' or 'sum', got 'max'"):
        SparseTensor.coalesce(torch.randn(2, 3), coords, "max")
    with pytest.raises(ValueError, match="int32"):
        SparseTensor.coalesce(torch.randn(2, 3), coords.long())
    with pytest.raises(ValueError, match="N = 2"):
        SparseTensor.coalesce(torch.randn(3, 3), coords)
    with pytest.raises(ValueError, match=">= 0"):
        SparseTensor.coalesce(torch.randn(2, 3), _coords([[0, -1, 1, 1], [0, 1, 1, 1]]))
    with pytest.raises(ValueError, match="resolution"):
        SparseTensor.coalesce(torch.randn(2, 3), _coords([[0, 5, 1, 1], [0, 1, 1, 1]]), resolution=4)
    empty = SparseTensor.coalesce(torch.zeros(0, 3), torch.zeros(0, 4, dtype=torch.int32), batch_size=2)
    assert empty.feats.shape == (0, 3) and empty.batch_size == 2


def test_submconv_on_coalesced_tensor_equals_dense_conv_of_accumulated_grid():
    """Summed duplicates: the sparse conv sees each voxel once, with the sum of its rows, as a dense grid would."""
    gen = torch.Generator().manual_seed(4)
    n, res = 80, 5
    coords = torch.cat([torch.zeros(n, 1, dtype=torch.long), torch.randint(0, res, (n, 3), generator=gen)], 1).int()
    feats = torch.randn(n, 3, dtype=torch.float64, generator=gen)
    x = SparseTensor.coalesce(feats, coords, "sum", resolution=res)
    conv = SubMConv3d(3, 4, backend="torch").double()
    got = conv(x).feats  # (M, 4)
    c = coords.long()
    dense = torch.zeros(1, res, res, res, 3, dtype=torch.float64).index_put_(
        (c[:, 0], c[:, 1], c[:, 2], c[:, 3]), feats, accumulate=True).permute(0, 4, 1, 2, 3)  # (1, 3, X, Y, Z)
    expected = F.conv3d(dense, conv.weight, conv.bias, padding=1)  # (1, 4, X, Y, Z)
    xc = x.coords.long()
    torch.testing.assert_close(got, expected[xc[:, 0], :, xc[:, 1], xc[:, 2], xc[:, 3]])


def _tensor(batch_size=2, count=40, resolution=8, channels=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    coords = random_coords(batch_size, count, resolution, gen, sort=True)
    return SparseTensor(torch.randn(coords.shape[0], channels, generator=gen), coords, resolution=resolution)


def test_library_operations_never_build_repeated_voxels():
    x = _tensor()
    down = SparseDownsample(mode="max")(x)
    qkv = x.replace(torch.randn(len(x), 3, 2, 4))
    outputs = [
        down, SparseDownsample(mode="mean")(x), SparseUpsample()(down), SparseUpsample(use_cache=False)(down),
        SparseUpsample(use_cache=False)(x), SparseTensor.from_dense(x.to_dense()), sparse_cat([x, down]),
        *x.split(), SubMConv3d(4, 2, backend="torch")(x), sparse_windowed_self_attention(qkv, 4, 2, backend="loop"),
        sparse_serialized_self_attention(qkv, 8, 4, backend="loop"), SparseMultiHeadAttention(4, 2, 4)(x),
    ]
    for out in outputs:  # the public constructor validates, duplicate check included
        SparseTensor(out.feats, out.coords, resolution=out.resolution, batch_size=out.batch_size)
    coords = random_coords(3, 100, 4, torch.Generator().manual_seed(1))  # more voxels asked than the grid has
    SparseTensor(torch.zeros(len(coords), 1), coords[torch.argsort(coords[:, 0], stable=True)])


# --------------------------------------------------------------------------------- 0 voxels
def _empty(resolution=None, batch_size=None, channels=4):
    return SparseTensor(torch.zeros(0, channels), torch.zeros(0, 4, dtype=torch.int32), resolution=resolution,
                        batch_size=batch_size)


BACKENDS = ["torch", "auto", pytest.param("spconv", marks=pytest.mark.skipif(
    not _spconv_available(), reason="spconv not installed"))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("resolution,batch_size", [(None, None), (8, 2)])
def test_submconv_on_zero_voxels_returns_empty_tensor(backend, resolution, batch_size):
    conv = SubMConv3d(4, 6, backend=backend)
    out = conv(_empty(resolution, batch_size))
    assert out.feats.shape == (0, 6) and out.coords.shape == (0, 4) and out.coords.dtype == torch.int32
    assert out.batch_size == (batch_size or 0) and out.resolution == (None if resolution is None else (8, 8, 8))
    out.feats.sum().backward()  # the graph stays connected: zero gradients, not missing ones
    assert torch.equal(conv.weight.grad, torch.zeros_like(conv.weight))


@pytest.mark.parametrize("mode", ["mean", "max"])
@pytest.mark.parametrize("resolution", [None, 7])
def test_resampling_zero_voxels_returns_empty_tensors(mode, resolution):
    x = _empty(resolution, batch_size=2)
    down = SparseDownsample(mode=mode)(x)
    assert down.feats.shape == (0, 4) and down.batch_size == 2
    assert down.resolution == (None if resolution is None else (4, 4, 4))
    up = SparseUpsample()(down)  # back to the cached (empty) layout
    assert up.feats.shape == (0, 4) and up.resolution == x.resolution and up.batch_size == 2
    fresh = SparseUpsample(use_cache=False)(down)
    assert fresh.feats.shape == (0, 4) and fresh.resolution == (None if resolution is None else (8, 8, 8))


@pytest.mark.parametrize("backend", ["loop", "sdpa", "sdpa_bucketed", "auto"])
def test_sparse_attention_on_zero_voxels_returns_empty_tensor(backend):
    x = _empty(resolution=8, batch_size=1, channels=8)
    attn = SparseMultiHeadAttention(8, 2, window_size=4, shift_window=2, backend=backend)
    out = attn(x)
    assert out.feats.shape == (0, 8) and out.batch_size == 1
    out.feats.sum().backward()  # every parameter gets a (zero) gradient, as DDP expects
    assert torch.equal(attn.to_qkv.weight.grad, torch.zeros_like(attn.to_qkv.weight))
    qkv = x.replace(torch.zeros(0, 3, 2, 4))
    assert sparse_windowed_self_attention(qkv, 4, backend=backend).feats.shape == (0, 2, 4)
    assert sparse_serialized_self_attention(qkv, 16, backend=backend).feats.shape == (0, 2, 4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sparse_layers_on_zero_voxels_on_cuda():
    x = _empty(resolution=8, batch_size=1, channels=8).to("cuda")
    assert SubMConv3d(8, 4).cuda()(x).feats.shape == (0, 4)  # spconv when installed; 0 voxels take the torch path
    assert SparseDownsample()(x).feats.shape == (0, 8)
    assert SparseMultiHeadAttention(8, 2, window_size=4).cuda()(x).feats.shape == (0, 8)
    pytest.importorskip("flash_attn")
    qkv = x.replace(torch.zeros(0, 3, 2, 4, device="cuda", dtype=torch.bfloat16))
    assert sparse_windowed_self_attention(qkv, 4, backend="flash").feats.shape == (0, 2, 4)


# ----------------------------------------------------------------------------- rasterizer
def _cameras(C=2, W=12, H=10, f=15.0):
    view = torch.eye(4, dtype=torch.float64).repeat(C, 1, 1)  # (C, 4, 4) cameras at the origin along +z
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], dtype=torch.float64).repeat(C, 1, 1)  # (C, 3, 3)
    return view, K, W, H


def _gaussians(n, dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    means = torch.cat([torch.rand(n, 2, generator=gen) - 0.5, 3 + torch.rand(n, 1, generator=gen)], 1)
    quats, scales = torch.randn(n, 4, generator=gen), 0.2 + 0.1 * torch.rand(n, 3, generator=gen)
    opacities, colors = 0.3 + 0.5 * torch.rand(n, generator=gen), torch.rand(n, 3, generator=gen)
    return [t.to(dtype) for t in (means, quats, scales, opacities, colors)]


@pytest.mark.parametrize("render_mode", ["RGB", "D", "ED", "RGB+D", "RGB+ED"])
@pytest.mark.parametrize("with_background", [False, True])
@pytest.mark.parametrize("fn", [rasterize, rasterize_torch])
def test_rasterize_zero_gaussians_equals_a_fully_culled_scene(render_mode, with_background, fn):
    view, K, W, H = _cameras()
    D = 1 if render_mode in ("D", "ED") else 3
    backgrounds = torch.rand(2, D, dtype=torch.float64) if with_background else None
    behind = _gaussians(1)
    behind[0] = torch.tensor([[0.0, 0.0, -2.0]], dtype=torch.float64)  # behind the cameras: culled
    ref_colors, ref_alphas, _ = rasterize_torch(*behind, view, K, W, H, backgrounds=backgrounds, render_mode=render_mode)
    empty = [t[:0] for t in _gaussians(1)]
    colors, alphas, info = fn(*empty, view, K, W, H, backgrounds=backgrounds, render_mode=render_mode)
    assert torch.equal(colors, ref_colors) and torch.equal(alphas, ref_alphas)
    assert alphas.shape == (2, H, W, 1) and not alphas.any()
    if with_background and render_mode == "RGB":
        assert torch.equal(colors, backgrounds[:, None, None, :].expand(2, H, W, 3))
    assert info["means2d"].shape == (2, 0, 2) and info["radii"].shape == (2, 0, 2) and info["n_intersections"] == 0


def test_rasterize_zero_gaussians_with_per_camera_colors():
    view, K, W, H = _cameras()
    colors, alphas, _ = rasterize(*[t[:0] for t in _gaussians(1)][:4], torch.zeros(2, 0, 5, dtype=torch.float64),
                                  view, K, W, H)
    assert colors.shape == (2, H, W, 5) and not colors.any() and not alphas.any()


@pytest.mark.parametrize("field,position", [("means", 0), ("quats", 1), ("scales", 2), ("opacities", 3)])
@pytest.mark.parametrize("value", [math.nan, math.inf])
@pytest.mark.parametrize("fn", [rasterize, rasterize_torch])
def test_rasterize_rejects_non_finite_gaussians(field, position, value, fn):
    view, K, W, H = _cameras()
    args = _gaussians(5)
    bad = args[position].clone()
    bad[3] = value
    bad[4] = value  # only the first bad Gaussian is named
    args[position] = bad
    with pytest.raises(ValueError, match=rf"rasterize: {field}\[3\] = .* is not finite"):
        fn(*args, view, K, W, H)


def test_gaussians_render_rejects_nan_raw_means():
    view, K, W, H = _cameras()
    g = Gaussians.from_points(_gaussians(4)[0])
    g.raw_means[2, 1] = math.nan
    with pytest.raises(ValueError, match=r"means\[2\]"):
        g.render(view, K, W, H)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_from_points_rejects_non_finite_points(value):
    points = _gaussians(6)[0]
    points[4, 2] = value
    points[5, 0] = value
    with pytest.raises(ValueError, match=r"points\[4\] = .* \(2 non-finite point\(s\) in all\)"):
        Gaussians.from_points(points)
    keep = torch.isfinite(points).all(dim=1)
    g = Gaussians.from_points(points[keep])  # the suggested repair works
    assert torch.isfinite(g.scales).all() and len(g) == 4


# ----------------------------------------------------------------------------- VAR sampling
@pytest.fixture(scope="module")
def var_models():
    torch.manual_seed(0)
    return create("vqvae_digits").eval(), create("var_digits").eval()


@pytest.mark.parametrize("labels,match", [
    ([3, 10], r"labels\[1\] = 10 is not a class: labels must lie in 0\.\.9 .* -1 for the null class"),
    ([-2], r"labels\[0\] = -2 is not a class"),
    ([[1, 2]], r"labels must be \(B,\)"),
])
def test_sampler_names_the_valid_label_range(var_models, labels, match):
    vae, var = var_models
    with pytest.raises(ValueError, match=match):
        autoregressive_sample(var, vae.quantize, torch.tensor(labels), seed=0)
    with pytest.raises(ValueError, match=match):
        sample_images(var, vae, torch.tensor(labels), seed=0)


def test_sampler_rejects_float_labels_and_accepts_the_null_class(var_models):
    vae, var = var_models
    with pytest.raises(ValueError, match="integer tensor of class ids, got dtype torch.float32"):
        autoregressive_sample(var, vae.quantize, torch.tensor([1.0]), seed=0)
    out = autoregressive_sample(var, vae.quantize, torch.tensor([-1, 4]), cfg=3.0, seed=0, return_logits=True)
    for logits in out.logits:  # (2B, l, V): label -1 conditions on the null class, like the guidance stream
        torch.testing.assert_close(logits[0], logits[2])
        assert not torch.allclose(logits[1], logits[3])


@pytest.mark.parametrize("kwargs,match", [
    ({"top_p": 1.5}, r"top_p must be a number in \[0, 1\].*got 1\.5"),
    ({"top_p": -0.1}, r"top_p must be a number in \[0, 1\].*got -0\.1"),
    ({"top_p": math.nan}, r"top_p must be a number in \[0, 1\]"),
    ({"top_k": -1}, r"top_k must be an int >= 0 .*got -1"),
    ({"top_k": 2.5}, r"top_k must be an int >= 0 .*got 2\.5"),
    ({"cfg": -1.0}, r"cfg must be a finite number >= 0 .*got -1\.0"),
    ({"cfg": math.inf}, r"cfg must be a finite number >= 0"),
])
def test_sampler_rejects_bad_guidance_and_filters(var_models, kwargs, match):
    vae, var = var_models
    with pytest.raises(ValueError, match=match):
        autoregressive_sample(var, vae.quantize, torch.tensor([1]), seed=0, **kwargs)
    with pytest.raises(ValueError, match=match):
        sample_images(var, vae, torch.tensor([1]), seed=0, **kwargs)
    if "cfg" in kwargs:  # cfg_mix itself is the bare formula shown in chapter 05
        with pytest.raises(ValueError, match=match):
            check_guidance(kwargs["cfg"])
    else:
        logits = torch.randn(1, 2, 8)
        args = {"top_k": kwargs.get("top_k", 0), "top_p": kwargs.get("top_p", 0.0)}
        with pytest.raises(ValueError, match=match):
            top_k_top_p_filter(logits, **args)
        with pytest.raises(ValueError, match=match):
            sample_from_logits(logits, **args)


def test_filter_edges_stay_valid():
    logits = torch.randn(2, 3, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(top_k_top_p_filter(logits, 0, 1.0), logits)  # top_p = 1 keeps every token
    assert torch.equal(top_k_top_p_filter(logits, 16, 0.0), logits)  # top_k = V keeps every token
    for k, p in itertools.product([1, 3], [0.0, 0.5]):
        assert (top_k_top_p_filter(logits, k, p).isfinite().sum(-1) <= k).all()
    torch.testing.assert_close(cfg_mix(logits, 2 * logits, 0.0, 2, 3), logits)  # cfg = 0: no guidance
