"""A small multi-layer perceptron classifier: the course's first model."""

from __future__ import annotations

import torch
from torch import nn

from learnlib.models import register


class MLPClassifier(nn.Module):
    """Flatten an image and classify it with a stack of Linear-GELU layers."""

    def __init__(self, in_features: int = 64, hidden: int = 128, depth: int = 2,
                 num_classes: int = 10, dropout: float = 0.1):
        super().__init__()
        self.in_features = in_features
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)  # (B, C*H*W)
        if flat.shape[1] != self.in_features:
            raise ValueError(
                f"MLPClassifier expects inputs with {self.in_features} features per item, "
                f"got shape {tuple(x.shape)} ({flat.shape[1]} features)"
            )
        return self.net(flat)  # (B, num_classes)


@register("mlp_digits")
def mlp_digits(**overrides) -> MLPClassifier:
    """MLP for 8x8 scikit-learn digits."""
    return MLPClassifier(**{"in_features": 64, "hidden": 128, "depth": 2, "num_classes": 10, **overrides})
