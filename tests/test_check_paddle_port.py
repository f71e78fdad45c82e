"""Chapter 02 graders: they accept the library's port and name each typical port mistake."""

import numpy as np
import pytest
import torch

from learnlib import check
from learnlib.check.paddle_port import TINY, random_paddle_state, torch_shapes
from learnlib.models import create
from learnlib.vit import from_paddle_state_dict

RENAMES = [("patch_embedding.conv.", "patch_embed.proj."), ("patch_embedding.class_token", "cls_token"),
           ("patch_embedding.position_embedding", "pos_embed"), ("encoder.layers.", "blocks."),
           ("classifier.", "head."), (".attn_norm.", ".norm1."), (".mlp_norm.", ".norm2."),
           ("encoder.norm.", "norm.")]
LINEAR = ("qkv", "proj", "fc1", "fc2")


def stub(*args, **kwargs):
    raise NotImplementedError("exercise")


def _port(state, renames=RENAMES, transpose_linear=True, transpose_others=False):
    """A port written out, with a switch per typical mistake."""
    out = {}
    for name, value in state.items():
        torch_name = name
        for old, new in renames:
            torch_name = torch_name.replace(old, new)
        linear = name.endswith(".weight") and name.split(".")[-2] in LINEAR
        array = np.array(value)
        if (linear and transpose_linear) or (not linear and transpose_others):
            array = np.ascontiguousarray(array.T)
        out[torch_name] = torch.from_numpy(array)
    return out


def _swap(pairs, a, b):
    return [(old, b if new == a else a if new == b else new) for old, new in pairs]


@pytest.mark.parametrize("grader", [check.linear_weight_to_torch, check.port_state_dict])
def test_stub_reports_not_implemented(grader):
    result = grader(stub)
    assert not result and "not implemented yet" in result.message and "Hint:" in result.message


def test_graders_accept_the_library_and_a_port_written_out(capsys):
    assert check.linear_weight_to_torch(lambda w: torch.from_numpy(w).t().contiguous())
    assert check.linear_weight_to_torch(lambda w: torch.tensor(w.T))
    assert check.port_state_dict(from_paddle_state_dict)
    assert check.port_state_dict(_port)
    assert capsys.readouterr().out.count("PASSED") == 4


def test_linear_weight_not_transposed_is_named_for_rectangular_and_square_weights():
    result = check.linear_weight_to_torch(lambda w: torch.from_numpy(w.copy()))
    assert not result and "Paddle's [in, out] layout" in result.message and "not transposed" in result.message
    assert "input weight [in, out] = [[" in result.message  # the 2 x 3 case, written out

    def only_when_shapes_differ(w):  # the heuristic that misses square weights
        return torch.from_numpy(w.copy() if w.shape[0] == w.shape[1] else w.T.copy())

    result = check.linear_weight_to_torch(only_when_shapes_differ)
    assert not result and "This weight is square" in result.message and "expected: [[" in result.message


def test_linear_weight_reshaped_or_left_in_numpy_is_named():
    result = check.linear_weight_to_torch(lambda w: torch.from_numpy(w.reshape(w.shape[1], w.shape[0]).copy()))
    assert not result and "reshaped instead of transposed" in result.message
    result = check.linear_weight_to_torch(lambda w: w.T)
    assert not result and "NumPy array" in result.message and "torch.from_numpy" in result.message


def test_port_without_transposes_is_named():
    result = check.port_state_dict(lambda s: _port(s, transpose_linear=False))
    assert not result and "blocks.0.attn.qkv.weight is not transposed" in result.message

    def square_ones_missed(state):
        out = _port(state)
        for key in ("blocks.0.attn.proj.weight", "head.fc1.weight"):  # (8, 8): the shapes agree anyway
            out[key] = out[key].t().contiguous()
        return out

    result = check.port_state_dict(square_ones_missed)
    assert not result and "blocks.0.attn.proj.weight is not transposed" in result.message
    assert "square" in result.message


def test_port_transposing_non_linear_weights_is_named():
    result = check.port_state_dict(lambda s: _port(s, transpose_others=True))
    assert not result and "was transposed" in result.message and "copy it unchanged" in result.message

    def conv_kernel_transposed(state):
        out = _port(state)
        out["patch_embed.proj.weight"] = out["patch_embed.proj.weight"].transpose(-1, -2).contiguous()
        return out

    result = check.port_state_dict(conv_kernel_transposed)
    assert not result and "patch_embed.proj.weight was transposed" in result.message
    assert "convolution weights" in result.message


def test_port_layernorm_traps_are_named():
    def weight_bias_swapped(state):
        out = _port(state)
        out["blocks.0.norm1.weight"], out["blocks.0.norm1.bias"] = out["blocks.0.norm1.bias"], out["blocks.0.norm1.weight"]
        return out

    result = check.port_state_dict(weight_bias_swapped)
    assert not result and "weight and bias are swapped" in result.message
    result = check.port_state_dict(lambda s: _port(s, renames=_swap(RENAMES, ".norm1.", ".norm2.")))
    assert not result and "norm1 and norm2 are swapped" in result.message and "attn_norm" in result.message
    result = check.port_state_dict(lambda s: _port(s, renames=RENAMES[:5]))
    assert not result and "LayerNorm names were kept" in result.message


def test_ported_random_state_loads_strictly_into_the_tiny_torch_model():
    model = create("paddle_vit_base", **TINY)
    state = random_paddle_state(torch.Generator().manual_seed(0))
    report = model.load_state_dict(from_paddle_state_dict(state), strict=True)
    assert not report.missing_keys and not report.unexpected_keys
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == torch_shapes()


def test_random_paddle_state_has_the_names_shapes_and_order_of_the_real_paddle_model():
    pytest.importorskip("paddle")
    from learnlib.vit.paddle import ViT as PaddleViT

    config = {"image_size": TINY["img_size"], "patch_size": TINY["patch_size"], "in_channels": TINY["in_chans"],
              "embed_dim": TINY["embed_dim"], "depth": TINY["depth"], "num_heads": TINY["num_heads"],
              "head_hidden": TINY["head_hidden"], "num_classes": TINY["num_classes"]}
    real = {k: tuple(v.shape) for k, v in PaddleViT(**config).state_dict().items()}
    made = {k: v.shape for k, v in random_paddle_state(torch.Generator().manual_seed(0)).items()}
    assert list(made.items()) == list(real.items())
