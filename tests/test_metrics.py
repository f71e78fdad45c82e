"""PSNR and SSIM: reference values, clamping, both SSIM paddings against the formula written out here,
the valid one against pytorch-msssim."""

import math

import pytest
import torch
import torch.nn.functional as F

from learnlib.metrics import psnr, psnr_per_image, ssim, ssim_per_image


def test_psnr_per_image_reference_values():
    target = torch.zeros(3, 1, 4, 4)
    pred = torch.stack([torch.full((1, 4, 4), v) for v in (0.2, 0.02, 5.0)])  # the last is clamped to 1
    expected = [10 * math.log10(4 / 0.04), 10 * math.log10(4 / 4e-4), 10 * math.log10(4 / 1.0)]
    torch.testing.assert_close(psnr_per_image(pred, target, value_range=(-1.0, 1.0)), torch.tensor(expected), atol=1e-4, rtol=0)
    # images in [0, 1] (the default): peak 1, predictions clamped to the range
    unit = psnr_per_image(pred, target)
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


def written_out_ssim_map(a, b, zero_padded):
    """The SSIM map with an 11 x 11 Gaussian window (sigma 1.5) as one 2D convolution: zero-padded
    like TRELLIS's and 3DGS's `conv2d(..., padding=window_size // 2)`, or only where the window fits."""
    g = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).expand(a.shape[1], 1, 11, 11)

    def blur(x):
        return F.conv2d(x, w, padding=5 if zero_padded else 0, groups=a.shape[1])

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def _pair(seed=0, size=24):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(2, 3, size, size, generator=gen)
    return a, (a + 0.2 * torch.randn(a.shape, generator=gen)).clamp(0, 1)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_ssim_equals_the_written_out_formula(padding):
    a, b = _pair()
    expected = written_out_ssim_map(a, b, zero_padded=padding == "same").flatten(1).mean(1)  # (B,)
    torch.testing.assert_close(ssim_per_image(a, b, padding=padding), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(ssim(a, b, padding=padding), expected.mean(), atol=1e-5, rtol=0)
    assert torch.allclose(ssim_per_image(a, a, padding=padding), torch.ones(2), atol=1e-6)


def test_the_two_paddings_differ_and_zero_padding_reaches_small_images():
    a, b = _pair(seed=1, size=32)
    valid, same = ssim(a, b, padding="valid"), ssim(a, b, padding="same")
    assert abs(valid - same) > 1e-3  # the borders count: not the same metric
    with pytest.raises(ValueError, match="at least 11"):
        ssim(a[..., :8, :8], b[..., :8, :8])
    assert 0 < ssim(a[..., :8, :8], b[..., :8, :8], padding="same") < 1
    with pytest.raises(ValueError, match="padding"):
        ssim(a, b, padding="reflect")


def test_ssim_valid_matches_pytorch_msssim_and_scales_with_value_range():
    msssim = pytest.importorskip("pytorch_msssim")
    a, b = _pair(seed=2)
    theirs = msssim.ssim(a, b, data_range=1.0, size_average=False, win_size=11, win_sigma=1.5)
    torch.testing.assert_close(ssim_per_image(a, b), theirs, atol=1e-6, rtol=0)
    # the same images scaled to [0, 2]: the constants scale with the range's width, SSIM is unchanged
    torch.testing.assert_close(ssim_per_image(a * 2, b * 2, value_range=(0.0, 2.0)),
                               ssim_per_image(a, b), atol=1e-5, rtol=0)


def test_ssim_is_differentiable():
    a, b = _pair(seed=3)
    a.requires_grad_(True)
    (1 - ssim(a, b, padding="same")).backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_masked_psnr_measures_only_the_object():
    from learnlib.metrics import masked_psnr_per_image, object_mask

    target = torch.zeros(2, 3, 8, 8)
    target[:, :, 2:4, 2:4] = 0.5  # a 2 x 2 object on black
    pred = torch.zeros(2, 3, 8, 8)
    pred[1, :, 2:4, 2:4] = 0.4  # image 1 gets the object 0.1 off; image 0 renders nothing
    alpha = (target[:, 0] > 0).float()
    mask = object_mask(alpha, (pred[:, 0] > 0).float())
    got = masked_psnr_per_image(pred, target, mask)
    torch.testing.assert_close(got, torch.tensor([10 * math.log10(1 / 0.25), 10 * math.log10(1 / 0.01)]),
                               atol=1e-4, rtol=0)
    # the full-image PSNR of the all-black render is far higher: the background flatters it
    assert psnr_per_image(pred[:1], target[:1])[0] > got[0] + 10
    assert torch.isnan(masked_psnr_per_image(pred, target, torch.zeros(2, 8, 8, dtype=torch.bool))).all()
    with pytest.raises(ValueError, match="mask"):
        masked_psnr_per_image(pred, target, mask[0])


def test_silhouette_iou():
    from learnlib.metrics import silhouette_iou

    a = torch.zeros(3, 4, 4)
    b = torch.zeros(3, 4, 4)
    a[0, :2] = 1  # 8 pixels
    b[0, 1:3] = 1  # 8 pixels, 4 shared: IoU 4 / 12
    a[1] = 1
    torch.testing.assert_close(silhouette_iou(a, b), torch.tensor([1 / 3, 0.0, 1.0]))
