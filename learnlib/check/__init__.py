"""Graders the exercises call: `learnlib.check.<exercise>(your_function)` prints PASSED or the first mismatch,
naming the mistake when it is a typical one. `learnlib.check.hint(<exercise>)` points the way; level 2
(the answer) opens once that exercise's check has failed.

One module per chapter: fundamentals (00), vit (01), paddle_port (02), vq (03-04), var (05), sparse (06),
splat (07), slat and slat_features (08), batching and memory (09).
"""

from learnlib.check.batching import pack_batches
from learnlib.check.core import CheckResult, Mismatch, assert_close, demo, run_check
from learnlib.check.fundamentals import evaluate, pad_collate, train_step
from learnlib.check.hints import hint
from learnlib.check.memory import adamw_memory, block_activation_bytes
from learnlib.check.paddle_port import linear_weight_to_torch, port_state_dict
from learnlib.check.slat import diagonal_gaussian_kl, gaussian_params
from learnlib.check.slat_features import project_voxel_features
from learnlib.check.sparse import group_windows, morton_encode, window_ids
from learnlib.check.splat import composite_front_to_back, covariance_3d, project_gaussian
from learnlib.check.var import block_causal_mask, cfg_mix, top_k_top_p
from learnlib.check.vit import attention, block_forward, multi_head_attention, patchify
from learnlib.check.vq import nearest_code, residual_multiscale_encode, straight_through

__all__ = [
    # machinery
    "CheckResult", "Mismatch", "assert_close", "run_check", "hint", "demo",
    # 00 fundamentals
    "pad_collate", "train_step", "evaluate",
    # 01 vision transformer
    "patchify", "attention", "multi_head_attention", "block_forward",
    # 02 Paddle port
    "linear_weight_to_torch", "port_state_dict",
    # 03-04 vector quantization
    "nearest_code", "straight_through", "residual_multiscale_encode",
    # 05 VAR
    "block_causal_mask", "top_k_top_p", "cfg_mix",
    # 06 sparse tensors
    "window_ids", "group_windows", "morton_encode",
    # 07 Gaussian splatting
    "project_gaussian", "composite_front_to_back", "covariance_3d",
    # 08 structured-latent VAE
    "gaussian_params", "diagonal_gaussian_kl",
    "project_voxel_features",
    # 09 training at scale
    "pack_batches",
    "adamw_memory", "block_activation_bytes",
]
