"""The ViT family as a package: every model name reachable by `create` alone, paddle loaded only on
request, and the port's one name table read in both directions."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from learnlib.check.paddle_port import TINY, torch_shapes
from learnlib.vit.port import (
    NAME_TABLE,
    from_paddle_state_dict,
    is_paddle_linear_weight,
    torch_to_paddle_name,
)

ROOT = Path(__file__).resolve().parents[1]


def run_fresh(code: str) -> str:
    """stdout of `code` run in a new interpreter (nothing imported beforehand) from the repository root."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_create_reaches_dinov2_in_a_fresh_process_without_loading_paddle():
    out = run_fresh(
        "import sys, torch\n"
        "from learnlib.models import available, count_parameters, create\n"
        "with torch.device('meta'):\n"
        "    model = create('dinov2_vitl14_reg')\n"
        "print(type(model).__module__, count_parameters(model))\n"
        "print(all(n in available() for n in ('vit_digits', 'paddle_vit_base', 'dinov2_vitl14_reg')))\n"
        "print('paddle' in sys.modules)\n"
    )
    assert out.split("\n")[:3] == ["learnlib.vit.dinov2 304372736", "True", "False"]


def test_the_package_face_keeps_the_old_names():
    from learnlib.vit import VisionTransformer, ViT, dinov2_vitl14_reg
    from learnlib.vit import from_paddle_state_dict as reexported

    assert ViT is VisionTransformer and reexported is from_paddle_state_dict
    assert dinov2_vitl14_reg.__module__ == "learnlib.vit.dinov2"


def test_the_name_table_read_backwards_inverts_the_port():
    names = list(torch_shapes({**TINY, "depth": 3}))
    paddle_names = [torch_to_paddle_name(name) for name in names]
    assert len(set(paddle_names)) == len(names)
    assert paddle_names[:4] == ["patch_embedding.class_token", "patch_embedding.position_embedding",
                                "patch_embedding.conv.weight", "patch_embedding.conv.bias"]
    assert torch_to_paddle_name("blocks.2.norm1.bias") == "encoder.layers.2.attn_norm.bias"
    assert torch_to_paddle_name("blocks.10.mlp.fc2.weight") == "encoder.layers.10.mlp.fc2.weight"
    assert torch_to_paddle_name("norm.weight") == "encoder.norm.weight"
    assert torch_to_paddle_name("head.fc1.bias") == "classifier.fc1.bias"
    # the forward direction gives every torch name back (values: 2-D for the Linear weights, else 1-D)
    state = {p: np.zeros((2, 3) if is_paddle_linear_weight(p) else (1,), np.float32) for p in paddle_names}
    assert list(from_paddle_state_dict(state)) == names
    with pytest.raises(ValueError, match="no Paddle counterpart for 'blocks.0.ls1.gamma'"):
        torch_to_paddle_name("blocks.0.ls1.gamma")
    assert len(NAME_TABLE) == 9


def test_only_paddle_linear_weights_count_as_linear_weights():
    assert is_paddle_linear_weight("encoder.layers.0.attn.qkv.weight")
    assert is_paddle_linear_weight("classifier.fc2.weight")
    assert not is_paddle_linear_weight("encoder.layers.0.attn.qkv.bias")
    assert not is_paddle_linear_weight("patch_embedding.conv.weight")


def test_dinov2_has_no_interpolation_offset_option():
    from learnlib.models import create

    with pytest.raises(ValueError, match=r"no option\(s\) \['interpolate_offset'\].*interpolate_antialias"):
        create("dinov2_vitl14_reg", interpolate_offset=0.1)
