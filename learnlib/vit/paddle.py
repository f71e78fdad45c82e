"""The course's Vision Transformer seed design, written in PaddlePaddle.

PatchEmbedding (Conv2D + class token + position embedding) -> Encoder (pre-LayerNorm
layers of multi-head self-attention and an MLP, then a final LayerNorm) -> Classify
(fc1 -> ReLU -> fc2 on the class token). ViT-B/16 with a head of width 768 has 87,158,248
parameters. `learnlib.vit.port.from_paddle_state_dict` converts its weights to the PyTorch
`create("paddle_vit_base")`. This module imports paddle: import it explicitly
(`from learnlib.vit import paddle`); `import learnlib.vit` does not load it.

Paddle's LayerNorm defaults to epsilon 1e-5; every LayerNorm here sets 1e-6, as the
original ViT and timm do, so that both frameworks compute the same function.
"""

from __future__ import annotations

import paddle
from paddle import nn

LN_EPS = 1e-6


def _layer_norm(dim: int, init: str) -> nn.LayerNorm:
    """LayerNorm with the standard init (weight 1, bias 0), or "zero_one" (weight 0, bias 1),
    the seed code's init that makes every normalized token the same constant vector."""
    if init == "standard":
        return nn.LayerNorm(dim, epsilon=LN_EPS)
    if init == "zero_one":
        return nn.LayerNorm(dim, epsilon=LN_EPS,
                            weight_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)),
                            bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(1.0)))
    raise ValueError(f"layernorm_init must be 'standard' or 'zero_one', got {init!r}")


class PatchEmbedding(nn.Layer):
    """Images (B, C, H, W) -> tokens (B, 1 + N, D): patch conv, class token, position embedding."""

    def __init__(self, image_size=224, patch_size=16, in_channels=3, embed_dim=768, dropout=0.0):
        super().__init__()
        n_patches = (image_size // patch_size) ** 2
        self.conv = nn.Conv2D(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = self.create_parameter(
            shape=[1, 1, embed_dim], default_initializer=nn.initializer.Constant(0.0))
        self.position_embedding = self.create_parameter(
            shape=[1, n_patches + 1, embed_dim], default_initializer=nn.initializer.TruncatedNormal(std=0.02))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = self.conv(x)  # (B, D, H/P, W/P)
        x = x.flatten(2)  # (B, D, N)
        x = x.transpose([0, 2, 1])  # (B, N, D)
        cls = self.class_token.expand([x.shape[0], -1, -1])  # (B, 1, D)
        x = paddle.concat([cls, x], axis=1)  # (B, 1 + N, D)
        return self.dropout(x + self.position_embedding)


class Attention(nn.Layer):
    """Multi-head self-attention: fused qkv Linear, softmax(q k^T / sqrt(d)) v, output proj."""

    def __init__(self, embed_dim, num_heads, qkv_bias=True, dropout=0.0, attention_dropout=0.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(embed_dim, embed_dim * 3, bias_attr=None if qkv_bias else False)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.attn_dropout = nn.Dropout(attention_dropout)
        self.proj_dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, D = x.shape
        qkv = self.qkv(x).reshape([B, T, 3, self.num_heads, self.head_dim])  # (B, T, 3, H, d)
        qkv = qkv.transpose([2, 0, 3, 1, 4])  # (3, B, H, T, d)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, H, T, d)
        attn = paddle.matmul(q, k, transpose_y=True) * self.scale  # (B, H, T, T)
        attn = self.attn_dropout(nn.functional.softmax(attn, axis=-1))
        out = paddle.matmul(attn, v)  # (B, H, T, d)
        out = out.transpose([0, 2, 1, 3]).reshape([B, T, D])  # (B, T, D)
        return self.proj_dropout(self.proj(out))


class Mlp(nn.Layer):
    """fc1 -> GELU -> fc2, applied to every token."""

    def __init__(self, embed_dim, mlp_ratio=4.0, dropout=0.0):
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, int(embed_dim * mlp_ratio))
        self.act = nn.GELU()
        self.fc2 = nn.Linear(int(embed_dim * mlp_ratio), embed_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.fc2(self.dropout(self.act(self.fc1(x)))))


class EncoderLayer(nn.Layer):
    """Pre-norm layer: x + attn(attn_norm(x)), then x + mlp(mlp_norm(x))."""

    def __init__(self, embed_dim, num_heads, qkv_bias=True, mlp_ratio=4.0, dropout=0.0,
                 attention_dropout=0.0, layernorm_init="standard"):
        super().__init__()
        self.attn_norm = _layer_norm(embed_dim, layernorm_init)
        self.attn = Attention(embed_dim, num_heads, qkv_bias, dropout, attention_dropout)
        self.mlp_norm = _layer_norm(embed_dim, layernorm_init)
        self.mlp = Mlp(embed_dim, mlp_ratio, dropout)

    def forward(self, x):
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class Encoder(nn.Layer):
    """`depth` encoder layers followed by a final LayerNorm."""

    def __init__(self, embed_dim, num_heads, depth, qkv_bias=True, mlp_ratio=4.0, dropout=0.0,
                 attention_dropout=0.0, layernorm_init="standard"):
        super().__init__()
        self.layers = nn.LayerList([
            EncoderLayer(embed_dim, num_heads, qkv_bias, mlp_ratio, dropout, attention_dropout,
                         layernorm_init)
            for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(embed_dim, epsilon=LN_EPS)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class Classify(nn.Layer):
    """Classification head on the class token: fc1 -> ReLU -> dropout -> fc2."""

    def __init__(self, embed_dim, hidden, num_classes, dropout=0.0):
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, hidden)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


class ViT(nn.Layer):
    """Images (B, in_channels, image_size, image_size) -> logits (B, num_classes)."""

    def __init__(self, image_size=224, patch_size=16, in_channels=3, num_classes=1000, embed_dim=768,
                 depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True, head_hidden=768, dropout=0.0,
                 attention_dropout=0.0, layernorm_init="standard"):
        super().__init__()
        self.image_size, self.in_channels = image_size, in_channels
        self.patch_embedding = PatchEmbedding(image_size, patch_size, in_channels, embed_dim, dropout)
        self.encoder = Encoder(embed_dim, num_heads, depth, qkv_bias, mlp_ratio, dropout,
                               attention_dropout, layernorm_init)
        self.classifier = Classify(embed_dim, head_hidden, num_classes, dropout)

    def forward(self, x):
        expected = [self.in_channels, self.image_size, self.image_size]
        if len(x.shape) != 4 or list(x.shape[1:]) != expected:
            raise ValueError(f"ViT expects images of shape [B, {', '.join(map(str, expected))}], "
                             f"got {list(x.shape)}")
        x = self.patch_embedding(x)  # (B, 1 + N, D)
        x = self.encoder(x)  # (B, 1 + N, D)
        return self.classifier(x[:, 0])  # (B, num_classes)


def paddle_vit_base(**overrides) -> ViT:
    """ViT-B/16 at 224 with a 768-wide two-layer head: 87,158,248 parameters."""
    return ViT(**{"image_size": 224, "patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12,
                  "head_hidden": 768, **overrides})
