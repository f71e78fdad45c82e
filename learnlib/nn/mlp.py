"""The transformer feed-forward block: Linear -> activation -> Linear (timm `Mlp` names)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class Mlp(nn.Module):
    """fc1 -> act -> dropout -> fc2 -> dropout, applied to the last dimension.

    `drop` is one rate for both dropouts or a pair (after act, after fc2), as in timm;
    `act_layer` is any module factory, e.g. `functools.partial(nn.GELU, approximate="tanh")`.
    """

    def __init__(self, in_features: int, hidden_features: int | None = None,
                 out_features: int | None = None, act_layer: Callable[[], nn.Module] = nn.GELU,
                 drop: float | tuple[float, float] = 0.0, bias: bool = True):
        super().__init__()
        drop1, drop2 = (drop, drop) if isinstance(drop, (int, float)) else drop
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.in_features = in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop1)
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.drop2 = nn.Dropout(drop2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Mlp expects (..., {self.in_features}), got {tuple(x.shape)}")
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))
