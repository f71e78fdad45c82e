"""The one backend vocabulary of the course: attention, sparse convolution and rasterization.

Every kind has a plain-PyTorch "reference", optional fast backends, and "auto":
- attention: "reference" (softmax(Q K^T * scale + mask) V written out; sparse: one Python
  iteration per group), "sdpa" (torch's fused `scaled_dot_product_attention`; sparse: groups
  padded to length buckets), "flash" (the `flash-attn` package, CUDA only), "auto" ("flash" on
  CUDA when flash-attn is installed and applies to the call, else "sdpa").
- conv (sparse 3D convolution): "reference" (gather-GEMM-scatter in PyTorch), "spconv", "auto"
  (spconv when importable, else reference).
- raster (Gaussian rasterization): "reference" (the PyTorch rasterizer), "gsplat" (CUDA),
  "auto" (gsplat on CUDA when importable, else reference).

Older or package-flavoured names are accepted as aliases ("math", "loop" and "torch" mean
"reference"; "sdpa_bucketed" means "sdpa"; "flash_attn" means "flash") because stored notebooks,
configs and the memory CLI used them.
"""

from __future__ import annotations

import functools

import torch

KINDS = {
    "attention": ("auto", "reference", "sdpa", "flash"),
    "conv": ("auto", "reference", "spconv"),
    "raster": ("auto", "reference", "gsplat"),
}
BACKENDS = KINDS["attention"]
ALIASES = {"math": "reference", "loop": "reference", "torch": "reference", "sdpa_bucketed": "sdpa",
           "flash_attn": "flash"}


@functools.lru_cache(maxsize=1)
def flash_attn_available() -> bool:
    """True when the `flash_attn` package can be imported."""
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


def flash_device_ok(device: torch.device | str) -> bool:
    """Whether flash-attn's kernels can run on `device` (CUDA only).

    The one device rule of the flash backend; the tests' flash-attn stand-in patches it to run
    the flash call sites on CPU.
    """
    return torch.device(device).type == "cuda"


def canonical_backend(backend: str, kind: str = "attention") -> str:
    """`backend` as one of KINDS[kind] (aliases mapped); ValueError naming the valid names otherwise."""
    if kind not in KINDS:
        raise ValueError(f"unknown backend kind {kind!r}; expected one of {tuple(KINDS)}")
    valid = KINDS[kind]
    name = ALIASES.get(backend, backend)
    if name not in valid:
        aliases = tuple(a for a, target in ALIASES.items() if target in valid)
        raise ValueError(f"unknown {kind} backend {backend!r}; expected one of {valid} (or an alias {aliases})")
    return name


def resolve_backend(backend: str, device: torch.device | str, flash_applies: bool = True) -> str:
    """The concrete attention backend ("reference", "sdpa" or "flash") that `backend` means on `device`.

    `flash_applies` says whether flash-attn can compute this call (dtype, mask, head size); "auto"
    picks "flash" only when it does, the device is CUDA and flash-attn is installed.
    """
    name = canonical_backend(backend)
    is_cuda = flash_device_ok(device)
    if name == "auto":
        return "flash" if is_cuda and flash_applies and flash_attn_available() else "sdpa"
    if name == "flash" and not is_cuda:
        raise ValueError(f"attention backend 'flash' needs CUDA tensors, got device {torch.device(device)}; "
                         "use 'sdpa' or 'reference'")
    return name
