"""SLat VAE losses: LPIPS-VGG parity with the lpips package, SSIM, regularizers, the weighted total."""

import importlib.util
import math
import sys
import types

import pytest
import torch

from learnlib.slat import (
    LPIPSVGG,
    TINY_LOSS_WEIGHTS,
    TRELLIS_LOSS_WEIGHTS,
    VGG16Features,
    composite_target,
    opacity_regularizer,
    slat_vae_loss,
    volume_regularizer,
)
from learnlib.splat import Gaussians


def random_vgg(seed=0):
    torch.manual_seed(seed)
    vgg = VGG16Features()
    for m in vgg.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
            torch.nn.init.normal_(m.bias, std=0.1)
    return vgg


def test_vgg16_layout_matches_torchvision_names_and_loads_a_torchvision_file(tmp_path):
    vgg = random_vgg()
    names = [k for k in vgg.state_dict()]
    assert names[:4] == ["features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias"]
    assert names[-2:] == ["features.28.weight", "features.28.bias"] and len(names) == 26
    state = {**vgg.state_dict(), "classifier.6.bias": torch.zeros(1000)}  # torchvision files hold the classifier too
    torch.save(state, tmp_path / "vgg16.pth")
    fresh = VGG16Features().load_torchvision(tmp_path / "vgg16.pth")
    torch.testing.assert_close(fresh.features[28].weight, vgg.features[28].weight)


def test_missing_backbone_weights_raise_a_clear_error(monkeypatch):
    monkeypatch.delenv("LEARNLIB_VGG16_WEIGHTS", raising=False)
    with pytest.raises(FileNotFoundError, match="LEARNLIB_VGG16_WEIGHTS"):
        LPIPSVGG()


@pytest.fixture
def lpips_package(monkeypatch):
    """The lpips package, imported with a stand-in torchvision that hands it our VGG16 features."""
    if importlib.util.find_spec("lpips") is None or importlib.util.find_spec("scipy") is None:
        pytest.skip("needs the lpips package (pip install --no-deps lpips==0.1.4) and scipy")
    backbone = random_vgg(seed=1)
    fake_models = types.SimpleNamespace(vgg16=lambda *a, **k: types.SimpleNamespace(features=backbone.features))
    fake = types.ModuleType("torchvision")
    fake.models = fake_models
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    for name in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
        monkeypatch.delitem(sys.modules, name)
    import lpips

    yield lpips, backbone
    for name in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
        del sys.modules[name]  # this copy is bound to the stand-in torchvision


def test_lpips_matches_the_lpips_package_with_the_same_backbone(lpips_package):
    lpips, backbone = lpips_package
    reference = lpips.LPIPS(net="vgg", verbose=False).eval()
    ours = LPIPSVGG(load_backbone=False)
    ours.net.load_state_dict(backbone.state_dict())
    torch.manual_seed(2)
    x0, x1 = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = reference(x0, x1).flatten()
        got = ours(x0, x1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert torch.all(got > 0) and ours(x0, x0).abs().max() < 1e-6


def gaussians_with(scales, opacities):
    n = len(scales)
    quats = torch.tensor([1.0, 0, 0, 0]).expand(n, 4)
    return Gaussians.from_activated(torch.zeros(n, 3), scales, quats, opacities, torch.full((n, 3), 0.5),
                                    scaling_bias=4e-3, min_kernel_size=9e-4)


def test_regularizers_are_mean_volume_and_mean_squared_transparency():
    g1 = gaussians_with(torch.tensor([[0.01, 0.02, 0.03]]), torch.tensor([0.5]))
    g2 = gaussians_with(torch.tensor([[0.1, 0.1, 0.1], [0.2, 0.01, 0.05]]), torch.tensor([0.9, 0.2]))
    assert volume_regularizer([g1, g2]).item() == pytest.approx((6e-6 + 1e-3 + 1e-4) / 3, rel=1e-4)
    assert opacity_regularizer([g1, g2]).item() == pytest.approx((0.25 + 0.01 + 0.64) / 3, rel=1e-4)


def test_total_loss_weights_every_term_as_trellis():
    torch.manual_seed(0)
    render, target = torch.rand(2, 2, 3, 16, 16), torch.rand(2, 2, 3, 16, 16)
    g = [gaussians_with(torch.tensor([[0.01, 0.02, 0.03]]), torch.tensor([0.5]))]
    mean, logvar = torch.randn(5, 8), torch.randn(5, 8)
    calls = []

    def fake_lpips(x0, x1):
        calls.append((x0.min().item() >= -1, x0.max().item() <= 1))
        return (x0 - x1).abs().mean(dim=(1, 2, 3))

    loss, terms = slat_vae_loss(render, target, g, mean, logvar, TRELLIS_LOSS_WEIGHTS, lpips_fn=fake_lpips)
    assert calls == [(True, True)]
    assert terms["lpips"].item() == pytest.approx(2 * terms["l1"].item(), rel=1e-5)  # [-1, 1] doubles distances
    expected = (terms["l1"] + 0.2 * terms["ssim"] + 0.2 * terms["lpips"] + 1e-6 * terms["kl"]
                + 1e4 * terms["reg_vol"] + 1e-3 * terms["reg_opacity"])
    torch.testing.assert_close(loss, expected)
    _, tiny = slat_vae_loss(render, target, g, mean, logvar, TINY_LOSS_WEIGHTS)
    assert "lpips" not in tiny
    with pytest.raises(ValueError, match="lpips_fn"):
        slat_vae_loss(render, target, g, mean, logvar)


def test_composite_target_blends_background():
    image, alpha = torch.ones(1, 3, 2, 2), torch.tensor([[[1.0, 0.0], [0.5, 0.25]]])
    out = composite_target(image, alpha, torch.tensor([[0.0, 0.0, 1.0]]))
    assert out[0, 0].tolist() == [[1.0, 0.0], [0.5, 0.25]] and out[0, 2].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert not math.isnan(out.sum().item())
