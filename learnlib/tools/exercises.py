"""Generate learner notebooks (exercises/) from solution notebooks (solutions/).

In a solution code cell, the lines between `### BEGIN SOLUTION` and `### END SOLUTION`
are the answer. The exercise keeps everything else, keeps `# HINT:` lines of the
answer, and replaces the rest by `raise NotImplementedError(...)` at the same
indentation. Outputs and execution counts are cleared.

    python -m learnlib.tools.exercises            # regenerate exercises/ from solutions/
    python -m learnlib.tools.exercises --check    # exit 1 if exercises/ is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = 'raise NotImplementedError("exercise: write your code here, then run the check below")'


def strip_solution(source: str) -> str:
    """The exercise version of one cell's source."""
    out, inside, indent, hints = [], False, "", []
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"line {number}: nested {BEGIN}")
            inside, indent, hints = True, line[: len(line) - len(line.lstrip())], []
        elif stripped == END:
            if not inside:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            out += hints + [indent + STUB]
            inside = False
        elif inside:
            if stripped.startswith("# HINT:"):
                hints.append(line)
        else:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(out)


def make_exercise(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A learner notebook: solutions stripped, outputs cleared."""
    notebook = nbformat.from_dict(solution)  # a deep copy
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = strip_solution(cell.source)
            cell.outputs, cell.execution_count = [], None
        cell.get("metadata", {}).pop("execution", None)
    return notebook


def render(notebook: nbformat.NotebookNode) -> str:
    """The notebook as the text stored on disk."""
    return nbformat.writes(notebook) + "\n"


def generate(solutions: Path, exercises: Path, check_only: bool = False) -> list[Path]:
    """Write (or, with check_only, compare) exercises for every solution; returns stale paths."""
    stale = []
    for source in sorted(solutions.glob("*.ipynb")):
        text = render(make_exercise(nbformat.read(source, as_version=4)))
        target = exercises / source.name
        if not target.exists() or target.read_text() != text:
            stale.append(target)
            if not check_only:
                exercises.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    orphans = sorted(set(p.name for p in exercises.glob("*.ipynb")) - set(p.name for p in solutions.glob("*.ipynb")))
    stale += [exercises / name for name in orphans]
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solutions", type=Path, default=Path("solutions"))
    parser.add_argument("--exercises", type=Path, default=Path("exercises"))
    parser.add_argument("--check", action="store_true", help="only report out-of-date exercises")
    args = parser.parse_args(argv)
    stale = generate(args.solutions, args.exercises, check_only=args.check)
    for path in stale:
        print(f"{'out of date' if args.check else 'wrote'}: {path}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
