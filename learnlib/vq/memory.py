"""The VQ-VAE's memory workload: reconstruction + quantizer loss on random images (learnlib.memory)."""

from __future__ import annotations

import torch

from learnlib.vq.losses import reconstruction_loss
from learnlib.vq.vqvae import VQVAE
from learnlib.workloads import ConfigExtras, FamilyWorkload, register_workload, task_options


@register_workload("vq")
class VQVAEWorkload(FamilyWorkload):
    """One step of a VQVAE on `batch` random images. Data-dependent statistics the quantizer keeps under
    no_grad (codebook usage, dead-code restarts) are switched off while the step runs: they save
    nothing for backward."""

    def model_class(self) -> type:
        return VQVAE

    def training_step(self, model, batch, generator=None, recon_loss: str = "l1+l2", quant_weight: float = 1.0):
        device = next(model.parameters()).device
        size = model.image_size
        images = torch.randn(batch, model.in_channels, size, size, device=device, generator=generator)  # (B, C, H, W)

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

    def from_config(self, cfg) -> ConfigExtras:
        return ConfigExtras(task_options(cfg, ("recon_loss", "quant_weight")))
