"""Sparse windowed / serialized attention: backend parity and independent references."""

import math

import pytest
import torch

from learnlib.sparse import (
    SparseMultiHeadAttention,
    SparseTensor,
    morton_decode,
    morton_encode,
    random_coords,
    serialized_partition,
    sparse_serialized_self_attention,
    sparse_windowed_self_attention,
)
from learnlib.sparse.attention import bucket_length, partitioned_self_attention
from learnlib.sparse.windows import sparse_window_partition


def random_qkv(seed=0, batch_size=2, n=120, resolution=12, heads=2, dim=8, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    coords = random_coords(batch_size, n, resolution, gen)
    feats = torch.randn(coords.shape[0], 3, heads, dim, generator=gen, dtype=dtype)
    return SparseTensor(feats, coords, resolution=resolution)


def masked_dense_attention(qkv, same_group):
    """Full attention over all voxels with an (N, N) mask: the definition, for small N."""
    q, k, v = qkv.unbind(1)  # (N, H, D)
    scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~same_group, float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)


@pytest.mark.parametrize("shift", [0, 2])
def test_loop_matches_masked_definition(shift):
    x = random_qkv(n=60, resolution=8)
    c = x.coords.long()
    cell = (c[:, 1:] + shift) // 4
    same = (c[:, None, 0] == c[None, :, 0]) & (cell[:, None] == cell[None, :]).all(-1)  # (N, N)
    out = sparse_windowed_self_attention(x, 4, shift, backend="reference")
    torch.testing.assert_close(out.feats, masked_dense_attention(x.feats, same), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pad_to_longest", [True, False])
@pytest.mark.parametrize("ws", [4, (6, 3, 4)])
def test_vectorized_backends_match_loop(pad_to_longest, ws):
    x = random_qkv()
    half = tuple(w // 2 for w in ((ws,) * 3 if isinstance(ws, int) else ws))
    for shift in (0, half):
        ref = sparse_windowed_self_attention(x, ws, shift, backend="reference").feats
        part = sparse_window_partition(x, ws, shift)
        out = partitioned_self_attention(x.feats, part, backend="sdpa", pad_to_longest=pad_to_longest)
        assert out.shape == ref.shape == (x.feats.shape[0], 2, 8)
        assert (out - ref).abs().max().item() <= 1e-5


def test_gradients_match_loop():
    x = random_qkv(n=80)
    grads = []
    for backend in ("reference", "sdpa"):
        feats = x.feats.clone().requires_grad_(True)
        out = sparse_windowed_self_attention(x.replace(feats), 4, 2, backend=backend)
        (out.feats * torch.linspace(-1, 1, out.feats.numel()).view_as(out.feats)).sum().backward()
        grads.append(feats.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-5)


def test_bucket_lengths_cover_and_bound_padding():
    lengths = torch.arange(1, 700)
    padded = bucket_length(lengths)
    assert (padded >= lengths).all() and (padded % 16 == 0).all()
    assert (padded - lengths < 16)[lengths <= 256].all()  # multiples of 16 up to 256
    big = lengths > 128
    assert ((padded[big] - lengths[big]).float() / lengths[big]).max() <= 1 / 8


def morton_reference(x, y, z, bits=16):
    code = 0
    for i in range(bits):
        code |= ((x >> i) & 1) << (3 * i + 2) | ((y >> i) & 1) << (3 * i + 1) | ((z >> i) & 1) << (3 * i)
    return code


def test_morton_matches_bitwise_reference_and_inverts():
    gen = torch.Generator().manual_seed(1)
    xyz = torch.randint(0, 2**16, (200, 3), generator=gen)
    codes = morton_encode(xyz)
    assert codes.tolist() == [morton_reference(*p) for p in xyz.tolist()]
    assert torch.equal(morton_decode(codes), xyz)
    with pytest.raises(ValueError, match="Morton"):
        morton_encode(torch.tensor([[2**16, 0, 0]]))


def test_serialized_partition_chunks():
    x = random_qkv(n=50)
    part = serialized_partition(x.coords, 16, shift=0)
    assert part.seqlens.tolist() == [16, 16, 16, 2] * 2 and part.batch.tolist() == [0] * 4 + [1] * 4
    shifted = serialized_partition(x.coords, 16, shift=8)
    assert shifted.seqlens.tolist() == [8, 16, 16, 10] * 2


@pytest.mark.parametrize("shift", [0, 5])
def test_serialized_attention_matches_loop_reference(shift):
    x = random_qkv(n=70)
    chunk = 16
    expected = torch.empty(x.feats.shape[0], 2, 8)
    for sl in x.layout:  # per batch: sort by a bit-by-bit Morton code, chunk, attend
        ids = list(range(sl.start, sl.stop))
        ids.sort(key=lambda i: morton_reference(*x.coords[i, 1:].tolist()))
        for start in range(-shift, len(ids), chunk):
            group = torch.tensor(ids[max(start, 0):start + chunk])
            qkv = x.feats[group]
            same = torch.ones(len(group), len(group), dtype=torch.bool)
            expected[group] = masked_dense_attention(qkv, same)
    for backend in ("reference", "sdpa"):
        out = sparse_serialized_self_attention(x, chunk, shift, backend=backend)
        assert (out.feats - expected).abs().max().item() <= 1e-5


def test_multihead_module_matches_functional():
    torch.manual_seed(0)
    x = random_qkv(n=60)
    x = x.replace(torch.randn(x.feats.shape[0], 16))
    attn = SparseMultiHeadAttention(16, num_heads=4, window_size=4, shift_window=2, backend="reference")
    qkv = attn.to_qkv(x.feats).view(-1, 3, 4, 4)  # (N, 3, H, D)
    ref = sparse_windowed_self_attention(x.replace(qkv), 4, 2, backend="reference").feats
    expected = attn.to_out(ref.reshape(-1, 16))  # (N, C)
    out = attn(x)
    torch.testing.assert_close(out.feats, expected)
    attn.backend = "sdpa"
    torch.testing.assert_close(attn(x).feats, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        attn(x.replace(torch.randn(x.feats.shape[0], 8)))


def test_old_backend_names_of_the_stored_notebook_still_work():
    x = random_qkv(n=60)
    for old, new in (("loop", "reference"), ("sdpa_bucketed", "sdpa")):
        assert torch.equal(sparse_windowed_self_attention(x, 4, 2, backend=old).feats,
                           sparse_windowed_self_attention(x, 4, 2, backend=new).feats)


def test_backend_errors():
    x = random_qkv(n=10)
    with pytest.raises(ValueError, match="backend"):
        sparse_windowed_self_attention(x, 4, backend="nope")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            sparse_windowed_self_attention(x, 4, backend="flash")
    with pytest.raises(ValueError, match="pad_to_longest"):
        partitioned_self_attention(x.feats, sparse_window_partition(x, 4, 0), "reference", pad_to_longest=True)
    with pytest.raises(ValueError, match=r"\(N, 3, H, D\)"):
        sparse_windowed_self_attention(x.replace(x.feats[:, 0]), 4)


@pytest.mark.gpu
@pytest.mark.parametrize("shift", [0, 2])
def test_flash_attn_matches_loop_on_gpu(shift):
    pytest.importorskip("flash_attn")
    x = random_qkv(n=300, heads=4, dim=32).to("cuda")
    ref = sparse_windowed_self_attention(x, 4, shift, backend="reference").feats
    out = sparse_windowed_self_attention(x.to(torch.bfloat16), 4, shift, backend="flash").feats
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)
    auto = sparse_windowed_self_attention(x, 4, shift, backend="auto").feats
    torch.testing.assert_close(auto.float(), ref, atol=2e-2, rtol=2e-2)
