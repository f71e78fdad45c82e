"""Vision Transformer: published parameter counts, timm layout, patch embedding, invariants."""

import pytest
import torch
from torch import nn

from learnlib.models import count_parameters, create
from learnlib.nn.patch_embed import patchify
from learnlib.vit import VisionTransformer, zero_one_layernorm_init


def _tiny(**kw):
    cfg = {"img_size": 16, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_classes": 5}
    return VisionTransformer(**{**cfg, **kw})


@pytest.mark.parametrize("name, expected", [
    ("vit_base_patch16_224", 86_567_656),
    ("paddle_vit_base", 87_158_248),
    ("vit_small_patch16_224", 22_050_664),
    ("vit_tiny_patch16_224", 5_717_416),
])
def test_parameter_counts_match_published(name, expected):
    with torch.device("meta"):  # shapes only: no memory, no init
        model = create(name)
    assert count_parameters(model) == expected


# timm's VisionTransformer(img_size=16, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=5)
TIMM_KEYS = [
    ("cls_token", (1, 1, 32)), ("pos_embed", (1, 5, 32)),
    ("patch_embed.proj.weight", (32, 3, 8, 8)), ("patch_embed.proj.bias", (32,)),
    ("blocks.0.norm1.weight", (32,)), ("blocks.0.norm1.bias", (32,)),
    ("blocks.0.attn.qkv.weight", (96, 32)), ("blocks.0.attn.qkv.bias", (96,)),
    ("blocks.0.attn.proj.weight", (32, 32)), ("blocks.0.attn.proj.bias", (32,)),
    ("blocks.0.norm2.weight", (32,)), ("blocks.0.norm2.bias", (32,)),
    ("blocks.0.mlp.fc1.weight", (128, 32)), ("blocks.0.mlp.fc1.bias", (128,)),
    ("blocks.0.mlp.fc2.weight", (32, 128)), ("blocks.0.mlp.fc2.bias", (32,)),
    ("norm.weight", (32,)), ("norm.bias", (32,)), ("head.weight", (5, 32)), ("head.bias", (5,)),
]


def test_state_dict_layout_is_timms():
    model = _tiny(depth=1)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == TIMM_KEYS
    # avg pooling without class token: timm drops cls_token and moves the final norm to fc_norm
    avg = _tiny(depth=1, class_token=False, global_pool="avg")
    expected = [("pos_embed", (1, 4, 32))] + TIMM_KEYS[2:16] + [
        ("fc_norm.weight", (32,)), ("fc_norm.bias", (32,)), ("head.weight", (5, 32)), ("head.bias", (5,))]
    assert [(k, tuple(v.shape)) for k, v in avg.state_dict().items()] == expected


@pytest.mark.parametrize("global_pool", ["token", "avg"])
def test_timm_weights_give_identical_logits(global_pool):
    timm = pytest.importorskip("timm")
    ref = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=7, global_pool=global_pool
    ).eval()
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=7,
                              global_pool=global_pool).eval()
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max().item() <= 1e-5


def test_forward_shapes_and_composition():
    model = _tiny().eval()
    x = torch.randn(3, 3, 16, 16)
    feats = model.forward_features(x)
    assert feats.shape == (3, 1 + 4, 32)
    assert model.forward_head(feats, pre_logits=True).shape == (3, 32)
    torch.testing.assert_close(model(x), model.forward_head(feats))
    assert _tiny(num_classes=0)(x).shape == (3, 32)
    head = _tiny(head_hidden=20).head
    assert [tuple(m.weight.shape) for m in (head.fc1, head.fc2)] == [(20, 32), (5, 20)]


def test_conv_patch_embedding_equals_patchify_plus_linear():
    model = _tiny()
    x = torch.randn(2, 3, 16, 16)
    conv = model.patch_embed.proj
    weight = conv.weight.permute(0, 2, 3, 1).flatten(1)  # (E, P*P*C) in patchify's (p1, p2, c) order
    patches = patchify(x, 8)
    assert patches.shape == (2, 4, 8 * 8 * 3)
    torch.testing.assert_close(patches @ weight.T + conv.bias, model.patch_embed(x), atol=1e-5, rtol=1e-5)
    # the first patch is the top-left 8x8 corner
    torch.testing.assert_close(patches[0, 0], x[0, :, :8, :8].permute(1, 2, 0).flatten())


def test_bad_input_raises_with_expected_and_received_shape():
    model = _tiny()
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\).*\(2, 3, 32, 32\)"):
        model(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\).*\(2, 1, 16, 16\)"):
        model(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="divisible"):
        patchify(torch.zeros(1, 3, 10, 10), 4)
    with pytest.raises(ValueError, match="global_pool"):
        _tiny(global_pool="max")


def test_attention_maps_and_backends_agree():
    model = _tiny(depth=3, attn_backend="reference").eval()
    x = torch.randn(2, 3, 16, 16)
    maps = model.get_attention_maps(x)
    assert len(maps) == 3 and all(m.shape == (2, 2, 5, 5) for m in maps)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(2, 2, 5))
    with torch.no_grad():
        ref = model(x)
        for block in model.blocks:
            block.attn.backend = "sdpa"
        assert (model(x) - ref).abs().max().item() <= 1e-5


def test_avg_pool_reads_patch_tokens_only():
    model = _tiny(global_pool="avg").eval()
    x = torch.randn(2, 3, 16, 16)
    feats = model.forward_features(x)
    changed = feats.clone()
    changed[:, 0] += 5.0  # the class token does not enter the average
    torch.testing.assert_close(model.forward_head(changed), model.forward_head(feats))


def test_timm_style_init():
    torch.manual_seed(0)
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=128, depth=2, num_heads=4, num_classes=10)
    fc1 = model.blocks[0].mlp.fc1.weight
    assert abs(fc1.std().item() - 0.02) < 0.002 and fc1.abs().max().item() <= 2.0
    assert abs(model.pos_embed.std().item() - 0.02) < 0.003
    assert model.cls_token.abs().max().item() < 1e-4
    for m in model.modules():
        if isinstance(m, nn.Linear):
            assert torch.all(m.bias == 0)
        if isinstance(m, nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0) and m.eps == 1e-6


def test_dropout_and_drop_path_only_act_in_training():
    model = _tiny(drop_rate=0.3, attn_drop_rate=0.3, drop_path_rate=0.5)
    x = torch.randn(4, 3, 16, 16)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))
    rates = [b.drop_path1.drop_prob for b in model.blocks]
    assert rates == pytest.approx([0.0, 0.5])


def test_zero_one_layernorm_init_makes_logits_ignore_the_image():
    model = zero_one_layernorm_init(_tiny(depth=2)).eval()
    a, b = torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16)
    # every block sees the same constant vector for every token: the class token learns nothing
    torch.testing.assert_close(model(a), model(b))
    assert not torch.allclose(_tiny(depth=2).eval()(a), _tiny(depth=2).eval()(b))


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread (no synchronization between threads per op)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_vit_digits_config_and_learning_signal(one_thread):
    torch.manual_seed(0)
    model = create("vit_digits")
    assert model(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    # a few steps on a fixed batch reduce the loss (the model can learn)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_conv_stem_embeds_local_features_and_is_absent_by_default():
    plain = create("vit_digits")
    assert isinstance(plain.stem, nn.Identity)
    assert not any(key.startswith("stem.") for key in plain.state_dict())  # timm's layout is unchanged
    torch.manual_seed(0)
    stemmed = create("vit_digits", stem_channels=16)
    conv = stemmed.stem[0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (1, 16, (3, 3))
    assert stemmed.patch_embed.proj.in_channels == 16
    images = torch.randn(3, 1, 8, 8)
    assert stemmed(images).shape == (3, 10)
    # the tokens are the patch embedding of the stem's features, not of the pixels
    expected = stemmed.patch_embed(nn.functional.gelu(conv(images)))  # (B, N, D)
    torch.testing.assert_close(stemmed._embed(images)[:, 1:] - stemmed.pos_embed[:, 1:], expected)
    with pytest.raises(ValueError, match="stem_channels"):
        create("vit_digits", stem_channels=-1)
