"""ViT at image sizes other than its img_size: position embeddings interpolated over the patch grid."""

import pytest
import torch
import torch.nn.functional as F

from learnlib.nn.pos_embed import resample_pos_embed
from learnlib.vit import VisionTransformer
from learnlib.vit.dinov2 import DinoV2

CFG = {"img_size": 16, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_classes": 5}


def tiny(**kw):
    torch.manual_seed(0)
    return VisionTransformer(**{**CFG, **kw}).eval()


def test_off_by_default_and_exact_at_the_configured_size():
    static, dynamic = tiny(), tiny(dynamic_img_size=True)
    dynamic.load_state_dict(static.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(static(x), dynamic(x))
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16\).*\(2, 3, 16, 24\).*dynamic_img_size=True"):
        static(torch.zeros(2, 3, 16, 24))
    with pytest.raises(ValueError, match="multiples of 8"):
        dynamic(torch.zeros(2, 3, 16, 20))


def test_another_grid_equals_a_model_built_for_it_with_the_resampled_embeddings():
    dynamic = tiny(dynamic_img_size=True)
    static = tiny(img_size=32)  # a 4x4 grid where dynamic was trained on 2x2
    state = dynamic.state_dict()
    state["pos_embed"] = resample_pos_embed(state["pos_embed"], (4, 4), (2, 2), num_prefix_tokens=1)
    static.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dynamic(x), static(x), rtol=0, atol=1e-6)
        assert dynamic.forward_features(torch.randn(3, 3, 16, 40)).shape == (3, 1 + 2 * 5, 32)
        assert len(dynamic.get_attention_maps(torch.randn(1, 3, 24, 8))) == 2


def dinov2_interpolation(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """DINOv2's `interpolate_pos_encoding` (offset 0, antialias) written out: the second implementation."""
    side = int((pos.shape[1] - 1) ** 0.5)
    patch_pos = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, D, side, side)
    patch_pos = F.interpolate(patch_pos.float(), size=grid, mode="bicubic", antialias=True)  # (1, D, h, w)
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)  # (1, h*w, D)
    return torch.cat([pos[:, :1], patch_pos], dim=1)  # (1, 1 + h*w, D)


def test_resampling_keeps_prefix_tokens_and_matches_dinov2s_interpolation():
    dino = DinoV2(img_size=4 * 14, patch_size=14, embed_dim=24, depth=1, num_heads=2, num_register_tokens=0)
    torch.nn.init.normal_(dino.pos_embed)
    for grid in ((6, 9), (3, 2), (5, 5)):
        ours = resample_pos_embed(dino.pos_embed, grid, (4, 4), num_prefix_tokens=1)
        assert ours.shape == (1, 1 + grid[0] * grid[1], 24)
        assert torch.equal(ours[:, :1], dino.pos_embed[:, :1])
        torch.testing.assert_close(ours, dinov2_interpolation(dino.pos_embed, grid), rtol=0, atol=1e-6)
        assert torch.equal(dino.interpolate_pos_encoding(*grid), ours)  # DinoV2 resamples with it
    assert resample_pos_embed(dino.pos_embed, (4, 4), (4, 4)) is dino.pos_embed


def test_resampling_preserves_structure_along_each_axis():
    rows = torch.arange(3.0).repeat_interleave(4)  # (12,): value = row index on a 3x4 grid
    pos = torch.stack([rows, torch.ones(12)], dim=-1)[None]  # (1, 12, 2)
    out = resample_pos_embed(pos, (6, 5), (3, 4), num_prefix_tokens=0)[0].view(6, 5, 2)  # (6, 5, 2)
    torch.testing.assert_close(out[..., 1], torch.ones(6, 5))  # a constant stays constant
    assert torch.allclose(out[..., 0], out[:, :1, 0].expand(6, 5))  # still a function of the row only
    assert (out[1:, 0, 0] >= out[:-1, 0, 0]).all()  # and increasing with it
    with pytest.raises(ValueError, match=r"\(1, 13, D\).*\(1, 12, 2\)"):
        resample_pos_embed(pos, (6, 5), (3, 4), num_prefix_tokens=1)


def test_gradients_reach_the_stored_embeddings_and_avg_pool_works():
    model = tiny(dynamic_img_size=True, class_token=False, global_pool="avg").train()
    model(torch.randn(2, 3, 24, 16)).sum().backward()
    assert model.pos_embed.grad is not None and model.pos_embed.grad.abs().sum() > 0


def test_equals_timms_dynamic_img_size():
    timm = pytest.importorskip("timm")
    ref = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=7, dynamic_img_size=True).eval()
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=7,
                              dynamic_img_size=True).eval()
    model.load_state_dict(ref.state_dict(), strict=True)
    with torch.no_grad():
        for shape in ((32, 32), (24, 48), (64, 16)):
            x = torch.randn(2, 3, *shape)
            assert (model(x) - ref(x)).abs().max().item() <= 1e-5
