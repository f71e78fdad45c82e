"""Mixed precision: the one autocast helper of the course (training, evaluation and the memory estimate)."""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device | str = "cpu", name: str = "precision") -> None:
    """ValueError when `precision` is not one of PRECISIONS, or is fp16 off CUDA (autocast fp16 needs a
    GradScaler and CUDA kernels; bf16 has fp32's range and runs on CPU). `name` is the key the message names."""
    if precision not in PRECISIONS:
        raise ValueError(f"{name} must be fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp16" and torch.device(device).type != "cuda":
        raise ValueError(f"{name}=fp16 needs CUDA; use bf16 on CPU")


def autocast(precision: str, device: torch.device | str = "cpu", name: str = "precision"):
    """torch.autocast to bf16/fp16 on `device` (a device or its type), a no-op context for fp32.

    The parameters stay fp32 (they are the master weights); matmuls and convolutions run in the
    lower precision. fp16 off CUDA is a ValueError (see `check_precision`)."""
    check_precision(precision, device, name)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=DTYPES[precision])
