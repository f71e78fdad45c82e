"""Name a learner's mistake: compare a wrong result with the results of known-wrong versions of the
exercise on the same inputs, and report the matching mistake with the inputs, expected and received."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from learnlib.check.core import Mismatch, assert_close, failure


def close(got: Any, value: Tensor, atol: float = 1e-6, rtol: float = 1e-5) -> bool:
    """True when `got` is a tensor of `value`'s shape and equal values (within tolerance)."""
    if not isinstance(got, Tensor) or got.shape != value.shape:
        return False
    if not got.is_floating_point() or not value.is_floating_point():
        return torch.equal(got.detach().long(), value.detach().long())
    return torch.allclose(got.detach().to(value.dtype), value.detach(), atol=atol, rtol=rtol)


def matching_mistakes(got: Any, expected: Tensor, variants: dict[str, Tensor], atol: float = 1e-6) -> list[str]:
    """The messages of every variant that `got` equals and the reference does not."""
    return [message for message, value in variants.items()
            if close(got, value, atol) and not close(expected, value, atol)]


def compare(name: str, got: Any, expected: Tensor, variants: dict[str, Tensor], inputs: dict[str, Any],
            atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise a Mismatch when `got` differs from `expected`: naming the mistake when `got` equals a known
    wrong variant, and showing the inputs and both values (shape and type problems are reported as such)."""
    try:
        assert_close(name, got, expected, atol=atol, rtol=rtol)
    except Mismatch as err:
        if not (isinstance(got, Tensor) and got.shape == expected.shape):
            raise
        found = matching_mistakes(got, expected, variants, atol)
        message = f"{name} differs from the reference: " + " OR ".join(found) if found else str(err)
        raise failure(message, inputs, expected, got) from None
