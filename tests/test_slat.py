"""Structured-latent VAE: published sizes, TRELLIS checkpoint layout, blocks, Gaussian layout, bad input."""

import math

import pytest
import torch
import torch.nn.functional as F

from learnlib.models import count_parameters, create
from learnlib.slat import (
    AbsolutePositionEmbedder,
    SLatEncoder,
    SLatGaussianDecoder,
    SLatVAE,
    SparseSwinBlock,
    diagonal_gaussian_kl,
    gaussian_params,
    hammersley_points,
    offset_perturbation,
    reparameterize,
    swin_block_shifts,
)
from learnlib.sparse import SparseTensor, random_coords

# --------------------------------------------------------------------------- released layout (data)
# Key -> shape of TRELLIS's released files slat_enc_swin8_B_64l8_fp16.safetensors and
# slat_dec_gs_swin8_B_64l8gs32_fp16.safetensors (SparseTransformerBase with 12 swin blocks of width 768;
# the affine-free LayerNorms and the position embedder hold no tensors).
RELEASED_BLOCK = {
    "attn.to_qkv.weight": (2304, 768), "attn.to_qkv.bias": (2304,),
    "attn.to_out.weight": (768, 768), "attn.to_out.bias": (768,),
    "mlp.mlp.0.weight": (3072, 768), "mlp.mlp.0.bias": (3072,),
    "mlp.mlp.2.weight": (768, 3072), "mlp.mlp.2.bias": (768,),
}
RELEASED_BLOCKS = {f"blocks.{i}.{k}": v for i in range(12) for k, v in RELEASED_BLOCK.items()}
RELEASED_ENCODER = {"input_layer.weight": (768, 1024), "input_layer.bias": (768,), **RELEASED_BLOCKS,
                    "out_layer.weight": (16, 768), "out_layer.bias": (16,)}
RELEASED_DECODER = {"offset_perturbation": (32, 3), "input_layer.weight": (768, 8), "input_layer.bias": (768,),
                    **RELEASED_BLOCKS, "out_layer.weight": (448, 768), "out_layer.bias": (448,)}


def voxels(batch=2, count=120, resolution=16, channels=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    coords = random_coords(batch, count, resolution, generator=g, sort=True)
    return SparseTensor(torch.randn(len(coords), channels, generator=g), coords)


def small(kind, **kw):
    cfg = {"resolution": 16, "model_channels": 32, "latent_channels": 4, "num_blocks": 2, "num_heads": 2,
           "window_size": 8, **kw}
    if kind == "enc":
        return SLatEncoder(in_channels=cfg.pop("in_channels", 16), **cfg)
    return SLatGaussianDecoder(num_gaussians=cfg.pop("num_gaussians", 4), **cfg)


@pytest.mark.parametrize("name, count", [("slat_enc_swin8_b_64l8", 85_817_104), ("slat_dec_gs_swin8_b_64l8", 85_369_024)])
def test_published_parameter_counts(name, count):
    with torch.device("meta"):
        model = create(name)
    assert count_parameters(model) == count


@pytest.mark.parametrize("name, spec", [("slat_enc_swin8_b_64l8", RELEASED_ENCODER),
                                        ("slat_dec_gs_swin8_b_64l8", RELEASED_DECODER)])
def test_state_dict_matches_released_layout_and_loads_strictly(name, spec):
    with torch.device("meta"):
        model = create(name)
        state = {k: torch.empty(shape, dtype=torch.float16) for k, shape in spec.items()}
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == spec
    model.load_state_dict(state, strict=True, assign=True)


def test_vae_registry_and_tiny_sizes():
    vae = create("slat_vae_tiny", in_channels=24)
    assert isinstance(vae, SLatVAE) and vae.encoder.in_channels == 24
    assert (vae.encoder.resolution, vae.encoder.model_channels, vae.encoder.num_blocks, vae.encoder.num_heads) == (32, 64, 2, 4)
    assert vae.decoder.out_channels == 14 * 32
    with torch.device("meta"):
        full = create("slat_vae_swin8_b_64l8", use_checkpoint=True)
    assert full.use_checkpoint and count_parameters(full) == 85_817_104 + 85_369_024


# --------------------------------------------------------------------------- building blocks
def test_position_embedding_is_trellis_sinusoid():
    emb = AbsolutePositionEmbedder(64)  # 10 frequencies per axis, 60 channels + 4 zeros
    pos = torch.tensor([[0, 1, 2], [5, 7, 31]])
    out = emb(pos)
    freqs = 1.0 / 10000 ** (torch.arange(10) / 10)
    for axis in range(3):
        angle = pos[:, axis, None].float() * freqs  # (N, 10)
        torch.testing.assert_close(out[:, 20 * axis:20 * axis + 10], angle.sin())
        torch.testing.assert_close(out[:, 20 * axis + 10:20 * axis + 20], angle.cos())
    assert torch.equal(out[:, 60:], torch.zeros(2, 4))


def test_swin_shifts_alternate_zero_and_half_window():
    assert swin_block_shifts(4, 8) == [(0, 0, 0), (4, 4, 4), (0, 0, 0), (4, 4, 4)]
    dec = small("dec", num_blocks=3)
    assert [b.attn.shift_window for b in dec.blocks] == [(0, 0, 0), (4, 4, 4), (0, 0, 0)]


def dense_block_reference(block, x):
    """The block written out with a dense same-window mask: pre-LN attention and tanh-GELU MLP."""
    feats, coords = x.feats, x.coords.long()
    ws, shift, heads = block.attn.window_size, torch.tensor(block.attn.shift_window), block.attn.num_heads
    win = torch.cat([coords[:, :1], (coords[:, 1:] + shift) // ws], dim=1)  # (N, 4) batch + window
    allowed = (win[:, None, :] == win[None, :, :]).all(-1)  # (N, N)
    h = F.layer_norm(feats, feats.shape[-1:], eps=1e-6)
    q, k, v = block.attn.to_qkv(h).reshape(len(h), 3, heads, -1).unbind(1)  # 3 x (N, H, D)
    scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(q.shape[-1])
    attn = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    out = block.attn.to_out(torch.einsum("hqk,khd->qhd", attn, v).reshape(len(h), -1))
    feats = feats + out
    fc1, fc2 = block.mlp.mlp[0], block.mlp.mlp[2]
    return feats + fc2(F.gelu(fc1(F.layer_norm(feats, feats.shape[-1:], eps=1e-6)), approximate="tanh"))


@pytest.mark.parametrize("shift", [(0, 0, 0), (4, 4, 4)])
def test_swin_block_matches_dense_masked_reference(shift):
    torch.manual_seed(0)
    block = SparseSwinBlock(32, 4, window_size=8, shift_window=shift)
    x = voxels(channels=32)
    expected = dense_block_reference(block, x)
    torch.testing.assert_close(block(x).feats, expected, atol=1e-5, rtol=1e-4)
    with_grid = SparseTensor(x.feats, x.coords, resolution=16)  # windows counted from the grid, not the extent
    torch.testing.assert_close(block(with_grid).feats, expected, atol=1e-5, rtol=1e-4)


def test_xavier_init_and_zero_output_layers():
    enc, dec = small("enc"), small("dec")
    fc = enc.blocks[0].mlp.mlp[0]
    bound = math.sqrt(6 / (fc.in_features + fc.out_features))
    assert fc.weight.abs().max() <= bound and fc.weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(fc.bias) == 0
    for model in (enc, dec):
        assert torch.count_nonzero(model.out_layer.weight) == 0 and torch.count_nonzero(model.out_layer.bias) == 0


# --------------------------------------------------------------------------- encoder and KL
def test_kl_matches_torch_distributions_mean_over_elements():
    mean, logvar = torch.randn(10, 8), torch.randn(10, 8)
    post = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    prior = torch.distributions.Normal(torch.zeros(10, 8), torch.ones(10, 8))
    torch.testing.assert_close(diagonal_gaussian_kl(mean, logvar), torch.distributions.kl_divergence(post, prior).mean())


def test_reparameterized_sample_statistics_and_gradient():
    mean, logvar = torch.full((20000, 1), 2.0, requires_grad=True), torch.full((20000, 1), math.log(0.25), requires_grad=True)
    z = reparameterize(mean, logvar, torch.Generator().manual_seed(0))
    assert abs(z.mean().item() - 2.0) < 0.02 and abs(z.std().item() - 0.5) < 0.02
    z.sum().backward()
    assert torch.all(mean.grad == 1)


def test_encoder_outputs_latent_on_input_voxels():
    enc = small("enc")
    enc.out_layer.weight.data.normal_()
    x = voxels()
    z, mean, logvar = enc(x, sample_posterior=False)
    assert torch.equal(z.coords, x.coords) and z.feats.shape == (len(x), 4)
    assert torch.equal(z.feats, mean) and mean.shape == logvar.shape
    z1, _, _ = enc(x, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(z1.feats, mean)


# --------------------------------------------------------------------------- Gaussian decoder
def radical_inverse_reference(i, base):
    digits = []
    while i:
        i, d = divmod(i, base)
        digits.append(d)
    return sum(d * base ** -(k + 1) for k, d in enumerate(digits))


def test_hammersley_points_and_perturbation_buffer_follow_trellis():
    pts = hammersley_points(32)
    assert pts[5].tolist() == pytest.approx([5 / 32, 0.625, 2 / 3 + 1 / 9])
    for i in (0, 1, 7, 31):
        assert pts[i].tolist() == pytest.approx([i / 32, radical_inverse_reference(i, 2), radical_inverse_reference(i, 3)])
    torch.testing.assert_close(offset_perturbation(32, 1.5), torch.atanh((pts.float() * 2 - 1) / 1.5))
    assert torch.equal(small("dec", num_gaussians=32).offset_perturbation, offset_perturbation(32, 1.5))


def test_untrained_decoder_places_gaussians_at_hammersley_points_of_each_voxel():
    dec = small("dec", num_gaussians=8)
    z = voxels(channels=4)
    gaussians = dec(z)
    assert len(gaussians) == 2
    pts = hammersley_points(8).float()
    for rows, g in zip(z.layout, gaussians):
        v = z.coords[rows, 1:].float()  # (n, 3)
        expected = ((v[:, None] + pts[None]) / 16 - 0.5).reshape(-1, 3)  # (n*8, 3)
        torch.testing.assert_close(g.means, expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(g.scales, torch.full_like(g.scales, math.hypot(0.004, 0.0009)))
        torch.testing.assert_close(g.opacities, torch.full_like(g.opacities, 0.1))
        assert torch.equal(g.quats, torch.tensor([1.0, 0, 0, 0]).expand_as(g.quats))
        torch.testing.assert_close(g.colors, torch.full_like(g.colors, 0.5))


def test_offsets_stay_within_half_voxel_size_of_the_centre():
    raw = torch.randn(5, 14 * 32) * 100
    coords = torch.randint(0, 64, (5, 3))
    out = gaussian_params(raw, coords, 64, offset_perturbation(32, 1.5), 1.5)
    centres = ((coords.float() + 0.5) / 64 - 0.5).repeat_interleave(32, dim=0)  # (5*32, 3)
    assert (out["raw_means"] - centres).abs().max() <= 0.75 / 64 + 1e-7


def test_channel_blocks_reach_their_gaussian_fields():
    raw = torch.zeros(1, 14 * 2)
    raw[0, 6 + 3 + 1] = 1.0  # features_dc block starts at 6: Gaussian 1, component 1
    raw[0, 18 + 4 * 1 + 0] = 2.0  # rotation block starts at 18: Gaussian 1, w
    raw[0, 27] = 3.0  # opacity block starts at 26: Gaussian 1
    out = gaussian_params(raw, torch.zeros(1, 3, dtype=torch.long), 8, None)
    assert out["sh_dc"][1, 1] == 1.0 and out["sh_dc"].abs().sum() == 1.0
    assert out["raw_quats"][1, 0] == pytest.approx(0.2) and out["raw_quats"].abs().sum() == pytest.approx(0.2)
    assert out["raw_opacities"][1, 0] == 3.0 and out["raw_opacities"].abs().sum() == 3.0


def test_render_kwargs_are_the_mip_filter():
    assert small("dec").render_kwargs == {"eps2d": 0.1, "antialiased": True}


# --------------------------------------------------------------------------- VAE and checkpointing
def test_vae_forward_and_checkpointed_gradients_agree():
    torch.manual_seed(0)
    vae = SLatVAE(small("enc"), small("dec"))
    for p in (vae.encoder.out_layer.weight, vae.decoder.out_layer.weight):
        p.data.normal_(std=0.1)
    x = voxels()

    def grads(flag):
        vae.zero_grad()
        vae.use_checkpoint = flag
        out = vae(x, generator=torch.Generator().manual_seed(3))
        loss = sum(g.means.square().sum() + g.scales.sum() + g.opacities.sum() for g in out.gaussians) + out.kl
        loss.backward()
        return out, [p.grad.clone() for p in vae.parameters()]

    out, plain = grads(False)
    _, ckpt = grads(True)
    assert len(out.gaussians) == 2 and sum(len(g) for g in out.gaussians) == len(x) * 4
    assert out.mean.shape == (len(x), 4) and out.kl.ndim == 0
    for a, b in zip(plain, ckpt):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors():
    enc = small("enc")
    x = voxels()
    with pytest.raises(ValueError, match=r"features \(N, 16\)"):
        enc(SparseTensor(torch.randn(len(x), 15), x.coords))
    coords = x.coords.clone()
    coords[0, 1] = 16
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        enc(SparseTensor(x.feats, coords, validate=False))
    shuffled = x.coords.flip(0).contiguous()
    with pytest.raises(ValueError, match="contiguous"):
        enc(SparseTensor(x.feats, shuffled, validate=False))
    with pytest.raises(ValueError, match=r"objects \[2\] have no voxels"):
        enc(SparseTensor(x.feats, x.coords, batch_size=3))
    with pytest.raises(ValueError, match="no voxels at all"):
        enc(SparseTensor(torch.zeros(0, 16), torch.zeros(0, 4, dtype=torch.int32)))
    with pytest.raises(ValueError, match=r"features \(N, 4\)"):
        small("dec")(x)
