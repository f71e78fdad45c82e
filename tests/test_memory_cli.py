"""python -m learnlib.memory: the table, the GPU fit and a recommendation; clear errors on bad input."""

import subprocess
import sys

import pytest

from learnlib.memory.__main__ import main


def test_cli_prints_table_fit_and_recommendation(capsys):
    code = main(["experiment=vit_digits", "trainer.batch_size=256", "devices=2", "gpu=RTX4090-24GB"])
    out = capsys.readouterr().out
    assert code == 0
    assert "| optimizer_states |" in out and "| activations |" in out and "| total |" in out
    assert "batch 128 per device" in out
    assert "RTX4090-24GB (24.0 GiB): fits" in out
    assert "| H100-80GB | 79.6 |" in out and "fsdp + checkpointing" in out
    assert "recommendation:" in out and "CUDA context" in out


def test_cli_recommends_another_setting_when_the_batch_does_not_fit(capsys):
    code = main(["experiment=vit_b16_imagenet", "trainer.batch_size=4096", "devices=1", "gpu=RTX4090-24GB"])
    out = capsys.readouterr().out
    assert code == 0 and "does NOT fit" in out and "recommendation:" in out and "grad_accum" in out


@pytest.mark.parametrize("arg, valid", [("strategy=zero", "ddp, fsdp"), ("precision=fp8", "fp32, bf16, fp16"),
                                        ("gpu=TPUv5", "H100-80GB, A100-40GB"), ("optimizer=lion", "adamw, sgd")])
def test_cli_bad_input_names_valid_values(arg, valid, capsys):
    assert main(["experiment=vit_digits", arg]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error:") and valid in err


def test_cli_process_exits_non_zero_without_traceback():
    done = subprocess.run([sys.executable, "-m", "learnlib.memory", "experiment=vit_digits", "strategy=zero"],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 2
    assert "valid values: ddp, fsdp" in done.stderr and "Traceback" not in done.stderr


def test_cli_unknown_experiment_lists_experiments(capsys):
    assert main(["experiment=nope"]) != 0
    assert "var_d16" in capsys.readouterr().err
