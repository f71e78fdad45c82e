"""DINOv2 image encoder (Oquab et al., 2023; registers: Darcet et al., 2024) built from the ViT's pieces.

It shares `learnlib.nn`'s patch embedding, position-embedding resampling and blocks with
`learnlib.vit.VisionTransformer`, and adds what the published DINOv2 backbones use:
register tokens (extra learned tokens after the class token, no position embedding), layer scale
(a learned per-channel gain `ls1.gamma`, `ls2.gamma` on both residual branches), position embeddings
interpolated (bicubic) to any image whose sides are multiples of the 14 px patch, and a `mask_token`
(used only by DINOv2's own training; kept so the checkpoint loads strictly).

Parameter names follow facebookresearch/dinov2's `DinoVisionTransformer` with `block_chunks=0`, so
`dinov2_vitl14_reg4_pretrain.pth` loads with `load_state_dict(strict=True)` through `load_dinov2`.
Weights are read from a local file only; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from learnlib.models import register
from learnlib.nn.layer_scale import LayerScale, LayerScaleBlock
from learnlib.nn.patch_embed import PatchEmbed
from learnlib.nn.pos_embed import resample_pos_embed
from learnlib.weights import load_released_weights, read_state_dict

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


class DinoV2(nn.Module):
    """DINOv2 backbone: images (B, 3, H, W), ImageNet-normalized -> token dictionary (`forward_features`).

    `img_size` fixes the stored position-embedding grid (518 / 14 = 37 per side for the published
    models); other sizes interpolate it bicubically to the image's patch grid (`interpolate_antialias`
    as in DINOv2; the register models use antialias and no interpolation offset).
    """

    def __init__(self, img_size: int = 518, patch_size: int = 14, in_chans: int = 3, embed_dim: int = 1024,
                 depth: int = 24, num_heads: int = 16, mlp_ratio: float = 4.0, num_register_tokens: int = 4,
                 init_values: float = 1.0, interpolate_antialias: bool = True, norm_eps: float = 1e-6,
                 attn_backend: str = "auto"):
        super().__init__()
        if num_register_tokens < 0:
            raise ValueError(f"num_register_tokens must be >= 0, got {num_register_tokens}")
        self.patch_size, self.embed_dim, self.num_register_tokens = patch_size, embed_dim, num_register_tokens
        self.interpolate_antialias = interpolate_antialias
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, strict_img_size=False)
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
        """Position embeddings (1, 1 + grid_h * grid_w, D) for a grid_h x grid_w patch grid; the stored
        ones themselves at the img_size grid."""
        return resample_pos_embed(self.pos_embed, (grid_h, grid_w), self.patch_embed.grid_size,
                                  num_prefix_tokens=1, antialias=self.interpolate_antialias)  # (1, 1 + N, D)

    def prepare_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) -> tokens (B, 1 + R + N, D): class, registers, patches."""
        x = self.patch_embed(images)  # (B, N, D), checks the image shape
        grid_h, grid_w = self.patch_embed.grid_of(images)
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
        grid_h, grid_w = self.patch_embed.grid_of(images)
        return tokens.transpose(1, 2).reshape(images.shape[0], self.embed_dim, grid_h, grid_w)  # (B, D, h, w)


@register("dinov2_vitl14_reg")
def dinov2_vitl14_reg(**overrides) -> DinoV2:
    """DINOv2 ViT-L/14 with 4 registers at 518 px (1024-d tokens, 24 blocks, 16 heads; 304.4 M parameters)."""
    config = {"img_size": 518, "patch_size": 14, "embed_dim": 1024, "depth": 24, "num_heads": 16,
              "num_register_tokens": 4, "init_values": 1.0, "interpolate_antialias": True}
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
    what = "the DINOv2 ViT-L/14 (4 registers) weights, dinov2_vitl14_reg4_pretrain.pth of facebookresearch/dinov2"
    state = read_state_dict(path, what)
    model = dinov2_vitl14_reg(**overrides)
    load_released_weights(model, state, path, what)
    return model.eval()
