"""The import layering of the shared rooms, read from the source (lazy imports inside functions count).

`data`, `sparse`, `splat` and `nn` never import a family (the SLat pipeline lives in `learnlib/slat/data`
and is found through the dataset registry by name); `splat` does not import `data`; and the modules
of these rooms, with `slat.data`, import each other without circles.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "learnlib"
FAMILIES = ("learnlib.mlp", "learnlib.vit", "learnlib.vq", "learnlib.var", "learnlib.slat")
SHARED = ("data", "sparse", "splat", "nn")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every learnlib module named by an import statement of `path`, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("learnlib")}


def files(room: str) -> list[Path]:
    return sorted((PACKAGE / room).rglob("*.py"))


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("room", SHARED)
def test_shared_rooms_import_no_family(room):
    wrong = {(module_name(f), name) for f in files(room) for name in imported(f)
             if any(within(name, family) for family in FAMILIES)}
    assert not wrong, f"learnlib.{room} imports a family: {sorted(wrong)}"


def test_splat_does_not_import_data():
    wrong = {(module_name(f), name) for f in files("splat") for name in imported(f) if within(name, "learnlib.data")}
    assert not wrong, f"learnlib.splat imports learnlib.data: {sorted(wrong)}"


def test_no_import_circles_among_the_data_rooms():
    paths = [p for room in (*SHARED, "slat/data") for p in files(room)]
    modules = {module_name(p): p for p in paths}
    graph = {m: {n for n in imported(p) if n in modules and n != m} for m, p in modules.items()}
    for m, targets in graph.items():  # a submodule importing its own package's __init__ is no circle
        graph[m] = {n for n in targets if not within(m, n)}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError(f"import circle: {' -> '.join(stack[stack.index(n):] + [m, n])}")
            if n not in state:
                visit(n, stack + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
