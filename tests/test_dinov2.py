"""DINOv2 backbone: token layout on a tiny random config, DINOv2 key names, ViT-L/14-reg size, weight loading."""

import pytest
import torch

from learnlib.vit.dinov2 import DINOV2_VITL14_REG_PARAMS, DinoV2, dinov2_vitl14_reg, load_dinov2

TINY = {"img_size": 28, "patch_size": 14, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_register_tokens": 4}

# facebookresearch/dinov2 names of one block and of the non-block parameters of dinov2_vitl14_reg.
BLOCK_KEYS = {
    "norm1.weight": (1024,), "norm1.bias": (1024,),
    "attn.qkv.weight": (3072, 1024), "attn.qkv.bias": (3072,),
    "attn.proj.weight": (1024, 1024), "attn.proj.bias": (1024,),
    "ls1.gamma": (1024,),
    "norm2.weight": (1024,), "norm2.bias": (1024,),
    "mlp.fc1.weight": (4096, 1024), "mlp.fc1.bias": (4096,),
    "mlp.fc2.weight": (1024, 4096), "mlp.fc2.bias": (1024,),
    "ls2.gamma": (1024,),
}
TOP_KEYS = {
    "cls_token": (1, 1, 1024), "pos_embed": (1, 1370, 1024), "register_tokens": (1, 4, 1024), "mask_token": (1, 1024),
    "patch_embed.proj.weight": (1024, 3, 14, 14), "patch_embed.proj.bias": (1024,),
    "norm.weight": (1024,), "norm.bias": (1024,),
}


def test_vitl14_reg_key_layout_and_parameter_count_on_meta_device():
    with torch.device("meta"):
        model = dinov2_vitl14_reg()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = dict(TOP_KEYS)
    for i in range(24):
        expected.update({f"blocks.{i}.{k}": s for k, s in BLOCK_KEYS.items()})
    assert shapes == expected
    count = sum(p.numel() for p in model.parameters())
    assert count == DINOV2_VITL14_REG_PARAMS == 304_368_640 + 4 * 1024  # ViT-L/14 (304.37 M) + 4 registers


def test_tokens_are_class_registers_patches_and_patch_map_is_prenorm():
    model = DinoV2(**TINY).eval()
    images = torch.randn(2, 3, 28, 42)  # 2 x 3 patches: the 2 x 2 position grid is interpolated
    out = model.forward_features(images)
    assert out["x_prenorm"].shape == (2, 1 + 4 + 6, 32)
    assert out["x_norm_regtokens"].shape == (2, 4, 32)
    assert out["x_norm_patchtokens"].shape == (2, 6, 32)
    torch.testing.assert_close(model.norm(out["x_prenorm"])[:, 5:], out["x_norm_patchtokens"])
    fmap = model.patch_feature_map(images)  # (2, 32, 2, 3)
    assert fmap.shape == (2, 32, 2, 3)
    torch.testing.assert_close(fmap[:, :, 1, 2], out["x_prenorm"][:, 5 + 5])  # row-major patch order
    assert model(images).shape == (2, 32)


def test_register_tokens_change_the_output_and_carry_no_position_embedding():
    model = DinoV2(**TINY).eval()
    images = torch.randn(1, 3, 28, 28)
    tokens = model.prepare_tokens(images)  # (1, 1 + 4 + 4, 32)
    torch.testing.assert_close(tokens[:, 1:5], model.register_tokens.expand(1, -1, -1))
    before = model.forward_features(images)["x_norm_clstoken"]
    with torch.no_grad():
        model.register_tokens.add_(1.0)
    assert not torch.allclose(before, model.forward_features(images)["x_norm_clstoken"])


def test_position_embedding_is_unchanged_at_the_native_grid_and_interpolated_elsewhere():
    model = DinoV2(**TINY)
    assert model.interpolate_pos_encoding(2, 2) is model.pos_embed
    assert model.interpolate_pos_encoding(3, 5).shape == (1, 1 + 15, 32)
    with pytest.raises(ValueError, match="multiples of 14"):
        model.patch_embed(torch.zeros(1, 3, 30, 28))


def test_load_dinov2_round_trip_and_missing_path(tmp_path):
    small = {"embed_dim": 32, "depth": 2, "num_heads": 2}
    model = dinov2_vitl14_reg(**small)
    path = tmp_path / "dinov2_vitl14_reg4_pretrain.pth"
    torch.save(model.state_dict(), path)
    loaded = load_dinov2(path, **small)
    images = torch.randn(1, 3, 28, 28)
    torch.testing.assert_close(loaded.forward_features(images)["x_prenorm"],
                               model.eval().forward_features(images)["x_prenorm"])
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_dinov2(tmp_path / "absent.pth")


def test_layer_scale_block_is_block_at_gamma_one_and_identity_at_gamma_zero():
    from learnlib.nn.block import Block
    from learnlib.vit.dinov2 import LayerScaleBlock

    scaled = LayerScaleBlock(16, 2, init_values=1.0).eval()
    plain = Block(16, 2).eval()
    plain.load_state_dict({k: v for k, v in scaled.state_dict().items() if ".gamma" not in k})
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(scaled(x), plain(x))
    with torch.no_grad():
        scaled.ls1.gamma.zero_()
        scaled.ls2.gamma.zero_()
    torch.testing.assert_close(scaled(x), x)


@pytest.mark.gpu
def test_full_size_dinov2_backend_gives_1024_channel_37x37_maps_on_cuda():
    from learnlib.slat.data.extractors import Dinov2Backend

    backend = Dinov2Backend(model=dinov2_vitl14_reg(), device="cuda", batch_size=2)
    maps = backend(torch.rand(3, 4, 64, 64))  # resized to 518 px inside the backend
    assert maps.shape == (3, 1024, 37, 37) and torch.isfinite(maps).all()
