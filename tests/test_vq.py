"""VQ building blocks: conv encoder/decoder, single-scale VectorQuantizer, losses."""

import pytest
import torch
import torch.nn.functional as F

from learnlib.vq import (
    Decoder,
    Downsample2x,
    Encoder,
    ResnetBlock,
    Upsample2x,
    VectorQuantizer,
    codebook_usage,
    nearest_code,
    reconstruction_loss,
    straight_through,
    vq_loss,
    vqvae_loss,
)


def test_nearest_code_matches_brute_force():
    z, codebook = torch.randn(5, 7, 6), torch.randn(20, 6)
    expected = torch.cdist(z.reshape(-1, 6), codebook).argmin(dim=1).reshape(5, 7)
    assert torch.equal(nearest_code(z, codebook), expected)


def test_nearest_code_rejects_mismatched_channels():
    with pytest.raises(ValueError, match="C=6"):
        nearest_code(torch.randn(3, 5), torch.randn(10, 6))


def test_straight_through_value_and_gradient():
    z = torch.randn(4, 3, requires_grad=True)
    zq = torch.randn(4, 3)
    out = straight_through(z, zq)
    assert torch.allclose(out, zq, atol=1e-6)
    (out * torch.arange(12.0).reshape(4, 3)).sum().backward()
    assert torch.equal(z.grad, torch.arange(12.0).reshape(4, 3))


def test_vector_quantizer_loss_and_gradients():
    vq = VectorQuantizer(vocab_size=16, dim=4, beta=0.25)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = vq(z)
    zq = vq.lookup(out.indices)
    mse = F.mse_loss(zq, z.detach())
    assert torch.allclose(out.loss, 1.25 * mse)
    assert torch.allclose(out.z_q, zq)
    out.loss.backward()
    # commitment gradient only on z: d(beta * mean (z - zq)^2)/dz
    assert torch.allclose(z.grad, 0.25 * 2 * (z.detach() - zq) / z.numel(), atol=1e-7)
    assert vq.embedding.weight.grad.abs().sum() > 0
    assert vq_loss(z, zq, beta=0.0).item() == pytest.approx(mse.item(), rel=1e-6)


def test_codebook_usage_statistics():
    usage = codebook_usage(torch.arange(8).repeat(3), vocab_size=16)
    assert usage["perplexity"] == pytest.approx(8.0, rel=1e-5)
    assert usage["used_fraction"] == 0.5
    assert usage["counts"][:8].tolist() == [3.0] * 8


def test_dead_code_restart_uses_encoder_outputs():
    vq = VectorQuantizer(vocab_size=8, dim=3, dead_code_threshold=0.5)
    vq.ema_counts.zero_()
    vq.ema_counts[:2] = 5.0
    vectors = torch.randn(50, 3)
    assert vq.restart_dead_codes(vectors) == 6
    gaps = (vq.embedding.weight[2:].detach()[:, None] - vectors[None]).abs().sum(-1).min(dim=1).values
    assert torch.equal(gaps, torch.zeros(6))
    assert vq.restart_dead_codes(vectors) == 0


def test_downsample_pads_only_right_and_bottom():
    down = Downsample2x(2)
    x = torch.randn(1, 2, 8, 8)
    y = down(x)
    assert y.shape == (1, 2, 4, 4)
    first = F.conv2d(x[..., :3, :3], down.conv.weight, down.conv.bias)
    assert torch.allclose(y[..., :1, :1], first, atol=1e-6)


def test_upsample_doubles_resolution():
    assert Upsample2x(4)(torch.randn(2, 4, 3, 5)).shape == (2, 4, 6, 10)


def test_resnet_block_small_width_and_shortcut():
    block = ResnetBlock(12, 20, dropout=0.1, norm_groups=32)  # gcd picks 4 groups for 12 channels
    assert block.norm1.num_groups == 4
    assert block(torch.randn(2, 12, 4, 4)).shape == (2, 20, 4, 4)


def test_encoder_decoder_shapes_and_block_counts():
    enc = Encoder(ch=8, ch_mult=(1, 2), num_res_blocks=1, in_channels=1, z_channels=4, norm_groups=4)
    dec = Decoder(ch=8, ch_mult=(1, 2), num_res_blocks=1, in_channels=1, z_channels=4, norm_groups=4)
    z = enc(torch.randn(2, 1, 8, 8))
    assert z.shape == (2, 4, 4, 4)
    assert dec(z).shape == (2, 1, 8, 8)
    assert [len(level.block) for level in dec.up] == [2, 2]
    assert len(enc.down[1].attn) == 1 and len(enc.down[0].attn) == 0
    with pytest.raises(ValueError, match="divisible"):
        enc(torch.randn(1, 1, 7, 7))


def test_reconstruction_losses():
    a, b = torch.zeros(2, 3), torch.full((2, 3), 2.0)
    assert reconstruction_loss(a, b, "l1").item() == 2.0
    assert reconstruction_loss(a, b, "l2").item() == 4.0
    assert reconstruction_loss(a, b, "l1+l2").item() == 6.0
    total, parts = vqvae_loss(a, b, torch.tensor(0.5), kind="l1", quant_weight=2.0)
    assert total.item() == 3.0 and parts["quant"] == 0.5
    with pytest.raises(ValueError):
        reconstruction_loss(a, b, "huber")
