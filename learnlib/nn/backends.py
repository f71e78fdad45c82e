"""The attention backend names shared by dense, VAR and sparse attention, and their one resolver.

- "reference": plain PyTorch written out (dense: softmax(Q K^T * scale + mask) V; sparse: one
  Python iteration per group); readable, runs everywhere, the one the others are tested against.
- "sdpa": torch's fused `scaled_dot_product_attention` (sparse: groups padded to length buckets).
- "flash": the `flash-attn` package (dense `flash_attn_func`, sparse varlen kernel); CUDA only.
- "auto": "flash" on CUDA when flash-attn is installed and applies to the call, else "sdpa".

Older names ("math", "loop", "sdpa_bucketed") are still accepted because stored notebooks call them.
"""

from __future__ import annotations

import functools

import torch

BACKENDS = ("auto", "reference", "sdpa", "flash")
ALIASES = {"math": "reference", "loop": "reference", "sdpa_bucketed": "sdpa"}


@functools.lru_cache(maxsize=1)
def flash_attn_available() -> bool:
    """True when the `flash_attn` package can be imported."""
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


def canonical_backend(backend: str) -> str:
    """`backend` as one of BACKENDS (aliases mapped); ValueError naming the valid names otherwise."""
    name = ALIASES.get(backend, backend)
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; expected one of {BACKENDS} "
                         f"(or an older alias {tuple(ALIASES)})")
    return name


def resolve_backend(backend: str, device: torch.device | str, flash_applies: bool = True) -> str:
    """The concrete backend ("reference", "sdpa" or "flash") that `backend` means on `device`.

    `flash_applies` says whether flash-attn can compute this call (dtype, mask, head size); "auto"
    picks "flash" only when it does, the device is CUDA and flash-attn is installed.
    """
    name = canonical_backend(backend)
    is_cuda = torch.device(device).type == "cuda"
    if name == "auto":
        return "flash" if is_cuda and flash_applies and flash_attn_available() else "sdpa"
    if name == "flash" and not is_cuda:
        raise ValueError(f"attention backend 'flash' needs CUDA tensors, got device {torch.device(device)}; "
                         "use 'sdpa' or 'reference'")
    return name
