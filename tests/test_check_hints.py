"""learnlib.check.hint: level 1 always, level 2 only after that exercise's check has failed in this kernel."""

import re
from pathlib import Path

import nbformat
import pytest

from learnlib import check
from learnlib.check.hints import forget_failures, registered_hints
from learnlib.vq import straight_through

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_kernel():
    forget_failures()
    yield
    forget_failures()


def stub(*args, **kwargs):
    raise NotImplementedError("exercise")


def test_level_one_points_the_way_and_level_two_waits_for_a_try(capsys):
    first = check.hint("straight_through")
    assert first in capsys.readouterr().out
    assert "(zq - z).detach()" not in first and "level=2" in first
    locked = check.hint("straight_through", level=2)
    assert "(zq - z).detach()" not in locked and "run its check" in locked
    assert "learnlib.check.straight_through(your_function)" in locked


def test_a_stub_does_not_open_level_two():
    result = check.straight_through(stub)
    assert not result and "not implemented yet" in result.message
    assert "(zq - z).detach()" not in check.hint("straight_through", level=2)


def test_a_failed_check_opens_level_two_for_that_exercise_only():
    result = check.straight_through(lambda z, zq: z + (zq - z))
    assert not result
    assert result.message.endswith("for a hint: learnlib.check.hint('straight_through')")
    assert "return z + (zq - z).detach()" in check.hint("straight_through", level=2)
    assert "run its check" in check.hint("nearest_code", level=2)


def test_a_passed_check_does_not_open_level_two():
    assert check.straight_through(straight_through)
    assert "run its check" in check.hint("straight_through", level=2)


def test_unknown_exercise_and_level_are_rejected():
    with pytest.raises(ValueError, match="no hints for 'nearest'"):
        check.hint("nearest")
    with pytest.raises(ValueError, match="level must be 1"):
        check.hint("nearest_code", level=3)


def test_every_exercise_has_a_pointer_and_an_answer():
    names = set()
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            names.update(re.findall(r"^check\.(\w+)\(", cell.source, flags=re.MULTILINE) if cell.cell_type == "code" else [])
    assert len(names) >= 21
    for name in names:
        pointer, answer = registered_hints()[name]
        assert pointer != answer and len(pointer) > 40 and len(answer) > 20, name
