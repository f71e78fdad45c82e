"""Graders the exercises call: `learnlib.check.<exercise>(your_function)` prints PASSED or the first mismatch,
naming the mistake when it is a typical one. `learnlib.check.hint(<exercise>)` points the way; level 2
(the answer) opens once that exercise's check has failed.

One module per chapter: fundamentals (00), vit (01), paddle_port (02), vq (03-04), var (05), sparse (06),
splat (07), slat and slat_features (08), batching and memory (09).

Names load on first use (PEP 562): `import learnlib.check` imports no grader, no Hydra and no
training code until a check is asked for.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "pack_batches": "learnlib.check.batching",
    "CheckResult": "learnlib.check.core",
    "Mismatch": "learnlib.check.core",
    "assert_close": "learnlib.check.core",
    "demo": "learnlib.check.core",
    "run_check": "learnlib.check.core",
    "evaluate": "learnlib.check.fundamentals",
    "pad_collate": "learnlib.check.fundamentals",
    "train_step": "learnlib.check.fundamentals",
    "hint": "learnlib.check.hints",
    "adamw_memory": "learnlib.check.memory",
    "block_activation_bytes": "learnlib.check.memory",
    "linear_weight_to_torch": "learnlib.check.paddle_port",
    "port_state_dict": "learnlib.check.paddle_port",
    "diagonal_gaussian_kl": "learnlib.check.slat",
    "gaussian_params": "learnlib.check.slat",
    "project_voxel_features": "learnlib.check.slat_features",
    "group_windows": "learnlib.check.sparse",
    "morton_encode": "learnlib.check.sparse",
    "window_ids": "learnlib.check.sparse",
    "composite_front_to_back": "learnlib.check.splat",
    "covariance_3d": "learnlib.check.splat",
    "project_gaussian": "learnlib.check.splat",
    "block_causal_mask": "learnlib.check.var",
    "cfg_mix": "learnlib.check.var",
    "top_k_top_p": "learnlib.check.var",
    "attention": "learnlib.check.vit",
    "block_forward": "learnlib.check.vit",
    "multi_head_attention": "learnlib.check.vit",
    "patchify": "learnlib.check.vit",
    "nearest_code": "learnlib.check.vq",
    "residual_multiscale_encode": "learnlib.check.vq",
    "straight_through": "learnlib.check.vq",
}

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


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'learnlib.check' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
