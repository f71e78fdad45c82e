"""Attention: the reference backend against a per-head loop, and the fast backends against it."""

import math

import pytest
import torch

from learnlib.nn.attention import Attention, scaled_dot_product_attention
from learnlib.nn.backends import BACKENDS, canonical_backend, resolve_backend


def _qkv(b=2, h=3, nq=5, nk=7, d=8, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(1)
    make = lambda n: torch.randn(b, h, n, d, generator=g).to(device=device, dtype=dtype)
    return make(nq), make(nk), make(nk)


def _loop_reference(q, k, v, mask=None):
    """Attention one (batch, head, query) at a time, in float64."""
    out = torch.zeros(q.shape[:-1] + (v.shape[-1],), dtype=torch.float64)
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            for i in range(q.shape[2]):
                scores = [float(q[b, h, i].double() @ k[b, h, j].double()) / math.sqrt(q.shape[-1])
                          for j in range(k.shape[2])]
                weights = torch.tensor(scores, dtype=torch.float64)
                if mask is not None:
                    row = mask.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])[b, h, i]
                    weights = weights.masked_fill(~row, float("-inf"))
                weights = weights.softmax(0)
                out[b, h, i] = (weights[:, None] * v[b, h].double()).sum(0)
    return out


def test_reference_matches_loop_reference():
    q, k, v = _qkv()
    out = scaled_dot_product_attention(q, k, v, backend="reference")
    assert out.shape == (2, 3, 5, 8)
    torch.testing.assert_close(out.double(), _loop_reference(q, k, v), atol=1e-5, rtol=0)


def test_bool_mask_matches_loop_reference():
    q, k, v = _qkv()
    mask = torch.rand(2, 1, 5, 7, generator=torch.Generator().manual_seed(3)) > 0.4
    mask[..., 0] = True  # every query attends to at least one key
    out = scaled_dot_product_attention(q, k, v, mask=mask, backend="reference")
    torch.testing.assert_close(out.double(), _loop_reference(q, k, v, mask), atol=1e-5, rtol=0)


@pytest.mark.parametrize("mask_kind", [None, "bool", "float", "causal"])
def test_sdpa_matches_reference_fp32(mask_kind):
    q, k, v = _qkv(nq=6, nk=6)
    mask = None
    if mask_kind == "bool":
        mask = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(4)) > 0.3
        mask[..., 0] = True
    elif mask_kind == "float":
        mask = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(5))
    elif mask_kind == "causal":
        mask = torch.ones(6, 6, dtype=torch.bool).tril()
    ref = scaled_dot_product_attention(q, k, v, mask=mask, backend="reference")
    fast = scaled_dot_product_attention(q, k, v, mask=mask, backend="sdpa")
    assert (fast - ref).abs().max().item() <= 1e-5


def test_gradients_match_between_reference_and_sdpa():
    grads = {}
    for backend in ("reference", "sdpa"):
        q, k, v = (t.requires_grad_() for t in _qkv())
        scaled_dot_product_attention(q, k, v, backend=backend).square().sum().backward()
        grads[backend] = (q.grad, k.grad, v.grad)
    for a, b in zip(grads["reference"], grads["sdpa"]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_return_attention_gives_row_stochastic_weights():
    q, k, v = _qkv()
    out, attn = scaled_dot_product_attention(q, k, v, return_attention=True)
    assert attn.shape == (2, 3, 5, 7)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 3, 5))
    torch.testing.assert_close(out, attn @ v)


@pytest.mark.parametrize("shapes, match", [
    (((2, 3, 5), (2, 3, 5, 8), (2, 3, 5, 8)), r"q must have shape \(B, H, N, D\), got \(2, 3, 5\)"),
    (((2, 3, 5, 8), (2, 4, 5, 8), (2, 4, 5, 8)), "share"),
    (((2, 3, 5, 8), (2, 3, 5, 4), (2, 3, 5, 8)), "head dim"),
    (((2, 3, 5, 8), (2, 3, 5, 8), (2, 3, 6, 8)), "length"),
])
def test_bad_shapes_raise(shapes, match):
    q, k, v = (torch.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match=match):
        scaled_dot_product_attention(q, k, v)


def test_bad_mask_and_backend_raise():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"\(2, 3, 5, 7\).*\(4, 4\)"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown attention backend"):
        scaled_dot_product_attention(q, k, v, backend="fast")
    with pytest.raises(ValueError, match="CUDA"):
        scaled_dot_product_attention(q, k, v, backend="flash")
    with pytest.raises(ValueError, match="'reference'"):  # the message lists the valid names
        Attention(dim=32, num_heads=4, backend="flash-attention")


def test_one_vocabulary_for_attention_conv_and_raster():
    from learnlib.nn.backends import KINDS

    assert canonical_backend("flash_attn") == "flash"  # the memory CLI's old word
    assert canonical_backend("torch", "conv") == canonical_backend("torch", "raster") == "reference"
    assert all(canonical_backend(name, kind) == name for kind, names in KINDS.items() for name in names)
    with pytest.raises(ValueError, match="unknown conv backend 'gsplat'"):
        canonical_backend("gsplat", "conv")
    with pytest.raises(ValueError, match="unknown raster backend 'sdpa'"):
        canonical_backend("sdpa", "raster")


def test_auto_picks_sdpa_on_cpu_and_old_names_are_aliases():
    q, _, _ = _qkv()
    assert resolve_backend("auto", q.device) == "sdpa"
    assert resolve_backend("auto", "cuda", flash_applies=False) == "sdpa"
    assert resolve_backend("reference", q.device) == "reference"
    assert [canonical_backend(name) for name in ("math", "loop", "sdpa_bucketed")] == ["reference", "reference", "sdpa"]
    assert set(map(canonical_backend, BACKENDS)) == set(BACKENDS)
    # the stored chapter-01 notebook calls the old name "math": same numbers as "reference"
    q, k, v = _qkv()
    assert torch.equal(scaled_dot_product_attention(q, k, v, backend="math"),
                       scaled_dot_product_attention(q, k, v, backend="reference"))


def test_module_backends_agree_and_weights_come_back():
    torch.manual_seed(0)
    module = Attention(dim=32, num_heads=4, qkv_bias=True, backend="reference").eval()
    x = torch.randn(3, 10, 32)
    ref, attn = module(x, return_attention=True)
    assert attn.shape == (3, 4, 10, 10)
    module.backend = "sdpa"
    assert (module(x) - ref).abs().max().item() <= 1e-5
    mask = torch.ones(10, 10, dtype=torch.bool).tril()
    module.backend = "reference"
    masked = module(x, mask=mask)
    module.backend = "sdpa"
    assert (module(x, mask=mask) - masked).abs().max().item() <= 1e-5
    # causal mask: the first token sees only itself, so it ignores later tokens
    x2 = x.clone()
    x2[:, 1:] += 1.0
    torch.testing.assert_close(module(x2, mask=mask)[:, 0], masked[:, 0])


def test_module_rejects_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        Attention(dim=30, num_heads=4)
    module = Attention(dim=32, num_heads=4)
    with pytest.raises(ValueError, match=r"\(B, N, 32\), got \(3, 10, 16\)"):
        module(torch.zeros(3, 10, 16))


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["sdpa", "flash"])
def test_bf16_fast_backends_match_reference_fp32_on_gpu(backend):
    if backend == "flash":
        pytest.importorskip("flash_attn")
        assert resolve_backend("auto", "cuda") == "flash"
    q, k, v = _qkv(b=2, h=4, nq=197, nk=197, d=64, device="cuda")
    ref = scaled_dot_product_attention(q, k, v, backend="reference")
    low = [t.bfloat16() for t in (q, k, v)]
    out = scaled_dot_product_attention(*low, backend=backend).float()
    # bf16 keeps 8 bits of mantissa: errors of a few 1e-3 relative to values of order 1
    assert (out - ref).abs().max().item() <= 2e-2
    assert (out - ref).abs().mean().item() <= 2e-3
    if backend == "sdpa":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            flash = scaled_dot_product_attention(*low, backend="sdpa").float()
        assert (flash - ref).abs().max().item() <= 2e-2
