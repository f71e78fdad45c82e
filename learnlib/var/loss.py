"""Training loss of VAR: token cross-entropy over all scales with teacher forcing."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from learnlib.var.mask import scale_ranges


def var_loss(logits: torch.Tensor, targets: torch.Tensor, patch_nums: Sequence[int],
             label_smoothing: float = 0.0, prog_si: int = -1, prog_wp: float = 1.0) -> torch.Tensor:
    """Cross-entropy of logits (B, L', V) against token targets (B, L'), averaged over the L tokens.

    Every token weighs 1/L. In progressive training (`prog_si >= 0`) only the scales up to
    `prog_si` are present (L' = end of that scale) and the newest scale's weight is
    multiplied by the warm-up factor `prog_wp` clipped to [0, 1].
    """
    if logits.ndim != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(f"logits must be (B, L, V) and targets (B, L), got {tuple(logits.shape)} "
                         f"and {tuple(targets.shape)}")
    ranges = scale_ranges(patch_nums)
    L = ranges[-1][1]
    ed = ranges[prog_si][1] if prog_si >= 0 else L
    if logits.shape[1] != ed:
        raise ValueError(f"expected {ed} tokens for prog_si={prog_si}, got logits {tuple(logits.shape)}")
    B, _, V = logits.shape
    flat_logits, flat_targets = logits.reshape(-1, V), targets.reshape(-1)  # (B*ed, V), (B*ed,)
    ce = F.cross_entropy(flat_logits, flat_targets, label_smoothing=label_smoothing, reduction="none")
    ce = ce.reshape(B, ed)  # (B, ed)
    weight = torch.full((ed,), 1.0 / L, device=logits.device)
    if prog_si >= 0:
        bg = ranges[prog_si][0]
        weight[bg:ed] *= min(max(prog_wp, 0.0), 1.0)
    return (ce * weight).sum(dim=1).mean()


def per_scale_accuracy(logits: torch.Tensor, targets: torch.Tensor, patch_nums: Sequence[int]) -> list[float]:
    """Top-1 token accuracy of each scale present in logits (B, L', V)."""
    pred = logits.argmax(dim=-1)  # (B, L')
    return [float((pred[:, bg:ed] == targets[:, bg:ed]).float().mean())
            for bg, ed in scale_ranges(patch_nums) if ed <= logits.shape[1]]
