"""Graders the exercises call: `learnlib.check.<exercise>(your_function)` prints PASSED or the first mismatch.

One module per chapter: fundamentals (00), vit (01), vq (03-04), var (05), sparse (06), splat (07),
memory (09).
"""

from learnlib.check.core import CheckResult, Mismatch, assert_close, run_check
from learnlib.check.fundamentals import evaluate, pad_collate, train_step
from learnlib.check.memory import adamw_memory, block_activation_bytes
from learnlib.check.sparse import group_windows, morton_encode, window_ids
from learnlib.check.splat import composite_front_to_back, covariance_3d, project_gaussian
from learnlib.check.var import block_causal_mask, cfg_mix, top_k_top_p
from learnlib.check.vit import attention, block_forward, multi_head_attention, patchify
from learnlib.check.vq import nearest_code, residual_multiscale_encode, straight_through

__all__ = [
    # machinery
    "CheckResult", "Mismatch", "assert_close", "run_check",
    # 00 fundamentals
    "pad_collate", "train_step", "evaluate",
    # 01 vision transformer
    "patchify", "attention", "multi_head_attention", "block_forward",
    # 03-04 vector quantization
    "nearest_code", "straight_through", "residual_multiscale_encode",
    # 05 VAR
    "block_causal_mask", "top_k_top_p", "cfg_mix",
    # 06 sparse tensors
    "window_ids", "group_windows", "morton_encode",
    # 07 Gaussian splatting
    "project_gaussian", "composite_front_to_back", "covariance_3d",
    # 09 training at scale
    "adamw_memory", "block_activation_bytes",
]
