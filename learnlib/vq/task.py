"""The VQ-VAE task: reconstruction plus the quantizer loss; held-out MSE, PSNR and codebook perplexity."""

from __future__ import annotations

import math

import torch

from learnlib.metrics import psnr_per_image
from learnlib.tasks import Task, register_task
from learnlib.vq.losses import vqvae_loss


@register_task("vqvae")
class VQVAEReconstruction(Task):
    """Reconstruction (L1/L2) plus the quantizer loss; held-out MSE, PSNR and codebook perplexity."""

    metric_names = ("mse", "psnr", "perplexity")

    def __init__(self, recon_loss: str = "l2", quant_weight: float = 1.0):
        self.recon_loss, self.quant_weight = recon_loss, quant_weight

    def training_loss(self, model, batch):
        images = batch[0]
        out = model(images)
        loss, parts = vqvae_loss(out.recon, images, out.quant_loss, self.recon_loss, self.quant_weight)
        return loss, {"recon": parts["recon"], "quant": parts["quant"]}

    def eval_sums(self, model, batch):
        images = batch[0]
        out = model(images)
        mse = (out.recon.float() - images).pow(2).flatten(1).mean(1)  # (B,)
        perplexity = float(out.usage.get("perplexity", float("nan"))) if isinstance(out.usage, dict) else math.nan
        count = len(images)
        return {"mse": (mse.sum(), count), "psnr": (psnr_per_image(out.recon, images, value_range=(-1.0, 1.0)).sum(), count),
                "perplexity": (torch.tensor(perplexity * count), count)}
