"""The package's layering, checked by import-linter (contracts in pyproject.toml), and the registries'
module lists: every module that registers something is imported by its registry's list."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    """Layers, no family imported by a generic room, independent families, no circles (`lint-imports`)."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("import-linter is not installed: `pip install -e .[dev]`")
    run = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = run.stdout[run.stdout.find("Contracts"):]
    assert run.returncode == 0, report
    assert re.search(r"Contracts: 4 kept, 0 broken", report), report


def test_contracts_catch_an_upward_import(tmp_path):
    """The contracts are not vacuous: a copy of the package with one upward import is refused, naming the line."""
    copy = tmp_path / "learnlib"
    shutil.copytree(ROOT / "learnlib", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "nn" / "upward.py").write_text("from learnlib.train import trainer  # an upward import\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    run = subprocess.run([lint, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)})
    assert run.returncode != 0
    assert "learnlib.nn.upward -> learnlib.train" in run.stdout


LIST_FACTORIES = """
import importlib, json, pkgutil, sys
import learnlib
from learnlib.registry import Registry
if sys.argv[1] == "all":  # import every module, then read every registry
    for info in pkgutil.walk_packages(learnlib.__path__, "learnlib."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
registries = {}
for name, module in list(sys.modules.items()):
    if name.startswith("learnlib"):
        for attr, value in vars(module).items():
            if isinstance(value, Registry):
                registries[f"{name}.{attr}"] = value
out = {}
for key, registry in sorted(registries.items()):
    if sys.argv[1] == "all":
        out[key] = sorted({f.__module__ for f in registry._factories.values()})
    else:
        registry.available()  # imports the registry's own module list
        out[key] = sorted({f.__module__ for f in registry._factories.values()})
print(json.dumps(out))
"""


def _factories(mode: str, setup: str = "") -> dict:
    code = setup + LIST_FACTORIES
    run = subprocess.run([sys.executable, "-c", code, mode], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_every_registering_module_is_reachable_from_its_registry_list():
    everything = _factories("all")
    assert {"learnlib.models.MODELS", "learnlib.tasks.TASKS", "learnlib.data.registry.DATASETS"} <= set(everything)
    for key, modules in everything.items():
        owner, _, attr = key.rpartition(".")
        # a fresh process that imports only the registry's module, then asks it for its names
        reached = _factories("one", f"import {owner}\n")[key]
        missing = sorted(set(modules) - set(reached))
        assert not missing, f"{key}: {missing} register names but are not reached from its module list"


def test_graders_and_the_training_face_load_lazily():
    """`import learnlib.check` / `learnlib.train` import nothing heavy; every grader loads without Hydra."""
    code = """
import sys, json
import learnlib.check, learnlib.train
light = "hydra" not in sys.modules and "learnlib.check.vit" not in sys.modules and "learnlib.train.trainer" not in sys.modules
for name in learnlib.check.__all__:
    getattr(learnlib.check, name)
graders_without_hydra = "hydra" not in sys.modules
learnlib.train.compose
print(json.dumps([light, graders_without_hydra, "hydra" in sys.modules, sorted(learnlib.check.__all__) == sorted(dir(learnlib.check)) or set(learnlib.check.__all__) <= set(dir(learnlib.check))]))
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [True, True, True, True]
