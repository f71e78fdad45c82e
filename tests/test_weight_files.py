"""DINOv2 and LPIPS weight paths that point at the wrong file: one error naming the file and what it must hold."""

import pytest
import torch

from learnlib.errors import CheckpointError
from learnlib.slat.lpips_vgg import LPIPSVGG
from learnlib.vit.dinov2 import dinov2_vitl14_reg, load_dinov2
from learnlib.weights import FORMAT

SMALL = {"embed_dim": 32, "depth": 2, "num_heads": 2}


@pytest.fixture
def wrong_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("these are not weights\n")
    checkpoint = tmp_path / "last.pt"
    torch.save({"format": FORMAT, "model": {"w": torch.zeros(2)}, "step": 3}, checkpoint)
    other = tmp_path / "other.pth"
    torch.save({"layer.weight": torch.zeros(2, 2)}, other)
    return {"text": text, "checkpoint": checkpoint, "other": other}


@pytest.mark.parametrize("kind, says", [("text", "could not be read as a weights file"),
                                        ("checkpoint", "is a learnlib training checkpoint"),
                                        ("other", "does not fit this model")])
def test_dinov2_names_the_file_and_what_it_must_hold(wrong_files, kind, says):
    path = wrong_files[kind]
    with pytest.raises(CheckpointError, match=f"{path}.*{says}|{says}.*{path}") as err:
        load_dinov2(path, **SMALL)
    assert "dinov2_vitl14_reg4_pretrain.pth" in str(err.value)
    assert "weights_only=False" not in str(err.value)


@pytest.mark.parametrize("kind", ["text", "checkpoint", "other"])
def test_lpips_backbone_and_heads_name_the_file_and_what_it_must_hold(wrong_files, kind):
    path = wrong_files[kind]
    with pytest.raises(CheckpointError, match="vgg16-397923af.pth") as err:
        LPIPSVGG(backbone_path=path, load_heads=False)
    assert str(path) in str(err.value)
    with pytest.raises(CheckpointError, match="LPIPS v0.1 VGG heads") as err:
        LPIPSVGG(load_backbone=False, heads_path=path)
    assert str(path) in str(err.value)


def test_right_files_still_load(tmp_path):
    model = dinov2_vitl14_reg(**SMALL)
    path = tmp_path / "dinov2.pth"
    torch.save({"model": model.state_dict()}, path)  # the "model" wrapper some releases use
    loaded = load_dinov2(path, **SMALL)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    lpips = LPIPSVGG(load_backbone=False, load_heads=False)
    heads = tmp_path / "vgg.pth"
    torch.save({f"lin{k}.model.1.weight": torch.full_like(lin.weight, k) for k, lin in enumerate(lpips.lins)}, heads)
    lpips.load_heads(heads)
    assert all(float(lin.weight.mean()) == k for k, lin in enumerate(lpips.lins))
