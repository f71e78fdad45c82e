"""Plotting helpers the notebooks share (matplotlib only)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def show_images(images: torch.Tensor, labels=None, ncols: int = 8, cmap: str = "gray_r", title: str = "",
                size: float = 1.2):
    """A grid of images (B, C, H, W) or (B, H, W), with optional labels as titles."""
    if images.dim() == 3:
        images = images.unsqueeze(1)  # (B, 1, H, W)
    if images.dim() != 4:
        raise ValueError(f"show_images expects (B, C, H, W) or (B, H, W), got {tuple(images.shape)}")
    count = images.shape[0]
    nrows = (count + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= count:
            continue
        image = images[i].detach().float().cpu()
        if image.shape[0] == 1:
            ax.imshow(image[0], cmap=cmap)
        else:
            image = image.permute(1, 2, 0)  # (H, W, C)
            ax.imshow(((image - image.min()) / (image.max() - image.min() + 1e-8)).numpy())
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _graph_nodes(tensor: torch.Tensor):
    """Nodes (id, label, depth) and edges of the autograd graph that produced `tensor`."""
    nodes, edges, depth = {}, [], {}
    frontier = [(tensor.grad_fn, 0)]
    while frontier:
        fn, level = frontier.pop()
        if fn is None:
            continue
        key = id(fn)
        if key in depth and depth[key] >= level:
            continue
        depth[key] = level
        if hasattr(fn, "variable"):
            var = fn.variable
            nodes[key] = f"leaf {tuple(var.shape)}"
        else:
            nodes[key] = type(fn).__name__.replace("Backward0", "Backward")
        for child, _ in fn.next_functions:
            if child is not None:
                edges.append((key, id(child)))
                frontier.append((child, level + 1))
    return nodes, sorted(set(edges)), depth


def draw_autograd_graph(tensor: torch.Tensor, ax=None, title: str = "autograd graph"):
    """Draw the backward graph of `tensor`: its grad_fn nodes layered by distance, leaves at the bottom."""
    if tensor.grad_fn is None:
        raise ValueError("the tensor has no grad_fn: it is a leaf or was computed without autograd")
    nodes, edges, depth = _graph_nodes(tensor)
    levels: dict[int, list[int]] = {}
    for key in nodes:
        levels.setdefault(depth[key], []).append(key)
    position = {}
    for level, keys in levels.items():
        keys.sort(key=lambda k: nodes[k])
        for i, key in enumerate(keys):
            position[key] = (i - (len(keys) - 1) / 2, -level)
    if ax is None:
        width = max(len(k) for k in levels.values())
        _, ax = plt.subplots(figsize=(max(4, 2.6 * width), 1.1 * len(levels) + 0.8))
    for a, b in edges:
        (x0, y0), (x1, y1) = position[a], position[b]
        ax.annotate("", xy=(x1, y1 + 0.15), xytext=(x0, y0 - 0.15),
                    arrowprops=dict(arrowstyle="->", color="0.4"))
    for key, (x, y) in position.items():
        leaf = nodes[key].startswith("leaf")
        ax.text(x, y, nodes[key], ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round", fc="#cde8ff" if leaf else "#ffe7c2", ec="0.3"))
    xs = [p[0] for p in position.values()]
    ax.set_xlim(min(xs) - 1, max(xs) + 1)
    ax.set_ylim(-max(levels) - 0.6, 0.6)
    ax.axis("off")
    ax.set_title(title)
    return ax


def add_colorbar(mappable, ax, label: str = "", **kwargs):
    """A colorbar for `mappable` (an imshow result) beside `ax` (one axes or an array of axes sharing it)."""
    figure = mappable.axes.figure
    axes = ax.ravel().tolist() if hasattr(ax, "ravel") else ax
    return figure.colorbar(mappable, ax=axes, label=label, **kwargs)


def heatmap(values, ax=None, cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None,
            colorbar: bool = True, label: str = "", background=None, alpha: float = 1.0, title: str = "",
            **imshow_kwargs):
    """Draw a 2D array of values, optionally over a gray `background` image, with a labelled colorbar.

    Returns the image drawn (pass it to `add_colorbar` to share one colorbar over several axes
    drawn with `colorbar=False` and the same vmin / vmax).
    """
    values = torch.as_tensor(values).detach().float().cpu()
    if values.dim() != 2:
        raise ValueError(f"heatmap expects a 2D array (H, W), got {tuple(values.shape)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3.5))
    if background is not None:
        background = torch.as_tensor(background).detach().float().cpu()
        ax.imshow(background.reshape(background.shape[-2:]).numpy(), cmap="gray_r")
    image = ax.imshow(values.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha, **imshow_kwargs)
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        add_colorbar(image, ax, label)
    return image
