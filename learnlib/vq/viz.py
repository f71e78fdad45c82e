"""Plots of chapters 03 and 04: reconstructions, code usage, the multi-scale token pyramid (matplotlib only)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch


def _image(ax, image: torch.Tensor, cmap: str, title: str = "") -> None:
    """Draw one image (1, H, W) or (H, W) with values in [-1, 1]."""
    image = image.detach().float().cpu()
    ax.imshow(image.reshape(image.shape[-2:]), cmap=cmap, vmin=-1, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def show_reconstructions(originals: torch.Tensor, reconstructions: torch.Tensor, ncols: int = 8,
                         cmap: str = "gray_r", title: str = "", size: float = 1.1):
    """Originals above their reconstructions, `ncols` pairs per block of two rows; images (B, 1, H, W)."""
    if originals.shape != reconstructions.shape or originals.ndim != 4:
        raise ValueError(f"expected two (B, 1, H, W) batches of the same shape, got {tuple(originals.shape)} "
                         f"and {tuple(reconstructions.shape)}")
    count = originals.shape[0]
    blocks = (count + ncols - 1) // ncols
    fig, axes = plt.subplots(2 * blocks, ncols, figsize=(size * ncols, 2 * size * blocks), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(count):
        block, col = divmod(i, ncols)
        for row, (batch, label) in enumerate(((originals, "original"), (reconstructions, "reconstruction"))):
            ax = axes[2 * block + row, col]
            ax.axis("on")
            _image(ax, batch[i], cmap, label if col == 0 else "")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_code_counts(counts: torch.Tensor, ax=None, title: str = "code usage"):
    """Bar chart of how often each code was chosen (V,), dead codes (count 0) marked in red."""
    counts = counts.detach().float().cpu()
    if counts.ndim != 1:
        raise ValueError(f"counts must be (V,), got {tuple(counts.shape)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.2))
    colors = ["tab:red" if c == 0 else "tab:blue" for c in counts.tolist()]
    ax.bar(range(len(counts)), counts.numpy(), color=colors, width=0.9)
    dead = int((counts == 0).sum())
    ax.set(xlabel="code index", ylabel="count", title=f"{title} ({dead} of {len(counts)} codes dead)")
    return ax


def show_scale_pyramid(originals: torch.Tensor, token_maps: Sequence[torch.Tensor],
                       cumulative: Sequence[torch.Tensor], patch_nums: Sequence[int], cmap: str = "gray_r",
                       size: float = 1.2):
    """Per image two rows: the token map of every scale, then the image decoded from scales 1..k.

    originals (B, 1, H, W); token_maps [(B, pn*pn)]; cumulative [(B, 1, H, W)] (one per scale).
    """
    if not len(token_maps) == len(cumulative) == len(patch_nums):
        raise ValueError(f"need one token map and one image per scale ({len(patch_nums)}), got "
                         f"{len(token_maps)} and {len(cumulative)}")
    count, scales = originals.shape[0], len(patch_nums)
    top_code = max(max(int(t.max()) for t in token_maps), 1)  # one colour per code across all scales
    fig, axes = plt.subplots(2 * count, scales + 1, figsize=(size * (scales + 1), 2 * size * count), squeeze=False)
    for b in range(count):
        top, bottom = axes[2 * b], axes[2 * b + 1]
        for k, pn in enumerate(patch_nums):
            tokens = token_maps[k][b].reshape(pn, pn).cpu()  # (pn, pn)
            top[k].imshow(tokens, cmap="tab20", vmin=0, vmax=top_code)
            if pn <= 4:  # small maps: write the code of every token
                for i in range(pn):
                    for j in range(pn):
                        top[k].text(j, i, str(int(tokens[i, j])), ha="center", va="center", fontsize=6)
            top[k].set_xticks([])
            top[k].set_yticks([])
            if b == 0:
                top[k].set_title(f"tokens {pn}x{pn}", fontsize=8)
            _image(bottom[k], cumulative[k][b], cmap, f"scales 1..{k + 1}" if b == 0 else "")
        top[scales].axis("off")
        _image(bottom[scales], originals[b], cmap, "original" if b == 0 else "")
    fig.tight_layout()
    return fig


def plot_residual_norms(norms: torch.Tensor, patch_nums: Sequence[int], ax=None):
    """Relative residual norm ||f - f_hat_k|| / ||f|| after each scale k, one line per image (B, K)."""
    if norms.ndim != 2 or norms.shape[1] != len(patch_nums):
        raise ValueError(f"norms must be (B, {len(patch_nums)}), got {tuple(norms.shape)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 2.8))
    steps = range(1, len(patch_nums) + 1)
    for row in norms.detach().cpu():
        ax.plot(steps, row.numpy(), marker="o", alpha=0.7)
    ax.set_xticks(list(steps), [f"{k}\n({pn}x{pn})" for k, pn in zip(steps, patch_nums)])
    ax.set(xlabel="scales used", ylabel="||f - f_hat|| / ||f||", ylim=(0, None))
    return ax
