"""Load the published VAR checkpoints and sample class-conditional ImageNet images.

The files come from the VAR release (Hugging Face `FoundationVision/var`):
`vae_ch160v4096z32.pth` (the tokenizer) and `var_d16.pth` / `var_d20.pth` / `var_d24.pth` /
`var_d30.pth`. Download them yourself; nothing is fetched at run time::

    from learnlib.var.pretrained import load_pretrained, sample_classes
    vae, var = load_pretrained("vae_ch160v4096z32.pth", "var_d16.pth", depth=16, device="cuda")
    images = sample_classes(var, vae, [207, 360, 387, 974], cfg=4.0, top_k=900, top_p=0.95, seed=0)
    # images: (4, 3, 256, 256) in [0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from learnlib.models import create
from learnlib.var.model import VAR
from learnlib.var.sampling import sample_images
from learnlib.vq.vqvae import VQVAE

VAR_DEPTHS = (16, 20, 24, 30)


def _read_state_dict(path: str | Path) -> dict:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; download it from the VAR release "
                                "(huggingface.co/FoundationVision/var) and pass its path")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def load_pretrained(vae_path: str | Path, var_path: str | Path, depth: int = 16,
                    device: str | torch.device = "cuda") -> tuple[VQVAE, VAR]:
    """Build `vqvae_ch160` and `var_d{depth}`, load both checkpoints strictly, move to `device`, eval mode."""
    if depth not in VAR_DEPTHS:
        raise ValueError(f"depth must be one of {VAR_DEPTHS}, got {depth}")
    vae_state, var_state = _read_state_dict(vae_path), _read_state_dict(var_path)
    with torch.device("meta"):  # no time spent on random init; the checkpoint provides every tensor
        vae = create("vqvae_ch160")
        var = create(f"var_d{depth}")
    vae.load_state_dict(vae_state, strict=True, assign=True)
    var.load_state_dict(var_state, strict=True, assign=True)
    vae, var = vae.to(device).float().eval(), var.to(device).float().eval()
    vae.requires_grad_(False)
    var.requires_grad_(False)
    return vae, var


@torch.no_grad()
def sample_classes(var: VAR, vae: VQVAE, classes: Sequence[int] | torch.Tensor, cfg: float = 4.0,
                   top_k: int = 900, top_p: float = 0.95, seed: int | None = 0, more_smooth: bool = False,
                   autocast_bf16: bool = True) -> torch.Tensor:
    """Images (B, 3, 256, 256) in [0, 1] for ImageNet class ids; defaults are the release demo's."""
    device = var.pos_1LC.device
    labels = torch.as_tensor(classes, dtype=torch.long, device=device).reshape(-1)  # (B,)
    use_bf16 = autocast_bf16 and device.type == "cuda"
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
        images = sample_images(var, vae, labels, cfg=cfg, top_k=top_k, top_p=top_p, seed=seed,
                               more_smooth=more_smooth)
    return images.float()
