"""PSNR: reference values, clamping, the per-image and the whole-batch forms agree."""

import math

import pytest
import torch

from learnlib.metrics import psnr, psnr_per_image


def test_psnr_per_image_reference_values():
    target = torch.zeros(3, 1, 4, 4)
    pred = torch.stack([torch.full((1, 4, 4), v) for v in (0.2, 0.02, 5.0)])  # the last is clamped to 1
    expected = [10 * math.log10(4 / 0.04), 10 * math.log10(4 / 4e-4), 10 * math.log10(4 / 1.0)]
    torch.testing.assert_close(psnr_per_image(pred, target), torch.tensor(expected), atol=1e-4, rtol=0)
    # images in [0, 1]: peak 1, predictions clamped to the range
    unit = psnr_per_image(pred, target, value_range=(0.0, 1.0))
    torch.testing.assert_close(unit, torch.tensor([10 * math.log10(1 / 0.04), 10 * math.log10(1 / 4e-4), 0.0]),
                               atol=1e-4, rtol=0)


def test_whole_batch_psnr_is_the_psnr_of_the_mean_squared_error():
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 5, 5, 3, generator=gen)
    pred = (target + 0.1 * torch.randn(2, 5, 5, 3, generator=gen)).clamp(0, 1)
    mse = float(((pred - target) ** 2).mean())
    assert psnr(pred, target) == pytest.approx(10 * math.log10(1 / mse), rel=1e-5)
    # one image: the per-image value equals the whole-batch one
    assert psnr(pred[:1], target[:1]) == pytest.approx(float(psnr_per_image(pred[:1], target[:1], (0.0, 1.0))[0]),
                                                       rel=1e-6)
    assert psnr(target, target) > 100  # a perfect match is capped, not infinite


def test_psnr_rejects_bad_input():
    with pytest.raises(ValueError, match=r"same shape.*\(2, 3\).*\(3, 2\)"):
        psnr(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="value_range"):
        psnr_per_image(torch.zeros(2, 3), torch.zeros(2, 3), value_range=2.0)
