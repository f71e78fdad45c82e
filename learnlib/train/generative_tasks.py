"""Tasks of the generative chapters: VQ-VAE reconstruction and VAR next-scale prediction."""

from __future__ import annotations

import math

import torch

from learnlib.metrics import psnr_per_image
from learnlib.train.tasks import Task, register_task


@register_task("vqvae")
class VQVAEReconstruction(Task):
    """Reconstruction (L1/L2) plus the quantizer loss; held-out MSE, PSNR and codebook perplexity."""

    metric_names = ("mse", "psnr", "perplexity")

    def __init__(self, recon_loss: str = "l2", quant_weight: float = 1.0):
        self.recon_loss, self.quant_weight = recon_loss, quant_weight

    def training_loss(self, model, batch):
        from learnlib.vq.losses import vqvae_loss

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
        return {"mse": (mse.sum(), count), "psnr": (psnr_per_image(out.recon, images).sum(), count),
                "perplexity": (torch.tensor(perplexity * count), count)}


@register_task("var")
class NextScalePrediction(Task):
    """Teacher-forced cross-entropy over all scales of a frozen VQ-VAE's token pyramid."""

    metric_names = ("loss", "token_accuracy")

    def __init__(self, vqvae: str | None, vqvae_model: str | None = None, vqvae_overrides: dict | None = None,
                 label_smoothing: float = 0.0):
        from learnlib.train.export import load_model

        if vqvae is None:
            raise ValueError("task.vqvae is not set: pass task.vqvae=/path/to/tokenizer (an exported learnlib "
                             "folder, a learnlib checkpoint, or a released state dict with task.vqvae_model)")
        self.vqvae_path, self.label_smoothing = vqvae, label_smoothing
        overrides = dict(vqvae_overrides or {})
        self.vqvae = load_model(vqvae, model_name=vqvae_model, overrides=overrides).requires_grad_(False)

    def _tokens(self, images: torch.Tensor):
        if next(self.vqvae.parameters()).device != images.device:
            self.vqvae.to(images.device)
        with torch.no_grad():
            indices = self.vqvae.encode_to_indices(images)  # [(B, pn*pn)] per scale
            x_in = self.vqvae.quantize.indices_to_var_input(indices)  # (B, L - 1, Cvae)
        targets = torch.cat(indices, dim=1)  # (B, L)
        return x_in, targets

    def training_loss(self, model, batch):
        from learnlib.var.loss import var_loss

        images, labels = batch
        x_in, targets = self._tokens(images)
        logits = model(labels, x_in)  # (B, L, V)
        loss = var_loss(logits.float(), targets, self.vqvae.patch_nums, self.label_smoothing)
        accuracy = (logits.argmax(-1) == targets).float().mean()
        return loss, {"token_accuracy": accuracy.item()}

    def eval_sums(self, model, batch):
        from learnlib.var.loss import var_loss

        images, labels = batch
        x_in, targets = self._tokens(images)
        logits = model(labels, x_in).float()  # (B, L, V)
        count = len(labels)
        loss = var_loss(logits, targets, self.vqvae.patch_nums)
        accuracy = (logits.argmax(-1) == targets).float().mean(1)  # (B,)
        return {"loss": (loss * count, count), "token_accuracy": (accuracy.sum(), count)}
