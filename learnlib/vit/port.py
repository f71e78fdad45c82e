"""Chapter 02's port: the Paddle ViT's parameter names and layouts -> `VisionTransformer(head_hidden=...)`.

One name table (`NAME_TABLE`) gives both directions: `from_paddle_state_dict` converts a Paddle state
dict (`learnlib.vit.paddle.ViT`) to torch names and layouts, and `torch_to_paddle_name` answers the
other way (the chapter-02 grader builds its Paddle inputs with it).
"""

from __future__ import annotations

import re

import numpy as np
import torch

__all__ = ["NAME_TABLE", "from_paddle_state_dict", "is_paddle_linear_weight", "torch_to_paddle_name"]

# Paddle name -> torch name. A {field} matches the same text on both sides: a layer index, a
# parameter kind, the attention's or the MLP's Linear layers.
_FIELDS = {"i": r"\d+", "param": "weight|bias", "attn": "qkv|proj", "fc": "fc1|fc2"}
NAME_TABLE = [
    ("patch_embedding.conv.{param}", "patch_embed.proj.{param}"),
    ("patch_embedding.class_token", "cls_token"),
    ("patch_embedding.position_embedding", "pos_embed"),
    ("encoder.layers.{i}.attn_norm.{param}", "blocks.{i}.norm1.{param}"),
    ("encoder.layers.{i}.attn.{attn}.{param}", "blocks.{i}.attn.{attn}.{param}"),
    ("encoder.layers.{i}.mlp_norm.{param}", "blocks.{i}.norm2.{param}"),
    ("encoder.layers.{i}.mlp.{fc}.{param}", "blocks.{i}.mlp.{fc}.{param}"),
    ("encoder.norm.{param}", "norm.{param}"),
    ("classifier.{fc}.{param}", "head.{fc}.{param}"),
]


def _pattern(template: str) -> str:
    """A template's regular expression: literal text escaped, each {field} a named group."""
    parts = re.split(r"\{(\w+)\}", template)  # literal, field, literal, field, ..., literal
    return "".join(re.escape(part) if k % 2 == 0 else f"(?P<{part}>{_FIELDS[part]})"
                   for k, part in enumerate(parts))


def _replacement(template: str) -> str:
    """A template as an `re.sub` replacement: each {field} a reference to the matched group."""
    return re.sub(r"\{(\w+)\}", r"\\g<\1>", template)


# (regex, replacement) pairs of each direction; Linear weights are transposed (Paddle stores (in, out)).
_PADDLE_TO_TORCH = [(_pattern(paddle), _replacement(torch_name)) for paddle, torch_name in NAME_TABLE]
_TORCH_TO_PADDLE = [(_pattern(torch_name), _replacement(paddle)) for paddle, torch_name in NAME_TABLE]
_PADDLE_LINEAR_WEIGHT = re.compile(r"\.(qkv|proj|fc1|fc2)\.weight$")


def is_paddle_linear_weight(paddle_name: str) -> bool:
    """Whether the Paddle parameter `paddle_name` is a Linear weight, stored [in, out] (torch: (out, in))."""
    return bool(_PADDLE_LINEAR_WEIGHT.search(paddle_name))


def torch_to_paddle_name(torch_name: str) -> str:
    """The Paddle name of a parameter of the ported ViT; ValueError for a name with no counterpart."""
    for pattern, target in _TORCH_TO_PADDLE:
        if re.fullmatch(pattern, torch_name):
            return re.sub(pattern, target, torch_name)
    raise ValueError(f"no Paddle counterpart for {torch_name!r}")


def from_paddle_state_dict(paddle_state: dict) -> dict[str, torch.Tensor]:
    """Convert a `learnlib.vit.paddle.ViT` state dict (values numpy arrays or paddle Tensors)
    to the names and layouts of `VisionTransformer(head_hidden=...)`."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for name, value in paddle_state.items():
        array = np.array(value.numpy() if hasattr(value, "numpy") else value)  # a private copy
        for pattern, target in _PADDLE_TO_TORCH:
            if re.fullmatch(pattern, name):
                torch_name = re.sub(pattern, target, name)
                break
        else:
            unknown.append(name)
            continue
        tensor = torch.from_numpy(array)
        if _PADDLE_LINEAR_WEIGHT.search(name):
            if tensor.dim() != 2:
                raise ValueError(f"{name}: expected a 2-D Linear weight [in, out], got {tuple(tensor.shape)}")
            tensor = tensor.t().contiguous()  # (in, out) -> (out, in)
        out[torch_name] = tensor
    if unknown:
        raise KeyError(f"parameters with no torch counterpart: {unknown}")
    return out
