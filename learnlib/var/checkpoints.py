"""Key names and shapes of the published VAR / VQ-VAE checkpoints, written out from the reference layout.

This table is built independently of the modules `learnlib.var.model` and `learnlib.vq` (only
from hyperparameters; the default scales are the shared `VAR_PATCH_NUMS`), so tests can check that the modules accept the released state dicts
with `load_state_dict(strict=True)` without downloading them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

from learnlib.vq.vqvae import VAR_PATCH_NUMS

Shapes = "OrderedDict[str, tuple[int, ...]]"


def var_checkpoint_shapes(depth: int = 16, num_classes: int = 1000, vocab_size: int = 4096, Cvae: int = 32,
                          patch_nums: Sequence[int] = VAR_PATCH_NUMS, embed_dim: int | None = None,
                          num_heads: int | None = None, mlp_ratio: float = 4.0, attn_l2_norm: bool = True,
                          ) -> OrderedDict:
    """Every key of a VAR state dict (parameters and persistent buffers) mapped to its shape."""
    C = 64 * depth if embed_dim is None else embed_dim
    H = depth if num_heads is None else num_heads
    L = sum(p * p for p in patch_nums)
    hidden = round(C * mlp_ratio)
    s: OrderedDict = OrderedDict()
    s["pos_start"] = (1, patch_nums[0] ** 2, C)
    s["pos_1LC"] = (1, L, C)
    s["lvl_1L"] = (1, L)
    s["attn_bias_for_masking"] = (1, 1, L, L)
    s["word_embed.weight"], s["word_embed.bias"] = (C, Cvae), (C,)
    s["class_emb.weight"] = (num_classes + 1, C)
    s["lvl_embed.weight"] = (len(patch_nums), C)
    for i in range(depth):
        b = f"blocks.{i}."
        if attn_l2_norm:
            s[b + "attn.scale_mul_1H11"] = (1, H, 1, 1)
        s[b + "attn.q_bias"] = (C,)
        s[b + "attn.v_bias"] = (C,)
        s[b + "attn.zero_k_bias"] = (C,)
        s[b + "attn.mat_qkv.weight"] = (3 * C, C)
        s[b + "attn.proj.weight"], s[b + "attn.proj.bias"] = (C, C), (C,)
        s[b + "ffn.fc1.weight"], s[b + "ffn.fc1.bias"] = (hidden, C), (hidden,)
        s[b + "ffn.fc2.weight"], s[b + "ffn.fc2.bias"] = (C, hidden), (C,)
        s[b + "ada_lin.1.weight"], s[b + "ada_lin.1.bias"] = (6 * C, C), (6 * C,)
    s["head_nm.ada_lin.1.weight"], s["head_nm.ada_lin.1.bias"] = (2 * C, C), (2 * C,)
    s["head.weight"], s["head.bias"] = (vocab_size, C), (vocab_size,)
    return s


def _resnet(s: OrderedDict, prefix: str, cin: int, cout: int) -> None:
    s[prefix + "norm1.weight"], s[prefix + "norm1.bias"] = (cin,), (cin,)
    s[prefix + "conv1.weight"], s[prefix + "conv1.bias"] = (cout, cin, 3, 3), (cout,)
    s[prefix + "norm2.weight"], s[prefix + "norm2.bias"] = (cout,), (cout,)
    s[prefix + "conv2.weight"], s[prefix + "conv2.bias"] = (cout, cout, 3, 3), (cout,)
    if cin != cout:
        s[prefix + "nin_shortcut.weight"], s[prefix + "nin_shortcut.bias"] = (cout, cin, 1, 1), (cout,)


def _attn(s: OrderedDict, prefix: str, c: int) -> None:
    s[prefix + "norm.weight"], s[prefix + "norm.bias"] = (c,), (c,)
    s[prefix + "qkv.weight"], s[prefix + "qkv.bias"] = (3 * c, c, 1, 1), (3 * c,)
    s[prefix + "proj_out.weight"], s[prefix + "proj_out.bias"] = (c, c, 1, 1), (c,)


def _mid(s: OrderedDict, prefix: str, c: int) -> None:
    _resnet(s, prefix + "mid.block_1.", c, c)
    _attn(s, prefix + "mid.attn_1.", c)
    _resnet(s, prefix + "mid.block_2.", c, c)


def vqvae_checkpoint_shapes(ch: int = 160, ch_mult: Sequence[int] = (1, 1, 2, 2, 4), num_res_blocks: int = 2,
                            z_channels: int = 32, vocab_size: int = 4096, in_channels: int = 3,
                            patch_nums: Sequence[int] = VAR_PATCH_NUMS, share_quant_resi: int = 4) -> OrderedDict:
    """Every key of the VQ-VAE state dict (attention at the lowest resolution and in the mid blocks)."""
    s: OrderedDict = OrderedDict()
    n = len(ch_mult)
    s["encoder.conv_in.weight"], s["encoder.conv_in.bias"] = (ch, in_channels, 3, 3), (ch,)
    cin = ch
    for lvl, mult in enumerate(ch_mult):
        cout = ch * mult
        for j in range(num_res_blocks):
            _resnet(s, f"encoder.down.{lvl}.block.{j}.", cin, cout)
            cin = cout
        if lvl == n - 1:
            for j in range(num_res_blocks):
                _attn(s, f"encoder.down.{lvl}.attn.{j}.", cout)
        else:
            s[f"encoder.down.{lvl}.downsample.conv.weight"] = (cout, cout, 3, 3)
            s[f"encoder.down.{lvl}.downsample.conv.bias"] = (cout,)
    _mid(s, "encoder.", cin)
    s["encoder.norm_out.weight"], s["encoder.norm_out.bias"] = (cin,), (cin,)
    s["encoder.conv_out.weight"], s["encoder.conv_out.bias"] = (z_channels, cin, 3, 3), (z_channels,)
    cin = ch * ch_mult[-1]
    s["decoder.conv_in.weight"], s["decoder.conv_in.bias"] = (cin, z_channels, 3, 3), (cin,)
    _mid(s, "decoder.", cin)
    for lvl in reversed(range(n)):
        cout = ch * ch_mult[lvl]
        for j in range(num_res_blocks + 1):
            _resnet(s, f"decoder.up.{lvl}.block.{j}.", cin, cout)
            cin = cout
        if lvl == n - 1:
            for j in range(num_res_blocks + 1):
                _attn(s, f"decoder.up.{lvl}.attn.{j}.", cout)
        if lvl != 0:
            s[f"decoder.up.{lvl}.upsample.conv.weight"] = (cout, cout, 3, 3)
            s[f"decoder.up.{lvl}.upsample.conv.bias"] = (cout,)
    s["decoder.norm_out.weight"], s["decoder.norm_out.bias"] = (cin,), (cin,)
    s["decoder.conv_out.weight"], s["decoder.conv_out.bias"] = (in_channels, cin, 3, 3), (in_channels,)
    s["quantize.ema_vocab_hit_SV"] = (len(patch_nums), vocab_size)
    for i in range(share_quant_resi):
        s[f"quantize.quant_resi.qresi_ls.{i}.weight"] = (z_channels, z_channels, 3, 3)
        s[f"quantize.quant_resi.qresi_ls.{i}.bias"] = (z_channels,)
    s["quantize.embedding.weight"] = (vocab_size, z_channels)
    for name in ("quant_conv", "post_quant_conv"):
        s[f"{name}.weight"], s[f"{name}.bias"] = (z_channels, z_channels, 3, 3), (z_channels,)
    return s


def random_state_dict(shapes: OrderedDict, seed: int = 0, device: str | torch.device = "cpu") -> OrderedDict:
    """A state dict of random float tensors with the given shapes (integer zeros for `lvl_1L`)."""
    gen = torch.Generator().manual_seed(seed)
    out: OrderedDict = OrderedDict()
    for key, shape in shapes.items():
        if key.endswith("lvl_1L"):
            out[key] = torch.zeros(shape, dtype=torch.long, device=device)
        else:
            out[key] = torch.randn(shape, generator=gen).to(device)
    return out
