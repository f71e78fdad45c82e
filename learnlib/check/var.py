"""Graders of chapter 05 (VAR: next-scale prediction).

Each grader runs the learner's function and the library (learnlib.var) on fresh seeded
random inputs and compares the results. When a wrong answer matches a typical mistake
exactly (a token-causal mask, a nucleus that drops the token crossing top_p, guidance
without the ramp over scales...), the message names it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from learnlib.check.core import Mismatch, assert_close, expect_tensor_like, run_check, seeded
from learnlib.check.hints import register_hints
from learnlib.var.mask import block_causal_mask as reference_mask
from learnlib.var.mask import scale_ids
from learnlib.var.sampling import cfg_mix as reference_cfg_mix
from learnlib.var.sampling import top_k_top_p_filter as reference_filter

HINTS = {
    "block_causal_mask": (
        ("give every token the index of its scale; whether query i may see key j depends only on the two "
        "scale indices."),
        ("ids = torch.cat([torch.full((pn * pn,), k) for k, pn in enumerate(patch_nums)]); "
        "return ids[:, None] >= ids[None, :].")),
    "top_k_top_p": (
        ("top-k keeps the k largest logits; top-p then keeps the smallest set of most likely tokens whose "
        "probability reaches top_p (the token that crosses top_p stays). Removed logits become -inf."),
        ("top-k: kth = logits.topk(k).values[..., -1:], mask logits < kth. top-p: sort descending, p = softmax, "
        "remove where cumsum(p) - p >= top_p, scatter the mask back to vocabulary order, masked_fill -inf.")),
    "cfg_mix": (
        ("guidance pushes the conditional logits away from the unconditional ones, and its strength ramps "
        "linearly over the scales: nothing at the first, the full cfg at the last."),
        "t = cfg * k / (K - 1); return (1 + t) * cond - t * uncond."),
}
register_hints(HINTS)


def _random_patch_nums(generator: torch.Generator, count: int) -> tuple[int, ...]:
    """`count` strictly increasing side lengths starting at 1 or 2 (a random pyramid schedule)."""
    steps = torch.randint(1, 4, (count,), generator=generator).tolist()
    out, side = [], int(torch.randint(1, 3, (1,), generator=generator))
    for step in steps:
        out.append(side)
        side += step
    return tuple(out)


# --------------------------------------------------------------------------- block-causal mask
def block_causal_mask(fn) -> bool:
    """Check fn(patch_nums) -> bool (L, L), True where query token i may attend to key token j."""
    generator = seeded(50)

    def case(patch_nums):
        def run():
            pn = patch_nums if patch_nums is not None else _random_patch_nums(generator, 4)
            expected = reference_mask(pn)
            got = fn(pn)
            if isinstance(got, Tensor) and got.ndim == 2 and got.shape != expected.shape:
                raise Mismatch(f"patch_nums {pn}: expected shape {tuple(expected.shape)} with L = sum of pn^2 = "
                               f"{expected.shape[0]}, got shape {tuple(got.shape)}")
            got = expect_tensor_like(f"mask for patch_nums {pn}", got, expected)
            if got.dtype != torch.bool:
                if got.is_floating_point() and torch.equal(got.isfinite(), expected):
                    raise Mismatch("this is the additive bias (0 / -inf); return the boolean mask, True where "
                                   "attention is allowed")
                raise Mismatch(f"the mask must be a bool tensor (True = may attend), got dtype {got.dtype}")
            if torch.equal(got, expected):
                return
            ids = scale_ids(pn)  # (L,)
            L = ids.shape[0]
            variants = [
                (("this is a token-causal (lower-triangular) mask: inside a scale every token must see every "
                 "other token of that scale too (block-causal: scale(j) <= scale(i))"),
                 torch.ones(L, L, dtype=torch.bool).tril()),
                ("tokens do not see their own scale: allow scale(j) <= scale(i), not only scale(j) < scale(i)",
                 ids[:, None] > ids[None, :]),
                (("the mask is transposed: rows are queries i, columns keys j; query i may see key j when "
                 "scale(j) <= scale(i)"), ids[:, None] <= ids[None, :]),
                ("the mask is inverted: True must mean 'may attend'", ~expected),
            ]
            for message, variant in variants:
                if torch.equal(got, variant):
                    raise Mismatch(f"patch_nums {pn}: {message}")
            assert_close(f"mask for patch_nums {pn}", got, expected)
        return run

    cases = [case((1, 2)), case((1, 2, 3, 4)), case((2, 3)), case((3,)), case(None), case(None),
             case((1, 2, 3, 4, 5, 6, 8, 10, 13, 16))]
    return run_check("block_causal_mask", cases)


# --------------------------------------------------------------------------- top-k / top-p
def _top_p_inclusive(logits: Tensor, top_p: float) -> Tensor:
    """Nucleus that drops the token crossing top_p (and the top token when it alone exceeds top_p)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (..., V)
    remove = sorted_logits.softmax(-1).cumsum(-1) > top_p
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def _diagnose_filter(got: Tensor, logits: Tensor, top_k: int, top_p: float, expected: Tensor) -> None:
    """Raise a Mismatch naming the mistake when `got` is a known wrong filter of `logits`."""
    kept_got, kept_exp = got.isfinite(), expected.isfinite()
    if torch.equal(kept_got, kept_exp):
        if not torch.equal(got[kept_exp], expected[kept_exp]):
            raise Mismatch("the kept logits must stay unchanged (no softmax, no renormalisation): only the "
                           "removed ones become -inf")
        return
    if (~kept_got).sum() == 0 and (~kept_exp).any():
        if not torch.equal(got, logits):
            raise Mismatch("removed tokens must be set to -inf (so that softmax gives them probability 0), "
                           "not to 0 or another finite value")
        if top_k <= 0 and top_p > 0:
            raise Mismatch(f"top_p = {top_p} was ignored (top_k = 0 disables only top-k)")
        if top_p <= 0 and top_k > 0:
            raise Mismatch(f"top_k = {top_k} was ignored (top_p = 0 disables only top-p)")
        raise Mismatch("nothing was removed: set the logits outside the top-k / top-p set to -inf")
    empty = ~kept_got.any(-1)
    if empty.any():
        raise Mismatch("some rows have every token removed: the most likely token must always survive; keep a "
                       "token while the probability of the strictly more likely tokens is below top_p")
    if top_p > 0:
        k_only = reference_filter(logits, top_k, 0.0)
        if top_k > 0 and torch.equal(kept_got, reference_filter(logits, 0, top_p).isfinite()
                                     & k_only.isfinite()):
            raise Mismatch("top-p was computed on the unfiltered distribution: apply the top-k mask first and "
                           "take the softmax of the top-k filtered logits for the nucleus")
        if torch.equal(kept_got, _top_p_inclusive(k_only, top_p).isfinite()):
            raise Mismatch("the nucleus drops the token that crosses top_p: keep every token whose more likely "
                           "tokens hold less than top_p of the probability (shift the cumulative sum by one)")
        if torch.equal(kept_got, k_only.isfinite()):
            raise Mismatch(f"top_p = {top_p} was ignored: only top-k was applied")
    if top_k > 0:
        counts = kept_got.sum(-1)
        if top_p <= 0 and (counts != min(top_k, logits.shape[-1])).any():
            raise Mismatch(f"top_k = {top_k}: rows keep {sorted(set(counts.flatten().tolist()))} tokens, expected "
                           f"exactly {min(top_k, logits.shape[-1])} (the k largest logits)")
        if torch.equal(kept_got, reference_filter(logits, 0, top_p).isfinite()):
            raise Mismatch(f"top_k = {top_k} was ignored: only top-p was applied")


def top_k_top_p(fn) -> bool:
    """Check fn(logits (..., V), top_k, top_p) -> logits with tokens outside top-k, then outside top-p, at -inf."""
    generator = seeded(51)

    def case(shape, top_k, top_p, scale=1.0):
        def run():
            logits = torch.randn(shape, generator=generator) * scale
            original = logits.clone()
            expected = reference_filter(logits, top_k, top_p)
            got = expect_tensor_like(f"filtered logits (top_k={top_k}, top_p={top_p})", fn(logits, top_k, top_p), expected)
            if not torch.equal(logits, original):
                raise Mismatch("your function changed `logits` in place; work on a copy (logits.clone())")
            if torch.equal(got.isfinite(), expected.isfinite()) and torch.equal(got[expected.isfinite()],
                                                                               expected[expected.isfinite()]):
                if not torch.equal(got[~expected.isfinite()], expected[~expected.isfinite()]):
                    raise Mismatch("removed tokens must be -inf, not another value")
                return
            _diagnose_filter(got, logits, top_k, top_p, expected)
            kept = got.isfinite() != expected.isfinite()
            where = tuple(int(i) for i in kept.nonzero()[0])
            keeps = "kept" if bool(got.isfinite()[where]) else "removed"
            raise Mismatch(f"top_k={top_k}, top_p={top_p}: your filter {keeps} the token at index {where} "
                           f"(logit {logits[where].item():.4f}); the reference did the opposite")
        return run

    cases = [case((2, 10), 3, 0.0), case((3, 4, 16), 5, 0.0), case((2, 12), 0, 0.6), case((4, 32), 0, 0.9, 2.0),
             case((3, 20), 0, 0.5, 5.0), case((2, 3, 24), 8, 0.7, 2.0), case((5, 30), 10, 0.8),
             case((16,), 0, 0.0), case((2, 8), 20, 0.0), case((4, 64), 32, 0.95, 3.0)]
    return run_check("top_k_top_p", cases)


# --------------------------------------------------------------------------- classifier-free guidance
def cfg_mix(fn) -> bool:
    """Check fn(cond, uncond, cfg, k, K) -> (1 + t) * cond - t * uncond with t = cfg * k / (K - 1)."""
    generator = seeded(52)

    def case(shape, cfg, k, K):
        def run():
            cond, uncond = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
            expected = reference_cfg_mix(cond, uncond, cfg, k, K)
            got = expect_tensor_like(f"guided logits (cfg={cfg}, k={k}, K={K})", fn(cond, uncond, cfg, k, K), expected)
            if torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
                return

            def mix(t):
                return (1 + t) * cond - t * uncond

            ramp = cfg * k / (K - 1)
            variants = [
                ((f"the guidance has no ramp: at scale k = {k} of K = {K} use t = cfg * k / (K - 1) = {ramp:g}, "
                 f"not t = cfg = {cfg:g} (guidance grows from 0 at the first scale to cfg at the last)"), mix(cfg)),
                ("the ramp divides by K; divide by K - 1 so that the last scale (k = K - 1) gets the full cfg",
                 mix(cfg * k / K)),
                ("the guidance weight is t; use 1 + t: logits = (1 + t) * cond - t * uncond (= cond when t = 0)",
                 ramp * cond - (ramp - 1) * uncond),
                ("cond and uncond are swapped: logits = (1 + t) * cond - t * uncond",
                 (1 + ramp) * uncond - ramp * cond),
            ]
            for message, variant in variants:
                if torch.allclose(got, variant, atol=1e-5, rtol=1e-4):
                    raise Mismatch(message)
            assert_close(f"guided logits (cfg={cfg}, k={k}, K={K})", got, expected)
        return run

    cases = [case((2, 5), 2.0, 3, 4), case((2, 5), 2.0, 0, 4), case((3, 4, 16), 1.5, 2, 10),
             case((3, 4, 16), 4.0, 9, 10), case((8,), 3.0, 1, 2), case((2, 9, 7), 0.0, 5, 6),
             case((1, 1, 32), 2.5, 4, 7)]
    return run_check("cfg_mix", cases)
