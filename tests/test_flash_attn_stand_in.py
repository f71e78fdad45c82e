"""Every flash-attn call site of learnlib through a stand-in that enforces the kernels' contract.

The stand-in (tests/flash_attn_stand_in.py) has flash-attn 2's signatures, asserts what the
CUDA kernels demand (half precision, int32 cu_seqlens from 0 to the token count, an int
max_seqlen equal to the longest run, contiguous last dimension, head dim 8k <= 256) and computes
the reference. Each test forces backend "flash" on CPU and compares with the reference backend.
"""

import pytest
import torch
from flash_attn_stand_in import flash_attn_func, flash_attn_varlen_qkvpacked_func

from learnlib.nn.attention import scaled_dot_product_attention
from learnlib.nn.backends import resolve_backend
from learnlib.sparse import SparseTensor, sparse_serialized_self_attention, sparse_windowed_self_attention
from learnlib.var.attention import SelfAttention
from learnlib.vit import VisionTransformer

BF16_TOL = {"atol": 2e-2, "rtol": 2e-2}


def test_stand_in_enforces_the_kernel_contract(flash_attn_on_cpu):
    q = torch.randn(2, 5, 4, 16, dtype=torch.bfloat16)
    with pytest.raises(AssertionError, match="fp16 or bf16"):
        flash_attn_func(q.float(), q.float(), q.float())
    with pytest.raises(AssertionError, match="multiple of 8"):
        flash_attn_func(q[..., :12], q[..., :12], q[..., :12])
    with pytest.raises(AssertionError, match="contiguous"):
        wide = torch.randn(2, 5, 4, 32, dtype=torch.bfloat16)[..., ::2]
        flash_attn_func(wide, wide, wide)
    qkv = torch.randn(7, 3, 2, 8, dtype=torch.float16)
    good = torch.tensor([0, 3, 7], dtype=torch.int32)
    for cu, max_len, message in [(good.long(), 4, "int32"), (torch.tensor([1, 3, 7], dtype=torch.int32), 4, "start at 0"),
                                 (torch.tensor([0, 3, 6], dtype=torch.int32), 4, "end at"),
                                 (good, torch.tensor(4), "Python int"), (good, 7, "longest")]:
        with pytest.raises(AssertionError, match=message):
            flash_attn_varlen_qkvpacked_func(qkv, cu, max_len)
    out = flash_attn_varlen_qkvpacked_func(qkv, good, 4, softmax_scale=0.5)
    q, k, v = qkv.float().unbind(1)
    first = torch.softmax(torch.einsum("qhd,khd->hqk", q[:3], k[:3]) * 0.5, -1)  # (H, 3, 3)
    torch.testing.assert_close(out[:3].float(), torch.einsum("hqk,khd->qhd", first, v[:3]), atol=2e-3, rtol=2e-3)


def test_dense_attention_flash_matches_reference(flash_attn_on_cpu):
    q, k, v = (torch.randn(2, 4, 9, 32).to(torch.bfloat16) for _ in range(3))
    assert resolve_backend("auto", "cpu", flash_applies=True) == "flash"  # the stand-in counts as installed
    for scale in (None, 0.3):
        out = scaled_dot_product_attention(q, k, v, backend="flash", scale=scale)  # (B, H, N, D)
        ref = scaled_dot_product_attention(q.float(), k.float(), v.float(), backend="reference", scale=scale)
        torch.testing.assert_close(out.float(), ref, **BF16_TOL)
    assert flash_attn_on_cpu.count("flash_attn_func") == 2


def test_vit_forward_with_flash_matches_reference(flash_attn_on_cpu):
    kwargs = {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4, "num_classes": 10}
    torch.manual_seed(0)
    flash = VisionTransformer(attn_backend="flash", **kwargs).eval()
    ref = VisionTransformer(attn_backend="reference", **kwargs).eval()
    ref.load_state_dict(flash.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = flash.to(torch.bfloat16)(x.to(torch.bfloat16))
        expected = ref(x)
    torch.testing.assert_close(out.float(), expected, atol=5e-2, rtol=5e-2)
    assert flash_attn_on_cpu.count("flash_attn_func") == 2  # one per block


def test_dinov2_blocks_with_flash_match_reference(flash_attn_on_cpu):
    from learnlib.vit.dinov2 import DinoV2

    kwargs = {"img_size": 28, "patch_size": 14, "embed_dim": 64, "depth": 2, "num_heads": 4, "num_register_tokens": 2}
    flash = DinoV2(attn_backend="flash", **kwargs).eval()
    ref = DinoV2(attn_backend="reference", **kwargs).eval()
    ref.load_state_dict(flash.state_dict())
    x = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        out = flash.to(torch.bfloat16).patch_feature_map(x.to(torch.bfloat16))
        expected = ref.patch_feature_map(x)
    torch.testing.assert_close(out.float(), expected, atol=6e-2, rtol=6e-2)
    assert flash_attn_on_cpu.count("flash_attn_func") == 2


def _voxels(n=300, seed=0, heads=2, dim=16):
    g = torch.Generator().manual_seed(seed)
    coords = torch.unique(torch.randint(0, 12, (n, 3), generator=g), dim=0)
    batch = (torch.arange(len(coords)) >= len(coords) // 2).long()[:, None]  # two objects, rows sorted by batch
    coords = torch.cat([batch, coords], 1).int()  # (N, 4) batch, x, y, z
    qkv = torch.randn(len(coords), 3, heads, dim, generator=g)
    return SparseTensor(qkv, coords)


@pytest.mark.parametrize("shift", [0, 2])
def test_sparse_windowed_and_serialized_attention_flash_match_reference(flash_attn_on_cpu, shift):
    qkv = _voxels()
    for dtype in (torch.float32, torch.bfloat16):  # float32 inputs run the kernel in bf16
        x = qkv.replace(qkv.feats.to(dtype))
        out = sparse_windowed_self_attention(x, 4, shift, backend="flash").feats
        ref = sparse_windowed_self_attention(x.replace(x.feats.float()), 4, shift, backend="reference").feats
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), ref, **BF16_TOL)
        out = sparse_serialized_self_attention(x, 32, shift, backend="flash").feats
        ref = sparse_serialized_self_attention(x.replace(x.feats.float()), 32, shift, backend="reference").feats
        torch.testing.assert_close(out.float(), ref, **BF16_TOL)
    assert flash_attn_on_cpu.count("flash_attn_varlen_qkvpacked_func") == 4


def test_var_cached_inference_with_flash_matches_reference(flash_attn_on_cpu):
    """VAR runs flash only with the KV cache on (no attention bias): scale by scale, as in sampling."""
    torch.manual_seed(0)
    flash = SelfAttention(64, 4, attn_l2_norm=True, backend="flash").eval()
    ref = SelfAttention(64, 4, attn_l2_norm=True, backend="reference").eval()
    ref.load_state_dict(flash.state_dict())
    flash.to(torch.bfloat16)
    flash.kv_caching(True)
    ref.kv_caching(True)
    with torch.no_grad():
        for length in (1, 4, 9):
            x = torch.randn(2, length, 64)
            out = flash(x.to(torch.bfloat16), None)
            torch.testing.assert_close(out.float(), ref(x, None), atol=5e-2, rtol=5e-2)
    assert flash_attn_on_cpu.count("flash_attn_func") == 3
