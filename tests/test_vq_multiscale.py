"""Multi-scale residual quantizer (VAR algorithms 1 and 2) and the VQ-VAE around it."""

import pytest
import torch
import torch.nn.functional as F

from learnlib.models import count_parameters, create
from learnlib.var.checkpoints import random_state_dict, vqvae_checkpoint_shapes
from learnlib.vq import (
    VQVAE,
    MultiScaleResidualQuantizer,
    multiscale_decode,
    phi_schedule,
    residual_multiscale_encode,
)

PN = (1, 2, 3, 4)


def _quantizer(**kw):
    q = MultiScaleResidualQuantizer(vocab_size=32, Cvae=4, patch_nums=PN, **kw)
    torch.nn.init.normal_(q.embedding.weight, std=0.5)
    return q


def test_phi_schedule_of_ten_scales():
    assert phi_schedule(10, 4) == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    assert phi_schedule(4, 4) == [0, 1, 2, 3]


def test_quantizer_uses_the_scheduled_phi():
    q = MultiScaleResidualQuantizer(vocab_size=8, Cvae=2, patch_nums=(1, 2, 3, 4, 5, 6, 8, 10, 13, 16))
    convs = list(q.quant_resi.qresi_ls)
    chosen = [convs.index(q.quant_resi[si / 9]) for si in range(10)]
    assert chosen == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    h = torch.randn(1, 2, 4, 4)
    assert torch.allclose(q.phi(4, h), 0.5 * h + 0.5 * torch.nn.Conv2d.forward(convs[1], h), atol=1e-6)


def test_fhat_from_encoding_equals_fhat_from_indices():
    q = _quantizer().eval()
    f = torch.randn(3, 4, 4, 4)
    indices = q.f_to_indices(f)
    assert [tuple(i.shape) for i in indices] == [(3, 1), (3, 4), (3, 9), (3, 16)]
    assert torch.allclose(q.f_to_fhat(f), q.indices_to_fhat(indices), atol=1e-6)


def test_functional_encoding_matches_module_and_identity_phi_decoding():
    q = _quantizer().eval()
    f = torch.randn(2, 4, 4, 4)
    idx, _f_hat = residual_multiscale_encode(f, q.embedding.weight, PN, q.phi)
    assert all(torch.equal(a, b) for a, b in zip(idx, q.f_to_indices(f)))
    idx0, f_hat0 = residual_multiscale_encode(f, q.embedding.weight, PN)
    assert torch.allclose(f_hat0, multiscale_decode(idx0, q.embedding.weight, PN), atol=1e-6)
    # first scale: the code nearest to the spatial mean of f
    mean = f.mean(dim=(2, 3))
    assert torch.equal(idx0[0][:, 0], torch.cdist(mean, q.embedding.weight).argmin(1))


def test_more_scales_reduce_the_residual():
    q = MultiScaleResidualQuantizer(vocab_size=256, Cvae=2, patch_nums=PN, quant_resi=0.0)
    f = torch.randn(4, 2, 4, 4)
    q.embedding.weight.data = torch.randn(256, 2)
    errors = [F.mse_loss(fh, f).item() for fh in q.f_to_fhat(f, all_scales=True)]
    assert errors[-1] < errors[0]


def test_var_input_is_downsampled_cumulative_fhat():
    q = _quantizer().eval()
    f = torch.randn(2, 4, 4, 4)
    indices = q.f_to_indices(f)
    x = q.indices_to_var_input(indices)
    assert x.shape == (2, sum(p * p for p in PN) - 1, 4)
    f_hats = q.f_to_fhat(f, all_scales=True)
    expected = torch.cat([F.interpolate(f_hats[k], size=(PN[k + 1],) * 2, mode="area").flatten(2).transpose(1, 2)
                          for k in range(len(PN) - 1)], dim=1)
    assert torch.allclose(x, expected, atol=1e-6)


def test_multiscale_loss_and_straight_through():
    q = _quantizer(beta=0.25)
    f = torch.randn(2, 4, 4, 4, requires_grad=True)
    out = q(f)
    f_hats = q.f_to_fhat(f.detach(), all_scales=True)
    expected = sum(1.25 * F.mse_loss(fh, f.detach()) for fh in f_hats) / len(PN)
    assert torch.allclose(out.loss, expected, atol=1e-6)
    assert torch.allclose(out.z_q, f_hats[-1], atol=1e-5)
    (out.z_q.sum() + out.loss).backward()
    commit = sum(0.25 * 2 * (f.detach() - fh) / f.numel() for fh in f_hats) / len(PN)
    assert torch.allclose(f.grad, 1 + commit, atol=1e-6)
    assert q.embedding.weight.grad.abs().sum() > 0
    assert q.quant_resi.qresi_ls[0].weight.grad.abs().sum() > 0


def test_multiscale_rejects_wrong_resolution():
    with pytest.raises(ValueError, match="4x4"):
        _quantizer().f_to_indices(torch.randn(1, 4, 5, 5))


def test_vqvae_ch160_parameter_count_and_checkpoint_keys():
    with torch.device("meta"):
        vae = create("vqvae_ch160")
    assert count_parameters(vae) / 1e6 == pytest.approx(108.95, abs=0.01)
    shapes = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    assert shapes == dict(vqvae_checkpoint_shapes())
    assert shapes["quantize.embedding.weight"] == (4096, 32)
    assert shapes["quantize.quant_resi.qresi_ls.0.weight"] == (32, 32, 3, 3)
    assert shapes["encoder.conv_in.weight"] == (160, 3, 3, 3)
    assert shapes["decoder.conv_out.weight"] == (3, 160, 3, 3)
    assert shapes["encoder.down.4.attn.1.qkv.weight"] == (1920, 640, 1, 1)
    assert shapes["decoder.up.4.block.2.conv2.weight"] == (640, 640, 3, 3)


def test_vqvae_strict_loads_reference_layout():
    cfg = {"ch": 16, "ch_mult": (1, 2), "num_res_blocks": 1, "z_channels": 4, "vocab_size": 16, "patch_nums": (1, 2, 4)}
    vae = VQVAE(vocab_size=16, z_channels=4, ch=16, ch_mult=(1, 2), num_res_blocks=1, v_patch_nums=(1, 2, 4),
                norm_groups=8)
    state = random_state_dict(vqvae_checkpoint_shapes(**cfg))
    vae.load_state_dict(state, strict=True)
    assert torch.equal(vae.quantize.embedding.weight, state["quantize.embedding.weight"])
    state["quantize.ema_vocab_hit_SV"] = torch.zeros(7, 16)  # recorded with other scales: replaced
    vae.load_state_dict(state, strict=True)


def test_vqvae_digits_round_trip_and_gradients():
    vae = create("vqvae_digits")
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    recon, quant_loss, usage = vae(x)
    assert recon.shape == x.shape and quant_loss.ndim == 0
    assert 0 < usage["used_fraction"] <= 1
    (F.mse_loss(recon, x) + quant_loss).backward()
    assert vae.encoder.conv_in.weight.grad.abs().sum() > 0
    vae.eval()
    indices = vae.encode_to_indices(x)
    assert [i.shape[1] for i in indices] == [1, 4, 9, 16]
    assert torch.allclose(vae.indices_to_image(indices), vae.reconstruct(x), atol=1e-5)
    assert vae.indices_to_image(indices).abs().max() <= 1
    with pytest.raises(ValueError, match="16, 16"):
        vae.encode(torch.randn(1, 1, 32, 32))
    assert create("vqvae_digits", in_channels=3).encode(torch.randn(1, 3, 16, 16)).shape == (1, 8, 4, 4)


def test_vqvae_digits_learns():
    torch.manual_seed(0)
    from learnlib.data import DigitsDataset

    images = DigitsDataset("train", size=16).images[:256]
    vae = create("vqvae_digits", ch=8)
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3)
    losses = []
    for step in range(20):
        batch = images[torch.randint(0, len(images), (16,))]
        recon, quant_loss, _usage = vae(batch)
        loss = F.mse_loss(recon, batch) + quant_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_multiscale_dead_code_restart_moves_codes_to_features():
    q = _quantizer(dead_code_threshold=1.0).train()
    q.embedding.weight.data[5:] = 100.0  # far from every feature: never chosen
    f = torch.randn(4, 4, 4, 4)
    out = q(f)
    assert out.usage["restarted"] >= 27
    vectors = f.permute(0, 2, 3, 1).reshape(-1, 4)  # (BHW, C)
    restarted = q.embedding.weight.detach()[5:]
    gaps = (restarted[:, None] - vectors[None]).abs().sum(-1).min(dim=1).values
    assert torch.equal(gaps, torch.zeros(27))
