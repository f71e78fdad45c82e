"""Chapter 01 graders: they accept the library's answers and name each typical mistake."""

import pytest
import torch
from einops import rearrange
from torch import nn

from learnlib import check
from learnlib.nn import Attention, patchify, scaled_dot_product_attention


def stub(*args, **kwargs):
    raise NotImplementedError("exercise")


@pytest.mark.parametrize("grader", [check.patchify, check.attention, check.multi_head_attention,
                                    check.block_forward])
def test_stub_reports_not_implemented(grader, capsys):
    result = grader(stub)
    assert not result and "not implemented yet" in result.message and "Hint:" in result.message
    assert capsys.readouterr().out.strip() == result.message


# --------------------------------------------------------------------------- patchify
def test_patchify_accepts_library():
    assert check.patchify(patchify)


def test_patchify_rejects_channel_first_patches():
    def channel_first(images, p):
        return rearrange(images, "b c (gh p1) (gw p2) -> b (gh gw) (c p1 p2)", p1=p, p2=p)  # (B, N, C*P*P)

    result = check.patchify(channel_first)
    assert not result and "channel-first" in result.message and "(P, P, C)" in result.message


def test_patchify_rejects_plain_reshape_and_wrong_shape():
    def plain_reshape(images, p):
        return images.permute(0, 2, 3, 1).reshape(images.shape[0], -1, p * p * images.shape[1])  # (B, N, P*P*C)

    result = check.patchify(plain_reshape)
    assert not result and "plain reshape" in result.message
    result = check.patchify(lambda images, p: patchify(images, p).flatten(1))  # (B, N*P*P*C): wrong shape
    assert not result and "expected shape" in result.message


def test_patchify_rejects_in_place_change():
    def destructive(images, p):
        out = patchify(images, p).clone()
        images.zero_()
        return out

    result = check.patchify(destructive)
    assert not result and "in place" in result.message


# --------------------------------------------------------------------------- attention
def library_attention(q, k, v, mask=None):
    return scaled_dot_product_attention(q, k, v, mask=mask, backend="reference")


def test_attention_accepts_library_backends():
    assert check.attention(library_attention)
    assert check.attention(lambda q, k, v, mask=None: scaled_dot_product_attention(q, k, v, mask, backend="sdpa"))


def test_attention_rejects_missing_scale():
    def unscaled(q, k, v, mask=None):
        return scaled_dot_product_attention(q, k, v, mask=mask, backend="reference", scale=1.0)

    result = check.attention(unscaled)
    assert not result and "not scaled" in result.message and "1/sqrt(D)" in result.message


def test_attention_rejects_ignored_mask_and_inverted_mask():
    result = check.attention(lambda q, k, v, mask=None: library_attention(q, k, v))
    assert not result and "mask is ignored" in result.message
    result = check.attention(lambda q, k, v, mask=None: library_attention(q, k, v, None if mask is None else ~mask))
    assert not result and "mask is inverted" in result.message


def test_attention_rejects_softmax_over_queries():
    def wrong_axis(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5  # (B, H, Nq, Nk)
        return scores.softmax(-2) @ v

    result = check.attention(wrong_axis)
    assert not result and "over the keys" in result.message


def test_attention_rejects_detached_output():
    result = check.attention(lambda q, k, v, mask=None: library_attention(q, k, v, mask).detach())
    assert not result and "no gradient" in result.message


# --------------------------------------------------------------------------- multi-head attention
def library_mha(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
    """learnlib.nn.Attention run with the given tensors as its parameters (so gradients reach them)."""
    module = Attention(x.shape[-1], num_heads, qkv_bias=qkv_bias is not None, backend="reference")
    params = {"qkv.weight": qkv_weight, "proj.weight": proj_weight, "proj.bias": proj_bias}
    if qkv_bias is not None:
        params["qkv.bias"] = qkv_bias
    return torch.func.functional_call(module, params, (x,))


def _mha_variant(pattern="b n (three h d) -> three b h n d", single_head=False, project=True):
    def fn(x, qkv_weight, qkv_bias, proj_weight, proj_bias, num_heads):
        heads = 1 if single_head else num_heads
        qkv = nn.functional.linear(x, qkv_weight, qkv_bias)  # (B, N, 3*dim)
        q, k, v = rearrange(qkv, pattern, three=3, h=heads).unbind(0)  # each (B, H, N, D)
        out = scaled_dot_product_attention(q, k, v, backend="reference", scale=(x.shape[-1] // num_heads) ** -0.5)
        out = rearrange(out, "b h n d -> b n (h d)")  # (B, N, dim)
        return nn.functional.linear(out, proj_weight, proj_bias) if project else out
    return fn


def test_multi_head_attention_accepts_library_module_and_written_out_version():
    assert check.multi_head_attention(library_mha)
    assert check.multi_head_attention(_mha_variant())


def test_multi_head_attention_rejects_wrong_qkv_split():
    result = check.multi_head_attention(_mha_variant(pattern="b n (h three d) -> three b h n d"))
    assert not result and "split the wrong way" in result.message and "(three h d)" in result.message


def test_multi_head_attention_rejects_single_head_and_missing_projection():
    result = check.multi_head_attention(_mha_variant(single_head=True))
    assert not result and "only one head" in result.message
    result = check.multi_head_attention(_mha_variant(project=False))
    assert not result and "output projection is missing" in result.message


# --------------------------------------------------------------------------- block
def test_block_forward_accepts_library():
    assert check.block_forward(lambda block, x: block(x))

    def written_out(block, x):
        x = x + block.attn(block.norm1(x))
        return x + block.mlp(block.norm2(x))

    assert check.block_forward(written_out)


def test_block_forward_rejects_post_norm():
    def post_norm(block, x):
        x = block.norm1(x + block.attn(x))
        return block.norm2(x + block.mlp(x))

    result = check.block_forward(post_norm)
    assert not result and "post-norm" in result.message and "pre-norm" in result.message


def test_block_forward_rejects_missing_residual_and_wrong_norm():
    result = check.block_forward(lambda block, x: block.mlp(block.norm2(block.attn(block.norm1(x)))))
    assert not result and "residual connections are missing" in result.message

    def norm1_twice(block, x):
        x = x + block.attn(block.norm1(x))
        return x + block.mlp(block.norm1(x))

    result = check.block_forward(norm1_twice)
    assert not result and "norm2" in result.message


def test_block_forward_reports_parameter_without_gradient():
    def frozen_mlp(block, x):
        x = x + block.attn(block.norm1(x))
        with torch.no_grad():
            branch = block.mlp(block.norm2(x))
        return x + branch

    result = check.block_forward(frozen_mlp)
    assert not result and "does not depend on norm2.weight" in result.message
