"""Load TRELLIS's released structured-latent VAE weights into the published-size models.

The files are in the `ckpts/` folder of the Hugging Face repository microsoft/TRELLIS-image-large:
`slat_enc_swin8_B_64l8_fp16.safetensors` (encoder) and
`slat_dec_gs_swin8_B_64l8gs32_fp16.safetensors` (Gaussian decoder). Download them yourself into
one folder; nothing is fetched at run time. Then either::

    from learnlib.slat.pretrained import load_pretrained
    vae = load_pretrained("vae", checkpoint_dir="~/trellis/ckpts")      # or set LEARNLIB_TRELLIS_CKPTS

or by hand::

    import safetensors.torch
    from learnlib.models import create
    decoder = create("slat_dec_gs_swin8_b_64l8")
    decoder.load_state_dict(safetensors.torch.load_file(".../slat_dec_gs_swin8_B_64l8gs32_fp16.safetensors"),
                            strict=True)

The transformer blocks are stored in float16 (TRELLIS trains them in fp16); loading casts them to
the model's float32 parameters.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from learnlib.models import create
from learnlib.slat.vae import SLatVAE

CHECKPOINT_DIR_ENV = "LEARNLIB_TRELLIS_CKPTS"
RELEASED_FILES = {
    "encoder": "slat_enc_swin8_B_64l8_fp16.safetensors",
    "decoder": "slat_dec_gs_swin8_B_64l8gs32_fp16.safetensors",
}
MODEL_NAMES = {"encoder": "slat_enc_swin8_b_64l8", "decoder": "slat_dec_gs_swin8_b_64l8"}


def released_path(which: str, checkpoint_dir: str | Path | None = None) -> Path:
    """Path of the released file for `which` ("encoder" or "decoder") in `checkpoint_dir`
    (default: the folder named by the LEARNLIB_TRELLIS_CKPTS environment variable)."""
    if which not in RELEASED_FILES:
        raise ValueError(f"which must be one of {sorted(RELEASED_FILES)}, got {which!r}")
    folder = checkpoint_dir if checkpoint_dir is not None else os.environ.get(CHECKPOINT_DIR_ENV)
    if folder is None:
        raise FileNotFoundError(f"no checkpoint folder given: pass checkpoint_dir or set {CHECKPOINT_DIR_ENV} to the "
                                "folder holding TRELLIS's ckpts/ files (huggingface.co/microsoft/TRELLIS-image-large)")
    path = Path(folder).expanduser() / RELEASED_FILES[which]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; download ckpts/{RELEASED_FILES[which]} from "
                                "huggingface.co/microsoft/TRELLIS-image-large into that folder")
    return path


def _load_one(which: str, checkpoint_dir: str | Path | None, device: str | torch.device) -> nn.Module:
    from safetensors.torch import load_file

    state = load_file(str(released_path(which, checkpoint_dir)))
    with torch.device("meta"):  # the checkpoint provides every tensor
        model = create(MODEL_NAMES[which])
    model.load_state_dict(state, strict=True, assign=True)
    return model.float().to(device).eval()


def load_pretrained(which: str = "vae", checkpoint_dir: str | Path | None = None,
                    device: str | torch.device = "cpu") -> nn.Module:
    """The released "encoder", "decoder" or both as an SLatVAE ("vae"), strictly loaded, float32, eval mode."""
    if which == "vae":
        return SLatVAE(_load_one("encoder", checkpoint_dir, device), _load_one("decoder", checkpoint_dir, device)).eval()
    if which not in RELEASED_FILES:
        raise ValueError(f"which must be 'vae', 'encoder' or 'decoder', got {which!r}")
    return _load_one(which, checkpoint_dir, device)
