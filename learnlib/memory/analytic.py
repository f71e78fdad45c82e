"""Closed-form memory of the two exercises: AdamW state under a precision policy, one ViT block's saved tensors.

The estimator itself measures structure from the model (learnlib.memory.trace); these formulas are
the hand counts a learner writes, and tests check them against that measurement.
"""

from __future__ import annotations

from torch import nn

from learnlib.nn.backends import canonical_backend

# bytes per parameter: (parameters, gradients, fp32 master copy, AdamW moments)
POLICIES = {
    "fp32": (4, 4, 0, 8),  # everything fp32
    "autocast": (4, 4, 0, 8),  # torch autocast bf16/fp16: fp32 parameters ARE the master weights
    "bf16_master": (2, 2, 4, 8),  # bf16 parameters and gradients, an fp32 master copy in the optimizer
}


def adamw_memory(model: nn.Module, policy: str) -> dict[str, int]:
    """Bytes of parameters, gradients and AdamW optimizer states (two fp32 moments, plus the fp32 master
    copy where the policy keeps one) of `model` under `policy` (see POLICIES); frozen parameters
    (requires_grad False) take parameter memory only. The 4-byte step counters are left out."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; valid values: {', '.join(POLICIES)}")
    param_b, grad_b, master_b, moment_b = POLICIES[policy]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"parameters": param_b * (trainable + frozen), "gradients": grad_b * trainable,
            "optimizer_states": (master_b + moment_b) * trainable}


def block_activation_bytes(batch: int, tokens: int, dim: int, heads: int, mlp_ratio: float = 4.0,
                           backend: str = "math") -> int:
    """fp32 bytes one pre-norm ViT block (learnlib.nn.Block, no dropout) saves for backward.

    Per token: the block input and the two LayerNorm outputs, q, k, v, the attention output and
    the residual after attention (8 x dim), the MLP hidden before and after GELU (2 x hidden), the
    two LayerNorms' mean and 1/std (4); per head: the (tokens x tokens) softmax output with the
    math backend, or only the logsumexp (1 per token) with a fused kernel ("sdpa", "flash_attn").
    The names of learnlib.nn.backends are accepted too ("reference" is "math", "flash" is "flash_attn").
    """
    try:
        fused = canonical_backend(backend) != "reference"
    except ValueError:
        raise ValueError(f"backend must be 'math', 'sdpa' or 'flash_attn', got {backend!r}") from None
    for name, value in (("batch", batch), ("tokens", tokens), ("dim", dim), ("heads", heads)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    hidden = int(dim * mlp_ratio)
    per_token = 8 * dim + 2 * hidden + 4
    attention = heads * tokens * (1 if fused else tokens)
    return 4 * batch * (tokens * per_token + attention)
