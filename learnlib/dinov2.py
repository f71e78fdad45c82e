"""DINOv2 image encoder (Oquab et al., 2023; registers: Darcet et al., 2024) built from learnlib.vit pieces.

Compared with `learnlib.vit.VisionTransformer` it adds what the published DINOv2 backbones use:
register tokens (extra learned tokens after the class token, no position embedding), layer scale
(a learned per-channel gain `ls1.gamma`, `ls2.gamma` on both residual branches), position embeddings
interpolated (bicubic) to any image whose sides are multiples of the 14 px patch, and a `mask_token`
(used only by DINOv2's own training; kept so the checkpoint loads strictly).

Parameter names follow facebookresearch/dinov2's `DinoVisionTransformer` with `block_chunks=0`, so
`dinov2_vitl14_reg4_pretrain.pth` loads with `load_state_dict(strict=True)` through `load_dinov2`.
Weights are read from a local file only; nothing is downloaded.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from learnlib.models import register
from learnlib.nn.block import Block
from learnlib.nn.patch_embed import PatchEmbed

__all__ = [
    "DINOV2_VITL14_REG_PARAMS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DinoV2",
    "LayerScale",
    "LayerScaleBlock",
    "dinov2_vitl14_reg",
    "load_dinov2",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Parameters of ViT-L/14 with 4 registers at 518 px: ViT-L/14's 304,368,640 (the "300M" of the
# paper's table) plus 4 x 1024 register-token values.
DINOV2_VITL14_REG_PARAMS = 304_372_736


class LayerScale(nn.Module):
    """x * gamma with a learned per-channel gamma [dim] (CaiT; DINOv2's `ls1` / `ls2`)."""

    def __init__(self, dim: int, init_value: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class LayerScaleBlock(Block):
    """`learnlib.nn.Block` with layer scale on both residual branches: x + ls(f(norm(x)))."""

    def __init__(self, dim: int, num_heads: int, init_values: float = 1.0, **kwargs):
        super().__init__(dim, num_heads, **kwargs)
        self.ls1 = LayerScale(dim, init_values)
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class _AnySizePatchEmbed(PatchEmbed):
    """PatchEmbed accepting any image whose sides are multiples of the patch size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        if x.dim() != 4 or x.shape[1] != self.in_chans or x.shape[-2] % p or x.shape[-1] % p:
            raise ValueError(f"expected images (B, {self.in_chans}, H, W) with H and W multiples of {p}, "
                             f"got {tuple(x.shape)}")
        x = self.proj(x)  # (B, E, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, N, E)


class DinoV2(nn.Module):
    """DINOv2 backbone: images (B, 3, H, W), ImageNet-normalized -> token dictionary (`forward_features`).

    `img_size` fixes the stored position-embedding grid (518 / 14 = 37 per side for the published
    models); other sizes interpolate it bicubically (`interpolate_antialias`, `interpolate_offset`
    as in DINOv2: antialias on and offset 0 for the register models).
    """

    def __init__(self, img_size: int = 518, patch_size: int = 14, in_chans: int = 3, embed_dim: int = 1024,
                 depth: int = 24, num_heads: int = 16, mlp_ratio: float = 4.0, num_register_tokens: int = 4,
                 init_values: float = 1.0, interpolate_antialias: bool = True, interpolate_offset: float = 0.0,
                 norm_eps: float = 1e-6, attn_backend: str = "auto"):
        super().__init__()
        if num_register_tokens < 0:
            raise ValueError(f"num_register_tokens must be >= 0, got {num_register_tokens}")
        self.patch_size, self.embed_dim, self.num_register_tokens = patch_size, embed_dim, num_register_tokens
        self.interpolate_antialias, self.interpolate_offset = interpolate_antialias, interpolate_offset
        self.patch_embed = _AnySizePatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.register_tokens = (nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
                                if num_register_tokens else None)
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.blocks = nn.Sequential(*[
            LayerScaleBlock(embed_dim, num_heads, init_values=init_values, mlp_ratio=mlp_ratio, qkv_bias=True,
                            norm_eps=norm_eps, attn_backend=attn_backend)
            for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.head = nn.Identity()
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)

    def interpolate_pos_encoding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Position embeddings (1, 1 + grid_h * grid_w, D) for a grid_h x grid_w patch grid."""
        pos = self.pos_embed
        side = int(math.sqrt(pos.shape[1] - 1))
        if grid_h == side and grid_w == side:
            return pos
        patch_pos = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, D, side, side)
        if self.interpolate_offset:
            scale = ((grid_h + self.interpolate_offset) / side, (grid_w + self.interpolate_offset) / side)
            patch_pos = F.interpolate(patch_pos.float(), scale_factor=scale, mode="bicubic",
                                      antialias=self.interpolate_antialias)
        else:
            patch_pos = F.interpolate(patch_pos.float(), size=(grid_h, grid_w), mode="bicubic",
                                      antialias=self.interpolate_antialias)
        patch_pos = patch_pos.to(pos.dtype).permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)  # (1, N, D)
        return torch.cat([pos[:, :1], patch_pos], dim=1)  # (1, 1 + N, D)

    def prepare_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) -> tokens (B, 1 + R + N, D): class, registers, patches."""
        grid_h, grid_w = images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size
        x = self.patch_embed(images)  # (B, N, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + N, D)
        x = x + self.interpolate_pos_encoding(grid_h, grid_w)
        if self.register_tokens is not None:
            registers = self.register_tokens.expand(x.shape[0], -1, -1)  # (B, R, D)
            x = torch.cat([x[:, :1], registers, x[:, 1:]], dim=1)  # (B, 1 + R + N, D)
        return x

    def forward_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The token dictionary of DINOv2's `forward_features`:

        x_norm_clstoken (B, D), x_norm_regtokens (B, R, D), x_norm_patchtokens (B, N, D) after the
        final LayerNorm, and x_prenorm (B, 1 + R + N, D) before it.
        """
        x = self.blocks(self.prepare_tokens(images))  # (B, T, D)
        x_norm = self.norm(x)
        r = self.num_register_tokens
        return {"x_norm_clstoken": x_norm[:, 0], "x_norm_regtokens": x_norm[:, 1:r + 1],
                "x_norm_patchtokens": x_norm[:, r + 1:], "x_prenorm": x}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> the normalized class token (B, D), what DINOv2's hub models return."""
        return self.forward_features(images)["x_norm_clstoken"]

    def patch_feature_map(self, images: torch.Tensor, prenorm: bool = True) -> torch.Tensor:
        """Images (B, 3, H, W) -> patch tokens as a map (B, D, H / 14, W / 14).

        `prenorm=True` takes the tokens before the final LayerNorm, as TRELLIS's feature extraction
        does (`x_prenorm`); False takes `x_norm_patchtokens`.
        """
        out = self.forward_features(images)
        tokens = out["x_prenorm"][:, self.num_register_tokens + 1:] if prenorm else out["x_norm_patchtokens"]
        grid_h, grid_w = images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size
        return tokens.transpose(1, 2).reshape(images.shape[0], self.embed_dim, grid_h, grid_w)  # (B, D, h, w)


@register("dinov2_vitl14_reg")
def dinov2_vitl14_reg(**overrides) -> DinoV2:
    """DINOv2 ViT-L/14 with 4 registers at 518 px (1024-d tokens, 24 blocks, 16 heads; 304.4 M parameters)."""
    config = {"img_size": 518, "patch_size": 14, "embed_dim": 1024, "depth": 24, "num_heads": 16,
              "num_register_tokens": 4, "init_values": 1.0, "interpolate_antialias": True, "interpolate_offset": 0.0}
    return DinoV2(**{**config, **overrides})


def load_dinov2(path, map_location="cpu", **overrides) -> DinoV2:
    """`dinov2_vitl14_reg` with weights from a local `dinov2_vitl14_reg4_pretrain.pth` (DINOv2 key names).

    FileNotFoundError when `path` is missing (the file is never downloaded: fetch it once from
    facebookresearch/dinov2's model table and point the config at it).
    """
    if path is None:
        raise FileNotFoundError("no DINOv2 weights path configured: set it to a local "
                                "dinov2_vitl14_reg4_pretrain.pth (facebookresearch/dinov2); it is never downloaded")
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"DINOv2 weights not found at {path}: download dinov2_vitl14_reg4_pretrain.pth "
                                "from facebookresearch/dinov2 once and point the config at it (never downloaded here)")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    model = dinov2_vitl14_reg(**overrides)
    model.load_state_dict(state, strict=True)
    return model.eval()
