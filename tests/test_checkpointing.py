"""Activation checkpointing of model.blocks: same gradients, fewer saved bytes, as the estimate predicts."""

import pytest
import torch

from learnlib import models
from learnlib.memory import estimate
from learnlib.memory.measure import measure_activations
from learnlib.nn.checkpointing import apply_activation_checkpointing, is_checkpointed
from learnlib.workloads import training_step

CONFIGS = [("vit_tiny_patch16_224", {"depth": 3, "img_size": 64, "drop_path_rate": 0.1}),
           ("var_d16", {"depth": 3, "embed_dim": 128, "num_heads": 4, "patch_nums": (1, 2, 3, 4)})]


def _gradients(model, seed=0):
    torch.manual_seed(seed)
    step = training_step(model, 3, generator=torch.Generator().manual_seed(1))
    model.zero_grad(set_to_none=True)
    step().backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name, kwargs", CONFIGS)
def test_checkpointed_blocks_give_the_same_gradients(name, kwargs):
    torch.manual_seed(0)
    model = models.create(name, **kwargs).train()
    reference = _gradients(model)
    apply_activation_checkpointing(model)
    assert all(is_checkpointed(block) for block in model.blocks)
    checkpointed = _gradients(model)
    assert reference.keys() == checkpointed.keys()
    for key in reference:
        torch.testing.assert_close(checkpointed[key], reference[key], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name, kwargs", CONFIGS)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_saved_bytes_drop_and_match_the_estimate(name, kwargs, precision):
    torch.manual_seed(0)
    model = models.create(name, **kwargs)
    full = measure_activations(model, 4, precision)
    kept = measure_activations(model, 4, precision, activation_checkpointing=True)
    assert kept < 0.6 * full
    est = estimate(model, 4, precision=precision, activation_checkpointing=True)
    assert est.activations == pytest.approx(kept, rel=0.10)
    assert 0 < est.recompute_peak < full  # one block's saved tensors while it is recomputed


def test_models_without_blocks_are_refused():
    with pytest.raises(ValueError, match="blocks"):
        apply_activation_checkpointing(models.create("mlp_digits"))


def test_estimate_of_an_already_checkpointed_model_is_unchanged():
    name, kwargs = CONFIGS[0]
    model = models.create(name, **kwargs)
    plain = estimate(model, 2, activation_checkpointing=True)
    apply_activation_checkpointing(model)
    assert estimate(model, 2, activation_checkpointing=True) == plain
    assert all(is_checkpointed(block) for block in model.blocks)
