"""Graders of chapter 01 (Vision Transformer from scratch).

Each grader runs the learner's function and the library (learnlib.nn) on fresh seeded
random inputs and compares shapes, values and, where autograd matters, gradients. When
a wrong answer matches a typical mistake exactly (channel-first patches, no 1/sqrt(d),
heads split the wrong way, post-norm instead of pre-norm...), the message names it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from einops import rearrange
from torch import Tensor, nn

from learnlib.check.core import Mismatch, assert_close, expect_tensor_like, run_check, seeded
from learnlib.check.hints import register_hints
from learnlib.nn.attention import Attention, scaled_dot_product_attention
from learnlib.nn.block import Block
from learnlib.nn.patch_embed import patchify as reference_patchify

HINTS = {
    "patchify": (
        ("split H into (grid, patch) and W into (grid, patch), then gather the grid axes as tokens and the "
        "patch axes with the channels as features; einops.rearrange writes this in one pattern."),
        "rearrange(images, 'b c (gh p1) (gw p2) -> b (gh gw) (p1 p2 c)', p1=P, p2=P)."),
    "attention": (
        ("scores compare every query with every key (a matrix product), scaled so that their variance does "
        "not grow with D; masked scores must get zero weight after the softmax."),
        ("scores = q @ k.transpose(-2, -1) / sqrt(D); scores = scores.masked_fill(~mask, float('-inf')); "
        "return scores.softmax(dim=-1) @ v.")),
    "multi_head_attention": (
        ("one Linear makes q, k and v for all heads at once; split its output into (three, heads, head_dim) "
        "in the order the weight rows are stored, attend per head, merge the heads, project."),
        ("qkv = F.linear(x, qkv_weight, qkv_bias); q, k, v = rearrange(qkv, 'b n (three h d) -> three b h n d', "
        "three=3, h=H); out = rearrange(attention(q, k, v), 'b h n d -> b n (h d)'); "
        "return F.linear(out, proj_weight, proj_bias).")),
    "block_forward": (
        "a pre-norm block has two residual branches; each branch reads a LayerNorm of the current stream.",
        ("x = x + multi_head_attention(block.norm1(x), ...block.attn weights...); "
        "return x + block.mlp(block.norm2(x)).")),
}
register_hints(HINTS)


def _matches(got: Tensor, candidate: Tensor) -> bool:
    return got.shape == candidate.shape and torch.allclose(got.detach(), candidate.detach(), atol=1e-5, rtol=1e-4,
                                                          equal_nan=True)


def _diagnose(got: Tensor, variants: list[tuple[str, Callable[[], Tensor]]]) -> None:
    """Raise a Mismatch with the message of the first known mistake whose output `got` equals."""
    for message, make in variants:
        if _matches(got, make()):
            raise Mismatch(message)


def _compare_gradients(got: Tensor, expected: Tensor, inputs: dict[str, tuple[Tensor, Tensor]],
                       generator: torch.Generator) -> None:
    """Back-propagate the same random cotangent through both outputs; compare every input's gradient.

    `inputs` maps a name to (the learner's leaf, the reference's leaf)."""
    if not got.requires_grad:
        raise Mismatch("your output carries no gradient: build it from the inputs with torch operations "
                       "(no .detach(), .numpy() or torch.no_grad())")
    cotangent = torch.randn(expected.shape, generator=generator, dtype=expected.dtype)
    learner_leaves = [pair[0] for pair in inputs.values()]
    reference_leaves = [pair[1] for pair in inputs.values()]
    got_grads = torch.autograd.grad(got, learner_leaves, cotangent, allow_unused=True)
    expected_grads = torch.autograd.grad(expected, reference_leaves, cotangent, allow_unused=True)
    _compare_gradient_lists(list(inputs), got_grads, expected_grads)


def _compare_gradient_lists(names: list[str], got_grads, expected_grads) -> None:
    """Name the first input the learner's output does not depend on, else the first gradient that differs."""
    for name, g, e in zip(names, got_grads, expected_grads):
        if g is None and e is not None:
            raise Mismatch(f"gradient of {name}: your output does not depend on {name} (no gradient reaches it)")
    for name, g, e in zip(names, got_grads, expected_grads):
        if e is not None:
            assert_close(f"gradient of {name}", g, e, atol=1e-4, rtol=1e-3)


def _leaf_pair(t: Tensor) -> tuple[Tensor, Tensor]:
    return t.clone().requires_grad_(True), t.clone().requires_grad_(True)


# --------------------------------------------------------------------------- patchify
def patchify(fn) -> bool:
    """Check fn(images (B, C, H, W), patch_size) -> (B, N, P*P*C), patches row-major, each (P, P, C)."""
    generator = seeded(10)

    def case(b, c, h, w, p):
        def run():
            images = torch.randn(b, c, h, w, generator=generator)
            original = images.clone()
            expected = reference_patchify(images, p)
            got = expect_tensor_like("patches", fn(images, p), expected)
            if not torch.equal(images, original):
                raise Mismatch("your function changed `images` in place; work on a copy")
            if not _matches(got, expected):
                _diagnose(got, [
                    (("each patch is flattened channel-first (C, P, P); flatten it as (P, P, C): "
                      "rows, then columns, then channels"),
                     lambda: rearrange(images, "b c (gh p1) (gw p2) -> b (gh gw) (c p1 p2)", p1=p, p2=p)),  # (B, N, P*P*C)
                    (("the patches are ordered column by column; order them row by row (left to right, "
                      "then top to bottom)"),
                     lambda: rearrange(images, "b c (gh p1) (gw p2) -> b (gw gh) (p1 p2 c)", p1=p, p2=p)),  # (B, N, P*P*C)
                    ("inside each patch the pixels are read column by column; read them row by row (P, P, C)",
                     lambda: rearrange(images, "b c (gh p1) (gw p2) -> b (gh gw) (p2 p1 c)", p1=p, p2=p)),  # (B, N, P*P*C)
                    (("these are not patches: a plain reshape mixes pixels of different patches; split H into "
                      "(H/P, P) and W into (W/P, P) first, then move the patch-grid axes in front"),
                     lambda: images.permute(0, 2, 3, 1).reshape(b, -1, p * p * c)),  # (B, N, P*P*C)
                ])
                assert_close("patches", got, expected)
        return run

    cases = [case(1, 1, 4, 4, 2), case(2, 1, 8, 8, 2), case(3, 3, 8, 8, 4), case(2, 3, 6, 12, 3),
             case(1, 2, 16, 8, 4), case(4, 3, 12, 12, 6)]
    return run_check("patchify", cases)


# --------------------------------------------------------------------------- attention
def attention(fn) -> bool:
    """Check fn(q, k, v, mask=None) -> softmax(q k^T / sqrt(D), masked) v; bool mask, True = may attend."""
    generator = seeded(11)

    def case(b, h, nq, nk, d, dv, with_mask):
        def run():
            q, k, v = (torch.randn(b, h, n, dim, generator=generator)
                       for n, dim in ((nq, d), (nk, d), (nk, dv)))
            mask = None
            if with_mask:
                mask = torch.rand(b, 1, nq, nk, generator=generator) < 0.7  # (B, 1, Nq, Nk)
                mask[..., 0] = True  # every query may attend to at least one key
            pairs = {"q": _leaf_pair(q), "k": _leaf_pair(k), "v": _leaf_pair(v)}
            mine, ref = ({n: p[i] for n, p in pairs.items()} for i in (0, 1))
            expected = scaled_dot_product_attention(ref["q"], ref["k"], ref["v"], mask=mask, backend="reference")
            got = expect_tensor_like("output", fn(mine["q"], mine["k"], mine["v"], mask=mask), expected)
            if not _matches(got, expected):
                variants = [
                    ("the scores are not scaled: multiply q k^T by 1/sqrt(D), D = q.shape[-1]",
                     lambda: _written_out(q, k, v, mask, scale=1.0)),
                    (f"the scores are scaled by 1/D; scale by 1/sqrt(D) (D = {d})",
                     lambda: _written_out(q, k, v, mask, scale=1.0 / d)),
                    ("the softmax runs over the queries; take it over the keys (the last dimension)",
                     lambda: _written_out(q, k, v, mask, softmax_dim=-2)),
                ]
                if mask is not None:
                    variants += [
                        ("the mask is ignored: set the scores where mask is False to -inf before the softmax",
                         lambda: _written_out(q, k, v, None)),
                        ("the mask is inverted: True means 'may attend'; fill the scores where mask is False",
                         lambda: _written_out(q, k, v, ~mask)),
                    ]
                _diagnose(got, variants)
                assert_close("output", got, expected)
            _compare_gradients(got, expected, pairs, generator)
        return run

    cases = [case(1, 1, 4, 4, 8, 8, False), case(2, 3, 5, 5, 16, 16, False), case(2, 2, 3, 7, 4, 6, False),
             case(2, 4, 6, 6, 8, 8, True), case(1, 2, 4, 9, 32, 8, True)]
    return run_check("attention", cases)


def _written_out(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | None = None,
                 softmax_dim: int = -1) -> Tensor:
    """softmax(q k^T * scale, masked) v with a choice of scale and softmax axis (for the diagnoses)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale  # (B, H, Nq, Nk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(softmax_dim) @ v  # (B, H, Nq, Dv)


# --------------------------------------------------------------------------- multi-head attention
def _random_attention(generator: torch.Generator, dim: int, heads: int, bias: bool) -> Attention:
    module = Attention(dim, heads, qkv_bias=bias, backend="reference").eval()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * dim**-0.5)
    return module


def _mha(x, qkv_w, qkv_b, proj_w, proj_b, heads, pattern="b n (three h d) -> three b h n d",
         scale=None, project=True):
    """Multi-head attention written out; the keyword arguments produce the typical mistakes."""
    qkv = nn.functional.linear(x, qkv_w, qkv_b)  # (B, N, 3*dim)
    q, k, v = rearrange(qkv, pattern, three=3, h=heads).unbind(0)  # each (B, H, N, D)
    out = scaled_dot_product_attention(q, k, v, backend="reference", scale=scale)  # (B, H, N, D)
    out = rearrange(out, "b h n d -> b n (h d)")  # (B, N, dim)
    return nn.functional.linear(out, proj_w, proj_b) if project else out


def multi_head_attention(fn) -> bool:
    """Check fn(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads) -> (B, N, dim), the forward
    of `learnlib.nn.Attention` with those weights (qkv_bias may be None)."""
    generator = seeded(12)

    def case(b, n, dim, heads, bias):
        def run():
            module = _random_attention(generator, dim, heads, bias)
            x = torch.randn(b, n, dim, generator=generator)
            names = {"x": x, "qkv_weight": module.qkv.weight.detach(), "proj_weight": module.proj.weight.detach(),
                     "proj_bias": module.proj.bias.detach()}
            if bias:
                names["qkv_bias"] = module.qkv.bias.detach()
            pairs = {name: _leaf_pair(t) for name, t in names.items()}
            mine, ref = ({name: p[i] for name, p in pairs.items()} for i in (0, 1))
            expected = _mha(ref["x"], ref["qkv_weight"], ref.get("qkv_bias"), ref["proj_weight"],
                            ref["proj_bias"], heads)
            with torch.no_grad():
                assert torch.allclose(expected, module(x), atol=1e-5)  # the reference is the module's forward
            got = fn(mine["x"], mine["qkv_weight"], mine.get("qkv_bias"), mine["proj_weight"],
                     mine["proj_bias"], heads)
            got = expect_tensor_like("output", got, expected)
            if not _matches(got, expected):
                args = (x, names["qkv_weight"], names.get("qkv_bias"), names["proj_weight"], names["proj_bias"])
                head_dim = dim // heads
                _diagnose(got, [
                    (("the qkv output is split the wrong way: its last dimension is laid out as "
                      "(3, num_heads, head_dim), i.e. 'b n (three h d)'"),
                     lambda: _mha(*args, heads, pattern="b n (h three d) -> three b h n d")),
                    (("the qkv output is split the wrong way: its last dimension is laid out as "
                      "(3, num_heads, head_dim), i.e. 'b n (three h d)'"),
                     lambda: _mha(*args, heads, pattern="b n (three d h) -> three b h n d")),
                    ("only one head is used: split q, k, v into num_heads heads of dim // num_heads",
                     lambda: _mha(*args, 1, scale=head_dim**-0.5)),
                    (f"the scores are scaled by 1/sqrt(dim); scale by 1/sqrt(head_dim) = 1/sqrt({head_dim})",
                     lambda: _mha(*args, heads, scale=dim**-0.5)),
                    ("the scores are not scaled: multiply q k^T by 1/sqrt(head_dim)",
                     lambda: _mha(*args, heads, scale=1.0)),
                    ("the output projection is missing: apply proj_weight and proj_bias after merging the heads",
                     lambda: _mha(*args, heads, project=False)),
                ])
                assert_close("output", got, expected)
            _compare_gradients(got, expected, pairs, generator)
        return run

    cases = [case(1, 4, 8, 1, True), case(2, 5, 16, 4, True), case(2, 7, 24, 3, False), case(3, 17, 32, 8, True)]
    return run_check("multi_head_attention", cases)


# --------------------------------------------------------------------------- transformer block
def _random_block(generator: torch.Generator, dim: int, heads: int, mlp_ratio: float) -> Block:
    block = Block(dim, heads, mlp_ratio, attn_backend="reference").eval()
    with torch.no_grad():
        for name, p in block.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if name.startswith("norm") and name.endswith("weight"):
                p.copy_(1 + 0.5 * noise)  # LayerNorm scales away from 1 so that every norm matters
            else:
                p.copy_(noise * (0.5 if name.startswith("norm") else dim**-0.5))
    return block


def _post_norm(block: Block, x: Tensor) -> Tensor:
    x = block.norm1(x + block.attn(x))
    return block.norm2(x + block.mlp(x))


def _norm1_twice(block: Block, x: Tensor) -> Tensor:
    x = x + block.attn(block.norm1(x))
    return x + block.mlp(block.norm1(x))


def block_forward(fn) -> bool:
    """Check fn(block, x) -> the output of a pre-norm `learnlib.nn.Block` (eval mode) on x (B, N, dim),
    values and gradients (for x and every parameter of the block)."""
    generator = seeded(13)

    def case(b, n, dim, heads, mlp_ratio):
        def run():
            block = _random_block(generator, dim, heads, mlp_ratio)
            x = torch.randn(b, n, dim, generator=generator)
            x_mine, x_ref = _leaf_pair(x)
            expected = block(x_ref)
            cotangent = torch.randn(expected.shape, generator=generator)
            names = ["x", *(name for name, _ in block.named_parameters())]
            ref_grads = torch.autograd.grad(expected, [x_ref, *block.parameters()], cotangent)
            got = expect_tensor_like("output", fn(block, x_mine), expected)
            if not _matches(got, expected):
                with torch.no_grad():
                    _diagnose(got, [
                        (("this is a post-norm block (LayerNorm after each residual add); the ViT block is pre-norm: "
                          "x = x + attn(norm1(x)), then x = x + mlp(norm2(x))"),
                         lambda: _post_norm(block, x)),
                        (("the residual connections are missing: add each branch's output to its input "
                          "(x = x + attn(norm1(x)), then x = x + mlp(norm2(x)))"),
                         lambda: block.mlp(block.norm2(block.attn(block.norm1(x))))),
                        (("the MLP branch is added to the block's input instead of to the output of the "
                          "attention step: compute x = x + attn(norm1(x)) first, then x + mlp(norm2(x)) "
                          "from that new x"),
                         lambda: x + block.attn(block.norm1(x)) + block.mlp(block.norm2(x))),
                        ("the MLP reads norm1's output: normalize with norm2 before the MLP",
                         lambda: _norm1_twice(block, x)),
                    ])
                assert_close("output", got, expected)
            if not got.requires_grad:
                raise Mismatch("your output carries no gradient: build it from the inputs with torch operations")
            got_grads = torch.autograd.grad(got, [x_mine, *block.parameters()], cotangent, allow_unused=True)
            _compare_gradient_lists(names, got_grads, ref_grads)
        return run

    cases = [case(1, 3, 8, 2, 2.0), case(2, 5, 16, 4, 4.0), case(2, 9, 24, 3, 2.0), case(3, 17, 32, 4, 4.0)]
    return run_check("block_forward", cases)
