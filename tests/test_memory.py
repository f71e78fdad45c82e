"""learnlib.memory: the shape-only estimate agrees with what real CPU tensors hold."""

import pytest
import torch

from learnlib import models
from learnlib.memory import estimate
from learnlib.memory.analytic import block_activation_bytes
from learnlib.memory.measure import measure_activations, measure_cpu
from learnlib.models import build_on_meta
from learnlib.nn.block import Block
from learnlib.nn.saved_tensors import SavedTensorTracker
from learnlib.var.params import (
    measured_block_params,
    var_block_params,
    var_block_params_notes,
    var_one_block_params,
)

SMALL = {
    "vit": ("vit_tiny_patch16_224", {"depth": 2, "img_size": 64}),
    "var": ("var_d16", {"depth": 2, "embed_dim": 128, "num_heads": 4, "patch_nums": (1, 2, 3, 4, 6)}),
    "vqvae": ("vqvae_ch160", {"ch": 32, "v_patch_nums": (1, 2, 4)}),
}


@pytest.fixture(scope="module")
def small_models():
    torch.manual_seed(0)
    return {key: models.create(name, **kw) for key, (name, kw) in SMALL.items()}


@pytest.mark.parametrize("key", sorted(SMALL))
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("batch", [2, 4])
def test_estimate_within_ten_percent_of_cpu_measurement(small_models, key, precision, batch):
    model = small_models[key]
    est = estimate(model, batch, precision=precision)
    meas = measure_cpu(model, batch, precision=precision)
    assert est.activations == pytest.approx(meas.activations, rel=0.10)
    # measure_cpu counts state + saved bytes; the transient is checked against a step's peak (test_memory_peak.py)
    assert est.total - est.transient == pytest.approx(meas.total, rel=0.10)
    assert (est.parameters, est.optimizer_states) == (meas.parameters, meas.optimizer_states)
    # VAR's q/v bias gradients are slices of one (3C,) gradient that also holds the zero k bias's part
    assert est.gradients == pytest.approx(meas.gradients, rel=1e-3)


def test_activations_grow_linearly_with_batch_and_state_does_not(small_models):
    model = small_models["vit"]
    a2, a4, a8 = (estimate(model, b).activations for b in (2, 4, 8))
    assert a8 - a4 == 2 * (a4 - a2) > 0
    assert estimate(model, 2).model_state == estimate(model, 8).model_state


def test_math_backend_adds_the_score_matrix_per_block():
    model = models.create("vit_tiny_patch16_224", depth=2, img_size=64)
    batch, tokens, heads = 2, 17, 3
    fused = estimate(model, batch, attention_backend="sdpa").activations
    math = estimate(model, batch, attention_backend="math").activations
    # math keeps softmax (B, H, N, N); the fused kernel keeps the logsumexp (B, H, N) and one qkv storage
    assert math - fused == 2 * 4 * batch * heads * tokens * (tokens - 1)
    assert math == pytest.approx(measure_activations(model, batch, backend="math"), rel=1e-6)


@pytest.mark.parametrize("backend", ["math", "sdpa"])
def test_closed_form_block_count_equals_measured_saved_bytes(backend):
    torch.manual_seed(0)
    block = Block(48, 3, mlp_ratio=3.0, attn_backend=backend)
    x = torch.randn(3, 11, 48, requires_grad=True)
    with SavedTensorTracker(exclude=list(block.parameters())) as saved:
        block(x)
    assert saved.total == block_activation_bytes(3, 11, 48, 3, 3.0, backend)


def test_optimizer_and_sharding_conventions():
    model = build_on_meta("vit_tiny_patch16_224", depth=2, img_size=64)
    n = sum(p.numel() for p in model.parameters())
    tensors = len(list(model.parameters()))
    adamw = estimate(model, 2, precision="bf16")
    assert adamw.parameters == adamw.gradients == 4 * n  # autocast: fp32 params are the master weights
    assert adamw.optimizer_states == 8 * n + 4 * tensors
    assert estimate(model, 2, optimizer="sgd").optimizer_states == 4 * n
    fsdp = estimate(model, 2, precision="bf16", strategy="fsdp", world_size=4)
    assert fsdp.parameters == n  # 4 n bytes / 4 devices
    assert fsdp.optimizer_states == adamw.optimizer_states // 4
    assert fsdp.gathered_parameters > 0 and fsdp.activations == adamw.activations
    assert estimate(model, 2, world_size=8).communication == 4 * n  # DDP gradient buckets


@pytest.mark.parametrize("kwargs, valid", [({"precision": "fp8"}, "fp32, bf16, fp16"),
                                            ({"strategy": "zero3"}, "ddp, fsdp"),
                                            ({"optimizer": "lion"}, "adamw, sgd")])
def test_bad_choices_name_the_valid_values(kwargs, valid):
    with pytest.raises(ValueError, match=valid):
        estimate("vit_digits", 2, **kwargs)


def test_estimate_of_an_experiment_counts_var_frozen_tokenizer():
    est = estimate("var_digits", 4)  # task.vqvae: the exported checkpoints/vqvae_digits folder
    tokenizer = build_on_meta("vqvae_digits")
    assert est.frozen == sum(t.numel() * 4 for t in (*tokenizer.parameters(), *tokenizer.buffers()))


@pytest.mark.parametrize("depth", [16, 20, 24, 30])
def test_var_block_parameters_grow_as_depth_cubed(depth):
    measured = measured_block_params(build_on_meta(f"var_d{depth}"))
    assert measured == var_block_params(depth)
    assert measured == pytest.approx(73_728 * depth**3, rel=2e-3)
    assert var_one_block_params(depth) == pytest.approx(var_block_params_notes(depth), rel=2e-3)
    assert measured / var_block_params_notes(depth) == pytest.approx(depth, rel=2e-3)  # the notes are d x too low


@pytest.mark.parametrize("strategy, ckpt", [("ddp", False), ("fsdp", True)])
def test_largest_batch_fits_and_one_more_does_not(strategy, ckpt):
    from learnlib.memory import gpu_capacity, largest_batch, needed_gib, resolve

    workload = resolve("vit_b16_imagenet")
    best = largest_batch(workload, "RTX4090-24GB", "bf16", strategy=strategy, world_size=8,
                         activation_checkpointing=ckpt)
    assert best > 1

    def need(batch):
        return needed_gib(estimate(workload.model, batch, precision="bf16", strategy=strategy, world_size=8,
                                   activation_checkpointing=ckpt))

    assert need(best) <= gpu_capacity("RTX4090-24GB") < need(best + 1)


@pytest.mark.parametrize("backend", ["math", "sdpa"])
def test_traced_block_equals_the_closed_form_count(backend):
    from learnlib.memory.trace import trace_saved

    model = build_on_meta("vit_tiny_patch16_224", depth=3, img_size=64)  # 16 patches + class token
    profile = trace_saved(model, 2, "fp32", backend)
    assert profile.block_peak == block_activation_bytes(2, 17, 192, 3, 4.0, backend)


@pytest.mark.gpu
def test_estimate_tracks_the_cuda_peak():
    from learnlib.memory import measure_cuda

    torch.manual_seed(0)
    model = models.create("vit_small_patch16_224").cuda()
    est = estimate(model, 32, precision="bf16", attention_backend="sdpa")
    peak = measure_cuda(model, 32, "bf16")["peak"]
    # the estimate counts all gradients at once and no kernel workspaces (cuBLAS's, the fused attention's):
    # close to, not equal to, the peak
    assert 0.8 < est.total / peak < 1.2


def test_ema_copy_holds_the_parameters_as_they_are_sharded():
    model = build_on_meta("vit_tiny_patch16_224", depth=2, img_size=64)
    n = sum(p.numel() for p in model.parameters())
    plain, with_ema = estimate(model, 2), estimate(model, 2, ema=True)
    assert (plain.ema, with_ema.ema) == (0, 4 * n) and with_ema.total - plain.total == 4 * n
    assert "ema" not in dict(plain.rows()) and dict(with_ema.rows())["ema"] == 4 * n
    assert estimate(model, 2, strategy="fsdp", world_size=4, ema=True).ema == n


def test_fp16_is_counted_as_bf16_and_refused_on_cpu_tensors(small_models):
    model = small_models["vit"]
    assert estimate(model, 2, precision="fp16").activations == estimate(model, 2, precision="bf16").activations
    with pytest.raises(ValueError, match="use bf16 on CPU"):
        measure_activations(model, 2, precision="fp16")


def test_every_experiment_has_a_memory_workload():
    from learnlib.configs.compose import list_experiments
    from learnlib.memory import resolve

    units = {name: resolve(name).family.unit for name in list_experiments()}
    assert {units[name] for name in ("vit_digits", "var_d16", "vqvae_digits", "mlp_digits")} == {"items"}
    assert units["slat_vae_meshes"] == units["slat_vae_swin8_b_64l8"] == "voxels"


def test_generic_memory_modules_name_no_family():
    import ast
    from pathlib import Path

    import learnlib.memory

    families = ("learnlib.mlp", "learnlib.vit", "learnlib.vq", "learnlib.var", "learnlib.slat", "learnlib.train")
    classes = {"VisionTransformer", "MLPClassifier", "VQVAE", "VAR", "SLatVAE", "SelfAttention"}
    for path in Path(learnlib.memory.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n.startswith(families) for n in names), f"{path.name} imports {names}"
            if isinstance(node, (ast.Name, ast.Attribute)):
                name = node.id if isinstance(node, ast.Name) else node.attr
                assert name not in classes and "slat" not in name.lower(), f"{path.name} names {name}"


def test_sgd_state_matches_the_trainer_optimizer_module(small_models):
    from learnlib.memory.measure import measure_state

    model = small_models["vit"]
    assert estimate(model, 2, optimizer="sgd").optimizer_states == measure_state(model, "sgd")["optimizer_states"]
