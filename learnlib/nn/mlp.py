"""The transformer feed-forward block: Linear -> activation -> Linear (timm `Mlp` names)."""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """fc1 -> act -> dropout -> fc2 -> dropout, applied to the last dimension."""

    def __init__(self, in_features: int, hidden_features: int | None = None,
                 out_features: int | None = None, act_layer: type[nn.Module] = nn.GELU,
                 drop: float = 0.0, bias: bool = True):
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.in_features = in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Mlp expects (..., {self.in_features}), got {tuple(x.shape)}")
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))
