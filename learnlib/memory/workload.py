"""One training step's inputs and loss for each model family of the course (what memory is measured on).

`training_step(model, batch)` returns a function computing the loss of a random batch, the
same loss the experiment's task computes: cross-entropy for classifiers (ViT, MLP), the
reconstruction + quantizer loss for the VQ-VAE, and the next-scale cross-entropy for VAR
(whose frozen tokenizer runs under no_grad and saves nothing for backward). The SLat VAE's
step (learnlib.memory.slat_step) takes voxels, not items: its `batch` is the voxel count.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from learnlib.mlp import MLPClassifier
from learnlib.var.loss import var_loss
from learnlib.var.model import VAR
from learnlib.vit import VisionTransformer
from learnlib.vq.losses import reconstruction_loss
from learnlib.vq.vqvae import VQVAE

FAMILIES = ("VisionTransformer", "MLPClassifier", "VQVAE", "VAR", "SLatVAE")


def family(model: nn.Module) -> str:
    """The model family ("VisionTransformer", "MLPClassifier", "VQVAE", "VAR" or "SLatVAE") of `model`."""
    from learnlib.slat.vae import SLatVAE

    for cls in (VisionTransformer, MLPClassifier, VQVAE, VAR, SLatVAE):
        if isinstance(model, cls):
            return cls.__name__
    raise ValueError(f"memory estimates cover the families {FAMILIES}; got a {type(model).__name__}")


def training_step(model: nn.Module, batch: int, label_smoothing: float = 0.0, recon_loss: str = "l1+l2",
                  quant_weight: float = 1.0,
                  generator: torch.Generator | None = None) -> Callable[[], torch.Tensor]:
    """A function running the forward pass and loss of `model` on a random batch of `batch` items.

    Under FakeTensorMode the inputs are fake too (shapes only). Data-dependent statistics the
    VQ-VAE keeps under no_grad (codebook usage, dead-code restarts) are switched off on this
    instance while the function runs: they save nothing for backward.
    """
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    kind = family(model)
    device = next(model.parameters()).device
    if kind == "SLatVAE":  # batch = voxels of one synthetic object, rendered at one 64 px view
        from learnlib.memory.slat_step import training_step as slat_training_step

        return slat_training_step(model, batch, image_size=64, generator=generator)
    if kind in ("VisionTransformer", "MLPClassifier"):
        if kind == "VisionTransformer":
            pe = model.patch_embed
            images = torch.randn(batch, pe.in_chans, pe.img_size, pe.img_size, device=device, generator=generator)
            classes = model.num_classes
        else:
            images = torch.randn(batch, model.in_features, device=device, generator=generator)  # (B, F)
            classes = model.net[-1].out_features
        labels = torch.randint(0, max(classes, 1), (batch,), device=device, generator=generator)

        def step():
            return F.cross_entropy(model(images).float(), labels, label_smoothing=label_smoothing)
        return step
    if kind == "VQVAE":
        size = model.image_size
        images = torch.randn(batch, model.in_channels, size, size, device=device, generator=generator)

        def step():
            quantize = model.quantize
            saved = quantize.dead_code_threshold
            quantize._usage = lambda indices: {}
            quantize.dead_code_threshold = 0.0
            try:
                out = model(images)
            finally:
                del quantize._usage
                quantize.dead_code_threshold = saved
            # vqvae_loss's float() parts would read values; the same sum, as one tensor:
            return reconstruction_loss(out.recon, images, recon_loss) + quant_weight * out.quant_loss
        return step
    labels = torch.randint(0, model.num_classes, (batch,), device=device, generator=generator)
    x_in = torch.randn(batch, model.L - model.first_l, model.Cvae, device=device, generator=generator)
    targets = torch.randint(0, model.V, (batch, model.L), device=device, generator=generator)

    def step():
        logits = model(labels, x_in)  # (B, L, V)
        return var_loss(logits.float(), targets, model.patch_nums, label_smoothing)
    return step
