"""Graders of chapter 05: they accept the library and reject typical mistakes with a readable message."""

import torch

from learnlib import check
from learnlib.var import block_causal_bias, block_causal_mask, cfg_mix, scale_ids, top_k_top_p_filter


def not_implemented(*args, **kwargs):
    raise NotImplementedError("exercise: write your code here, then run the check below")


# --------------------------------------------------------------------------- block-causal mask
def test_block_causal_mask_accepts_library_and_written_out_version():
    assert check.block_causal_mask(block_causal_mask)

    def written_out(patch_nums):
        ids = torch.cat([torch.full((p * p,), k) for k, p in enumerate(patch_nums)])  # (L,)
        return ids[:, None] >= ids[None, :]  # (L, L)

    assert check.block_causal_mask(written_out)


def test_block_causal_mask_rejects_token_causal_mask():
    def token_causal(patch_nums):
        L = sum(p * p for p in patch_nums)
        return torch.ones(L, L, dtype=torch.bool).tril()

    result = check.block_causal_mask(token_causal)
    assert not result and "token-causal" in result.message and "block-causal" in result.message


def test_block_causal_mask_rejects_strict_transposed_and_bias():
    def strict(pn):
        ids = scale_ids(pn)
        return ids[:, None] > ids[None, :]

    result = check.block_causal_mask(strict)
    assert not result and "do not see their own scale" in result.message
    result = check.block_causal_mask(lambda pn: block_causal_mask(pn).T)
    assert not result and "transposed" in result.message
    result = check.block_causal_mask(lambda pn: block_causal_bias(pn)[0, 0])
    assert not result and "additive bias" in result.message
    result = check.block_causal_mask(lambda pn: block_causal_mask(pn)[1:, 1:])
    assert not result and "L = sum of pn^2" in result.message


def test_block_causal_mask_stub_is_not_implemented():
    result = check.block_causal_mask(not_implemented)
    assert not result and "not implemented yet" in result.message


# --------------------------------------------------------------------------- top-k / top-p
def hf_style(logits, top_k, top_p):
    """Descending formulation: remove a token when the tokens before it already hold top_p."""
    logits = logits.clone()
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits[logits < kth] = float("-inf")
    if top_p > 0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        remove = cum > top_p
        remove[..., 1:] = remove[..., :-1].clone()  # shift right: keep the token that crosses top_p
        remove[..., 0] = False
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return logits


def test_top_k_top_p_accepts_library_and_descending_formulation():
    assert check.top_k_top_p(top_k_top_p_filter)
    assert check.top_k_top_p(hf_style)


def test_top_k_top_p_rejects_nucleus_without_the_crossing_token():
    def no_shift(logits, top_k, top_p):
        logits = top_k_top_p_filter(logits, top_k, 0.0)
        if top_p > 0:
            sorted_logits, order = logits.sort(dim=-1, descending=True)
            remove = sorted_logits.softmax(-1).cumsum(-1) > top_p  # first token not kept
            logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
        return logits

    result = check.top_k_top_p(no_shift)
    assert not result and "drops the token that crosses top_p" in result.message


def test_top_k_top_p_rejects_empty_rows_on_peaked_logits():
    def drops_top(logits, top_k, top_p):
        out = top_k_top_p_filter(logits, top_k, top_p)
        if top_p > 0:
            probs = logits.softmax(-1)
            out = out.masked_fill(probs > top_p, float("-inf"))  # a dominant token is removed: empty rows
        return out

    result = check.top_k_top_p(drops_top)
    assert not result and "most likely token must always survive" in result.message


def test_top_k_top_p_rejects_wrong_order_fill_value_and_in_place():
    def p_on_unfiltered(logits, top_k, top_p):
        keep = top_k_top_p_filter(logits, 0, top_p).isfinite() & top_k_top_p_filter(logits, top_k, 0).isfinite()
        return logits.masked_fill(~keep, float("-inf"))

    result = check.top_k_top_p(p_on_unfiltered)
    assert not result and "unfiltered distribution" in result.message

    def zero_fill(logits, top_k, top_p):
        out = top_k_top_p_filter(logits, top_k, top_p)
        return out.masked_fill(out.isinf(), 0.0)

    result = check.top_k_top_p(zero_fill)
    assert not result and "-inf" in result.message and "not to 0" in result.message

    def in_place(logits, top_k, top_p):
        out = top_k_top_p_filter(logits, top_k, top_p)
        logits.copy_(out)
        return out

    result = check.top_k_top_p(in_place)
    assert not result and "in place" in result.message


def test_top_k_top_p_rejects_off_by_one_top_k_and_ignored_top_p():
    result = check.top_k_top_p(lambda logits, k, p: top_k_top_p_filter(logits, k + 1 if k else 0, p))
    assert not result and "keep" in result.message and "exactly" in result.message
    result = check.top_k_top_p(lambda logits, k, p: top_k_top_p_filter(logits, k, 0.0))
    assert not result and "was ignored" in result.message


def test_top_k_top_p_stub_is_not_implemented():
    result = check.top_k_top_p(not_implemented)
    assert not result and "not implemented yet" in result.message


# --------------------------------------------------------------------------- guidance
def test_cfg_mix_accepts_library_and_guidance_form():
    assert check.cfg_mix(cfg_mix)

    def guidance_form(cond, uncond, cfg, k, K):
        scale = 1 + cfg * k / (K - 1)
        return uncond + scale * (cond - uncond)

    assert check.cfg_mix(guidance_form)


def test_cfg_mix_rejects_constant_guidance():
    result = check.cfg_mix(lambda cond, uncond, cfg, k, K: (1 + cfg) * cond - cfg * uncond)
    assert not result and "no ramp" in result.message and "cfg * k / (K - 1)" in result.message


def test_cfg_mix_rejects_ramp_over_K_weight_t_and_swap():
    result = check.cfg_mix(lambda c, u, cfg, k, K: cfg_mix(c, u, cfg * (K - 1) / K, k, K))
    assert not result and "divide by K - 1" in result.message

    def weight_t(cond, uncond, cfg, k, K):
        t = cfg * k / (K - 1)
        return uncond + t * (cond - uncond)

    result = check.cfg_mix(weight_t)
    assert not result and "use 1 + t" in result.message
    result = check.cfg_mix(lambda c, u, cfg, k, K: cfg_mix(u, c, cfg, k, K))
    assert not result and "swapped" in result.message


def test_cfg_mix_stub_is_not_implemented():
    result = check.cfg_mix(not_implemented)
    assert not result and "not implemented yet" in result.message
