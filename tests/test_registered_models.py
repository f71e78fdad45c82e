"""Every registered model: builds at full size on the meta device; at a tiny size it runs forward and
backward, survives a state-dict round trip, and gives the same gradients with activation checkpointing."""

import pytest
import torch

from learnlib import models
from learnlib.nn.checkpointing import apply_activation_checkpointing
from learnlib.sparse import SparseTensor
from learnlib.workloads import WORKLOADS, family_of, training_step

VIT = {"img_size": 32, "embed_dim": 32, "depth": 2, "num_heads": 2}
VAR = {"depth": 2, "embed_dim": 64, "num_heads": 2, "vocab_size": 32, "Cvae": 8, "num_classes": 10,
       "patch_nums": (1, 2, 3)}
SLAT = {"resolution": 16, "model_channels": 32, "num_heads": 2, "num_blocks": 2}
# Overrides that make each full-size model CPU-sized; models that are small already need none.
TINY = {
    "dinov2_vitl14_reg": {"img_size": 28, "embed_dim": 32, "depth": 2, "num_heads": 2},
    "paddle_vit_base": {**VIT, "head_hidden": 32},
    "vit_base_patch16_224": VIT, "vit_small_patch16_224": VIT, "vit_tiny_patch16_224": VIT,
    "var_d16": VAR, "var_d20": VAR, "var_d24": VAR, "var_d30": VAR,
    "vqvae_ch160": {"ch": 16, "ch_mult": (1, 2), "vocab_size": 32, "z_channels": 8, "v_patch_nums": (1, 2, 4),
                    "norm_groups": 8},
    "slat_enc_swin8_b_64l8": {**SLAT, "in_channels": 16},
    "slat_dec_gs_swin8_b_64l8": SLAT,
    "slat_vae_swin8_b_64l8": {**SLAT, "in_channels": 16},
}
NAMES = [n for n in models.available() if models.MODELS.get(n).__module__.startswith("learnlib.")]  # not test doubles
VOXELS = 48  # the SLat unit of a batch


def _voxels(channels: int, resolution: int, gen: torch.Generator) -> SparseTensor:
    """One object of VOXELS distinct voxels with random features (VOXELS, channels)."""
    cells = torch.randperm(resolution**3, generator=gen)[:VOXELS].sort().values
    ijk = torch.stack([cells // resolution**2, cells // resolution % resolution, cells % resolution], 1)  # (V, 3)
    coords = torch.cat([torch.zeros(VOXELS, 1, dtype=torch.long), ijk], 1).int()  # (V, 4) batch index first
    return SparseTensor(torch.randn(VOXELS, channels, generator=gen), coords)


def _loss_fn(model, name: str, seed: int = 0):
    """A function computing a scalar loss of `model` on fixed random inputs: the family's registered
    training step where it has one, else a plain output sum (DINOv2, the SLat halves on their own)."""
    gen = torch.Generator().manual_seed(seed)
    try:
        family_of(model)
    except ValueError:
        pass
    else:
        return training_step(model, VOXELS if name.startswith("slat") else 2, generator=gen)
    if name.startswith("dinov2"):
        size = model.patch_embed.img_size
        images = torch.randn(2, 3, size, size, generator=gen)
        return lambda: model(images).pow(2).mean()
    if name.startswith("slat_enc"):
        x = _voxels(model.in_channels, model.resolution, gen)
        return lambda: sum(t.pow(2).mean() for t in model(x, sample_posterior=False)[1:])
    if name.startswith("slat_dec"):
        z = _voxels(model.latent_channels, model.resolution, gen)
        return lambda: sum(g.means.pow(2).mean() + g.colors.pow(2).mean() for g in model(z))
    raise AssertionError(f"no loss for {name}: add one here or register a memory workload for its family")


def _tiny(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return models.create(name, **TINY.get(name, {}))


def _grads(model, name: str) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)  # dropout, drop path and label dropout draw the same numbers every call
    loss = _loss_fn(model, name)()
    assert loss.dim() == 0 and torch.isfinite(loss), f"{name}: loss {loss}"
    loss.backward()
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_the_registry_and_the_tiny_table_agree():
    assert set(TINY) <= set(NAMES), sorted(set(TINY) - set(NAMES))
    assert len(NAMES) >= 20 and {"mlp", "vit", "vq", "var", "slat"} <= {w.split("_")[0] for w in WORKLOADS.available()}


@pytest.mark.parametrize("name", NAMES)
def test_builds_at_full_size_on_the_meta_device(name):
    model = models.build_on_meta(name)
    params = list(model.parameters())
    assert params and all(p.is_meta for p in params)
    assert models.count_parameters(model) > (10**6 if name in TINY else 10**3)


@pytest.mark.parametrize("name", NAMES)
def test_tiny_forward_backward_and_state_dict_round_trip(name):
    model = _tiny(name).train()
    grads = _grads(model, name)
    trainable = [k for k, p in model.named_parameters() if p.requires_grad]
    assert len(grads) >= 0.8 * len(trainable), f"{name}: only {len(grads)} of {len(trainable)} parameters reached"
    assert all(torch.isfinite(g).all() for g in grads.values())
    copy = _tiny(name, seed=1)
    copy.load_state_dict(model.state_dict(), strict=True)
    for key, value in copy.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    model.eval(), copy.eval()
    with torch.no_grad():
        torch.manual_seed(5)
        a = _loss_fn(model, name)()
        torch.manual_seed(5)
        b = _loss_fn(copy, name)()
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_activation_checkpointing_gives_the_same_gradients(name):
    model = _tiny(name).train()
    if not len(getattr(model, "blocks", ())):
        with pytest.raises(ValueError, match="blocks"):
            apply_activation_checkpointing(model)
        return
    plain = _grads(model, name)
    apply_activation_checkpointing(model)
    checkpointed = _grads(model, name)
    assert plain.keys() == checkpointed.keys()
    for key in plain:
        torch.testing.assert_close(checkpointed[key], plain[key], rtol=1e-4, atol=1e-6, msg=f"{name}: {key}")
