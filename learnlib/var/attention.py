"""VAR self-attention: fused qkv with q/v biases, optional L2-normalised q and k, KV cache."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from learnlib.nn.attention import scaled_dot_product_attention
from learnlib.nn.backends import canonical_backend


class SelfAttention(nn.Module):
    """Multi-head self-attention of a VAR block.

    With `attn_l2_norm`, q and k are unit vectors and q is multiplied by a learned per-head
    scale exp(min(s_h, log 100)) (initialised to 4); otherwise the scale is 0.25 / sqrt(head_dim).
    With caching on (inference), keys and values of earlier calls are kept and prepended.
    `backend` names a `learnlib.nn.backends` attention backend; "auto" runs flash-attn only where
    it applies (no bias: cached inference in half precision on CUDA), sdpa elsewhere.
    """

    def __init__(self, embed_dim: int = 768, num_heads: int = 12, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, attn_l2_norm: bool = False, backend: str = "auto"):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.attn_l2_norm = attn_l2_norm
        if attn_l2_norm:
            self.scale = 1.0
            self.scale_mul_1H11 = nn.Parameter(torch.full((1, num_heads, 1, 1), math.log(4.0)))
            self.max_scale_mul = math.log(100.0)
        else:
            self.scale = 0.25 / math.sqrt(self.head_dim)
        self.mat_qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(embed_dim))
        self.v_bias = nn.Parameter(torch.zeros(embed_dim))
        self.register_buffer("zero_k_bias", torch.zeros(embed_dim))
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()
        self.attn_drop = attn_drop
        self.backend = canonical_backend(backend)
        self.caching, self.cached_k, self.cached_v = False, None, None

    def kv_caching(self, enable: bool) -> None:
        """Turn the KV cache on or off; both clear it."""
        self.caching, self.cached_k, self.cached_v = enable, None, None

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
        """x (B, L, C) -> (B, L, C); attn_bias (1, 1, L, L) additive, None with the cache on."""
        if x.ndim != 3:
            raise ValueError(f"attention expects tokens (B, L, C), got {tuple(x.shape)}")
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))  # (3C,)
        qkv = F.linear(x, self.mat_qkv.weight, bias)  # (B, L, 3C)
        q, k, v = rearrange(qkv, "b l (three h c) -> three b h l c", three=3, h=self.num_heads)  # (B, H, L, c)
        if self.attn_l2_norm:
            scale_mul = self.scale_mul_1H11.clamp_max(self.max_scale_mul).exp()  # (1, H, 1, 1)
            q = F.normalize(q, dim=-1) * scale_mul
            k = F.normalize(k, dim=-1)
            q, k = q.to(v.dtype), k.to(v.dtype)  # normalisation may upcast under autocast
        if self.caching:
            if self.cached_k is not None:
                k = torch.cat((self.cached_k, k), dim=2)  # (B, H, L_past + L, c)
                v = torch.cat((self.cached_v, v), dim=2)  # (B, H, L_past + L, c)
            self.cached_k, self.cached_v = k, v
        dropout_p = self.attn_drop if self.training else 0.0
        out = scaled_dot_product_attention(q, k, v, attn_bias, dropout_p, self.backend, self.scale)  # (B, H, L, c)
        out = rearrange(out, "b h l c -> b l (h c)")  # (B, L, C)
        return self.proj_drop(self.proj(out))
