"""Class consistency of a class-conditional VAR: how often a classifier recognises the class it was asked for."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from learnlib.var.frechet import classifier_features, classifier_frechet_distance, frechet_distance
from learnlib.var.model import VAR
from learnlib.var.sampling import autoregressive_sample

__all__ = ["class_consistency", "classifier_features", "classifier_frechet_distance", "frechet_distance",
           "label_agreement", "random_token_images", "sample_classifier_inputs", "to_classifier_input",
           "upsample_downsample_matrix"]


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
def sample_classifier_inputs(var: VAR, vqvae, samples_per_class: int = 50, cfg: float = 0.0, top_k: int = 0,
                             top_p: float = 0.0, seed: int = 0, batch_size: int = 250, classifier_size: int = 8,
                             undo_upsampling: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-conditional samples as classifier inputs (N, C, size, size) in [-1, 1], and their asked labels (N,).

    Labels run class by class (samples_per_class of class 0, then of class 1, ...), sampled in
    batches of at most `batch_size` from one generator seeded with `seed`.
    """
    if samples_per_class < 1 or batch_size < 1:
        raise ValueError(f"samples_per_class and batch_size must be >= 1, got {samples_per_class}, {batch_size}")
    device = var.pos_1LC.device
    labels = torch.arange(var.num_classes, device=device).repeat_interleave(samples_per_class)  # (N,)
    generator = torch.Generator(device=device).manual_seed(seed)
    inputs = []
    for start in range(0, len(labels), batch_size):
        out = autoregressive_sample(var, vqvae.quantize, labels[start:start + batch_size], cfg=cfg, top_k=top_k,
                                    top_p=top_p, generator=generator)
        images = (vqvae.fhat_to_image(out.f_hat) + 1) * 0.5  # (b, C, H, W) in [0, 1]
        inputs.append(to_classifier_input(images, classifier_size, undo_upsampling))
    return torch.cat(inputs), labels  # (N, C, size, size), (N,)


@torch.no_grad()
def label_agreement(classifier: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, labels: torch.Tensor,
                    num_classes: int = 10, batch_size: int = 500) -> dict:
    """How often `classifier` (inputs -> logits (B, num_classes)) names `labels` (N,) for `inputs` (N, ...).

    Returns {"overall": float, "per_class": [float] * num_classes (nan for a class with no item),
    "confusion": (num_classes, num_classes) long tensor (row = label, column = predicted class)}.
    """
    if labels.ndim != 1 or len(labels) != len(inputs) or len(labels) == 0:
        raise ValueError(f"labels must be (N,) with N = len(inputs) > 0, got {tuple(labels.shape)} "
                         f"for {len(inputs)} inputs")
    predictions = []
    for start in range(0, len(inputs), batch_size):
        logits = classifier(inputs[start:start + batch_size])
        if logits.shape != (len(inputs[start:start + batch_size]), num_classes):
            raise ValueError(f"classifier must return logits ({len(inputs[start:start + batch_size])}, "
                             f"{num_classes}), got {tuple(logits.shape)}")
        predictions.append(logits.argmax(dim=-1).cpu())
    predicted = torch.cat(predictions)  # (N,)
    pairs = labels.cpu() * num_classes + predicted  # (N,) flat index of (label, predicted)
    confusion = torch.bincount(pairs, minlength=num_classes ** 2).reshape(num_classes, num_classes)  # (C, C)
    per_row = confusion.sum(1)
    per_class = [float(h) / int(n) if n else float("nan") for h, n in zip(confusion.diagonal(), per_row)]
    return {"overall": float(confusion.diagonal().sum()) / len(labels), "per_class": per_class,
            "confusion": confusion}


@torch.no_grad()
def random_token_images(vqvae, count: int, seed: int = 0) -> torch.Tensor:
    """Decoded images (count, C, H, W) in [0, 1] of uniformly random token pyramids: a chance-level generator."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    generator = torch.Generator().manual_seed(seed)
    quantizer = vqvae.quantize
    indices = [torch.randint(0, quantizer.vocab_size, (count, pn * pn), generator=generator)  # (count, pn*pn)
               for pn in quantizer.patch_nums]
    device = quantizer.embedding.weight.device
    return (vqvae.indices_to_image([idx.to(device) for idx in indices]) + 1) * 0.5  # (count, C, H, W)


@torch.no_grad()
def class_consistency(var: VAR, vqvae, classifier: Callable[[torch.Tensor], torch.Tensor],
                      samples_per_class: int = 50, cfg: float = 0.0, top_k: int = 0, top_p: float = 0.0,
                      seed: int = 0, batch_size: int = 250, classifier_size: int = 8,
                      undo_upsampling: bool = True) -> dict:
    """Fraction of class-conditional samples that `classifier` labels as their conditioning class.

    Samples come from `sample_classifier_inputs` (class by class, one generator seeded with `seed`);
    the classifier gets `to_classifier_input(images, classifier_size, undo_upsampling)` and returns
    logits (B, num_classes). Returns {"overall": float, "per_class": [float] * num_classes,
    "confusion": (num_classes, num_classes) long tensor (row = asked class, column = predicted class),
    "samples_per_class", "cfg", "top_k", "top_p"}.
    """
    inputs, labels = sample_classifier_inputs(var, vqvae, samples_per_class, cfg, top_k, top_p, seed, batch_size,
                                              classifier_size, undo_upsampling)
    result = label_agreement(classifier, inputs, labels, var.num_classes, batch_size)
    return {**result, "samples_per_class": samples_per_class, "cfg": cfg, "top_k": top_k, "top_p": top_p}
