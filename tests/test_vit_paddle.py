"""The PaddlePaddle seed ViT: parameter count, and identical logits after conversion to PyTorch."""

import numpy as np
import pytest
import torch

paddle = pytest.importorskip("paddle")

from learnlib.models import count_parameters, create
from learnlib.vit import VisionTransformer, from_paddle_state_dict
from learnlib.vit.paddle import ViT as PaddleViT
from learnlib.vit.paddle import paddle_vit_base

SMALL = {"image_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4, "head_hidden": 48,
         "num_classes": 10}


def _torch_small() -> VisionTransformer:
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, head_hidden=48,
                             num_classes=10)


def _paddle_small(**kw) -> PaddleViT:
    paddle.seed(0)
    model = PaddleViT(**{**SMALL, **kw})
    model.eval()
    return model


def test_full_size_parameter_count_in_both_frameworks():
    with paddle.LazyGuard():  # shapes only: parameters are not initialized
        model = paddle_vit_base()
    assert sum(int(np.prod(p.shape)) for p in model.parameters()) == 87_158_248
    with torch.device("meta"):
        assert count_parameters(create("paddle_vit_base")) == 87_158_248


@pytest.mark.slow
def test_paddle_summary_reports_the_parameter_count():
    summary = paddle.summary(paddle_vit_base(), (1, 3, 224, 224))
    assert int(summary["total_params"]) == 87_158_248


def test_converted_weights_give_identical_logits():
    pmodel = _paddle_small()
    # perturb the LayerNorms and the class token so every parameter matters
    for name, p in pmodel.named_parameters():
        if "norm" in name or "class_token" in name:
            noise = np.random.default_rng(len(name)).normal(0, 0.1, p.shape).astype("float32")
            p.set_value(p.numpy() + noise)
    tmodel = _torch_small().eval()
    tmodel.load_state_dict(from_paddle_state_dict(pmodel.state_dict()), strict=True)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype("float32")
    expected = pmodel(paddle.to_tensor(x)).numpy()
    with torch.no_grad():
        got = tmodel(torch.from_numpy(x)).numpy()
    assert expected.shape == (3, 10)
    assert np.abs(got - expected).max() <= 1e-5


def test_conversion_transposes_linear_weights_only():
    pmodel = _paddle_small()
    state = {k: v.numpy() for k, v in pmodel.state_dict().items()}
    converted = from_paddle_state_dict(state)
    np.testing.assert_array_equal(converted["blocks.0.attn.qkv.weight"].numpy(),
                                  state["encoder.layers.0.attn.qkv.weight"].T)
    np.testing.assert_array_equal(converted["patch_embed.proj.weight"].numpy(),
                                  state["patch_embedding.conv.weight"])
    assert converted["head.fc1.weight"].shape == (48, 64)
    with pytest.raises(KeyError, match="extra.weight"):
        from_paddle_state_dict({**state, "extra.weight": np.zeros(3)})


def test_layernorms_use_timm_epsilon():
    pmodel = _paddle_small()
    eps = {layer._epsilon for layer in pmodel.sublayers() if isinstance(layer, paddle.nn.LayerNorm)}
    assert eps == {1e-6}


def test_zero_one_layernorm_init_makes_logits_ignore_the_image():
    pmodel = _paddle_small(layernorm_init="zero_one")
    a, b = (paddle.to_tensor(np.random.default_rng(s).standard_normal((1, 3, 32, 32)).astype("float32"))
            for s in (1, 2))
    np.testing.assert_allclose(pmodel(a).numpy(), pmodel(b).numpy(), atol=1e-6)
    normal = _paddle_small()
    assert np.abs(normal(a).numpy() - normal(b).numpy()).max() > 1e-4


def test_bad_input_shape_raises():
    with pytest.raises(ValueError, match=r"\[B, 3, 32, 32\].*\[2, 3, 16, 16\]"):
        _paddle_small()(paddle.zeros([2, 3, 16, 16]))
