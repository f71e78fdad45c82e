"""The training path: config errors, checkpoints, resume, accumulation, NaN handling, CLI."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from crashing import crash_at_call

from learnlib.tasks import Classification
from learnlib.train import CheckpointError, ConfigError, NonFiniteLossError, compose, fit, load_model
from learnlib.train.checkpoint import atomic_save, load_checkpoint

QUIET = ["trainer.progress=false", "trainer.tensorboard=false", "trainer.plot=false"]


def small_cfg(tmp_path: Path, *extra: str):
    return compose("mlp_digits", [f"run_dir={tmp_path}", "trainer.max_steps=12", "trainer.batch_size=32",
                                  "trainer.eval_every=4", "trainer.checkpoint_every=4",
                                  "trainer.warmup_steps=2", *QUIET, *extra])


def weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def assert_same_weights(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if atol == 0.0:
            assert torch.equal(a[key], b[key]), key
        else:
            torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=key)


def test_fit_learns_digits(tmp_path):
    result = fit(compose("mlp_digits", [f"run_dir={tmp_path}", "trainer.max_steps=150", *QUIET]))
    assert result.metrics["val/accuracy"] > 0.9
    assert result.checkpoint.exists() and result.best_checkpoint.exists()
    model = load_model(result.checkpoint)
    assert not model.training


def test_unknown_experiment_lists_valid_choices():
    with pytest.raises(ConfigError, match="valid experiments: .*mlp_digits"):
        compose("no_such_experiment")


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="valid keys: .*trainer.max_steps"):
        compose("mlp_digits", ["trainer.max_stepz=3"])


def test_missing_data_root_names_the_path(tmp_path):
    cfg = small_cfg(tmp_path, "data.name=image_folder", f"+data.root={tmp_path / 'nowhere'}")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        fit(cfg)


def test_unset_data_root_says_what_to_pass(tmp_path):
    with pytest.raises(ValueError, match="data.root"):
        fit(small_cfg(tmp_path, "data.name=image_folder"))


def test_resume_after_crash_is_bit_exact(tmp_path, monkeypatch):
    reference = fit(small_cfg(tmp_path / "ref"))

    # the 9th micro-batch: after the step-8 checkpoint
    original = crash_at_call(monkeypatch, Classification, 9, message="simulated crash")
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(small_cfg(tmp_path / "crashed"))
    assert load_checkpoint(tmp_path / "crashed/checkpoints/last.pt")["step"] == 8
    monkeypatch.setattr(Classification, "training_loss", original)
    resumed = fit(small_cfg(tmp_path / "crashed", "resume=true"))
    assert resumed.steps == 12
    assert_same_weights(weights(reference.checkpoint), weights(resumed.checkpoint))


def test_resume_across_an_epoch_boundary_is_bit_exact(tmp_path, monkeypatch):
    # 1437 training digits / 512 per step = 2 steps per epoch: the checkpoint at step 3 lies mid-epoch.
    args = ["trainer.batch_size=512", "trainer.max_steps=7", "trainer.checkpoint_every=3", "trainer.eval_every=3"]
    reference = fit(small_cfg(tmp_path / "ref", *args))
    original = crash_at_call(monkeypatch, Classification, 4, message="simulated crash")
    with pytest.raises(RuntimeError):
        fit(small_cfg(tmp_path / "crashed", *args))
    assert load_checkpoint(tmp_path / "crashed/checkpoints/last.pt")["data"] == {"epoch": 1, "batch_in_epoch": 1}
    monkeypatch.setattr(Classification, "training_loss", original)
    resumed = fit(small_cfg(tmp_path / "crashed", *args, "resume=true"))
    assert_same_weights(weights(reference.checkpoint), weights(resumed.checkpoint))


def test_grad_accumulation_matches_full_batch(tmp_path):
    common = ["model.dropout=0.0", "trainer.max_steps=6", "trainer.batch_size=64"]
    full = fit(small_cfg(tmp_path / "a1", *common, "trainer.grad_accum=1"))
    half = fit(small_cfg(tmp_path / "a2", *common, "trainer.grad_accum=2"))
    assert_same_weights(weights(full.checkpoint), weights(half.checkpoint), atol=1e-5)


@pytest.mark.parametrize("clip", ["null", "1.0"])
def test_grad_accumulation_does_not_crash_at_first_steps(tmp_path, clip):
    result = fit(small_cfg(tmp_path, "trainer.grad_accum=4", "trainer.max_steps=3",
                           f"trainer.grad_clip={clip}", "trainer.log_every=1"))
    assert result.steps == 3
    norms = result.history.get("train/grad_norm", [])
    assert len(norms) == (3 if clip == "1.0" else 0)


def test_nan_loss_stops_naming_the_step_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    original = Classification.training_loss
    calls = {"n": 0}

    def nan_at_step_6(self, model, batch):
        calls["n"] += 1
        loss, scalars = original(self, model, batch)
        return (loss * float("nan") if calls["n"] == 6 else loss), scalars

    monkeypatch.setattr(Classification, "training_loss", nan_at_step_6)
    with pytest.raises(NonFiniteLossError, match="at step 6.*last good checkpoint"):
        fit(small_cfg(tmp_path))
    assert load_checkpoint(tmp_path / "checkpoints/last.pt")["step"] == 4


def test_crash_during_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"format": "learnlib-checkpoint-v1", "step": 1, "value": torch.ones(3)}, path)

    def exploding_save(obj, handle):
        handle.write(b"PK\x03\x04partial")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"format": "learnlib-checkpoint-v1", "step": 2}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["value"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_corrupted_checkpoint_is_a_clear_error_and_is_not_overwritten(tmp_path):
    ckpt = tmp_path / "checkpoints/last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupted"):
        fit(small_cfg(tmp_path, "resume=true"))
    assert ckpt.read_bytes() == b"this is not a checkpoint"


def test_incompatible_checkpoint_is_a_clear_error_and_is_not_overwritten(tmp_path):
    fit(small_cfg(tmp_path, "trainer.max_steps=4"))
    before = (tmp_path / "checkpoints/last.pt").read_bytes()
    with pytest.raises(CheckpointError, match="does not fit this model"):
        fit(small_cfg(tmp_path, "resume=true", "model.hidden=64"))
    assert (tmp_path / "checkpoints/last.pt").read_bytes() == before


def test_missing_checkpoint_on_resume(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        fit(small_cfg(tmp_path, "resume=true"))


def test_best_checkpoint_is_a_copy_of_the_best_evaluation(tmp_path):
    result = fit(small_cfg(tmp_path))
    accuracies = [v for _, v in result.history["val/accuracy"]]
    best = load_checkpoint(result.best_checkpoint)
    assert best["metrics"]["val/accuracy"] == max(accuracies)


def test_cli_trains_and_reports(tmp_path):
    out = subprocess.run([sys.executable, "-m", "learnlib.train", "experiment=mlp_digits",
                          f"run_dir={tmp_path}", "trainer.max_steps=5", "trainer.eval_every=5", *QUIET],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "val/accuracy=" in out.stdout and (tmp_path / "checkpoints/last.pt").exists()


def test_cli_bad_experiment_exits_with_message():
    out = subprocess.run([sys.executable, "-m", "learnlib.train", "experiment=nope"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "valid experiments" in out.stderr and "Traceback" not in out.stderr


def test_bf16_autocast_trains_on_cpu(tmp_path):
    result = fit(compose("mlp_digits", [f"run_dir={tmp_path}", "trainer.max_steps=150",
                                        "trainer.precision=bf16", *QUIET]))
    assert result.metrics["val/accuracy"] > 0.9


def test_fp16_on_cpu_is_refused_with_advice(tmp_path):
    with pytest.raises(ValueError, match="use bf16 on CPU"):
        fit(small_cfg(tmp_path, "trainer.precision=fp16", "trainer.device=cpu"))


def test_ema_weights_are_saved_and_loaded(tmp_path):
    result = fit(small_cfg(tmp_path, "trainer.ema_decay=0.9"))
    state = load_checkpoint(result.checkpoint)
    ema = {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    assert ema.keys() == state["model"].keys()
    assert any(not torch.equal(ema[k], state["model"][k]) for k in ema)
    loaded = load_model(result.checkpoint).state_dict()
    assert all(torch.equal(loaded[k], ema[k]) for k in loaded)


def test_learning_rate_warms_up_then_decays(tmp_path):
    result = fit(small_cfg(tmp_path, "trainer.log_every=1", "trainer.warmup_steps=4", "trainer.max_steps=12"))
    lrs = [lr for _, lr in result.history["train/lr"]]
    peak = max(lrs)
    assert lrs.index(peak) == 3 and lrs[0] < peak and lrs[-1] < 0.1 * peak
