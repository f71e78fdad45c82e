"""Loading released SLat VAE files: clear errors when missing, strict fp16 -> fp32 round trip."""

import pytest
import torch
from safetensors.torch import save_file

from learnlib.models import create
from learnlib.slat import pretrained
from learnlib.sparse import SparseTensor, random_coords


def test_missing_folder_and_file_raise_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv(pretrained.CHECKPOINT_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=pretrained.CHECKPOINT_DIR_ENV):
        pretrained.load_pretrained("encoder")
    with pytest.raises(FileNotFoundError, match="slat_dec_gs_swin8_B_64l8gs32_fp16.safetensors"):
        pretrained.load_pretrained("decoder", checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="'vae', 'encoder' or 'decoder'"):
        pretrained.load_pretrained("unet", checkpoint_dir=tmp_path)


def test_load_pretrained_reads_fp16_safetensors_strictly(tmp_path, monkeypatch):
    """The release path end to end, on the tiny configuration (files written like TRELLIS's: fp16 blocks)."""
    torch.manual_seed(0)
    source = create("slat_vae_tiny")
    for p in source.parameters():
        p.data.normal_(std=0.05)
    for which, module in (("encoder", source.encoder), ("decoder", source.decoder)):
        state = {k: (v.half() if k.startswith("blocks.") else v).contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(tmp_path / pretrained.RELEASED_FILES[which]))
    monkeypatch.setattr(pretrained, "MODEL_NAMES", {"encoder": "slat_enc_tiny", "decoder": "slat_dec_gs_tiny"})
    monkeypatch.setenv(pretrained.CHECKPOINT_DIR_ENV, str(tmp_path))
    loaded = pretrained.load_pretrained("vae")
    assert all(p.dtype == torch.float32 for p in loaded.parameters()) and not loaded.training
    coords = random_coords(1, 200, 32, generator=torch.Generator().manual_seed(1), sort=True)
    x = SparseTensor(torch.randn(len(coords), 32), coords)
    source.half().float()  # the same fp16 rounding of the blocks as in the file
    with torch.no_grad():
        ref = source.decoder(source.encoder(x, sample_posterior=False)[0])[0]
        got = loaded.decoder(loaded.encoder(x, sample_posterior=False)[0])[0]
    torch.testing.assert_close(got.means, ref.means, atol=1e-3, rtol=0)
