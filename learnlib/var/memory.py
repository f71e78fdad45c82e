"""VAR's memory workload: the next-scale cross-entropy on random tokens; its frozen tokenizer counted (learnlib.memory).

The tokenizer (a VQ-VAE) runs under no_grad in the `var` task, so it saves nothing for backward;
its parameters and buffers are held on every device and are counted as `frozen`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from learnlib.models import build_on_meta, state_bytes
from learnlib.var.loss import var_loss
from learnlib.var.model import VAR
from learnlib.workloads import ConfigExtras, FamilyWorkload, register_workload, task_options


def tokenizer_bytes(task: dict) -> int:
    """Bytes of VAR's frozen tokenizer: named by task.vqvae_model, or by the config of an exported folder."""
    from omegaconf import OmegaConf

    overrides = dict(task.get("vqvae_overrides") or {})
    if task.get("vqvae_model"):
        return state_bytes(build_on_meta(task["vqvae_model"], **overrides))
    folder = Path(str(task.get("vqvae")))
    if (folder / "config.yaml").is_file():
        kwargs = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml").model, resolve=True)
        return state_bytes(build_on_meta(kwargs.pop("name"), **{**kwargs, **overrides}))
    return 0


@register_workload("var")
class VARWorkload(FamilyWorkload):
    """One teacher-forced step of VAR on `batch` random class labels and token maps."""

    def model_class(self) -> type:
        return VAR

    def training_step(self, model, batch, generator=None, label_smoothing: float = 0.0):
        device = next(model.parameters()).device
        labels = torch.randint(0, model.num_classes, (batch,), device=device, generator=generator)
        x_in = torch.randn(batch, model.L - model.first_l, model.Cvae, device=device, generator=generator)
        targets = torch.randint(0, model.V, (batch, model.L), device=device, generator=generator)  # (B, L)

        def step():
            logits = model(labels, x_in)  # (B, L, V)
            return var_loss(logits.float(), targets, model.patch_nums, label_smoothing)
        return step

    def from_config(self, cfg) -> ConfigExtras:
        from omegaconf import OmegaConf

        task = OmegaConf.to_container(cfg.task, resolve=True)
        return ConfigExtras(task_options(cfg, ("label_smoothing",)), tokenizer_bytes(task))

    def attention_layers(self, model):
        from learnlib.nn.attention import Attention
        from learnlib.var.attention import SelfAttention

        return (m for m in model.modules() if isinstance(m, (Attention, SelfAttention)))
