"""Activation checkpointing of transformer blocks: keep each block's inputs, recompute the rest in backward."""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def _checkpointed_forward(forward, *args, **kwargs):
    if not torch.is_grad_enabled():
        return forward(*args, **kwargs)
    return checkpoint(forward, *args, use_reentrant=False, **kwargs)


def apply_activation_checkpointing(model: nn.Module) -> nn.Module:
    """Make every block of `model.blocks` run through `torch.utils.checkpoint` (non-reentrant), in place.

    Works for ViT (`nn.Sequential` of blocks) and VAR (`nn.ModuleList` of blocks taking the
    condition and attention bias as extra arguments). Parameter names, state dicts and
    outputs are unchanged; in training only the inputs of each block are saved for
    backward and the block's forward runs again during backward. Calling it twice is harmless.
    """
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, (nn.Sequential, nn.ModuleList)) or len(blocks) == 0:
        raise ValueError(f"apply_activation_checkpointing expects a model with a non-empty `.blocks` "
                         f"(nn.Sequential or nn.ModuleList), got {type(model).__name__} with "
                         f"blocks={type(blocks).__name__}")
    for block in blocks:
        if not is_checkpointed(block):
            block.forward = functools.partial(_checkpointed_forward, block.forward)
            block._activation_checkpointing = True
    return model


def is_checkpointed(block: nn.Module) -> bool:
    """True when `block` runs through activation checkpointing."""
    return getattr(block, "_activation_checkpointing", False)


def remove_activation_checkpointing(model: nn.Module) -> nn.Module:
    """Undo `apply_activation_checkpointing` (in place)."""
    for block in getattr(model, "blocks", ()):
        if is_checkpointed(block):
            del block.forward
            del block._activation_checkpointing
    return model
