"""Two-level hints for the exercises: `learnlib.check.hint(name)` points the way; level 2 gives the
answer, but only after that exercise's check has failed in this kernel (try first, then ask).

Each chapter module registers its texts with `register_hints({name: (pointer, answer)})`;
`run_check` records every failed check with `record_failure(name)`.
"""

from __future__ import annotations

import importlib

_HINTS: dict[str, tuple[str, str]] = {}
_FAILED: set[str] = set()


class Hint(str):
    """The text of a hint; printed by `hint`, so a notebook shows it once and not again as a value."""

    def _ipython_display_(self) -> None:
        """Show nothing: `hint` already printed the text."""


def register_hints(hints: dict[str, tuple[str, str]]) -> None:
    """Add (level-1 pointer, level-2 answer) texts, one pair per exercise name."""
    for name, texts in hints.items():
        if not (isinstance(texts, tuple) and len(texts) == 2 and all(isinstance(t, str) and t for t in texts)):
            raise ValueError(f"hints for {name!r}: expected a pair of non-empty strings, got {texts!r}")
        _HINTS[name] = texts


def _load_graders(name: str | None = None) -> None:
    """Import the grader module of exercise `name` (every grader when None): graders load lazily and
    register their hints on import."""
    from learnlib.check import _EXPORTS

    modules = {_EXPORTS[name]} if name in _EXPORTS else set() if name is not None else set(_EXPORTS.values())
    for module in sorted(modules):
        importlib.import_module(module)


def hint_names() -> list[str]:
    """The exercises that have hints, sorted."""
    _load_graders()
    return sorted(_HINTS)


def pointer(name: str) -> str:
    """The level-1 hint of `name`, or '' when it has none."""
    return _HINTS.get(name, ("", ""))[0]


def record_failure(name: str) -> None:
    """Remember that the check `name` failed in this kernel (this unlocks its level-2 hint)."""
    _FAILED.add(name)


def forget_failures() -> None:
    """Lock every level-2 hint again (as in a fresh kernel)."""
    _FAILED.clear()


def hint(name: str, level: int = 1) -> Hint:
    """Print and return the hint of exercise `name`: level 1 points the way, level 2 gives the answer
    once `learnlib.check.<name>(...)` has failed at least once in this kernel."""
    if name not in _HINTS:
        _load_graders(name)
    if name not in _HINTS:
        raise ValueError(f"no hints for {name!r}; exercises with hints: {', '.join(hint_names())}")
    if level not in (1, 2):
        raise ValueError(f"level must be 1 (a pointer) or 2 (the answer), got {level!r}")
    first, answer = _HINTS[name]
    if level == 1:
        text = f"Hint 1 for {name}: {first}\nStill stuck after trying? learnlib.check.hint({name!r}, level=2)"
    elif name in _FAILED:
        text = f"Hint 2 for {name}: {answer}"
    else:
        text = (f"Hint 2 for {name} opens after you have tried: write your function and run its check, "
                f"learnlib.check.{name}(your_function), first. Until then: {first}")
    print(text)
    return Hint(text)


def registered_hints() -> dict[str, tuple[str, str]]:
    """A copy of every registered {name: (pointer, answer)}."""
    _load_graders()
    return dict(_HINTS)
