"""LPIPS with a VGG16 backbone (Zhang et al. 2018, version 0.1), in plain PyTorch.

LPIPS(x0, x1) = sum over the five VGG16 stages l of mean_{h,w} w_l . (f0_l - f1_l)^2, where f_l are
the stage's ReLU features (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) normalised to unit length
over channels, w_l >= 0 are the learned linear heads, and the inputs in [-1, 1] are first shifted
and scaled per channel by the ImageNet statistics LPIPS uses.

Weights are read from local files, never downloaded:
- the backbone from a torchvision VGG16 state dict (`vgg16-397923af.pth`: keys `features.N.*`;
  `classifier.*` keys are ignored), path given as `backbone_path` or the LEARNLIB_VGG16_WEIGHTS
  environment variable;
- the heads from the `lpips` package's shipped `weights/v0.1/vgg.pth` (found without importing
  `lpips`, which needs torchvision), or `heads_path`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from learnlib.weights import load_released_weights, read_state_dict

VGG16_WEIGHTS_ENV = "LEARNLIB_VGG16_WEIGHTS"
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
STAGE_ENDS = (4, 9, 16, 23, 30)  # features[:4] ends at relu1_2, [:9] relu2_2, ... [:30] relu5_3
STAGE_CHANNELS = (64, 128, 256, 512, 512)
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


class VGG16Features(nn.Module):
    """torchvision's VGG16 `features` stack (13 convs + ReLUs + 5 max-pools, same `features.N` names)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG16_CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU()]
                channels = item
        self.features = nn.Sequential(*layers)

    def stages(self, x: Tensor) -> list[Tensor]:
        """The five ReLU outputs relu1_2 ... relu5_3 LPIPS compares."""
        out, start = [], 0
        for end in STAGE_ENDS:
            for layer in self.features[start:end]:
                x = layer(x)
            out.append(x)
            start = end
        return out

    def load_torchvision(self, path: str | Path | None = None) -> VGG16Features:
        """Load the `features.*` tensors of a torchvision VGG16 state dict file (strict on those keys)."""
        path = path if path is not None else os.environ.get(VGG16_WEIGHTS_ENV)
        if path is None or not Path(path).expanduser().is_file():
            raise FileNotFoundError(
                f"VGG16 backbone weights not found (got {path!r}): LPIPS needs torchvision's ImageNet VGG16 "
                f"state dict (vgg16-397923af.pth) as a local file; pass its path or set {VGG16_WEIGHTS_ENV}")
        what = "torchvision's ImageNet VGG16 state dict (vgg16-397923af.pth, keys features.*)"
        state = read_state_dict(path, what)
        load_released_weights(self, {k: v for k, v in state.items() if k.startswith("features.")}, path, what)
        return self


def lpips_heads_path() -> Path:
    """The VGG v0.1 heads file shipped in the `lpips` wheel (located without importing the package)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the lpips package is not installed: `pip install --no-deps lpips==0.1.4` ships "
                                "the LPIPS heads (weights/v0.1/vgg.pth), or pass heads_path")
    return Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / "vgg.pth"


def _unit_channels(x: Tensor, eps: float = 1e-10) -> Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPSVGG(nn.Module):
    """LPIPS-VGG distance [B] between images (B, 3, H, W) in [-1, 1]. Frozen, eval mode.

    Args:
        backbone_path: torchvision VGG16 weights file (default: $LEARNLIB_VGG16_WEIGHTS); None with
            `load_backbone=False` keeps random weights (tests).
        heads_path: LPIPS heads file (default: the lpips package's v0.1 VGG heads).
    """

    def __init__(self, backbone_path: str | Path | None = None, heads_path: str | Path | None = None,
                 load_backbone: bool = True, load_heads: bool = True) -> None:
        super().__init__()
        self.net = VGG16Features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in STAGE_CHANNELS)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        if load_backbone:
            self.net.load_torchvision(backbone_path)
        if load_heads:
            self.load_heads(heads_path)
        self.requires_grad_(False)
        self.eval()

    def load_heads(self, path: str | Path | None = None) -> None:
        """Read the lpips package's `lin{k}.model.1.weight` tensors into `lins.{k}.weight`."""
        path = Path(path) if path is not None else lpips_heads_path()
        if not path.is_file():
            raise FileNotFoundError(f"LPIPS heads file {path} not found")
        what = "the LPIPS v0.1 VGG heads (lin0.model.1.weight ... lin4.model.1.weight, the lpips package's vgg.pth)"
        state = read_state_dict(path, what)
        heads = {f"{k}.weight": state[f"lin{k}.model.1.weight"] for k in range(len(self.lins))
                 if f"lin{k}.model.1.weight" in state}
        load_released_weights(self.lins, heads, path, what)

    def forward(self, x0: Tensor, x1: Tensor) -> Tensor:
        if x0.shape != x1.shape or x0.dim() != 4 or x0.shape[1] != 3:
            raise ValueError(f"expected two images (B, 3, H, W) of one shape, got {list(x0.shape)} and {list(x1.shape)}")
        f0 = self.net.stages((x0 - self.shift) / self.scale)
        f1 = self.net.stages((x1 - self.shift) / self.scale)
        total = 0.0
        for lin, a, b in zip(self.lins, f0, f1):
            diff = (_unit_channels(a) - _unit_channels(b)).pow(2)  # (B, C_l, H_l, W_l)
            total = total + lin(diff).mean(dim=(2, 3))  # (B, 1)
        return total[:, 0]  # (B,)
