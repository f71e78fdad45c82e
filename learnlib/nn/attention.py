"""Scaled dot-product attention with backend dispatch, and multi-head self-attention.

Backends (names and resolution in `learnlib.nn.backends`) compute the same function:
- "reference": softmax(Q K^T / sqrt(d) + mask) V written out in PyTorch, and the only one
  that can return the attention weights (for plots).
- "sdpa": `torch.nn.functional.scaled_dot_product_attention` (fused kernels where available).
- "flash": `flash_attn_func` of the flash-attn package (CUDA, fp16/bf16, no mask); imported on first use.
- "auto": flash when it applies and is installed, else sdpa.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from learnlib.nn import backends
from learnlib.nn.backends import canonical_backend, resolve_backend

_FLASH_DTYPES = (torch.float16, torch.bfloat16)


def _flash_applies(q: torch.Tensor, mask: torch.Tensor | None) -> bool:
    """Whether `flash_attn_func` can compute this call: half precision, no mask, head dim 8k <= 256."""
    head_dim = q.shape[-1]
    return q.dtype in _FLASH_DTYPES and mask is None and head_dim % 8 == 0 and head_dim <= 256


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape (B, H, N, D), got {tuple(t.shape)}")
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:
        raise ValueError(
            f"q, k, v must share (B, H); got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the head dim D; got q {tuple(q.shape)}, k {tuple(k.shape)}")
    if k.shape[2] != v.shape[2]:
        raise ValueError(f"k and v must share the length N; got k {tuple(k.shape)}, v {tuple(v.shape)}")
    if mask is not None:
        expected = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        try:
            torch.broadcast_shapes(mask.shape, expected)
        except RuntimeError:
            raise ValueError(
                f"mask must broadcast to (B, H, Nq, Nk) = {expected}, got {tuple(mask.shape)}"
            ) from None
        if mask.dtype != torch.bool and not mask.is_floating_point():
            raise ValueError(
                f"mask must be bool (True = attend) or float (added to scores), got {mask.dtype}"
            )


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None,
                      scale: float | None = None) -> torch.Tensor:
    """softmax(Q K^T * scale + mask) over keys: (B, H, Nq, Nk). Bool mask: True = attend."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, H, Nq, Nk)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    return scores.softmax(dim=-1)


def _reference(q, k, v, mask, dropout_p, scale):
    attn = attention_weights(q, k, mask, scale)  # (B, H, Nq, Nk)
    dropped = F.dropout(attn, p=dropout_p) if dropout_p > 0 else attn
    return dropped @ v, attn  # (B, H, Nq, D), (B, H, Nq, Nk)


def _flash(q, k, v, dropout_p, scale):
    if not backends.flash_device_ok(q.device) or q.dtype not in _FLASH_DTYPES:
        raise ValueError(f"the flash backend needs CUDA fp16/bf16 tensors, got {q.device} {q.dtype}")
    from flash_attn import flash_attn_func

    q, k, v = (rearrange(t, "b h n d -> b n h d").contiguous() for t in (q, k, v))  # (B, N, H, D)
    out = flash_attn_func(q, k, v, dropout_p=dropout_p, softmax_scale=scale)  # (B, Nq, H, D)
    return rearrange(out, "b n h d -> b h n d")  # (B, H, Nq, D)


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
    dropout_p: float = 0.0, backend: str = "auto", scale: float | None = None,
    return_attention: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T / sqrt(D) + mask) V for q (B, H, Nq, D), k (B, H, Nk, D), v (B, H, Nk, Dv).

    `mask` broadcasts to (B, H, Nq, Nk): bool (True = may attend) or float (added to the
    scores; a float mask is cast to q's dtype). `dropout_p` drops attention weights (pass 0 in
    eval). With `return_attention=True` the reference backend runs and (output, weights) is returned.
    """
    _check_qkv(q, k, v, mask)
    if return_attention:
        if canonical_backend(backend) not in ("auto", "reference"):
            raise ValueError(f"return_attention needs the 'reference' backend, got backend={backend!r}")
        return _reference(q, k, v, mask, dropout_p, scale)
    chosen = resolve_backend(backend, q.device, _flash_applies(q, mask))
    if chosen == "reference":
        return _reference(q, k, v, mask, dropout_p, scale)[0]
    if chosen == "sdpa":
        if mask is not None and mask.is_floating_point():
            mask = mask.to(q.dtype)  # fused kernels want the scores' dtype (autocast may differ)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
    if mask is not None:
        raise ValueError("the flash backend takes no mask; use backend='sdpa' or 'reference'")
    return _flash(q, k, v, dropout_p, scale)


class Attention(nn.Module):
    """Multi-head self-attention with one fused `qkv` Linear and an output `proj` (timm layout)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, backend: str = "auto"):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.backend = canonical_backend(backend)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                return_attention: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, dim) -> (B, N, dim); with return_attention also the weights (B, heads, N, N)."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"Attention expects x of shape (B, N, {self.dim}), got {tuple(x.shape)}")
        qkv = rearrange(self.qkv(x), "b n (three h d) -> three b h n d",
                        three=3, h=self.num_heads)  # (3, B, H, N, D)
        q, k, v = qkv.unbind(0)  # each (B, H, N, D)
        out = scaled_dot_product_attention(
            q, k, v, mask=mask, dropout_p=self.attn_drop if self.training else 0.0,
            backend="reference" if return_attention else self.backend, scale=self.scale,
            return_attention=return_attention,
        )
        out, attn = out if return_attention else (out, None)
        out = rearrange(out, "b h n d -> b n (h d)")  # (B, N, dim)
        out = self.proj_drop(self.proj(out))
        return (out, attn) if return_attention else out
