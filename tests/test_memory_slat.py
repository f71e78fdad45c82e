"""learnlib.memory for the SLat VAE: the voxel-budget estimate agrees with what real CPU tensors hold."""

import pytest
import torch

from learnlib import models
from learnlib.memory import resolve
from learnlib.memory.estimate import estimate_workload
from learnlib.memory.measure import measure_state
from learnlib.nn.checkpointing import (
    apply_activation_checkpointing,
    is_checkpointed,
    remove_activation_checkpointing,
)
from learnlib.slat.memory import largest_voxels
from learnlib.slat.memory_step import measure_saved, synthetic_coords

TOLERANCE = 0.10  # estimate vs measurement, relative
SPARSE = {"sdpa": "sdpa", "math": "reference"}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = models.create("slat_vae_tiny", decoder={"num_gaussians": 8})  # as experiment slat_vae_meshes
    return model, resolve(model)  # the workload keeps its calibration across the tests


def _estimate(workload, voxels, precision="fp32", backend="sdpa", ckpt=False):
    return estimate_workload(workload, voxels, precision, "adamw", "ddp", 1, ckpt, backend)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("backend", ["sdpa", "math"])
@pytest.mark.parametrize("voxels", [700, 2000])  # neither is a calibration count (512, 1024)
def test_estimate_within_ten_percent_of_cpu_measurement(tiny, precision, backend, voxels):
    model, workload = tiny
    est = _estimate(workload, voxels, precision, backend)
    measured = measure_saved(model, voxels, 64, precision=precision, backend=SPARSE[backend])
    assert est.activations == pytest.approx(measured.total, rel=TOLERANCE)
    assert est.activations > 4 * voxels * model.encoder.model_channels * 4  # more than one tensor per block


def test_checkpointing_lowers_estimate_and_measurement_alike(tiny):
    model, workload = tiny
    plain, ckpt = (_estimate(workload, 2000, "bf16", ckpt=flag) for flag in (False, True))
    measured = [measure_saved(model, 2000, 64, precision="bf16", backend="sdpa", activation_checkpointing=flag)
                for flag in (False, True)]
    assert ckpt.activations == pytest.approx(measured[1].total, rel=TOLERANCE)
    assert ckpt.activations < plain.activations and measured[1].total < measured[0].total
    saved = plain.activations - ckpt.activations
    assert saved == pytest.approx(measured[0].total - measured[1].total, rel=TOLERANCE)
    assert ckpt.recompute_peak == pytest.approx(max(measured[0].per_block), rel=TOLERANCE)


def test_math_attention_adds_window_scores_that_grow_faster_than_the_voxels(tiny):
    _, workload = tiny
    extra = [_estimate(workload, n, backend="math").activations - _estimate(workload, n).activations
             for n in (1000, 4000)]
    assert extra[1] > 4 * extra[0] > 0  # H sum_w L_w^2: the shell's windows fill up as it thickens


def test_state_bytes_equal_the_measured_adamw_step(tiny):
    model, workload = tiny
    est = _estimate(workload, 700)
    measured = measure_state(model, "adamw", batch=700)
    assert (est.parameters, est.gradients, est.optimizer_states, est.buffers) == (
        measured["parameters"], measured["gradients"], measured["optimizer_states"], measured["buffers"])


def test_trainer_activation_checkpointing_reaches_both_halves(tiny):
    model, _ = tiny
    keys = set(model.state_dict())
    assert len(model.blocks) == len(model.encoder.blocks) + len(model.decoder.blocks) == 4
    apply_activation_checkpointing(model)
    try:
        assert all(is_checkpointed(b) for b in (*model.encoder.blocks, *model.decoder.blocks))
    finally:
        remove_activation_checkpointing(model)
    assert set(model.state_dict()) == keys and not any(is_checkpointed(b) for b in model.blocks)


def test_synthetic_shell_has_distinct_voxels_and_objects_in_order():
    coords = synthetic_coords(3000, 32, objects=2)
    assert coords.shape == (6000, 4) and coords.dtype == torch.int32
    assert len(torch.unique(coords, dim=0)) == 6000 and bool((coords[1:, 0] >= coords[:-1, 0]).all())
    with pytest.raises(ValueError, match=r"\[1, 32768\]"):
        synthetic_coords(40000, 32)


def test_largest_voxels_is_the_last_budget_that_fits():
    def total(v):
        return 100 * v + 7

    best = largest_voxels(total, 12_345 * 100, upper=10**6)
    assert total(best) <= 12_345 * 100 < total(int(best * 1.001) + 1)  # to 0.1 %
    assert largest_voxels(total, 1_000 * 100 + 7, upper=10**6) == 1_000  # exact below 1,024
    assert largest_voxels(lambda v: 100 * v, 50, upper=10**6) == 0
    assert largest_voxels(lambda v: v, 10**9, upper=4096) == 4096


def test_cli_reports_voxels_per_device(capsys):
    from learnlib.memory.__main__ import main

    code = main(["experiment=slat_vae_meshes", "trainer.batch_budget=4096", "devices=2", "gpu=RTX4090-24GB"])
    out = capsys.readouterr().out
    assert code == 0
    assert "4096 voxels per device (trainer.batch_budget)" in out and "workload unit: voxels per device" in out
    assert "voxel budget 4096 per device" in out and "largest voxel budget per device that fits" in out
    assert "RTX4090-24GB (24.0 GiB): fits" in out and "recommendation: voxel budget 4096" in out


def test_cli_rejects_a_slat_experiment_without_a_budget(capsys):
    from learnlib.memory.__main__ import main

    assert main(["experiment=slat_vae_meshes", "trainer.batching=fixed"]) == 2
    assert "trainer.batch_budget" in capsys.readouterr().err


def test_checkpointed_blocks_give_the_same_gradients():
    from learnlib.slat.memory_step import training_step

    torch.manual_seed(0)
    model = models.create("slat_vae_tiny", decoder={"num_gaussians": 8})
    for layer in (model.encoder.out_layer, model.decoder.out_layer):  # zero at init: no gradient reaches the blocks
        torch.nn.init.normal_(layer.weight, std=1e-3)
    grads = []
    for flag in (False, True):
        if flag:
            apply_activation_checkpointing(model)
        try:
            model.zero_grad(set_to_none=True)
            training_step(model, 300, 32, generator=torch.Generator().manual_seed(0))().backward()
            grads.append(model.encoder.blocks[0].attn.to_qkv.weight.grad.clone())
        finally:
            remove_activation_checkpointing(model)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)
