"""Next-scale autoregressive sampling: classifier-free guidance, top-k / top-p, KV cache.

Arguments are checked before any work: labels must be class ids 0..num_classes-1 or -1 (the
null class: an unconditional sample), cfg >= 0, top_k >= 0 (0 disables it) and top_p in
[0, 1] (0 disables it); anything else raises a ValueError saying what is allowed.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import NamedTuple

import torch
from einops import rearrange

from learnlib.var.model import VAR
from learnlib.vq.multiscale import MultiScaleResidualQuantizer


def check_guidance(cfg: float) -> None:
    """Raise a ValueError unless the guidance scale cfg is a finite number >= 0."""
    if not isinstance(cfg, numbers.Real) or not math.isfinite(cfg) or cfg < 0:
        raise ValueError(f"cfg must be a finite number >= 0 (0 = no guidance, VAR's demo uses 1.5 to 4), "
                         f"got {cfg!r}")


def check_filter(top_k: int, top_p: float) -> None:
    """Raise a ValueError unless top_k is an int >= 0 and top_p a number in [0, 1] (0 disables each)."""
    try:
        k = operator.index(top_k)
    except TypeError:
        k = None
    if k is None or isinstance(top_k, bool) or k < 0:
        raise ValueError(f"top_k must be an int >= 0 (0 keeps every token), got {top_k!r}")
    if not isinstance(top_p, numbers.Real) or not 0 <= top_p <= 1:
        raise ValueError(f"top_p must be a number in [0, 1] (0 disables the nucleus, 1 keeps every token), "
                         f"got {top_p!r}")


def check_labels(labels: torch.Tensor, num_classes: int) -> None:
    """Raise a ValueError unless labels (B,) are integer class ids in 0..num_classes-1 or -1 (null class)."""
    if labels.ndim != 1:
        raise ValueError(f"labels must be (B,), got {tuple(labels.shape)}")
    if labels.numel() == 0:
        raise ValueError("labels is empty (shape (0,)): pass at least one class id to sample, "
                         "e.g. torch.tensor([3]), or -1 for an unconditional sample")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor of class ids, got dtype {labels.dtype}; "
                         "use torch.tensor([...], dtype=torch.long)")
    bad = (labels < -1) | (labels >= num_classes)  # num_classes too: an off-by-one id is no null request
    if bool(bad.any()):
        index = int(bad.nonzero()[0])
        raise ValueError(f"labels[{index}] = {int(labels[index])} is not a class: labels must lie in "
                         f"0..{num_classes - 1} (the model's {num_classes} classes), or be -1 for the null "
                         "class (an unconditional sample)")


def cfg_mix(cond: torch.Tensor, uncond: torch.Tensor, cfg: float, k: int, K: int) -> torch.Tensor:
    """Guided logits (1 + t) * cond - t * uncond with t = cfg * k / (K - 1) rising over the K scales."""
    if cond.shape != uncond.shape:
        raise ValueError(f"cond and uncond must have the same shape, got {tuple(cond.shape)} "
                         f"and {tuple(uncond.shape)}")
    if not 0 <= k < K:
        raise ValueError(f"scale index k must lie in [0, {K}), got {k}")
    t = cfg * k / (K - 1) if K > 1 else 0.0
    return (1 + t) * cond - t * uncond


def top_k_top_p_filter(logits: torch.Tensor, top_k: int = 0, top_p: float = 0.0) -> torch.Tensor:
    """Logits (..., V) with everything outside the top-k, then outside the top-p nucleus, set to -inf.

    top_k = 0 and top_p = 0 disable the respective filter; the most likely token always survives.
    """
    check_filter(top_k, top_p)
    logits = logits.clone()
    V = logits.shape[-1]
    if top_k > 0:
        kth = logits.topk(min(top_k, V), dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p > 0:
        sorted_logits, sorted_idx = logits.sort(dim=-1, descending=False)  # (..., V)
        remove_sorted = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
        remove_sorted[..., -1:] = False
        remove = remove_sorted.scatter(-1, sorted_idx, remove_sorted)  # back to vocabulary order
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


def sample_from_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 0.0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per position of logits (B, l, V) after top-k / top-p filtering -> (B, l)."""
    if logits.ndim != 3:
        raise ValueError(f"logits must be (B, l, V), got {tuple(logits.shape)}")
    B, l, V = logits.shape
    probs = top_k_top_p_filter(logits, top_k, top_p).softmax(dim=-1)  # (B, l, V)
    flat = torch.multinomial(probs.reshape(-1, V), num_samples=1, generator=generator)  # (B*l, 1)
    return flat.reshape(B, l)  # (B, l)


def gumbel_softmax_with_rng(logits: torch.Tensor, tau: float = 1.0, hard: bool = False,
                            generator: torch.Generator | None = None, dim: int = -1) -> torch.Tensor:
    """Gumbel-softmax over `dim` drawing the noise from `generator`."""
    gumbels = -torch.empty_like(logits).exponential_(generator=generator).log()
    y_soft = ((logits + gumbels) / tau).softmax(dim)
    if not hard:
        return y_soft
    index = y_soft.argmax(dim, keepdim=True)
    y_hard = torch.zeros_like(logits).scatter_(dim, index, 1.0)
    return y_hard - y_soft.detach() + y_soft


class SampleOutput(NamedTuple):
    """Sampled token maps [(B, pn*pn)], the final f_hat (B, Cvae, H, W), raw logits per scale if asked."""

    indices: list[torch.Tensor]
    f_hat: torch.Tensor
    logits: list[torch.Tensor] | None


@torch.no_grad()
def autoregressive_sample(var: VAR, quantizer: MultiScaleResidualQuantizer, labels: torch.Tensor,
                          cfg: float = 1.5, top_k: int = 0, top_p: float = 0.0,
                          generator: torch.Generator | None = None, seed: int | None = None,
                          more_smooth: bool = False, use_kv_cache: bool = True,
                          return_logits: bool = False) -> SampleOutput:
    """Sample token pyramids for class labels (B,) in 0..num_classes-1 scale by scale (-1: unconditional).

    Conditional and unconditional (null-class) streams run as one batch of 2B; their
    logits are mixed by `cfg_mix`. With `use_kv_cache` each scale feeds only its own
    tokens and attends to cached keys/values; without it the whole prefix is recomputed
    under the block-causal mask (same result, slower). `more_smooth` replaces hard tokens
    by a Gumbel-softmax mixture of embeddings (for visualisation only).
    """
    check_labels(labels, var.num_classes)
    check_guidance(cfg)
    check_filter(top_k, top_p)
    if tuple(var.patch_nums) != tuple(quantizer.patch_nums) or var.Cvae != quantizer.Cvae:
        raise ValueError(f"VAR (patch_nums {var.patch_nums}, Cvae {var.Cvae}) and quantizer "
                         f"(patch_nums {quantizer.patch_nums}, Cvae {quantizer.Cvae}) do not match")
    if generator is None and seed is not None:
        generator = torch.Generator(device=labels.device).manual_seed(seed)
    B, K = labels.shape[0], len(var.patch_nums)
    size = var.patch_nums[-1]
    null = torch.full_like(labels, var.num_classes)
    cond_BD = var.class_condition(torch.cat((labels, null)))  # (2B, D)
    lvl_pos = var.level_pos()  # (1, L, C)
    next_map = var.start_tokens(cond_BD) + lvl_pos[:, :var.first_l]  # (2B, first_l, C)
    f_hat = cond_BD.new_zeros(B, var.Cvae, size, size)
    indices, all_logits, inputs = [], [], []
    var.kv_caching(use_kv_cache)
    try:
        cur = 0
        for si, pn in enumerate(var.patch_nums):
            cur += pn * pn
            if use_kv_cache:
                x = var.run_blocks(next_map, cond_BD, None)  # (2B, pn^2, C)
            else:
                inputs.append(next_map)
                seq = torch.cat(inputs, dim=1)  # (2B, cur, C)
                bias = var.attn_bias_for_masking[:, :, :cur, :cur]
                x = var.run_blocks(seq, cond_BD, bias)[:, cur - pn * pn:]  # (2B, pn^2, C)
            logits = var.get_logits(x, cond_BD)  # (2B, pn^2, V)
            if return_logits:
                all_logits.append(logits)
            guided = cfg_mix(logits[:B], logits[B:], cfg, si, K)  # (B, pn^2, V)
            filtered = top_k_top_p_filter(guided, top_k, top_p)  # (B, pn^2, V)
            probs = filtered.softmax(dim=-1).reshape(B * pn * pn, -1)  # (B*pn^2, V)
            idx = torch.multinomial(probs, 1, generator=generator).reshape(B, pn * pn)  # (B, pn^2)
            indices.append(idx)
            if more_smooth:
                ratio = si / (K - 1) if K > 1 else 1.0
                tau = max(0.27 * (1 - ratio * 0.95), 0.005)
                soft = gumbel_softmax_with_rng(filtered * (1 + ratio), tau=tau, generator=generator)  # (B, l, V)
                h = soft @ quantizer.embedding.weight  # (B, pn^2, Cvae)
            else:
                h = quantizer.embedding(idx)  # (B, pn^2, Cvae)
            h = rearrange(h, "b (h w) c -> b c h w", h=pn, w=pn)  # (B, Cvae, pn, pn)
            f_hat, nxt = quantizer.next_autoregressive_input(si, f_hat, h)
            if si < K - 1:
                tokens = rearrange(nxt, "b c h w -> b (h w) c")  # (B, pn'^2, Cvae)
                pn_next = var.patch_nums[si + 1]
                tokens = var.word_embed(tokens) + lvl_pos[:, cur:cur + pn_next * pn_next]  # (B, pn'^2, C)
                next_map = tokens.repeat(2, 1, 1)  # (2B, pn'^2, C)
    finally:
        var.kv_caching(False)
    return SampleOutput(indices, f_hat, all_logits if return_logits else None)


@torch.no_grad()
def sample_images(var: VAR, vae, labels: torch.Tensor, cfg: float = 1.5, top_k: int = 0, top_p: float = 0.0,
                  seed: int | None = None, more_smooth: bool = False, use_kv_cache: bool = True) -> torch.Tensor:
    """Class-conditional images (B, C, H, W) in [0, 1] from a VAR and its VQVAE tokenizer."""
    out = autoregressive_sample(var, vae.quantize, labels, cfg=cfg, top_k=top_k, top_p=top_p, seed=seed,
                                more_smooth=more_smooth, use_kv_cache=use_kv_cache)
    return (vae.fhat_to_image(out.f_hat) + 1) * 0.5
