"""python -m learnlib.memory: the table, the GPU fit and a recommendation; clear errors on bad input."""

import subprocess
import sys

import pytest
import torch

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


@pytest.mark.parametrize("arg, key", [("trainer.batch_size=-128", "trainer.batch_size"),
                                      ("trainer.batch_size=0", "trainer.batch_size"),
                                      ("trainer.grad_accum=0", "trainer.grad_accum"),
                                      ("devices=abc", "devices"), ("devices=0", "devices")])
def test_cli_refuses_non_positive_sizes_in_one_line(arg, key, capsys):
    assert main(["experiment=vit_digits", arg]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"error: {key} must be a positive int")
    assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_cli_help_lists_the_keys_and_the_experiments(flag, capsys):
    assert main([flag]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m learnlib.memory experiment=NAME")
    assert all(key in out for key in ("devices=", "gpu=", "strategy=", "activation_checkpointing=", "attention_backend="))
    assert "vit_digits" in out and "slat_vae_meshes" in out


def _activations_mib(out: str) -> float:
    return float(next(line for line in out.splitlines() if line.startswith("| activations |")).split("|")[2])


@pytest.mark.parametrize("backend", ["flash", "flash_attn"])
def test_cli_flash_backend_counts_what_the_fused_kernel_saves(backend, capsys):
    common = ["experiment=vit_digits", "trainer.batch_size=256"]
    assert main([*common, f"attention_backend={backend}"]) == 0
    flash = capsys.readouterr().out
    assert "attention flash" in flash
    assert main([*common, "attention_backend=sdpa"]) == 0
    sdpa = capsys.readouterr().out
    assert main([*common, "attention_backend=math"]) == 0
    reference = capsys.readouterr().out
    assert "attention reference" in reference
    # flash keeps the output and the logsumexp, as sdpa does; the reference keeps the score matrix too
    assert _activations_mib(flash) == _activations_mib(sdpa) < _activations_mib(reference)


def test_cli_reads_activation_checkpointing_from_the_config(capsys):
    assert main(["experiment=vit_digits", "trainer.batch_size=256"]) == 0
    plain = capsys.readouterr().out
    assert main(["experiment=vit_digits", "trainer.batch_size=256", "trainer.activation_checkpointing=true"]) == 0
    ckpt = capsys.readouterr().out
    assert "activation checkpointing" not in plain.split("\n\n")[1]
    assert ", activation checkpointing" in ckpt and _activations_mib(ckpt) < _activations_mib(plain)
    assert main(["experiment=vit_digits", "trainer.batch_size=256", "trainer.activation_checkpointing=true",
                 "activation_checkpointing=false"]) == 0
    assert _activations_mib(capsys.readouterr().out) == _activations_mib(plain)  # the key=value still wins


def test_cli_model_without_blocks_gets_an_estimate_with_checkpointing_n_a(capsys):
    assert main(["experiment=vqvae_digits", "trainer.batch_size=8", "devices=1"]) == 0
    out = capsys.readouterr().out
    assert "| total |" in out
    assert "1 devices; checkpointing n/a: VQVAE has no `blocks`):\n\n| GPU |" in out
    row = next(line for line in out.splitlines() if line.startswith("| H100-80GB"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4] == cells[6] == "n/a" and int(cells[3]) > 0 and int(cells[5]) > 0
    assert main(["experiment=vqvae_digits", "trainer.batch_size=8", "activation_checkpointing=true"]) == 2
    assert "has none" in capsys.readouterr().err


def test_cli_counts_the_ema_copy_as_the_fp32_parameters(capsys):
    from learnlib.memory import resolve

    assert main(["experiment=vit_digits", "trainer.batch_size=256"]) == 0
    plain = capsys.readouterr().out
    assert "| ema |" not in plain
    assert main(["experiment=vit_digits", "trainer.batch_size=256", "trainer.ema_decay=0.999"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in out.splitlines() if line.startswith("| ")}
    assert rows["ema"] == rows["parameters"]
    model = resolve("vit_digits").model
    params = sum(p.numel() * 4 for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters()) and not list(model.buffers())
    assert f"| ema | {params / 2**20:,.1f} |" in out
    total = float(rows["total"][0].replace(",", "")) - float(plain.split("| total |")[1].split("|")[0].replace(",", ""))
    assert total == pytest.approx(params / 2**20, abs=0.11)  # the row is counted in the total
