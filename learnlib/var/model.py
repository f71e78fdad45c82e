"""VAR: class-conditional next-scale prediction transformer (Tian et al., 2024).

Parameter and buffer names equal those of the published checkpoints (`var_d16.pth` ...),
which load with `load_state_dict(strict=True)`. The VQ-VAE is not part of this module:
the transformer only needs the tokenizer's `Cvae` and `vocab_size`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from learnlib.models import register
from learnlib.var.adaln import AdaLNBeforeHead, AdaLNSelfAttn, SharedAdaLin
from learnlib.var.mask import block_causal_bias, scale_ids, scale_ranges
from learnlib.vq.vqvae import VAR_PATCH_NUMS


class VAR(nn.Module):
    """Transformer over the flattened token pyramid (L = sum pn^2 tokens), AdaLN-conditioned on the class.

    Defaults follow the published recipe: width 64*depth, heads = depth, MLP ratio 4,
    drop-path 0.1*depth/24, L2-normalised attention, class dropout 0.1.
    """

    def __init__(self, vocab_size: int = 4096, Cvae: int = 32, num_classes: int = 1000, depth: int = 16,
                 embed_dim: int | None = None, num_heads: int | None = None, mlp_ratio: float = 4.0,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float | None = None,
                 norm_eps: float = 1e-6, shared_aln: bool = False, cond_drop_rate: float = 0.1,
                 attn_l2_norm: bool = True, patch_nums: Sequence[int] = VAR_PATCH_NUMS,
                 attn_backend: str = "auto", init_adaln: float = 0.5, init_adaln_gamma: float = 1e-5,
                 init_head: float = 0.02, init_std: float | None = None):
        super().__init__()
        embed_dim = 64 * depth if embed_dim is None else embed_dim
        num_heads = depth if num_heads is None else num_heads
        drop_path_rate = 0.1 * depth / 24 if drop_path_rate is None else drop_path_rate
        self.V, self.Cvae = vocab_size, Cvae
        self.depth, self.C, self.num_heads = depth, embed_dim, num_heads
        self.num_classes, self.cond_drop_rate = num_classes, cond_drop_rate
        self.patch_nums = tuple(int(p) for p in patch_nums)
        self.L = sum(pn * pn for pn in self.patch_nums)
        self.first_l = self.patch_nums[0] ** 2
        self.begin_ends = scale_ranges(self.patch_nums)
        self.num_stages_minus_1 = len(self.patch_nums) - 1
        self.prog_si = -1  # progressive training: index of the last trained scale, -1 = all

        # input (word) embedding of the VQ-VAE features, class embedding with a null class, start token
        self.word_embed = nn.Linear(Cvae, self.C)
        std = math.sqrt(1 / self.C / 3)
        self.class_emb = nn.Embedding(num_classes + 1, self.C)
        self.pos_start = nn.Parameter(torch.empty(1, self.first_l, self.C))
        # absolute position embedding per scale, and a level embedding per scale
        self.pos_1LC = nn.Parameter(torch.empty(1, self.L, self.C))
        self.lvl_embed = nn.Embedding(len(self.patch_nums), self.C)
        for p in (self.class_emb.weight, self.pos_start, self.pos_1LC, self.lvl_embed.weight):
            nn.init.trunc_normal_(p.data, mean=0.0, std=std)

        self.shared_ada_lin = (nn.Sequential(nn.SiLU(), SharedAdaLin(self.C, 6 * self.C)) if shared_aln
                               else nn.Identity())
        dpr = [drop_path_rate * i / (depth - 1) for i in range(depth)] if depth > 1 else [0.0]  # linear decay rule
        self.blocks = nn.ModuleList([
            AdaLNSelfAttn(self.C, self.C, num_heads, mlp_ratio=mlp_ratio, drop=drop_rate,
                          attn_drop=attn_drop_rate, drop_path=dpr[i], norm_eps=norm_eps, shared_aln=shared_aln,
                          attn_l2_norm=attn_l2_norm, attn_backend=attn_backend)
            for i in range(depth)
        ])
        self.register_buffer("lvl_1L", scale_ids(self.patch_nums)[None])  # (1, L)
        self.register_buffer("attn_bias_for_masking", block_causal_bias(self.patch_nums).contiguous())
        self.head_nm = AdaLNBeforeHead(self.C, self.C, norm_eps=norm_eps)
        self.head = nn.Linear(self.C, self.V)
        self.init_weights(init_adaln, init_adaln_gamma, init_head, init_std)

    @torch.no_grad()
    def init_weights(self, init_adaln: float = 0.5, init_adaln_gamma: float = 1e-5, init_head: float = 0.02,
                     init_std: float | None = None) -> None:
        """The published initialisation: truncated normals (std sqrt(1 / 3C) unless `init_std` is given),
        small head, near-zero AdaLN gates."""
        if init_std is None:
            init_std = (1 / self.C / 3) ** 0.5
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(m.weight.data, std=init_std)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    m.bias.data.zero_()
            elif isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
                if m.weight is not None:
                    m.weight.data.fill_(1.0)
                if m.bias is not None:
                    m.bias.data.zero_()
        if init_head >= 0:
            self.head.weight.data.mul_(init_head)
            self.head.bias.data.zero_()
        self.head_nm.ada_lin[-1].weight.data.mul_(init_adaln)
        self.head_nm.ada_lin[-1].bias.data.zero_()
        for block in self.blocks:
            block.attn.proj.weight.data.div_(math.sqrt(2 * self.depth))
            block.ffn.fc2.weight.data.div_(math.sqrt(2 * self.depth))
            if hasattr(block, "ada_lin"):
                block.ada_lin[-1].weight.data[2 * self.C:].mul_(init_adaln)  # scales and shifts
                block.ada_lin[-1].weight.data[:2 * self.C].mul_(init_adaln_gamma)  # gates
                block.ada_lin[-1].bias.data.zero_()
            else:
                block.ada_gss.data[:, :, 2:].mul_(init_adaln)
                block.ada_gss.data[:, :, :2].mul_(init_adaln_gamma)

    def class_condition(self, labels: torch.Tensor) -> torch.Tensor:
        """Class embeddings (B, C); label `num_classes` (or any negative label) is the null class.

        The condition width equals the model width C (the published code's D).
        """
        labels = torch.where(labels < 0, torch.full_like(labels, self.num_classes), labels)
        return self.class_emb(labels)

    def level_pos(self) -> torch.Tensor:
        """Level plus position embedding of every token, (1, L, C)."""
        return self.lvl_embed(self.lvl_1L) + self.pos_1LC  # (1, L, C)

    def start_tokens(self, cond_BD: torch.Tensor) -> torch.Tensor:
        """First-scale input (B, first_l, C): class embedding + pos_start (level/position added later)."""
        B = cond_BD.shape[0]
        return cond_BD[:, None].expand(B, self.first_l, -1) + self.pos_start.expand(B, -1, -1)  # (B, l, C)

    def run_blocks(self, x: torch.Tensor, cond_BD: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
        """All transformer blocks on token embeddings x (B, l, C)."""
        cond = self.shared_ada_lin(cond_BD)
        for block in self.blocks:
            x = block(x, cond, attn_bias)
        return x

    def get_logits(self, h: torch.Tensor, cond_BD: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits (B, l, V) of hidden states h (B, l, C)."""
        return self.head(self.head_nm(h.float(), cond_BD).float()).float()

    def kv_caching(self, enable: bool) -> None:
        """Turn the KV cache of every attention layer on or off (both clear it)."""
        for block in self.blocks:
            block.attn.kv_caching(enable)

    def forward(self, labels: torch.Tensor, x_BLCv_wo_first_l: torch.Tensor,
                prog_si: int | None = None) -> torch.Tensor:
        """Teacher-forced logits (B, L', V) for labels (B,) and inputs (B, L - first_l, Cvae).

        L' = L, or the end of scale `prog_si` in progressive training. In training, labels are
        replaced by the null class with probability `cond_drop_rate`.
        """
        prog_si = self.prog_si if prog_si is None else prog_si
        ed = self.begin_ends[prog_si][1] if prog_si >= 0 else self.L
        B = labels.shape[0]
        if labels.ndim != 1:
            raise ValueError(f"labels must be (B,), got {tuple(labels.shape)}")
        x_in = x_BLCv_wo_first_l
        if x_in.ndim != 3 or x_in.shape[0] != B or x_in.shape[2] != self.Cvae or x_in.shape[1] < ed - self.first_l:
            raise ValueError(f"x_BLCv_wo_first_l must be ({B}, >= {ed - self.first_l}, {self.Cvae}), "
                             f"got {tuple(x_in.shape)}")
        if self.training and self.cond_drop_rate > 0:
            drop = torch.rand(B, device=labels.device) < self.cond_drop_rate
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        cond_BD = self.class_condition(labels)
        x = self.start_tokens(cond_BD)  # (B, first_l, C)
        if ed > self.first_l:
            tokens = self.word_embed(x_in[:, :ed - self.first_l].float())  # (B, ed - first_l, C)
            x = torch.cat((x, tokens), dim=1)  # (B, ed, C)
        x = x + self.level_pos()[:, :ed]
        bias = self.attn_bias_for_masking[:, :, :ed, :ed]
        return self.get_logits(self.run_blocks(x, cond_BD, bias), cond_BD)  # (B, ed, V)


def _var(depth: int, overrides: dict) -> VAR:
    cfg = {"vocab_size": 4096, "Cvae": 32, "num_classes": 1000, "depth": depth, "patch_nums": VAR_PATCH_NUMS,
               "attn_l2_norm": True, "shared_aln": False, "cond_drop_rate": 0.1}
    return VAR(**{**cfg, **overrides})


@register("var_d16")
def var_d16(**overrides) -> VAR:
    """Published VAR-d16 (310.28M parameters, width 1024, 16 heads) for 256px ImageNet."""
    return _var(16, overrides)


@register("var_d20")
def var_d20(**overrides) -> VAR:
    """Published VAR-d20 (600.92M parameters, width 1280)."""
    return _var(20, overrides)


@register("var_d24")
def var_d24(**overrides) -> VAR:
    """Published VAR-d24 (1033.40M parameters, width 1536)."""
    return _var(24, overrides)


@register("var_d30")
def var_d30(**overrides) -> VAR:
    """Published VAR-d30 (2010.02M parameters, width 1920)."""
    return _var(30, overrides)


@register("var_digits")
def var_digits(**overrides) -> VAR:
    """Tiny VAR for the `vqvae_digits` tokenizer: depth 4, width 128, 10 classes, scales (1, 2, 3, 4)."""
    cfg = {"vocab_size": 64, "Cvae": 8, "num_classes": 10, "depth": 4, "embed_dim": 128, "num_heads": 4,
               "patch_nums": (1, 2, 3, 4), "attn_l2_norm": True, "cond_drop_rate": 0.1, "drop_path_rate": 0.0}
    return VAR(**{**cfg, **overrides})
