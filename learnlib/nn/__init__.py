"""Shared layers: attention with backend dispatch, MLP, stochastic depth, patch embedding, blocks."""

from learnlib.nn.attention import Attention, attention_weights, scaled_dot_product_attention
from learnlib.nn.backends import BACKENDS, canonical_backend, flash_attn_available, resolve_backend
from learnlib.nn.block import Block
from learnlib.nn.drop_path import DropPath, drop_path
from learnlib.nn.layer_scale import LayerScale, LayerScaleBlock
from learnlib.nn.mlp import Mlp
from learnlib.nn.patch_embed import PatchEmbed, patchify

__all__ = [
    "BACKENDS",
    "Attention",
    "Block",
    "DropPath",
    "LayerScale",
    "LayerScaleBlock",
    "Mlp",
    "PatchEmbed",
    "attention_weights",
    "canonical_backend",
    "drop_path",
    "flash_attn_available",
    "patchify",
    "resolve_backend",
    "scaled_dot_product_attention",
]
