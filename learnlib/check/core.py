"""The grading machinery: run a learner's function against a reference and report plainly."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from learnlib.check.hints import pointer, record_failure

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
    """Run every case (a callable raising Mismatch on failure); print the outcome and return it.

    A stub (NotImplementedError) gets the exercise's level-1 hint (or `hint`); any other failure
    is recorded, which unlocks `learnlib.check.hint(name, level=2)`, and ends with how to ask for a hint.
    """
    count, stub = 0, False
    try:
        for case in cases:
            case()
            count += 1
    except NotImplementedError:
        stub = True
        message = f"{FAIL} {name}: not implemented yet; replace the `raise NotImplementedError` line."
        first = pointer(name) or hint
        if first:
            message += f" Hint: {first}"
    except Mismatch as err:
        message = f"{FAIL} {name} (case {count + 1}): {err}"
    except Exception as err:  # the learner's code raised: report it without a traceback
        message = f"{FAIL} {name} (case {count + 1}): your function raised {type(err).__name__}: {err}"
    else:
        message = f"{PASS} {name}: all {count} checks agree with the reference."
        print(message)
        return CheckResult(name, True, message)
    if not stub:
        record_failure(name)
        message += f"\nfor a hint: learnlib.check.hint({name!r})"
    print(message)
    return CheckResult(name, False, message)


@contextmanager
def demo(exercise: str) -> Iterator[None]:
    """Run a notebook cell that uses the learner's `exercise` function: while it is still a stub, its
    NotImplementedError is reported in one line instead of stopping "Run All" before the next exercise."""
    try:
        yield
    except NotImplementedError:
        print(f"skipped: this cell uses your `{exercise}`, which is not implemented yet; run it again once "
              f"check.{exercise} passes.")


def show(value: Any, limit: int = 48) -> str:
    """A value written out for a message: small tensors in full (4 significant digits), big ones by shape."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.numel() > limit:
            return describe(value)
        if value.dtype == torch.bool or not value.is_floating_point():
            return str(value.tolist())
        return _rounded(value.tolist())
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):  # already written out by the grader (e.g. a shape or a camera summary)
        return value
    return repr(value)


def _rounded(nested) -> str:
    if isinstance(nested, list):
        return "[" + ", ".join(_rounded(v) for v in nested) + "]"
    return f"{nested:.4g}"


def failure(message: str, inputs: dict[str, Any] | None = None, expected: Any = None, received: Any = None) -> Mismatch:
    """A Mismatch whose text is `message` followed by the failing inputs and the expected and received values."""
    lines = [message]
    for label, value in (inputs or {}).items():
        lines.append(f"  input {label} = {show(value)}")
    if expected is not None:
        lines.append(f"  expected: {show(expected)}")
    if received is not None:
        lines.append(f"  received: {show(received)}")
    return Mismatch("\n".join(lines))


def seeded(seed: int) -> torch.Generator:
    """A fresh generator: every run of a check sees the same random inputs."""
    return torch.Generator().manual_seed(seed)
