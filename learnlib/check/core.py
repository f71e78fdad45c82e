"""The grading machinery: run a learner's function against a reference and report plainly."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

PASS, FAIL = "PASSED", "FAILED"


class Mismatch(AssertionError):
    """A difference between the learner's result and the reference, described for a learner."""


@dataclass
class CheckResult:
    """Outcome of one check; truthy when it passed. `message` is what was printed."""

    name: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message

    def _ipython_display_(self) -> None:
        """Show nothing in a notebook: the check already printed its one line."""


def describe(value: Any) -> str:
    """A short description of a value for messages (shape and dtype for tensors)."""
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of {len(value)}: [" + ", ".join(describe(v) for v in value) + "]"
    return f"{type(value).__name__} {value!r}"[:120]


def expect_tensor_like(name: str, got: Any, expected: torch.Tensor) -> torch.Tensor:
    """`got` itself when it is a tensor of `expected`'s shape; otherwise Mismatch naming `name`."""
    if not isinstance(got, torch.Tensor):
        raise Mismatch(f"{name}: expected a {describe(expected)}, got {describe(got)}")
    if got.shape != expected.shape:
        raise Mismatch(f"{name}: expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}")
    return got


def assert_close(name: str, got: Any, expected: Any, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise Mismatch naming `name` when `got` differs from `expected` in type, shape or value."""
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            raise Mismatch(f"{name}: expected {describe(expected)}, got {describe(got)}")
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_close(f"{name}[{i}]", g, e, atol, rtol)
        return
    if isinstance(expected, torch.Tensor):
        expect_tensor_like(name, got, expected)
        if got.dtype != expected.dtype and not (got.is_floating_point() and expected.is_floating_point()):
            raise Mismatch(f"{name}: expected dtype {expected.dtype}, got dtype {got.dtype}")
        if expected.dtype == torch.bool or not expected.is_floating_point():
            bad = got != expected
        else:
            bad = ~torch.isclose(got.to(expected.dtype), expected, atol=atol, rtol=rtol, equal_nan=True)
        if bad.any():
            where = tuple(int(i) for i in bad.nonzero()[0])
            raise Mismatch(f"{name}: {int(bad.sum())} of {bad.numel()} values differ; first at index {where}: "
                           f"got {got[where].item():.6g}, expected {expected[where].item():.6g}")
        return
    if isinstance(expected, float):
        if not isinstance(got, (float, int)) and not (isinstance(got, torch.Tensor) and got.numel() == 1):
            raise Mismatch(f"{name}: expected a number, got {describe(got)}")
        if abs(float(got) - expected) > atol + rtol * abs(expected):
            raise Mismatch(f"{name}: got {float(got):.6g}, expected {expected:.6g}")
        return
    if got != expected:
        raise Mismatch(f"{name}: got {describe(got)}, expected {describe(expected)}")


def run_check(name: str, cases: Iterable[Callable[[], None]], hint: str = "") -> CheckResult:
    """Run every case (a callable raising Mismatch on failure); print one line and return the result."""
    count = 0
    try:
        for case in cases:
            case()
            count += 1
    except NotImplementedError:
        message = f"{FAIL} {name}: not implemented yet; replace the `raise NotImplementedError` line."
        if hint:
            message += f" Hint: {hint}"
    except Mismatch as err:
        message = f"{FAIL} {name} (case {count + 1}): {err}"
    except Exception as err:  # the learner's code raised: report it without a traceback
        message = f"{FAIL} {name} (case {count + 1}): your function raised {type(err).__name__}: {err}"
    else:
        message = f"{PASS} {name}: all {count} checks agree with the reference."
        print(message)
        return CheckResult(name, True, message)
    print(message)
    return CheckResult(name, False, message)


def seeded(seed: int) -> torch.Generator:
    """A fresh generator: every run of a check sees the same random inputs."""
    return torch.Generator().manual_seed(seed)
