"""The VAR task: teacher-forced next-scale cross-entropy over a frozen VQ-VAE's token pyramid."""

from __future__ import annotations

import torch

from learnlib.tasks import Task, register_task
from learnlib.var.loss import var_loss
from learnlib.weights import load_model


@register_task("var")
class NextScalePrediction(Task):
    """Teacher-forced cross-entropy over all scales of a frozen VQ-VAE's token pyramid."""

    metric_names = ("loss", "token_accuracy")

    def __init__(self, vqvae: str | None, vqvae_model: str | None = None, vqvae_overrides: dict | None = None,
                 label_smoothing: float = 0.0):
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
        images, labels = batch
        x_in, targets = self._tokens(images)
        logits = model(labels, x_in)  # (B, L, V)
        loss = var_loss(logits.float(), targets, self.vqvae.patch_nums, self.label_smoothing)
        accuracy = (logits.argmax(-1) == targets).float().mean()
        return loss, {"token_accuracy": accuracy.item()}

    def eval_sums(self, model, batch):
        images, labels = batch
        x_in, targets = self._tokens(images)
        logits = model(labels, x_in).float()  # (B, L, V)
        count = len(labels)
        loss = var_loss(logits, targets, self.vqvae.patch_nums)
        accuracy = (logits.argmax(-1) == targets).float().mean(1)  # (B,)
        return {"loss": (loss * count, count), "token_accuracy": (accuracy.sum(), count)}
