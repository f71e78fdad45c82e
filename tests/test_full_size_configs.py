"""The full-size GPU experiments run end to end through the CLI, at reduced size on CPU."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from learnlib import models
from learnlib.train import compose

QUIET = ["trainer.progress=false", "trainer.tensorboard=false", "trainer.plot=false", "trainer.num_workers=0",
         "trainer.device=cpu", "trainer.max_steps=2", "trainer.batch_size=4", "trainer.eval_every=2",
         "trainer.checkpoint_every=2", "trainer.warmup_steps=1"]


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in ("cat", "dog"):
            folder = tmp_path / "data" / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return tmp_path / "data"


def run_cli(*args):
    out = subprocess.run([sys.executable, "-m", "learnlib.train", *args], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_vit_b16_imagenet_two_steps_at_reduced_size(image_folder, tmp_path):
    stdout = run_cli("experiment=vit_b16_imagenet", f"data.root={image_folder}", f"run_dir={tmp_path / 'run'}",
                     "data.image_size=32", "model.img_size=32", "model.patch_size=16", "model.embed_dim=32",
                     "model.depth=1", "model.num_heads=2", "model.num_classes=2", *QUIET)
    assert "2 steps" in stdout and (tmp_path / "run/checkpoints/last.pt").exists()


def test_vqvae_imagenet256_two_steps_at_reduced_size(image_folder, tmp_path):
    stdout = run_cli("experiment=vqvae_imagenet256", f"data.root={image_folder}", f"run_dir={tmp_path / 'run'}",
                     "data.image_size=8", "+model.ch=16", "+model.ch_mult=[1,2]", "+model.z_channels=8",
                     "+model.vocab_size=16", "+model.v_patch_nums=[1,2,4]", "+model.norm_groups=8",
                     "+model.num_res_blocks=1", "trainer.ema_decay=null", *QUIET)
    assert "val/psnr=" in stdout


def test_var_d16_two_steps_at_reduced_size(image_folder, tmp_path):
    tokenizer = {"ch": 16, "ch_mult": [1, 2], "z_channels": 8, "vocab_size": 16, "v_patch_nums": [1, 2, 4],
                 "norm_groups": 8, "num_res_blocks": 1}
    torch.save(models.create("vqvae_ch160", **tokenizer).state_dict(), tmp_path / "vae.pth")
    overrides = [f"+task.vqvae_overrides.{k}={v}".replace(" ", "") for k, v in tokenizer.items()]
    stdout = run_cli("experiment=var_d16", f"data.root={image_folder}", f"run_dir={tmp_path / 'run'}",
                     f"task.vqvae={tmp_path / 'vae.pth'}", *overrides, "data.image_size=8",
                     "+model.depth=1", "+model.embed_dim=32", "+model.num_heads=2", "+model.patch_nums=[1,2,4]",
                     "+model.vocab_size=16", "+model.Cvae=8", "+model.num_classes=2", *QUIET)
    assert "val/token_accuracy=" in stdout


def test_var_without_tokenizer_path_says_what_to_pass(image_folder, tmp_path):
    out = subprocess.run([sys.executable, "-m", "learnlib.train", "experiment=var_d16",
                          f"data.root={image_folder}", f"run_dir={tmp_path}", "trainer.batch_size=4"],
                         capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 1 and "task.vqvae is not set" in out.stderr


@pytest.mark.parametrize("depth,width", [(16, 1024), (20, 1280), (24, 1536), (30, 1920)])
def test_var_experiments_follow_the_published_recipe(depth, width):
    cfg = compose(f"var_d{depth}")
    assert cfg.trainer.lr == pytest.approx(1e-4 * cfg.trainer.batch_size / 256)
    assert tuple(cfg.trainer.betas) == (0.9, 0.95) and cfg.trainer.weight_decay == 0.05
    assert cfg.trainer.grad_clip == 2.0
    with torch.device("meta"):
        model = models.create(cfg.model.name)
    assert model.head.in_features == width
