"""The slat_vae task (rendering loss, held-out PSNR/SSIM/KL), held-out views, and both SLat experiments via the CLI."""

import subprocess
import sys

import pytest
import torch

from learnlib.metrics import psnr_per_image, ssim_per_image
from learnlib.models import create
from learnlib.slat.data.dataset import MeshSource, SLatDataset
from learnlib.slat.data.trellis import write_random_dataset
from learnlib.slat.losses import composite_target, render_views
from learnlib.slat.task import SLatVAEReconstruction
from learnlib.tasks import build_task

pytest.importorskip("trimesh")

QUIET = ["trainer.progress=false", "trainer.tensorboard=false", "trainer.plot=false", "trainer.num_workers=0",
         "trainer.device=cpu", "trainer.max_steps=2", "trainer.eval_every=2", "trainer.checkpoint_every=2",
         "trainer.warmup_steps=1"]
TINY_MODEL = {"resolution": 16, "model_channels": 32, "num_blocks": 1, "num_heads": 2}


@pytest.fixture(scope="module")
def cube_source(tmp_path_factory):
    return MeshSource(["cube"], tmp_path_factory.mktemp("cache"), resolution=16, num_views=8, image_size=16)


def tiny_vae():
    torch.manual_seed(0)
    return create("slat_vae_tiny", decoder={"num_gaussians": 2}, **TINY_MODEL)


def test_held_out_views_are_every_kth_and_disjoint_from_training(cube_source):
    train = SLatDataset(cube_source, views_per_item=None, views="train", holdout_every=4)
    held = SLatDataset(cube_source, views_per_item=None, views="heldout", holdout_every=4)
    assert held.view_ids(8) == [3, 7] and train.view_ids(8) == [0, 1, 2, 4, 5, 6]
    _, _, all_cameras = cube_source.load_views(0)
    assert torch.equal(held[0]["cameras"].viewmats, all_cameras.viewmats[[3, 7]])
    drawn = SLatDataset(cube_source, views_per_item=1, views="train", holdout_every=4)
    held_centres = {tuple(all_cameras.viewmats[i].flatten().round(decimals=4).tolist()) for i in (3, 7)}
    for _ in range(10):
        centre = tuple(drawn[0]["cameras"].viewmats[0].flatten().round(decimals=4).tolist())
        assert centre not in held_centres
    with pytest.raises(ValueError, match="holdout_every"):
        SLatDataset(cube_source, views="heldout", holdout_every=0)


def test_training_loss_has_every_term_and_trains_both_halves(cube_source):
    dataset = SLatDataset(cube_source, views_per_item=1)
    batch = dataset.collate_fn([dataset[0], dataset[0]])
    task = build_task({"name": "slat_vae", "lpips": 0.0})
    model = tiny_vae()
    with torch.no_grad():  # the zero-initialized output layer would pass no gradient to the trunk
        model.decoder.out_layer.weight.normal_(0, 0.02)
    loss, scalars = task.training_loss(model, batch)
    assert torch.isfinite(loss) and {"l1", "ssim", "rec", "kl", "reg_vol", "reg_opacity"} <= set(scalars)
    expected = scalars["rec"] + 1e-6 * scalars["kl"] + 1e4 * scalars["reg_vol"] + 1e-3 * scalars["reg_opacity"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    for half in (model.encoder, model.decoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in half.parameters())


def test_eval_sums_match_renders_at_every_view_over_the_eval_background(cube_source):
    dataset = SLatDataset(cube_source, views_per_item=None)
    batch = dataset.collate_fn([dataset[0]])
    model = tiny_vae().eval()
    with torch.no_grad():
        model.decoder.out_layer.bias.normal_(0, 0.5)  # Gaussians that are not all grey
    task = SLatVAEReconstruction(lpips=0.0, eval_background=(1.0, 1.0, 1.0))
    with torch.no_grad():
        sums = task.eval_sums(model, batch)
        out = model(batch["feats"], sample_posterior=False)
        white = torch.ones(1, 8, 3)
        render = render_views(out.gaussians, batch["cameras"], white, **model.decoder.render_kwargs)[0]  # (8, 3, H, W)
        target = composite_target(batch["images"][0], batch["alphas"][0, :, 0], white[0])  # (8, 3, H, W)
    assert sums["psnr"][1] == 8 and sums["ssim"][1] == 8 and sums["kl"][1] == dataset.sizes[0]
    psnr = psnr_per_image(render, target, value_range=(0.0, 1.0)).mean()
    assert (sums["psnr"][0] / 8).item() == pytest.approx(psnr.item(), abs=1e-3)
    assert (sums["ssim"][0] / 8).item() == pytest.approx(ssim_per_image(render.clamp(0, 1), target).mean().item(), abs=1e-4)
    assert (sums["kl"][0] / sums["kl"][1]).item() == pytest.approx(out.kl.item(), rel=1e-5)
    black = SLatVAEReconstruction(lpips=0.0).eval_sums(model, batch)
    assert abs(black["psnr"][0].item() - sums["psnr"][0].item()) > 1e-3  # the background matters


def test_ssim_per_image_is_one_for_identical_images_and_lower_otherwise():
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim_per_image(images, images), torch.ones(3), atol=1e-5)
    noisy = (images + 0.2 * torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert (ssim_per_image(noisy, images) < 0.95).all()


def test_lpips_without_backbone_and_unknown_options_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="task.lpips_backbone"):
        build_task({"name": "slat_vae"})  # TRELLIS's LPIPS weight 0.2
    with pytest.raises(ValueError, match="task.lpips_backbone"):
        build_task({"name": "slat_vae", "lpips_backbone": str(tmp_path / "missing.pth")})
    with pytest.raises(ValueError, match="unknown slat_vae task options"):
        build_task({"name": "slat_vae", "lpips": 0.0, "ssim_weight": 0.1})


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "learnlib.train", *args], capture_output=True, text=True, timeout=600,
                          check=False)


def test_slat_vae_meshes_trains_a_few_steps_through_the_cli(tmp_path):
    out = run_cli("experiment=slat_vae_meshes", f"run_dir={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'cache'}",
                  "data.meshes=[cube,bone]", "data.resolution=16", "data.image_size=16", "data.num_views=8",
                  *[f"+model.{k}={v}" for k, v in TINY_MODEL.items()], "model.decoder.num_gaussians=2",
                  "trainer.batch_budget=2048", *QUIET)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 steps" in out.stdout and "val/psnr=" in out.stdout and "val/ssim=" in out.stdout
    assert (tmp_path / "run/checkpoints/last.pt").exists()


def test_full_slat_vae_runs_at_reduced_size_on_a_trellis_folder(tmp_path):
    write_random_dataset(tmp_path / "data", count=4, views=4, image_size=16, channels=8)
    out = run_cli("experiment=slat_vae_swin8_b_64l8", f"data.root={tmp_path / 'data'}", f"run_dir={tmp_path / 'run'}",
                  "data.image_size=16", "data.val_fraction=0.25", "+model.in_channels=8", "+model.model_channels=32",
                  "+model.num_blocks=1", "+model.num_heads=2", "+model.decoder={num_gaussians:2}", "task.lpips=0",
                  *QUIET)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 steps" in out.stdout and "val/psnr=" in out.stdout


def test_full_slat_vae_without_data_root_says_what_to_pass(tmp_path):
    out = run_cli("experiment=slat_vae_swin8_b_64l8", f"run_dir={tmp_path}")
    assert out.returncode == 1 and "data.root is not set" in out.stderr


def test_full_slat_vae_follows_the_published_recipe():
    from learnlib.train import compose

    cfg = compose("slat_vae_swin8_b_64l8", ["data.root=/data"])
    t = cfg.trainer
    assert (t.lr, t.weight_decay, t.ema_decay, t.precision, t.batching) == (1e-4, 0.0, 0.9999, "bf16", "budget")
    assert cfg.data.max_voxels == 32768 and cfg.model.use_checkpoint is True
    assert cfg.task.get("lpips", 0.2) == 0.2 and cfg.model.name == "slat_vae_swin8_b_64l8"


@pytest.mark.gpu
def test_held_out_metrics_on_cuda_match_the_cpu_renderer(cube_source):
    dataset = SLatDataset(cube_source, views_per_item=None)
    batch = dataset.collate_fn([dataset[0]])
    model = tiny_vae().eval()
    with torch.no_grad():
        model.decoder.out_layer.bias.normal_(0, 0.5)
    task = SLatVAEReconstruction(lpips=0.0)  # render_backend "auto": gsplat on CUDA when installed
    with torch.no_grad():
        cpu = task.eval_sums(model, batch)
        cuda = task.eval_sums(model.cuda(), batch)
    for key in ("psnr", "ssim", "kl"):
        assert cuda[key][0].item() / cuda[key][1] == pytest.approx(cpu[key][0].item() / cpu[key][1], rel=2e-2), key
    loss, _ = task.training_loss(model.train(), batch)
    loss.backward()
    assert torch.isfinite(loss) and loss.device.type == "cuda"

