"""A stand-in for the `flash_attn` package: its real signatures, its kernels' input contract, a reference result.

`install(monkeypatch)` puts a module named `flash_attn` into `sys.modules` and lets the flash
backend accept CPU tensors (`learnlib.nn.backends.flash_device_ok`), so every learnlib call site
of flash-attn runs in CI. Each function asserts what the CUDA kernels of flash-attn 2 demand
(everything but the device) and then computes softmax(Q K^T * scale) V in float32, returned in
the input dtype:
- q, k, v fp16 or bf16, all the same dtype; last dimension contiguous; head dim a multiple of 8
  and <= 256; heads of k/v dividing the heads of q;
- varlen: `cu_seqlens` int32 on the tensors' device, starting at 0, non-decreasing, last = total
  tokens; `max_seqlen` a Python int equal to the longest sequence;
- softmax_scale None (1 / sqrt(head dim)) or a float; causal masks key j > query i (aligned to
  the bottom-right corner when the lengths differ, as flash-attn >= 2.1 does).
`calls` records the name of every call, so a test can prove the flash path ran.
"""

from __future__ import annotations

import math
import sys
import types
from itertools import pairwise

import torch
from torch import Tensor

calls: list[str] = []


def _check_tensors(*tensors: Tensor) -> None:
    dtype = tensors[0].dtype
    assert dtype in (torch.float16, torch.bfloat16), f"flash-attn needs fp16 or bf16, got {dtype}"
    for t in tensors:
        assert t.dtype == dtype, f"q, k, v must share one dtype, got {[x.dtype for x in tensors]}"
        assert t.device == tensors[0].device, "q, k, v must live on one device"
        assert t.stride(-1) == 1, f"the last dimension must be contiguous, got strides {t.stride()}"
    head_dim = tensors[0].shape[-1]
    assert head_dim % 8 == 0 and head_dim <= 256, f"head dim must be a multiple of 8 and <= 256, got {head_dim}"


def _check_cu_seqlens(cu_seqlens: Tensor, max_seqlen, total: int, device: torch.device) -> list[int]:
    assert isinstance(cu_seqlens, Tensor) and cu_seqlens.dtype == torch.int32, (
        f"cu_seqlens must be an int32 tensor, got {getattr(cu_seqlens, 'dtype', type(cu_seqlens))}")
    assert cu_seqlens.device == device, f"cu_seqlens on {cu_seqlens.device}, the tensors on {device}"
    assert cu_seqlens.dim() == 1 and cu_seqlens.numel() >= 2, f"cu_seqlens must be (B+1,), got {cu_seqlens.shape}"
    bounds = cu_seqlens.tolist()
    assert bounds[0] == 0, f"cu_seqlens must start at 0, got {bounds[0]}"
    assert all(a <= b for a, b in pairwise(bounds)), "cu_seqlens must be non-decreasing"
    assert bounds[-1] == total, f"cu_seqlens must end at the number of tokens {total}, got {bounds[-1]}"
    longest = max(b - a for a, b in pairwise(bounds))
    assert type(max_seqlen) is int, f"max_seqlen must be a Python int, got {type(max_seqlen).__name__}"
    assert max_seqlen == longest, f"max_seqlen {max_seqlen} is not the longest sequence {longest}"
    return bounds


def _attend(q: Tensor, k: Tensor, v: Tensor, scale: float, causal: bool) -> Tensor:
    """One sequence: q (Nq, H, D), k and v (Nk, Hk, D) -> (Nq, H, D) in float32."""
    groups = q.shape[1] // k.shape[1]
    k = k.float().repeat_interleave(groups, dim=1)  # (Nk, H, D)
    v = v.float().repeat_interleave(groups, dim=1)  # (Nk, H, D)
    scores = torch.einsum("qhd,khd->hqk", q.float(), k) * scale  # (H, Nq, Nk)
    if causal:
        nq, nk = q.shape[0], k.shape[0]
        keep = torch.ones(nq, nk, dtype=torch.bool, device=q.device).tril(diagonal=nk - nq)  # (Nq, Nk)
        scores = scores.masked_fill(~keep, float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(dim=-1), v)  # (Nq, H, D)


def _scale(softmax_scale, head_dim: int) -> float:
    assert softmax_scale is None or isinstance(softmax_scale, (int, float)), (
        f"softmax_scale must be None or a float, got {type(softmax_scale).__name__}")
    return 1.0 / math.sqrt(head_dim) if softmax_scale is None else float(softmax_scale)


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
                    alibi_slopes=None, deterministic=False, return_attn_probs=False):
    """q (B, Nq, H, D), k and v (B, Nk, Hk, D) -> (B, Nq, H, D)."""
    calls.append("flash_attn_func")
    _check_tensors(q, k, v)
    assert q.dim() == 4 and k.shape == v.shape and q.shape[0] == k.shape[0] and q.shape[-1] == k.shape[-1], (
        f"expected q (B, Nq, H, D), k = v (B, Nk, Hk, D), got {q.shape}, {k.shape}, {v.shape}")
    assert q.shape[2] % k.shape[2] == 0, f"k/v heads {k.shape[2]} must divide q heads {q.shape[2]}"
    assert dropout_p == 0.0 and window_size == (-1, -1) and softcap == 0.0 and alibi_slopes is None, (
        "the stand-in computes the deterministic, full-window result only")
    scale = _scale(softmax_scale, q.shape[-1])
    out = torch.stack([_attend(q[b], k[b], v[b], scale, causal) for b in range(q.shape[0])])  # (B, Nq, H, D)
    return out.to(q.dtype)


def flash_attn_qkvpacked_func(qkv, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                              softcap=0.0, alibi_slopes=None, deterministic=False, return_attn_probs=False):
    """qkv (B, N, 3, H, D) -> (B, N, H, D)."""
    calls.append("flash_attn_qkvpacked_func")
    assert qkv.dim() == 5 and qkv.shape[2] == 3, f"expected qkv (B, N, 3, H, D), got {qkv.shape}"
    _check_tensors(qkv)
    q, k, v = qkv.unbind(2)
    return flash_attn_func(q, k, v, dropout_p, softmax_scale, causal, window_size, softcap, alibi_slopes)


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                           softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                           deterministic=False, return_attn_probs=False, block_table=None):
    """q (total_q, H, D), k and v (total_k, Hk, D), sequences given by cu_seqlens -> (total_q, H, D)."""
    calls.append("flash_attn_varlen_func")
    _check_tensors(q, k, v)
    assert q.dim() == 3 and k.shape == v.shape, f"expected q (total, H, D), k = v (total, Hk, D), got {q.shape}, {k.shape}"
    assert dropout_p == 0.0 and window_size == (-1, -1) and block_table is None
    bq = _check_cu_seqlens(cu_seqlens_q, max_seqlen_q, q.shape[0], q.device)
    bk = _check_cu_seqlens(cu_seqlens_k, max_seqlen_k, k.shape[0], q.device)
    assert len(bq) == len(bk), "cu_seqlens_q and cu_seqlens_k must describe the same number of sequences"
    scale = _scale(softmax_scale, q.shape[-1])
    out = q.new_empty(q.shape, dtype=torch.float32)
    for (q0, q1), (k0, k1) in zip(pairwise(bq), pairwise(bk)):
        if q1 > q0:
            out[q0:q1] = _attend(q[q0:q1], k[k0:k1], v[k0:k1], scale, causal)
    return out.to(q.dtype)


def flash_attn_varlen_qkvpacked_func(qkv, cu_seqlens, max_seqlen, dropout_p=0.0, softmax_scale=None, causal=False,
                                     window_size=(-1, -1), softcap=0.0, alibi_slopes=None, deterministic=False,
                                     return_attn_probs=False):
    """qkv (total, 3, H, D), sequences given by cu_seqlens (B+1,) -> (total, H, D)."""
    calls.append("flash_attn_varlen_qkvpacked_func")
    assert qkv.dim() == 4 and qkv.shape[1] == 3, f"expected qkv (total, 3, H, D), got {qkv.shape}"
    _check_tensors(qkv)
    q, k, v = qkv.unbind(1)
    bounds = _check_cu_seqlens(cu_seqlens, max_seqlen, qkv.shape[0], qkv.device)
    scale = _scale(softmax_scale, qkv.shape[-1])
    out = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    pieces = [_attend(q[a:b], k[a:b], v[a:b], scale, causal) for a, b in pairwise(bounds) if b > a]
    if pieces:
        out = torch.cat(pieces)  # (total, H, D): the runs cover every token in order
    return out.to(qkv.dtype)


def module() -> types.ModuleType:
    """A fresh module object named `flash_attn` holding the stand-in functions."""
    mod = types.ModuleType("flash_attn")
    mod.__version__ = "2.7.4 (stand-in)"
    for name in ("flash_attn_func", "flash_attn_qkvpacked_func", "flash_attn_varlen_func",
                 "flash_attn_varlen_qkvpacked_func"):
        setattr(mod, name, globals()[name])
    return mod


def install(monkeypatch) -> None:
    """`import flash_attn` gives the stand-in; the flash backend accepts CPU tensors while installed."""
    from learnlib.nn import backends

    monkeypatch.setitem(sys.modules, "flash_attn", module())
    monkeypatch.setattr(backends, "flash_device_ok", lambda device: True)
    backends.flash_attn_available.cache_clear()
    calls.clear()
