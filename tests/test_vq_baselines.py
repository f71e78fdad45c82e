"""The downsample-quantize-upsample codec: bit counts, quantization levels, exactness limits."""

import pytest
import torch
import torch.nn.functional as F

from learnlib.vq.baselines import (
    downsample_bits_per_image,
    downsample_upsample,
    quantize_uniform,
    token_bits_per_image,
)


def test_bit_counts():
    assert token_bits_per_image((1, 2, 3, 4), 64) == pytest.approx(180.0)
    assert token_bits_per_image((1, 2, 3, 4, 5, 6, 8, 10, 13, 16), 4096) == pytest.approx(680 * 12)
    assert downsample_bits_per_image(6, 5) == 180
    assert downsample_bits_per_image(4, 8, channels=3) == 384
    with pytest.raises(ValueError, match="vocab_size"):
        token_bits_per_image((1, 2), 1)


def test_uniform_quantization_uses_2_to_the_bits_levels_including_the_ends():
    x = torch.linspace(-1.5, 1.5, 1001)
    q = quantize_uniform(x, bits=2)
    assert sorted(set(q.tolist())) == pytest.approx([-1.0, -1 / 3, 1 / 3, 1.0])
    inside = x.clamp(-1, 1)
    assert (quantize_uniform(inside, bits=5) - inside).abs().max() <= 1 / 31 + 1e-6  # half a step of 2/31
    with pytest.raises(ValueError, match="high > low"):
        quantize_uniform(x, 3, (1.0, 1.0))


def test_codec_is_exact_on_what_it_can_represent_and_lossy_otherwise():
    flat = torch.full((2, 1, 16, 16), 1.0)
    assert torch.equal(downsample_upsample(flat, 4, 1), flat)  # a constant at a level survives any size
    images = torch.rand(3, 1, 16, 16) * 2 - 1
    assert torch.allclose(downsample_upsample(images, 16, 16), images, atol=1e-4)  # full size, fine levels
    small = F.interpolate(images, size=(6, 6), mode="area")
    expected = F.interpolate(quantize_uniform(small, 5), size=(16, 16), mode="bilinear", align_corners=False)
    out = downsample_upsample(images, 6, 5)
    assert out.shape == images.shape and torch.allclose(out, expected)
    coarse_error = (downsample_upsample(images, 2, 8) - images).square().mean()
    fine_error = (downsample_upsample(images, 8, 8) - images).square().mean()
    assert fine_error < coarse_error
    with pytest.raises(ValueError, match="size must lie"):
        downsample_upsample(images, 17, 4)
