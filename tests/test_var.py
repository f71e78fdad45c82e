"""VAR transformer: sizes of the published models, checkpoint layout, mask, attention, loss."""

import math

import pytest
import torch

from learnlib.models import count_parameters, create
from learnlib.nn import DropPath
from learnlib.var import (
    VAR,
    AdaLNSelfAttn,
    SelfAttention,
    block_causal_mask,
    feed_forward,
    random_state_dict,
    var_checkpoint_shapes,
    var_loss,
)

PN = (1, 2, 3)


def tiny_var(**kw):
    cfg = {"vocab_size": 16, "Cvae": 4, "num_classes": 5, "depth": 2, "embed_dim": 32, "num_heads": 2, "patch_nums": PN,
               "drop_path_rate": 0.0, "init_adaln_gamma": 1.0, "init_adaln": 1.0, "init_head": 1.0}
    return VAR(**{**cfg, **kw})


@pytest.mark.parametrize("name, millions", [("var_d16", 310.28), ("var_d20", 600.92),
                                            ("var_d24", 1033.40), ("var_d30", 2010.02)])
def test_published_parameter_counts(name, millions):
    with torch.device("meta"):
        model = create(name)
    assert count_parameters(model) / 1e6 == pytest.approx(millions, abs=0.01)


def test_d16_state_dict_matches_release_layout_and_loads_strictly():
    with torch.device("meta"):
        model = create("var_d16")
        spec = var_checkpoint_shapes(16)
        state = {k: torch.empty(shape, dtype=torch.long if k == "lvl_1L" else torch.float32)
                 for k, shape in spec.items()}
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == dict(spec)
    for key, shape in [("word_embed.weight", (1024, 32)), ("class_emb.weight", (1001, 1024)),
                       ("pos_start", (1, 1, 1024)), ("pos_1LC", (1, 680, 1024)), ("lvl_embed.weight", (10, 1024)),
                       ("blocks.0.attn.mat_qkv.weight", (3072, 1024)), ("blocks.0.attn.q_bias", (1024,)),
                       ("blocks.0.attn.v_bias", (1024,)), ("blocks.0.attn.scale_mul_1H11", (1, 16, 1, 1)),
                       ("blocks.0.ada_lin.1.weight", (6144, 1024)), ("head_nm.ada_lin.1.weight", (2048, 1024)),
                       ("head.weight", (4096, 1024)), ("attn_bias_for_masking", (1, 1, 680, 680))]:
        assert shapes[key] == shape, key
    model.load_state_dict(state, strict=True, assign=True)


def test_tiny_var_strict_load_of_reference_shaped_weights():
    model = tiny_var()
    state = random_state_dict(var_checkpoint_shapes(depth=2, num_classes=5, vocab_size=16, Cvae=4,
                                                    patch_nums=PN, embed_dim=32, num_heads=2))
    state["lvl_1L"] = model.lvl_1L.clone()
    state["attn_bias_for_masking"] = model.attn_bias_for_masking.clone()
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.head.weight, state["head.weight"])


def test_block_causal_mask_small_pyramid():
    expected = torch.tensor([[1, 0, 0, 0, 0],
                             [1, 1, 1, 1, 1],
                             [1, 1, 1, 1, 1],
                             [1, 1, 1, 1, 1],
                             [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(block_causal_mask((1, 2)), expected)
    mask = block_causal_mask((1, 2, 3))
    assert mask.shape == (14, 14) and not mask[4, 5] and mask[5, 13] and mask[13, 0]
    assert torch.equal(tiny_var().attn_bias_for_masking[0, 0] == 0, mask)


def test_attention_backends_agree_and_l2_norm_scale():
    attn = SelfAttention(32, 4, attn_l2_norm=True, backend="reference")
    x = torch.randn(2, 14, 32)
    bias = tiny_var().attn_bias_for_masking
    ref = attn(x, bias)
    attn.backend = "sdpa"
    assert torch.allclose(attn(x, bias), ref, atol=1e-5)
    assert torch.allclose(attn.scale_mul_1H11.exp(), torch.full((1, 4, 1, 1), 4.0))
    assert attn.max_scale_mul == pytest.approx(math.log(100))


def test_feed_forward_is_var_ffn_tanh_gelu_and_one_dropout_after_fc2():
    torch.manual_seed(0)
    ffn = feed_forward(8, 32, drop=0.25).train()
    assert list(ffn.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]  # the release's keys
    x = torch.randn(4, 6, 8)
    torch.manual_seed(1)
    out = ffn(x)
    torch.manual_seed(1)  # the published FFN: drop(fc2(gelu_tanh(fc1(x)))), one dropout mask
    h = torch.nn.functional.gelu(ffn.fc1(x), approximate="tanh")
    expected = torch.nn.functional.dropout(ffn.fc2(h), p=0.25, training=True)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_block_drop_path_is_per_sample_and_rescaled():
    block = AdaLNSelfAttn(16, 16, num_heads=2, drop_path=0.5).train()
    assert isinstance(block.drop_path, DropPath)
    x = torch.ones(64, 3, 16)
    torch.manual_seed(0)
    out = block.drop_path(x)
    torch.manual_seed(0)  # the same draw: one Bernoulli(keep) per sample, kept samples scaled by 1 / keep
    keep = torch.empty(64, 1, 1).bernoulli_(0.5)
    torch.testing.assert_close(out, x * keep / 0.5)
    assert 0 < int(keep.sum()) < 64


def test_adaln_block_with_zero_condition_map_is_identity():
    block = AdaLNSelfAttn(32, 32, num_heads=2)
    torch.nn.init.zeros_(block.ada_lin[1].weight)
    torch.nn.init.zeros_(block.ada_lin[1].bias)  # gates are zero
    x = torch.randn(2, 5, 32)
    assert torch.equal(block(x, torch.randn(2, 32), None), x)


def test_published_init():
    model = tiny_var(init_adaln=0.5, init_adaln_gamma=1e-5, init_head=0.02)
    std = (1 / 32 / 3) ** 0.5
    weight = model.blocks[0].ada_lin[1].weight
    assert weight[:64].std().item() == pytest.approx(std * 1e-5, rel=0.15)  # gates
    assert weight[64:].std().item() == pytest.approx(std * 0.5, rel=0.15)  # scales and shifts
    assert model.head.weight.std().item() == pytest.approx(std * 0.02, rel=0.15)
    assert model.blocks[0].attn.proj.weight.std().item() == pytest.approx(std / 2, rel=0.15)
    assert model.blocks[0].attn.q_bias.abs().sum() == 0


def test_teacher_forcing_respects_scale_causality():
    model = tiny_var().eval()
    labels = torch.tensor([1, 3])
    x = torch.randn(2, 13, 4)
    logits = model(labels, x)
    assert logits.shape == (2, 14, 16)
    x2 = x.clone()
    x2[:, 4:] += 1.0  # change the input tokens of the last scale (positions 5..13)
    logits2 = model(labels, x2)
    assert torch.allclose(logits[:, :5], logits2[:, :5], atol=1e-6)
    assert not torch.allclose(logits[:, 5:], logits2[:, 5:], atol=1e-3)


def test_condition_dropout_only_in_training():
    model = tiny_var(cond_drop_rate=1.0)
    labels, x = torch.tensor([1, 2]), torch.randn(2, 13, 4)
    null = torch.full((2,), 5)
    model.train()
    assert torch.allclose(model(labels, x), model.eval()(null, x), atol=1e-6)
    assert not torch.allclose(model(labels, x), model(null, x), atol=1e-4)


def test_progressive_forward_truncates_to_scale():
    model = tiny_var().eval()
    labels, x = torch.tensor([0, 1]), torch.randn(2, 13, 4)
    full = model(labels, x)
    assert torch.allclose(model(labels, x, prog_si=1), full[:, :5], atol=1e-5)
    assert model(labels, x, prog_si=0).shape == (2, 1, 16)


def test_var_loss_values():
    logits = torch.zeros(2, 14, 16)
    targets = torch.randint(0, 16, (2, 14))
    assert var_loss(logits, targets, PN).item() == pytest.approx(math.log(16), rel=1e-6)
    # progressive: scales 0 and 1 present, newest scale (4 tokens) weighted by prog_wp
    part = var_loss(logits[:, :5], targets[:, :5], PN, prog_si=1, prog_wp=0.0)
    assert part.item() == pytest.approx(math.log(16) / 14, rel=1e-6)
    half = var_loss(logits[:, :5], targets[:, :5], PN, prog_si=1, prog_wp=0.5)
    assert half.item() == pytest.approx(math.log(16) * 3 / 14, rel=1e-6)
    smooth = var_loss(torch.nn.functional.one_hot(targets, 16).float() * 10, targets, PN, label_smoothing=0.1)
    assert smooth > var_loss(torch.nn.functional.one_hot(targets, 16).float() * 10, targets, PN)
    with pytest.raises(ValueError):
        var_loss(logits[:, :5], targets[:, :5], PN)


def test_var_digits_learns_on_fixed_tokens():
    torch.manual_seed(0)
    vae = create("vqvae_digits").eval()
    model = create("var_digits")
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    indices = vae.encode_to_indices(images)
    x = vae.quantize.indices_to_var_input(indices)
    targets = torch.cat(indices, dim=1)
    labels = torch.arange(8) % 10
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = var_loss(model(labels, x), targets, model.patch_nums)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.gpu
def test_cached_attention_on_flash_matches_reference_on_gpu():
    pytest.importorskip("flash_attn")
    torch.manual_seed(0)
    attn = SelfAttention(64, 4, attn_l2_norm=True, backend="reference").cuda().eval()
    first, second = torch.randn(2, 4, 64, device="cuda"), torch.randn(2, 9, 64, device="cuda")  # two scales

    def cached(backend, dtype=None):
        attn.backend = backend
        attn.kv_caching(True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype is not None):
            out = torch.cat([attn(first, None), attn(second, None)], dim=1)  # (B, 13, C)
        attn.kv_caching(False)
        return out.float()

    ref = cached("reference")
    for backend in ("flash", "auto"):  # no bias and bf16 under autocast: "auto" runs flash too
        torch.testing.assert_close(cached(backend, torch.bfloat16), ref, atol=3e-2, rtol=3e-2)
