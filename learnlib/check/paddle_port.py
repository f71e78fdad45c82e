"""Graders of chapter 02 (porting the PaddlePaddle ViT to PyTorch): one Linear weight, then a whole state dict.

The inputs are what `paddle_model.state_dict()` gives after `.numpy()`: Paddle's names and layouts
as float32 NumPy arrays, made here from seeded random numbers (no paddle import needed). The
reference is `learnlib.vit.port.from_paddle_state_dict`, whose name table, read backwards, also gives
the Paddle names. Typical port mistakes are named: a Linear weight not transposed (square ones load
silently), a reshape instead of a transpose, a convolution, LayerNorm or embedding transposed,
LayerNorm weight and bias swapped, norm1 and norm2 swapped.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import Tensor

from learnlib.check.core import Mismatch, describe, failure, run_check, seeded
from learnlib.check.hints import register_hints
from learnlib.check.mistakes import compare
from learnlib.vit.port import from_paddle_state_dict, is_paddle_linear_weight, torch_to_paddle_name

HINTS = {
    "linear_weight_to_torch": (
        ("Paddle's Linear computes x @ W and stores W as [in, out]; torch's computes x @ W.T and stores "
        "(out, in). Which operation turns one layout into the other (it moves values, not only the shape)?"),
        ("return torch.from_numpy(weight).t().contiguous()  (or torch.tensor(weight.T)); not reshape, which "
        "keeps the memory order and only relabels it.")),
    "port_state_dict": (
        ("rename with RENAMES plus the three LayerNorms (attn_norm is the one before attention, mlp_norm the "
        "one before the MLP, encoder.norm the final one); transpose only the weights of the Linear layers "
        "(qkv, proj, fc1, fc2): convolutions, LayerNorms and embeddings have the same layout in both."),
        ("for name, value in paddle_state.items(): new = name; for old, rep in RENAMES + [('.attn_norm.', "
        "'.norm1.'), ('.mlp_norm.', '.norm2.'), ('encoder.norm.', 'norm.')]: new = new.replace(old, rep); "
        "t = torch.from_numpy(np.array(value)); if name.endswith('.weight') and name.split('.')[-2] in "
        "('qkv', 'proj', 'fc1', 'fc2'): t = t.t().contiguous(); out[new] = t.")),
}
register_hints(HINTS)

# The chapter's Paddle ViT at a tiny size (square patch kernel, square proj and head.fc1 weights).
TINY = {"img_size": 8, "patch_size": 4, "in_chans": 3, "embed_dim": 8, "depth": 2, "num_heads": 2, "head_hidden": 8,
        "num_classes": 5}

def torch_shapes(config: dict = TINY) -> dict[str, tuple[int, ...]]:
    """Names and shapes of `create("paddle_vit_base", **config)`'s state dict, in its order."""
    d, n = config["embed_dim"], (config["img_size"] // config["patch_size"]) ** 2
    p, c, hidden = config["patch_size"], config["in_chans"], 4 * d
    shapes = {"cls_token": (1, 1, d), "pos_embed": (1, n + 1, d), "patch_embed.proj.weight": (d, c, p, p),
              "patch_embed.proj.bias": (d,)}
    for i in range(config["depth"]):
        shapes.update({f"blocks.{i}.norm1.weight": (d,), f"blocks.{i}.norm1.bias": (d,),
                       f"blocks.{i}.attn.qkv.weight": (3 * d, d), f"blocks.{i}.attn.qkv.bias": (3 * d,),
                       f"blocks.{i}.attn.proj.weight": (d, d), f"blocks.{i}.attn.proj.bias": (d,),
                       f"blocks.{i}.norm2.weight": (d,), f"blocks.{i}.norm2.bias": (d,),
                       f"blocks.{i}.mlp.fc1.weight": (hidden, d), f"blocks.{i}.mlp.fc1.bias": (hidden,),
                       f"blocks.{i}.mlp.fc2.weight": (d, hidden), f"blocks.{i}.mlp.fc2.bias": (d,)})
    h, k = config["head_hidden"], config["num_classes"]
    shapes.update({"norm.weight": (d,), "norm.bias": (d,), "head.fc1.weight": (h, d), "head.fc1.bias": (h,),
                   "head.fc2.weight": (k, h), "head.fc2.bias": (k,)})
    return shapes


def paddle_name(torch_name: str) -> str:
    """The Paddle name of a torch parameter of the ported ViT (the port's name table, read backwards)."""
    return torch_to_paddle_name(torch_name)


def random_paddle_state(generator: torch.Generator, config: dict = TINY) -> dict[str, np.ndarray]:
    """A Paddle ViT state dict (names, [in, out] Linear layouts, order) of random float32 arrays."""
    state = {}
    for name, shape in torch_shapes(config).items():
        value = torch.randn(shape, generator=generator)  # every parameter random, LayerNorms included
        if is_paddle_linear_weight(paddle_name(name)):
            value = value.t()  # (out, in) -> Paddle's [in, out]
        state[paddle_name(name)] = value.contiguous().numpy()
    return state


# --------------------------------------------------------------------------- one Linear weight
def linear_weight_to_torch(fn) -> bool:
    """Check fn(weight: np.ndarray [in, out] of a Paddle Linear) -> torch.Tensor (out, in) of torch's Linear."""
    generator = seeded(20)

    def case(n_in, n_out):
        def run():
            weight = torch.randn(n_in, n_out, generator=generator).numpy()
            original = weight.copy()
            expected = torch.from_numpy(weight.T.copy())  # (out, in)
            got = fn(weight)
            if not np.array_equal(weight, original):
                raise Mismatch("your function changed the Paddle array in place; work on a copy")
            shown = {"weight [in, out]": torch.from_numpy(original)}
            if isinstance(got, np.ndarray):
                raise Mismatch(f"expected a torch tensor, got a NumPy array of shape {got.shape}: convert it "
                               "with torch.from_numpy (or torch.tensor)")
            if not isinstance(got, Tensor):
                raise Mismatch(f"expected a torch tensor of shape {tuple(expected.shape)}, got {describe(got)}")
            if tuple(got.shape) == (n_in, n_out) and n_in != n_out:
                raise failure(f"shape {(n_in, n_out)} is Paddle's [in, out] layout: torch's Linear stores "
                              f"(out, in) = {(n_out, n_in)}; the weight was not transposed", shown)
            if got.dtype != torch.float32:
                raise Mismatch(f"dtype {got.dtype}: a ported weight keeps Paddle's float32")
            compare("torch weight", got, expected, {
                "not transposed: Paddle's Linear stores [in, out], torch's (out, in). This weight is square, so "
                "the shapes agree and load_state_dict would accept it without complaint":
                    torch.from_numpy(original),
                "reshaped instead of transposed: reshape keeps the order of the values in memory and only "
                "relabels the axes; a transpose moves each value w[i, j] to (j, i)":
                    torch.from_numpy(original.reshape(n_out, n_in)),
            }, shown, atol=0.0, rtol=0.0)
        return run

    shapes = [(2, 3), (3, 3), (4, 6), (8, 8), (16, 5)]  # smallest first; two square ones
    return run_check("linear_weight_to_torch", [case(*s) for s in shapes])


# --------------------------------------------------------------------------- a whole state dict
def _kind(torch_name: str) -> str:
    if torch_name.startswith("patch_embed.proj.weight"):
        return "convolution weights are (out, in, kH, kW) in both frameworks"
    if "norm" in torch_name:
        return "LayerNorm parameters have the same layout in both frameworks"
    if torch_name in ("cls_token", "pos_embed"):
        return "the class token and the position embedding have the same layout in both frameworks"
    return "only Linear weights are stored transposed"


def _transposes(array: np.ndarray) -> list[np.ndarray]:
    """The layouts a misplaced transpose produces: all axes reversed (.T), the last two swapped."""
    out = [array.T]
    if array.ndim >= 2:
        out.append(np.swapaxes(array, -1, -2))
    return [a for a in out if a.shape != array.shape or not np.array_equal(a, array)]


def _same(got: Tensor, array: np.ndarray) -> bool:
    return tuple(got.shape) == array.shape and torch.equal(got.detach().float(), torch.from_numpy(array))


def _source_message(key: str, got: Tensor, state: dict[str, np.ndarray]) -> str | None:
    """Name the mistake when `got` (for torch key `key`) equals some Paddle array, as-is or transposed."""
    source = paddle_name(key)
    linear = is_paddle_linear_weight(source)
    array = state[source]
    if linear and _same(got, array):
        square = " This weight is square, so load_state_dict would accept it silently." if \
            array.shape[0] == array.shape[1] else ""
        return (f"{key} is not transposed: Paddle's Linear stores [in, out] = {list(array.shape)}, torch's "
                f"(out, in).{square}")
    if not linear and any(_same(got, t) for t in _transposes(array)):
        return f"{key} was transposed, but {_kind(key)}: copy it unchanged"
    for other, value in state.items():
        if other == source:
            continue
        candidates = [value] + ([value.T] if is_paddle_linear_weight(other) else [])
        if not any(_same(got, c) for c in candidates):
            continue
        module, other_module = source.rsplit(".", 1)[0], other.rsplit(".", 1)[0]
        if module == other_module:
            return (f"{key} holds Paddle's {other}: weight and bias are swapped; LayerNorm weight -> weight, "
                    "bias -> bias")
        if {module.rsplit(".", 1)[-1], other_module.rsplit(".", 1)[-1]} == {"attn_norm", "mlp_norm"}:
            return (f"{key} holds Paddle's {other}: norm1 and norm2 are swapped; norm1 is the LayerNorm before "
                    "attention (Paddle's attn_norm), norm2 the one before the MLP (mlp_norm)")
        return f"{key} holds Paddle's {other}; it must come from {source}"
    return None


def _check_keys(got: dict, expected: dict) -> None:
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    if not missing and not unexpected:
        return
    paddle_norms = [k for k in unexpected if re.search(r"(attn_norm|mlp_norm|encoder\.norm)\.", str(k))]
    if paddle_norms:
        raise Mismatch(f"Paddle's LayerNorm names were kept ({', '.join(map(str, paddle_norms[:3]))}...): torch "
                       "calls attn_norm norm1 (before attention), mlp_norm norm2 (before the MLP) and "
                       "encoder.norm norm")
    parts = []
    if missing:
        parts.append(f"missing keys {missing[:4]}" + (" ..." if len(missing) > 4 else ""))
    if unexpected:
        parts.append(f"unexpected keys {unexpected[:4]}" + (" ..." if len(unexpected) > 4 else ""))
    raise Mismatch("the torch names do not match the model's state dict: " + "; ".join(parts))


def port_state_dict(fn) -> bool:
    """Check fn(paddle_state: {Paddle name: np.ndarray}) -> {torch name: torch.Tensor} of the ported ViT."""
    generator = seeded(21)

    def case(config):
        def run():
            state = random_paddle_state(generator, config)
            copies = {k: v.copy() for k, v in state.items()}
            expected = from_paddle_state_dict(copies)
            got = fn(state)
            if any(not np.array_equal(state[k], copies[k]) for k in state):
                raise Mismatch("your function changed the Paddle arrays in place; work on copies")
            if not isinstance(got, dict):
                raise Mismatch(f"expected a dict {{torch name: tensor}}, got {describe(got)}")
            _check_keys(got, expected)
            for key, value in expected.items():
                received = got[key]
                if isinstance(received, np.ndarray):
                    raise Mismatch(f"{key} is a NumPy array: the values must be torch tensors (torch.from_numpy)")
                if not isinstance(received, Tensor):
                    raise Mismatch(f"{key}: expected a {describe(value)}, got {describe(received)}")
                if tuple(received.shape) == tuple(value.shape) and torch.equal(received.detach(), value):
                    if received.dtype != torch.float32:
                        raise Mismatch(f"{key} has dtype {received.dtype}: keep Paddle's float32")
                    continue
                message = _source_message(key, received, state)
                shown = {f"{paddle_name(key)} (Paddle)": torch.from_numpy(state[paddle_name(key)])}
                if message:
                    raise failure(message, shown, value, received)
                if received.shape != value.shape:
                    raise failure(f"{key}: expected shape {tuple(value.shape)}, got shape {tuple(received.shape)}",
                                  shown)
                raise failure(f"{key} differs from the ported value", shown, value, received)
        return run

    small = {**TINY, "depth": 1}
    return run_check("port_state_dict", [case(small), case(TINY)])
