"""Cut an image into non-overlapping patches and embed each one (a strided Conv2d)."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, P*P*C): patches in row-major order, each flattened as (P, P, C).

    A Linear layer on these rows equals `PatchEmbed`'s convolution once its weight
    (E, C, P, P) is permuted to (E, P, P, C) and flattened.
    """
    if images.dim() != 4:
        raise ValueError(f"patchify expects images of shape (B, C, H, W), got {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if h % patch_size or w % patch_size:
        raise ValueError(f"image size ({h}, {w}) is not divisible by patch_size {patch_size}")
    return rearrange(images, "b c (gh p1) (gw p2) -> b (gh gw) (p1 p2 c)",
                     p1=patch_size, p2=patch_size)  # (B, N, P*P*C)


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, N, embed_dim) with N = (H/P)(W/P), via Conv2d(kernel=stride=P).

    Images must be img_size x img_size, or, with `strict_img_size=False`, of any height and
    width divisible by P.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768, bias: bool = True, strict_img_size: bool = True):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not divisible by patch_size {patch_size}")
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.strict_img_size = strict_img_size
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def grid_of(self, x: torch.Tensor) -> tuple[int, int]:
        """The (rows, columns) patch grid of images x (B, C, H, W)."""
        return x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.strict_img_size:
            h, w = x.shape[-2:] if x.dim() == 4 else (None, None)
            if x.dim() != 4 or x.shape[1] != self.in_chans or h % self.patch_size or w % self.patch_size:
                raise ValueError(f"PatchEmbed expects images of shape (B, {self.in_chans}, H, W) with H and W "
                                 f"multiples of {self.patch_size}, got {tuple(x.shape)}")
            x = self.proj(x)  # (B, E, H/P, W/P)
            return rearrange(x, "b e gh gw -> b (gh gw) e")  # (B, N, E)
        expected = (self.in_chans, self.img_size, self.img_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"PatchEmbed expects images of shape (B, {', '.join(map(str, expected))}), "
                f"got {tuple(x.shape)} (a ViT takes other sizes with dynamic_img_size=True)"
            )
        x = self.proj(x)  # (B, E, H/P, W/P)
        return rearrange(x, "b e gh gw -> b (gh gw) e")  # (B, N, E)
