"""The trunk shared by the structured-latent encoder and decoder: input linear, position embedding, Swin blocks.

Matches TRELLIS's SparseTransformerBase with attn_mode "swin" and pe_mode "ape": parameter
names `input_layer`, `blocks.{i}.*`; Xavier-uniform weights and zero biases on every linear.
"""

from __future__ import annotations

import torch
from torch import nn

from learnlib.slat.blocks import SparseSwinBlock, layer_norm_fp32, swin_block_shifts
from learnlib.slat.position import AbsolutePositionEmbedder
from learnlib.sparse import SparseTensor


def check_voxels(x: SparseTensor, resolution: int, in_channels: int, what: str) -> SparseTensor:
    """`x` with its resolution set, after checking what a structured latent model needs of its input.

    Features (N, in_channels); coordinates int32 (batch, x, y, z) with x, y, z in [0, resolution);
    rows of one object contiguous and objects in increasing order; every object has a voxel.
    """
    if not isinstance(x, SparseTensor):
        raise TypeError(f"{what} expects a learnlib.sparse.SparseTensor, got {type(x).__name__}")
    if x.feats.dim() != 2 or x.feats.shape[1] != in_channels:
        raise ValueError(f"{what} expects features (N, {in_channels}), got {tuple(x.feats.shape)}")
    coords = x.coords
    if coords.shape[0] == 0:
        raise ValueError(f"{what} got no voxels at all; every object needs at least one voxel")
    batch = coords[:, 0]
    xyz = coords[:, 1:]
    bad_batch = (batch < 0).any() | (batch[1:] < batch[:-1]).any()
    bad_range = (xyz < 0).any() | (xyz >= resolution).any()
    counts = torch.bincount(batch.long().clamp(min=0), minlength=x.batch_size)
    flags = torch.stack([bad_batch, bad_range, (counts == 0).any()]).tolist()  # one host sync
    if flags[0]:
        raise ValueError(f"{what}: coords[:, 0] (object index) must be >= 0 and non-decreasing, so that the "
                         "voxels of one object are contiguous; sort the rows by object first")
    if flags[1]:
        lo, hi = xyz.amin().item(), xyz.amax().item()
        raise ValueError(f"{what}: voxel coordinates must lie in [0, {resolution}), got values in [{lo}, {hi}]")
    if flags[2]:
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"{what}: objects {empty} have no voxels; every object of the batch needs at least one")
    if x.resolution != (resolution,) * 3:
        x = SparseTensor(x.feats, coords, resolution=resolution, batch_size=x.batch_size,
                         spatial_cache=x.spatial_cache if x.resolution is None else None,
                         layout=None, validate=False)
    return x


class SparseSwinTransformer(nn.Module):
    """input_layer -> + position embedding of the voxel coordinates -> `num_blocks` Swin blocks -> LayerNorm.

    Window shifts alternate 0 and window_size // 2 from block to block. `backend` is passed to the
    sparse windowed attention ("auto" picks the fastest available one).
    """

    def __init__(self, resolution: int, in_channels: int, model_channels: int, num_blocks: int,
                 num_heads: int | None = None, num_head_channels: int = 64, mlp_ratio: float = 4.0,
                 window_size: int = 8, use_checkpoint: bool = False, backend: str = "auto") -> None:
        super().__init__()
        self.resolution = resolution
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.num_blocks = num_blocks
        self.num_heads = num_heads or model_channels // num_head_channels
        self.window_size = window_size
        self.pos_embedder = AbsolutePositionEmbedder(model_channels)
        self.input_layer = nn.Linear(in_channels, model_channels)
        self.blocks = nn.ModuleList([
            SparseSwinBlock(model_channels, self.num_heads, window_size, shift, mlp_ratio, use_checkpoint, backend)
            for shift in swin_block_shifts(num_blocks, window_size)
        ])

    @property
    def use_checkpoint(self) -> bool:
        return all(block.use_checkpoint for block in self.blocks)

    @use_checkpoint.setter
    def use_checkpoint(self, flag: bool) -> None:
        for block in self.blocks:
            block.use_checkpoint = flag

    def initialize_weights(self) -> None:
        """Xavier-uniform weights and zero biases on every linear layer (TRELLIS's basic init)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def trunk(self, x: SparseTensor) -> SparseTensor:
        """Features (N, model_channels) after the blocks and the final affine-free LayerNorm."""
        h = x.replace(self.input_layer(x.feats) + self.pos_embedder(x.coords[:, 1:]))  # (N, C)
        for block in self.blocks:
            h = block(h)
        return h.replace(layer_norm_fp32(h.feats, eps=1e-5))
