"""Exercises are generated from solutions, solutions pass their checks, untouched stubs fail cleanly."""

import contextlib
import io
from pathlib import Path

import matplotlib
import nbformat
import pytest

from learnlib.tools.exercises import STUB, generate, make_exercise, render, strip_solution

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
# exercises whose demo cells report an unwritten function instead of raising (check.demo)
RUN_ALL_REACHES_EVERY_EXERCISE = {"09_training_at_scale.ipynb"}


def test_strip_solution_keeps_hints_and_indentation():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    # HINT: double it\n    y = 2 * x\n    return y\n    ### END SOLUTION\n\nprint(1)"
    assert strip_solution(source) == f"def f(x):\n    # HINT: double it\n    {STUB}\n\nprint(1)"


@pytest.mark.parametrize("source", ["### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION",
                                    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"])
def test_strip_solution_rejects_unbalanced_markers(source):
    with pytest.raises(ValueError):
        strip_solution(source)


def test_there_are_solutions():
    assert SOLUTIONS, "no solution notebooks found"


def test_exercises_are_in_sync_with_solutions():
    stale = generate(ROOT / "solutions", ROOT / "exercises", check_only=True)
    assert not stale, f"run `make exercises`; out of date: {[str(p.relative_to(ROOT)) for p in stale]}"


def _check_calls(notebook) -> list[int]:
    return [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
            and any(line.strip().startswith("check.") for line in cell.source.splitlines())]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_outputs_show_every_check_passing(path):
    notebook = nbformat.read(path, as_version=4)
    calls = _check_calls(notebook)
    assert calls, f"{path.name} calls no learnlib.check grader"
    for index in calls:
        text = "".join(o.get("text", "") for o in notebook.cells[index].outputs)
        assert text.startswith("PASSED"), f"{path.name} cell {index}: {text!r}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_untouched_exercise_fails_every_check_cleanly(path, tmp_path, monkeypatch):
    exercise = make_exercise(nbformat.read(path, as_version=4))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    stdout = io.StringIO()
    stopped = []
    for index, cell in enumerate(exercise.cells):
        if cell.cell_type != "code":
            continue
        with contextlib.redirect_stdout(stdout):
            try:
                exec(compile(cell.source, f"<{path.name}>", "exec"), namespace)
            except NotImplementedError:
                stopped.append(index)  # a cell that uses an unwritten function directly
    if path.name in RUN_ALL_REACHES_EVERY_EXERCISE:
        assert not stopped, f"'Run All' stops at cells {stopped}: guard them with `with check.demo(name):`"
    lines = [line for line in stdout.getvalue().splitlines() if line.startswith(("PASSED", "FAILED"))]
    assert len(lines) == len(_check_calls(exercise))
    for line in lines:
        assert line.startswith("FAILED") and "not implemented yet" in line and "Traceback" not in line, line


def test_render_is_stable():
    notebook = nbformat.read(SOLUTIONS[0], as_version=4)
    assert render(make_exercise(notebook)) == render(make_exercise(nbformat.reads(render(notebook), 4)))
