"""Class consistency of a class-conditional VAR: how often a classifier recognises the class it was asked for."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from learnlib.var.model import VAR
from learnlib.var.sampling import autoregressive_sample


def upsample_downsample_matrix(size: int, factor: int) -> torch.Tensor:
    """(size, size) matrix A of one axis: area(bilinear_upsample(x, factor)) = A @ x for a signal x of length size."""
    basis = torch.eye(size)[:, None, :, None]  # (size, 1, size, 1): one basis column per batch item
    up = F.interpolate(basis, size=(size * factor, 1), mode="bilinear", align_corners=False)  # (size, 1, size*f, 1)
    down = F.interpolate(up, size=(size, 1), mode="area")  # (size, 1, size, 1)
    return down[:, 0, :, 0].T  # (size, size), column j = image of basis vector j


def to_classifier_input(images: torch.Tensor, size: int = 8, undo_upsampling: bool = True) -> torch.Tensor:
    """Samples (B, C, H, W) in [0, 1] -> (B, C, size, size) in [-1, 1], area-downsampled.

    The digits classifier reads the native 8x8 digits in [-1, 1]; the 16x16 digits that the
    tokenizer (and so VAR) learned are their bilinear upsamplings, which an area downsampling
    alone only blurs back. With `undo_upsampling` the blur is inverted as well, so the
    16x16 version of a real digit maps back to exactly its 8x8 original.
    """
    if images.ndim != 4 or images.shape[-1] % size or images.shape[-2] % size:
        raise ValueError(f"images must be (B, C, H, W) with H and W multiples of {size}, got {tuple(images.shape)}")
    small = F.interpolate(images.float(), size=(size, size), mode="area")  # (B, C, size, size)
    if undo_upsampling:
        rows = torch.linalg.inv(upsample_downsample_matrix(size, images.shape[-2] // size)).to(small)
        cols = torch.linalg.inv(upsample_downsample_matrix(size, images.shape[-1] // size)).to(small)
        small = (rows @ small @ cols.T).clamp(0, 1)  # (B, C, size, size)
    return small * 2 - 1


@torch.no_grad()
def class_consistency(var: VAR, vqvae, classifier: Callable[[torch.Tensor], torch.Tensor],
                      samples_per_class: int = 50, cfg: float = 0.0, top_k: int = 0, top_p: float = 0.0,
                      seed: int = 0, batch_size: int = 250, classifier_size: int = 8,
                      undo_upsampling: bool = True) -> dict:
    """Fraction of class-conditional samples that `classifier` labels as their conditioning class.

    Labels run class by class (samples_per_class of class 0, then of class 1, ...), sampled in
    batches of at most `batch_size` from one generator seeded with `seed`. The classifier gets
    `to_classifier_input(images, classifier_size, undo_upsampling)` and returns logits (B, num_classes).
    Returns {"overall": float, "per_class": [float] * num_classes, "confusion": (num_classes,
    num_classes) long tensor (row = asked class, column = predicted class), "samples_per_class",
    "cfg", "top_k", "top_p"}.
    """
    if samples_per_class < 1 or batch_size < 1:
        raise ValueError(f"samples_per_class and batch_size must be >= 1, got {samples_per_class}, {batch_size}")
    num_classes = var.num_classes
    device = var.pos_1LC.device
    labels = torch.arange(num_classes, device=device).repeat_interleave(samples_per_class)  # (N,)
    generator = torch.Generator(device=device).manual_seed(seed)
    predictions = []
    for start in range(0, len(labels), batch_size):
        batch = labels[start:start + batch_size]
        out = autoregressive_sample(var, vqvae.quantize, batch, cfg=cfg, top_k=top_k, top_p=top_p,
                                    generator=generator)
        images = (vqvae.fhat_to_image(out.f_hat) + 1) * 0.5  # (b, C, H, W) in [0, 1]
        logits = classifier(to_classifier_input(images, classifier_size, undo_upsampling))
        if logits.shape != (len(batch), num_classes):
            raise ValueError(f"classifier must return logits ({len(batch)}, {num_classes}), "
                             f"got {tuple(logits.shape)}")
        predictions.append(logits.argmax(dim=-1).to(labels.device))
    predicted = torch.cat(predictions)  # (N,)
    pairs = labels.cpu() * num_classes + predicted.cpu()  # (N,) flat index of (asked, predicted)
    confusion = torch.bincount(pairs, minlength=num_classes ** 2).reshape(num_classes, num_classes)  # (C, C)
    hits = confusion.diagonal()
    return {"overall": float(hits.sum()) / len(labels),
            "per_class": [float(h) / samples_per_class for h in hits],
            "confusion": confusion, "samples_per_class": samples_per_class, "cfg": cfg, "top_k": top_k,
            "top_p": top_p}
