"""Regression tests of the training path against a hostile user: each bad command ends in a clear error."""

import csv
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from crashing import crash_at_call

from learnlib.tasks import Classification
from learnlib.train import ConfigError, NonFiniteLossError, compose, fit
from learnlib.train.checkpoint import load_checkpoint
from learnlib.train.run_dir import RunDirectory

QUIET = ["trainer.progress=false", "trainer.tensorboard=false", "trainer.plot=false"]
REPO = Path(__file__).resolve().parents[1]


def small_cfg(run_dir: Path, *extra: str):
    return compose("mlp_digits", [f"run_dir={run_dir}", "trainer.max_steps=12", "trainer.batch_size=32",
                                  "trainer.eval_every=4", "trainer.checkpoint_every=4", "trainer.warmup_steps=2",
                                  *QUIET, *extra])


def csv_rows(run_dir: Path) -> list[tuple[int, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [(int(row["step"]), row["key"]) for row in csv.DictReader(handle)]


def test_resume_keeps_one_row_per_step_and_the_whole_history(tmp_path, monkeypatch):
    original = crash_at_call(monkeypatch, Classification, 11)  # steps 9 and 10 are logged after the step-8 checkpoint
    with pytest.raises(RuntimeError, match="simulated kill"):
        fit(small_cfg(tmp_path, "trainer.log_every=1"))
    assert max(step for step, _ in csv_rows(tmp_path)) == 10
    monkeypatch.setattr(Classification, "training_loss", original)
    result = fit(small_cfg(tmp_path, "trainer.log_every=1", "resume=true", "trainer.plot=true"))
    rows = csv_rows(tmp_path)
    assert [pair for pair, count in Counter(rows).items() if count > 1] == []
    assert sorted(step for step, key in rows if key == "train/loss") == list(range(1, 13))
    assert [step for step, _ in result.history["train/loss"]] == list(range(1, 13))  # curves show the whole run
    assert (tmp_path / "curves.png").exists()


def test_partial_checkpoint_files_are_removed_at_the_next_start(tmp_path):
    fit(small_cfg(tmp_path, "trainer.max_steps=4"))
    leftover = tmp_path / "checkpoints" / ".last.pt.abc123.tmp"
    leftover.write_bytes(b"half a checkpoint")
    fit(small_cfg(tmp_path, "resume=true", "trainer.max_steps=8"))
    assert not leftover.exists()
    assert load_checkpoint(tmp_path / "checkpoints/last.pt")["step"] == 8


@pytest.mark.parametrize(("override", "key"), [
    ("trainer.max_steps=abc", "trainer.max_steps"),
    ("trainer.max_steps=0", "trainer.max_steps"),
    ("trainer.max_steps=-5", "trainer.max_steps"),
    ("trainer.eval_every=0", "trainer.eval_every"),
    ("trainer.checkpoint_every=0", "trainer.checkpoint_every"),
    ("resume=maybe", "resume"),
    ("trainer.lr=-1e-3", "trainer.lr"),
    ("trainer.batch_size=0", "trainer.batch_size"),
    ("trainer.best_mode=maximum", "trainer.best_mode"),
    ("trainer.precision=fp8", "trainer.precision"),
    ("trainer.grad_clip=0", "trainer.grad_clip"),
    ("trainer.betas=[0.9]", "trainer.betas"),
])
def test_bad_trainer_values_name_their_key(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        fit(small_cfg(tmp_path, override))
    assert not (tmp_path / "checkpoints").exists()


def test_unknown_model_option_names_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"model 'mlp_digits' has no option\(s\) \['foo'\].*hidden"):
        fit(small_cfg(tmp_path, "+model.foo=1"))


def test_best_metric_must_be_a_metric_of_the_task(tmp_path):
    with pytest.raises(ConfigError, match="val/accuracy"):
        fit(small_cfg(tmp_path, "trainer.best_metric=val/acc"))


def test_best_mode_min_keeps_the_lowest_loss(tmp_path):
    result = fit(small_cfg(tmp_path, "trainer.best_metric=val/loss", "trainer.best_mode=min"))
    losses = [v for _, v in result.history["val/loss"]]
    assert load_checkpoint(result.best_checkpoint)["metrics"]["val/loss"] == min(losses)


def test_diverging_run_never_writes_non_finite_checkpoints(tmp_path):
    cfg = small_cfg(tmp_path, "trainer.lr=1e38", "trainer.warmup_steps=0", "trainer.checkpoint_every=1",
                    "trainer.eval_every=1", "trainer.grad_clip=null")
    with pytest.raises(NonFiniteLossError) as info:
        fit(cfg)
    message = str(info.value)
    for name in ("last.pt", "best.pt"):
        path = tmp_path / "checkpoints" / name
        if path.exists():
            state = load_checkpoint(path)
            assert all(torch.isfinite(v).all() for v in state["model"].values())
            assert f"(step {load_checkpoint(tmp_path / 'checkpoints/last.pt')['step']})" in message
    if not (tmp_path / "checkpoints/last.pt").exists():
        assert "no checkpoint written yet" in message


def test_a_second_run_on_a_locked_run_dir_is_refused(tmp_path):
    holder = RunDirectory(tmp_path)
    holder.acquire()
    try:
        with pytest.raises(ConfigError, match=rf"in use by another run \(pid {os.getpid()}.*\.lock"):
            fit(small_cfg(tmp_path))
    finally:
        holder.release()
    fit(small_cfg(tmp_path, "trainer.max_steps=2"))  # free again once released


def test_fresh_run_over_an_earlier_run_is_refused_then_overwritten_on_request(tmp_path):
    first = fit(small_cfg(tmp_path, "trainer.max_steps=4"))
    before = (tmp_path / "metrics.csv").read_bytes()
    with pytest.raises(ConfigError, match="resume=true.*overwrite=true"):
        fit(small_cfg(tmp_path, "trainer.max_steps=8"))
    assert (tmp_path / "metrics.csv").read_bytes() == before
    assert load_checkpoint(first.checkpoint)["step"] == 4
    second = fit(small_cfg(tmp_path, "trainer.max_steps=8", "overwrite=true"))
    assert load_checkpoint(second.checkpoint)["step"] == 8
    assert min(step for step, _ in csv_rows(tmp_path)) >= 1 and csv_rows(tmp_path)[0][0] <= 8


def test_checkpoints_get_the_users_usual_permissions(tmp_path):
    result = fit(small_cfg(tmp_path, "trainer.max_steps=4"))
    umask = os.umask(0)
    os.umask(umask)
    for path in (result.checkpoint, result.best_checkpoint):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_torchrun_prints_one_summary(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "learnlib.train", "experiment=mlp_digits", f"run_dir={tmp_path}",
                          "trainer.max_steps=4", "trainer.eval_every=4", "trainer.batch_size=32",
                          "trainer.device=cpu", *QUIET],
                         capture_output=True, text=True, timeout=180, cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("mlp_digits: 4 steps") == 1
