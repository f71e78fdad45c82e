"""Vision Transformer (Dosovitskiy et al., 2021) with timm's config names and state-dict layout.

A timm `VisionTransformer` state dict of the same config loads with `load_state_dict`;
`learnlib.vit.port.from_paddle_state_dict` converts the course's PaddlePaddle version (`learnlib.vit.paddle`).
"""

from __future__ import annotations

import torch
from torch import nn

from learnlib.models import register
from learnlib.nn.block import Block
from learnlib.nn.patch_embed import PatchEmbed, patchify
from learnlib.nn.pos_embed import resample_pos_embed

__all__ = [
    "ClassifierMlp",
    "ViT",
    "VisionTransformer",
    "patchify",
    "zero_one_layernorm_init",
]


class ClassifierMlp(nn.Module):
    """Two-layer classification head fc1 -> ReLU -> dropout -> fc2 (the Paddle seed's `Classify`)."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class VisionTransformer(nn.Module):
    """Image (B, in_chans, img_size, img_size) -> logits (B, num_classes).

    Patches are embedded by a strided convolution, a class token is prepended
    (`class_token`), learned position embeddings are added, `depth` pre-norm blocks run,
    and the head reads the class token (`global_pool='token'`) or the mean of the patch
    tokens (`'avg'`, normalized by `fc_norm` as in timm). `head_hidden` (int) makes the
    head Linear-ReLU-Linear; `num_classes=0` returns pooled features.

    `dynamic_img_size=True` (timm's option of that name) accepts images of any height and
    width divisible by patch_size: the position embeddings of the img_size grid are
    interpolated (bicubic) to the image's patch grid, the class token's left as it is.

    `stem_channels` > 0 puts a convolutional stem before the patches (Xiao et al., 2021, "Early
    convolutions help transformers see better"): a 3x3 convolution to `stem_channels` channels and a
    GELU, so each patch is embedded from local features instead of raw pixels. 0 (the default) is
    the plain ViT, whose state dict is timm's.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3,
                 num_classes: int = 1000, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, class_token: bool = True,
                 global_pool: str = "token", drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, head_hidden: int | None = None, norm_eps: float = 1e-6,
                 attn_backend: str = "auto", dynamic_img_size: bool = False, stem_channels: int = 0):
        super().__init__()
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        if global_pool == "token" and not class_token:
            raise ValueError("global_pool='token' needs class_token=True")
        self.num_classes, self.global_pool = num_classes, global_pool
        self.embed_dim = self.num_features = embed_dim
        self.num_prefix_tokens = 1 if class_token else 0
        self.dynamic_img_size = dynamic_img_size

        if stem_channels < 0:
            raise ValueError(f"stem_channels must be >= 0 (0: no stem), got {stem_channels}")
        self.stem = (nn.Sequential(nn.Conv2d(in_chans, stem_channels, 3, padding=1), nn.GELU())
                     if stem_channels else nn.Identity())
        self.patch_embed = PatchEmbed(img_size, patch_size, stem_channels or in_chans, embed_dim,
                                      strict_img_size=not dynamic_img_size)
        num_tokens = self.patch_embed.num_patches + self.num_prefix_tokens
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # grows with depth
        self.blocks = nn.Sequential(*[
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, proj_drop=drop_rate, attn_drop=attn_drop_rate,
                  drop_path=rate, norm_eps=norm_eps, attn_backend=attn_backend)
            for rate in rates
        ])
        use_fc_norm = global_pool == "avg"
        self.norm = nn.Identity() if use_fc_norm else nn.LayerNorm(embed_dim, eps=norm_eps)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=norm_eps) if use_fc_norm else nn.Identity()
        self.head_drop = nn.Dropout(drop_rate)
        if num_classes <= 0:
            self.head = nn.Identity()
        elif head_hidden:
            self.head = ClassifierMlp(embed_dim, head_hidden, num_classes, drop_rate)
        else:
            self.head = nn.Linear(embed_dim, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        """timm's default init: truncated normal (std .02) for position embeddings and Linear
        weights, zero biases, a near-zero class token; LayerNorms and the patch conv keep
        PyTorch's defaults (ones/zeros and Kaiming-uniform)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.patch_embed.grid_of(x)
        x = self.patch_embed(self.stem(x))  # (B, N, D)
        if self.cls_token is not None:
            cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
            x = torch.cat([cls, x], dim=1)  # (B, 1+N, D)
        pos_embed = self.pos_embed  # (1, T, D)
        if self.dynamic_img_size:
            pos_embed = resample_pos_embed(self.pos_embed, grid, self.patch_embed.grid_size,
                                           self.num_prefix_tokens)  # (1, T, D), T = prefix + this image's patches
        return self.pos_drop(x + pos_embed)  # (B, T, D)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> normalized tokens (B, T, D), T = prefix tokens + patches."""
        return self.norm(self.blocks(self._embed(x)))  # (B, T, D)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens (B, T, D) -> logits (B, num_classes), or pooled features (B, D) if pre_logits."""
        if x.dim() != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"forward_head expects tokens (B, T, {self.embed_dim}), got {tuple(x.shape)}")
        if self.global_pool == "token":
            x = x[:, 0]  # (B, D)
        else:
            x = x[:, self.num_prefix_tokens:].mean(dim=1)  # (B, D)
        x = self.head_drop(self.fc_norm(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.no_grad()
    def get_attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every block for images x: a list of (B, heads, T, T), computed
        with the explicit (reference) attention and without gradients."""
        tokens = self._embed(x)  # (B, T, D)
        maps = []
        for block in self.blocks:
            tokens, attn = block(tokens, return_attention=True)
            maps.append(attn)
        return maps


ViT = VisionTransformer


def zero_one_layernorm_init(model: nn.Module) -> nn.Module:
    """Set the LayerNorms inside the encoder blocks to weight 0, bias 1 (in place) and return
    `model`: the initialization of the course's Paddle seed code. Every block then sees
    the same constant vector for every token, so at the start the class token carries no
    information about the image and training from scratch stalls."""
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm) and name.startswith("blocks."):
            nn.init.zeros_(module.weight)
            nn.init.ones_(module.bias)
    return model


def _build(defaults: dict, overrides: dict) -> VisionTransformer:
    return VisionTransformer(**{**defaults, **overrides})


@register("vit_tiny_patch16_224")
def vit_tiny_patch16_224(**overrides) -> VisionTransformer:
    """ViT-Ti/16 at 224 (5.7 M parameters)."""
    return _build({"patch_size": 16, "embed_dim": 192, "depth": 12, "num_heads": 3}, overrides)


@register("vit_small_patch16_224")
def vit_small_patch16_224(**overrides) -> VisionTransformer:
    """ViT-S/16 at 224 (22.1 M parameters)."""
    return _build({"patch_size": 16, "embed_dim": 384, "depth": 12, "num_heads": 6}, overrides)


@register("vit_base_patch16_224")
def vit_base_patch16_224(**overrides) -> VisionTransformer:
    """ViT-B/16 at 224 (86,567,656 parameters, as in the paper and timm)."""
    return _build({"patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12}, overrides)


@register("paddle_vit_base")
def paddle_vit_base(**overrides) -> VisionTransformer:
    """The course's PaddlePaddle ViT-B/16 in PyTorch: a Linear-ReLU-Linear head of width 768
    (87,158,248 parameters); loads weights through `from_paddle_state_dict`."""
    return _build({"patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12, "head_hidden": 768},
                  overrides)


@register("vit_digits")
def vit_digits(**overrides) -> VisionTransformer:
    """A small ViT for 8x8 one-channel scikit-learn digits: 2x2 patches, 16 tokens.

    Regularized by stochastic depth rather than dropout, and attention written out ("reference"):
    both make a CPU training step cheaper; the measurements are in benchmarks/RESULTS.md
    ("vit_digits training step, CPU").
    """
    return _build({"img_size": 8, "patch_size": 2, "in_chans": 1, "num_classes": 10, "embed_dim": 64,
                   "depth": 4, "num_heads": 4, "mlp_ratio": 2.0, "global_pool": "avg", "drop_path_rate": 0.1,
                   "attn_backend": "reference"},
                  overrides)
