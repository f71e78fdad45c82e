"""VAR sampling: KV cache parity, guidance, top-k / top-p, seeding, pretrained loading."""

import pytest
import torch

from learnlib.models import create
from learnlib.var import autoregressive_sample, cfg_mix, sample_images, top_k_top_p_filter
from learnlib.var.pretrained import load_pretrained, sample_classes


def models(device="cpu"):
    torch.manual_seed(0)
    vae = create("vqvae_digits").eval().to(device)
    # strong AdaLN gates so attention really changes the logits
    var = create("var_digits", init_adaln_gamma=1.0, init_adaln=1.0, init_head=1.0).eval().to(device)
    return vae, var


def test_cfg_mix_ramps_over_scales():
    cond, uncond = torch.tensor([2.0, 1.0]), torch.tensor([1.0, 3.0])
    assert torch.equal(cfg_mix(cond, uncond, cfg=4.0, k=0, K=5), cond)
    assert torch.allclose(cfg_mix(cond, uncond, cfg=4.0, k=4, K=5), 5 * cond - 4 * uncond)
    assert torch.allclose(cfg_mix(cond, uncond, cfg=4.0, k=2, K=5), 3 * cond - 2 * uncond)
    with pytest.raises(ValueError):
        cfg_mix(cond, uncond[:1], 1.0, 0, 2)


def test_top_k_top_p_filter_reference_values():
    logits = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3]]))
    keep = torch.isfinite(top_k_top_p_filter(logits, top_k=2))
    assert keep.tolist() == [[False, True, False, True]]
    keep = torch.isfinite(top_k_top_p_filter(logits, top_p=0.7))
    assert keep.tolist() == [[False, True, False, True]]
    keep = torch.isfinite(top_k_top_p_filter(logits, top_k=3, top_p=0.99))
    assert keep.tolist() == [[False, True, True, True]]
    assert torch.isfinite(top_k_top_p_filter(logits, top_p=1e-6)).sum() == 1
    assert torch.equal(top_k_top_p_filter(logits), logits)


@pytest.mark.parametrize("cfg", [0.0, 2.0])
def test_kv_cache_logits_equal_uncached(cfg):
    vae, var = models()
    labels = torch.tensor([1, 7, 3])
    cached = autoregressive_sample(var, vae.quantize, labels, cfg=cfg, top_k=1, seed=0, return_logits=True)
    plain = autoregressive_sample(var, vae.quantize, labels, cfg=cfg, top_k=1, seed=0, return_logits=True,
                                  use_kv_cache=False)
    for a, b in zip(cached.logits, plain.logits):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)
    assert all(torch.equal(a, b) for a, b in zip(cached.indices, plain.indices))
    assert torch.allclose(cached.f_hat, vae.quantize.indices_to_fhat(cached.indices), atol=1e-5)
    assert all(b.attn.cached_k is None for b in var.blocks)


def test_sampler_logits_equal_teacher_forced_logits():
    vae, var = models()
    labels = torch.tensor([2, 5])
    out = autoregressive_sample(var, vae.quantize, labels, cfg=1.5, seed=1, return_logits=True)
    forced = var(labels, vae.quantize.indices_to_var_input(out.indices))
    conditional = torch.cat([lg[:2] for lg in out.logits], dim=1)
    assert torch.allclose(forced, conditional, atol=1e-5)


def test_seeded_sampling_is_reproducible():
    vae, var = models()
    labels = torch.tensor([0, 4])
    a = autoregressive_sample(var, vae.quantize, labels, top_k=10, top_p=0.9, seed=3)
    b = autoregressive_sample(var, vae.quantize, labels, top_k=10, top_p=0.9, seed=3)
    c = autoregressive_sample(var, vae.quantize, labels, top_k=10, top_p=0.9, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.indices, b.indices))
    assert not all(torch.equal(x, y) for x, y in zip(a.indices, c.indices))


def test_smooth_sampling_and_images():
    vae, var = models()
    labels = torch.tensor([1, -1])  # -1: unconditional
    out = autoregressive_sample(var, vae.quantize, labels, more_smooth=True, seed=0)
    assert out.f_hat.shape == (2, 8, 4, 4)
    images = sample_images(var, vae, labels, seed=0)
    assert images.shape == (2, 1, 16, 16) and 0 <= images.min() and images.max() <= 1


def test_sampler_rejects_mismatched_tokenizer():
    vae = create("vqvae_ch160", ch=16, ch_mult=(1, 2), v_patch_nums=(1, 2, 4), norm_groups=8)
    _, var = models()
    with pytest.raises(ValueError, match="do not match"):
        autoregressive_sample(var, vae.quantize, torch.tensor([0]))


def test_sampling_zero_labels_is_a_clear_error():
    vae, var = models()
    with pytest.raises(ValueError, match=r"labels is empty.*at least one class id"):
        autoregressive_sample(var, vae.quantize, torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="labels is empty"):
        sample_images(var, vae, torch.tensor([], dtype=torch.long))


def test_load_pretrained_reports_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="VAR release"):
        load_pretrained(tmp_path / "vae.pth", tmp_path / "var.pth", depth=16, device="cpu")
    with pytest.raises(ValueError, match="depth"):
        load_pretrained(tmp_path / "vae.pth", tmp_path / "var.pth", depth=12, device="cpu")


@pytest.mark.gpu
def test_kv_cache_parity_and_sampling_on_cuda():
    vae, var = models("cuda")
    labels = torch.tensor([1, 7], device="cuda")
    cached = autoregressive_sample(var, vae.quantize, labels, cfg=2.0, top_k=1, seed=0, return_logits=True)
    plain = autoregressive_sample(var, vae.quantize, labels, cfg=2.0, top_k=1, seed=0, return_logits=True,
                                  use_kv_cache=False)
    for a, b in zip(cached.logits, plain.logits):
        assert torch.allclose(a, b, atol=1e-4, rtol=0)
    images = sample_classes(var, vae, [1, 2, 3], cfg=1.5, top_k=10, top_p=0.9, seed=0)
    assert images.shape == (3, 1, 16, 16) and images.device.type == "cuda"
