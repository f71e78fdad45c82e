"""`make train ARGS=...` and `make test ARGS=...` hand Python the words the user typed: no make or shell expansion."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from learnlib.tools.make_args import words

REPO = Path(__file__).resolve().parents[1]


def test_words_split_like_a_shell_and_expand_nothing():
    assert words("""experiment=mlp_digits 'run_dir=runs/my run ü' x=$HOME_x;rm y=*""") == [
        "experiment=mlp_digits", "run_dir=runs/my run ü", "x=$HOME_x;rm", "y=*"]
    with pytest.raises(SystemExit, match="No closing quotation"):
        words("run_dir='open")


def make(target: str, args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # BIN: this interpreter, STAMP empty: no virtual environment is created or installed
    command = ["make", "-s", target, f"BIN={Path(sys.executable).parent}", "STAMP=", f"ARGS={args}"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env=env)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_train_passes_args_as_typed(tmp_path):
    out = make("train", f"experiment=no_such_$HOME_x;touch {tmp_path}/ran=1 'run_dir={tmp_path}/a b'", tmp_path)
    assert out.returncode != 0
    assert "cannot parse override 'experiment=no_such_$HOME_x;touch'" in out.stderr  # $H reached Python, no shell ran `touch`
    assert not (tmp_path / "ran").exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_passes_args_as_typed(tmp_path):
    out = make("test", "-p no:nbval -o addopts= --co -q 'tests/test_make_args.py::no $HOME_x;*'", tmp_path)
    assert out.returncode != 0
    assert "tests/test_make_args.py::no $HOME_x;*" in out.stdout + out.stderr  # pytest got the word as typed
