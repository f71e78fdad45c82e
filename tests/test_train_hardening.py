"""Regression tests of the training path against a hostile user: each bad command ends in a clear error."""

import contextlib
import csv
import errno
import os
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from crashing import crash_at_call
from PIL import Image

from learnlib.errors import RunWriteError
from learnlib.tasks import Classification
from learnlib.train import ConfigError, NonFiniteLossError, compose, fit
from learnlib.train.__main__ import main
from learnlib.train.checkpoint import load_checkpoint
from learnlib.train.run_dir import RunDirectory
from learnlib.train.write_errors import describe_write_failure

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


# ---------------------------------------------------------------- data that must not be lost


def test_overwrite_never_removes_files_that_no_run_wrote(tmp_path, capsys):
    stored = tmp_path / "checkpoints" / "vit_digits" / "model.pt"  # as a repository's own checkpoints/ folder
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"a course checkpoint")
    (tmp_path / "metrics.csv").write_text("step,key,value\n")
    with pytest.raises(ConfigError, match=r"holds files that no run writes \(checkpoints/vit_digits\)") as info:
        fit(small_cfg(tmp_path, "trainer.max_steps=2"))
    assert "overwrite=true to replace" not in str(info.value)  # it would not help: no suggestion to use it
    with pytest.raises(ConfigError, match=r"checkpoints/vit_digits.*another run_dir"):
        fit(small_cfg(tmp_path, "trainer.max_steps=2", "overwrite=true"))
    assert stored.read_bytes() == b"a course checkpoint" and (tmp_path / "metrics.csv").exists()
    assert main(["experiment=mlp_digits", f"run_dir={tmp_path}", "overwrite=true", *QUIET]) == 1
    assert stored.exists() and capsys.readouterr().err.count("\n") == 1


def test_overwrite_removes_a_whole_earlier_run_with_its_best_and_events(tmp_path):
    fit(small_cfg(tmp_path, "trainer.max_steps=4", "trainer.tensorboard=true"))
    (tmp_path / "checkpoints" / ".last.pt.abc.tmp").write_bytes(b"partial")
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {"last.pt", "best.pt", ".last.pt.abc.tmp"}
    result = fit(small_cfg(tmp_path, "trainer.max_steps=2", "overwrite=true"))
    assert load_checkpoint(result.checkpoint)["step"] == 2 and not (tmp_path / "tensorboard").exists()


# ---------------------------------------------------------------- resuming a finished or torn run


def test_resuming_a_finished_run_says_so_with_its_final_metrics(tmp_path, capsys):
    first = fit(small_cfg(tmp_path, "trainer.max_steps=4"))
    files = {name: (tmp_path / name).read_bytes() for name in ("metrics.csv", "config.yaml")}
    for steps in (4, 2):  # at and below the saved step
        again = fit(small_cfg(tmp_path, f"trainer.max_steps={steps}", "resume=true"))
        assert again.already_complete and again.steps == 4 and again.metrics == first.metrics
        assert again.checkpoint == first.checkpoint
    assert {name: (tmp_path / name).read_bytes() for name in files} == files  # nothing rewritten
    assert main(["experiment=mlp_digits", f"run_dir={tmp_path}", "trainer.max_steps=4", "resume=true", *QUIET]) == 0
    out = capsys.readouterr().out
    accuracy = first.metrics["val/accuracy"]
    assert f"mlp_digits: already complete at step 4 (trainer.max_steps=4); final metrics: val/accuracy={accuracy:.4f}" \
        in out and "0 steps" not in out


@pytest.mark.parametrize("tail", [b"21,train/lo", b"\x00" * 64, b"5,train/loss,0.5\r\n6,tr\x00\x00\x00"])
def test_a_torn_metrics_csv_tail_is_dropped_and_the_run_resumes(tmp_path, tail):
    fit(small_cfg(tmp_path, "trainer.max_steps=4", "trainer.log_every=1"))
    with open(tmp_path / "metrics.csv", "ab") as handle:
        handle.write(tail)
    with pytest.warns(UserWarning, match=r"metrics\.csv: dropped a torn tail") if tail.strip(b"\x00") else \
            contextlib.nullcontext():
        result = fit(small_cfg(tmp_path, "trainer.max_steps=8", "trainer.log_every=1", "resume=true"))
    assert result.steps == 8
    assert sorted(step for step, key in csv_rows(tmp_path) if key == "train/loss") == list(range(1, 9))


# ---------------------------------------------------------------- one-line errors: what, where, what to do


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _failing_save(monkeypatch, fail_from_call: int, error: BaseException) -> None:
    save, calls = torch.save, {"n": 0}

    def failing(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= fail_from_call:
            raise error
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing)


TORCH_FULL_DISK = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4160 vs 4048")


@pytest.mark.parametrize("error", [TORCH_FULL_DISK, OSError(errno.ENOSPC, "No space left on device")])
def test_a_full_disk_says_so_and_names_the_intact_checkpoint(tmp_path, monkeypatch, error):
    _failing_save(monkeypatch, 2, error)  # the step-4 checkpoint is written, the step-8 one finds the disk full
    with pytest.raises(RunWriteError) as info:
        fit(small_cfg(tmp_path))
    last = tmp_path / "checkpoints" / "last.pt"
    assert str(info.value) == (f"no space left on {tmp_path / 'checkpoints'}; last good checkpoint {last} (step 4) "
                               "is intact; free some space there or pass another run_dir=...")
    assert load_checkpoint(last)["step"] == 4
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))  # no half-written file left


def test_a_full_disk_at_the_first_save_and_a_read_only_run_dir_in_one_line(tmp_path, monkeypatch, capsys):
    _failing_save(monkeypatch, 1, TORCH_FULL_DISK)
    args = ["experiment=mlp_digits", f"run_dir={tmp_path}", "trainer.max_steps=4", "trainer.batch_size=32", *QUIET]
    assert main(args) == 1
    assert _one_line_error(capsys) == (f"error: no space left on {tmp_path / 'checkpoints'}; no checkpoint written "
                                       "yet; free some space there or pass another run_dir=...\n")
    monkeypatch.undo()
    read_only = OSError(errno.EROFS, "Read-only file system")
    read_only.filename = str(tmp_path / "ro" / ".lock")

    def refuse(*args, **kwargs):
        raise read_only

    monkeypatch.setattr("learnlib.train.run_dir.open", refuse, raising=False)
    assert main([*args[:1], f"run_dir={tmp_path / 'ro'}", *args[2:]]) == 1
    assert "is on a read-only file system; pass a writable run_dir=..." in _one_line_error(capsys)


def test_only_failures_inside_the_run_dir_are_reported_as_writing_failures(tmp_path):
    denied = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "run" / "metrics.csv"))
    assert describe_write_failure(denied, tmp_path / "run") == (
        f"permission denied on {tmp_path / 'run' / 'metrics.csv'}; make {tmp_path / 'run'} writable or pass "
        "another run_dir=...")
    elsewhere = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "data" / "cat.png"))
    assert describe_write_failure(elsewhere, tmp_path / "run") is None  # a data file: not the run's writing
    assert describe_write_failure(RuntimeError("CUDA error"), tmp_path / "run") is None


def test_a_run_dir_name_too_long_for_the_file_system(tmp_path, capsys):
    long_name = tmp_path / ("r" * 300)
    assert main(["experiment=mlp_digits", f"run_dir={long_name}", "trainer.max_steps=2", *QUIET]) == 1
    err = _one_line_error(capsys)
    assert "too long for its file system (at most 255 bytes per name); pass a shorter run_dir=..." in err


def test_cuda_without_a_gpu_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["experiment=mlp_digits", f"run_dir={tmp_path}", "trainer.device=cuda", *QUIET]) == 1
    assert "trainer.device=cuda but no CUDA device is available" in _one_line_error(capsys)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(("override", "works"), [
    ("run_dir=runs/my run ü", """'run_dir="runs/my run ü"'"""),
    ("run_dir='runs/bob", """'run_dir="'"'"'runs/bob"'"""),
])
def test_an_unparsable_override_without_m_is_one_line_with_the_quoting_that_works(tmp_path, monkeypatch, capsys,
                                                                                   override, works):
    monkeypatch.chdir(tmp_path)
    assert main(["experiment=mlp_digits", override, *QUIET]) == 2
    err = _one_line_error(capsys)
    assert f"cannot parse override {override!r}" in err and err.rstrip().endswith(works)
    assert shlex.split(works)[0].partition("=")[2].strip('"') == override.partition("=")[2]  # it parses back
    assert not any(tmp_path.iterdir())


def _image_folder(root: Path, truncated: str | None = None, corrupt: str | None = None) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    if truncated is not None:
        path = root / truncated
        path.write_bytes(path.read_bytes()[:400])  # a valid JPEG header, the pixel data cut short
    if corrupt is not None:
        (root / corrupt).write_bytes(b"not an image at all")
    return root


@pytest.mark.parametrize(("workers", "damage", "reason"), [
    (0, "truncated", "Truncated File Read"), (1, "truncated", "Truncated File Read"),
    (0, "corrupt", "cannot identify image file")])
def test_an_unreadable_image_stops_training_in_one_line_naming_it(tmp_path, capsys, workers, damage, reason):
    root = _image_folder(tmp_path / "data", **{damage: "train/dog/2.jpg"})
    args = ["experiment=vit_b16_imagenet", f"data.root={root}", f"run_dir={tmp_path / 'run'}", "data.image_size=32",
            "model.img_size=32", "model.embed_dim=32", "model.depth=1", "model.num_heads=2", "model.num_classes=2",
            "trainer.device=cpu", "trainer.max_steps=2", "trainer.batch_size=4", "trainer.eval_every=2",
            "trainer.checkpoint_every=2", "trainer.warmup_steps=1", f"trainer.num_workers={workers}", *QUIET]
    assert main(args) == 1
    err = _one_line_error(capsys)
    assert err.startswith(f"error: cannot read image {root / 'train/dog/2.jpg'}: {reason}")
    assert err.rstrip().endswith("or pass data.skip_unreadable=true to leave unreadable images out")
