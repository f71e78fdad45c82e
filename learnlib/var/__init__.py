"""VAR: next-scale autoregressive image generation (transformer, block-causal mask, sampling, loss).

Importing this package registers `var_d16`, `var_d20`, `var_d24`, `var_d30` and `var_digits`.
"""

from learnlib.var.adaln import AdaLNBeforeHead, AdaLNSelfAttn, feed_forward, modulate
from learnlib.var.attention import SelfAttention
from learnlib.var.checkpoints import random_state_dict, var_checkpoint_shapes, vqvae_checkpoint_shapes
from learnlib.var.loss import per_scale_accuracy, var_loss
from learnlib.var.mask import block_causal_bias, block_causal_mask, scale_ids, scale_ranges
from learnlib.var.model import VAR, var_d16, var_d20, var_d24, var_d30, var_digits
from learnlib.var.sampling import (
    SampleOutput,
    autoregressive_sample,
    cfg_mix,
    gumbel_softmax_with_rng,
    sample_from_logits,
    sample_images,
    top_k_top_p_filter,
)

__all__ = [
    "VAR", "AdaLNBeforeHead", "AdaLNSelfAttn", "SampleOutput", "SelfAttention",
    "autoregressive_sample", "block_causal_bias", "block_causal_mask", "cfg_mix", "feed_forward",
    "gumbel_softmax_with_rng", "modulate", "per_scale_accuracy", "random_state_dict", "sample_from_logits",
    "sample_images", "scale_ids", "scale_ranges", "top_k_top_p_filter",
    "var_checkpoint_shapes", "var_d16", "var_d20", "var_d24", "var_d30", "var_digits", "var_loss",
    "vqvae_checkpoint_shapes",
]
