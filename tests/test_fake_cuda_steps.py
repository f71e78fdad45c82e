"""One training step of every experiment as if on CUDA, on a CPU-only machine.

tests/fake_cuda.py runs the step under a TorchFunctionMode that makes every tensor made before
the step (model, optimizer state, batch) answer `device == cuda:0`, and fails the test, naming
the op, when a tensor made inside the step on the host (a mask, an arange, a camera matrix, a
background colour, an unregistered buffer) meets them: the error a real GPU run would raise.
The step is the trainer's: batch moved with `move_to(batch, cuda)`, the task's `training_loss`,
backward, and the AdamW that `build_optimizer` picks for CUDA (fused).

Values: the small experiments run with real numbers on the CPU; the full-size dense ones
(ViT-B/16, VQ-VAE ch160, VAR-d16..d30) run on the meta device (shapes only: data-dependent
`.item()`, `float()`, `.tolist()` and `bincount` answer zeros there), and the full SLat VAE runs
with real numbers on a few dozen voxels (its sparse ops need values).

What this cannot fake on a CPU-only build, so a real GPU must confirm:
- `torch.autocast("cuda", bf16)` and the fp16 GradScaler (the step runs in fp32);
- the CUDA kernels themselves (fused AdamW runs its CPU kernel; flash-attn, gsplat and spconv are
  not installed here, so "auto" takes the sdpa, torch and reference paths, as it does on a GPU
  machine without them; their own parity tests cover them through stand-ins);
- `pin_memory`, CUDA streams and non_blocking copies, DDP/FSDP with NCCL, `torch.compile`;
- device choices made from `torch.cuda.is_available()` (False here: e.g. "auto" rasterizing with
  gsplat) rather than from the tensors' device.
"""

import math

import pytest
import torch
from fake_cuda import DeviceMismatchError, FakeCuda

from learnlib.configs.compose import compose, list_experiments
from learnlib.data.registry import build_datasets
from learnlib.models import build_model, create
from learnlib.nn.optim import build_optimizer
from learnlib.sparse import SparseTensor
from learnlib.tasks import build_task
from learnlib.train.loader import ResumableLoader, move_to, train_batch_sampler

CUDA = torch.device("cuda", 0)
SMALL = {"mlp_digits": ["trainer.batch_size=8"], "vit_digits": ["trainer.batch_size=8"],
         "vqvae_digits": ["trainer.batch_size=8"], "var_digits": ["trainer.batch_size=8"], "slat_vae_meshes": []}
FULL_DENSE = {"vit_b16_imagenet": 224, "vqvae_imagenet256": 256, "var_d16": 256, "var_d20": 256, "var_d24": 256,
              "var_d30": 256}
FULL_SPARSE = {"slat_vae_swin8_b_64l8": 48}  # voxels of the batch


def _first_batch(cfg):
    train_set, _ = build_datasets(cfg.data)
    loader = ResumableLoader(train_set, train_batch_sampler(train_set, cfg.trainer, 0, 1, cfg.seed), seed=cfg.seed)
    return next(loader)


def _step(model, task, batch, backing="cpu"):
    """move_to(cuda), loss, backward, the CUDA optimizer: under FakeCuda; returns the loss and the mode."""
    optimizer = build_optimizer(model, 1e-3, 0.0, (0.9, 0.99), CUDA)
    mode = FakeCuda(backing)
    with mode:
        batch = move_to(batch, CUDA)
        loss, _ = task.training_loss(model, batch)
        assert loss.device == CUDA  # what the trainer sees
        loss.backward()
        optimizer.step()
    return loss, mode


def test_every_experiment_is_stepped():
    assert set(list_experiments()) == set(SMALL) | set(FULL_DENSE) | set(FULL_SPARSE)


def test_a_host_tensor_in_a_cuda_step_fails_with_its_op():
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with FakeCuda():
        assert x.is_cuda and layer.weight.device == CUDA
        y = layer(x) + torch.arange(4, device=x.device)  # made where the input lives: fine
        y = y * torch.tensor(2.0)  # a 0-dim host scalar: allowed, as on CUDA
        y = y + torch.arange(4).to(x.device)  # moved: fine
        with pytest.raises(DeviceMismatchError, match="add.*host tensor \\(4,\\)"):
            y + torch.arange(4)
        with pytest.raises(DeviceMismatchError, match="host tensor"):
            torch.cat([y, torch.zeros(1, 4)])
        host = x.cpu()
        assert not host.is_cuda and x.is_cuda  # .cpu() aliases: the source stays on cuda


def _plain_step(model, task, batch):
    optimizer = build_optimizer(model, 1e-3, 0.0, (0.9, 0.99), torch.device("cpu"))
    loss, _ = task.training_loss(model, batch)
    loss.backward()
    optimizer.step()
    return loss


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_experiment_step_on_fake_cuda(name):
    """The step as if on CUDA computes what the plain CPU step computes: same loss, same updated weights."""
    cfg = compose(name, SMALL[name])
    batch = _first_batch(cfg)
    results = []
    for fake in (False, True):
        torch.manual_seed(0)
        task, model = build_task(cfg.task), build_model(cfg).train()
        if fake:
            loss, mode = _step(model, task, batch)
            assert len(mode.ops) > 20
        else:
            loss = _plain_step(model, task, batch)
        results.append((float(loss), [p.detach().clone() for p in model.parameters()]))
    (plain_loss, plain_params), (fake_loss, fake_params) = results
    assert math.isfinite(fake_loss) and fake_loss == pytest.approx(plain_loss, rel=1e-6)
    for a, b in zip(plain_params, fake_params):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(FULL_DENSE))
def test_full_size_dense_experiment_step_on_fake_cuda(name, monkeypatch):
    cfg = compose(name, [])
    size = FULL_DENSE[name]
    import learnlib.var.task

    monkeypatch.setattr(learnlib.var.task, "load_model",  # VAR's tokenizer: the configured architecture, no file
                        lambda path, model_name=None, overrides=None, **kw: create(model_name, **(overrides or {})))
    with torch.device("meta"):
        task_cfg = {**cfg.task, "vqvae": "architecture-only"} if cfg.task.name == "var" else cfg.task
        task, model = build_task(task_cfg), build_model(cfg).train()
        batch = (torch.zeros(2, 3, size, size), torch.zeros(2, dtype=torch.long))
    loss, _ = _step(model, task, batch, backing="meta")
    assert loss.shape == ()
    trainable = [p for p in model.parameters() if p.requires_grad]
    with_grad = [p for p in trainable if p.grad is not None and p.grad.shape == p.shape]
    assert len(with_grad) >= 0.95 * len(trainable)


@pytest.mark.parametrize("name", sorted(FULL_SPARSE))
def test_full_size_slat_step_on_fake_cuda(name):
    """The full SLat VAE (1024-channel features, 768 wide, 32 Gaussians per voxel) on a few voxels of a mesh."""
    batch = _first_batch(compose("slat_vae_meshes", []))
    n = FULL_SPARSE[name]
    g = torch.Generator().manual_seed(0)
    batch["feats"] = SparseTensor(torch.randn(n, 1024, generator=g), batch["feats"].coords[:n])
    cfg = compose(name, ["task.lpips=0"])
    batch["resolution"] = int(cfg.data.resolution)  # the 32^3 mesh voxels, read on the 64^3 grid: placement only
    task, model = build_task(cfg.task), build_model(cfg).train()
    probe = model.decoder.out_layer.weight  # zero at initialisation (TRELLIS): the only one step 1 moves
    before = probe.detach().clone()
    loss, _ = _step(model, task, batch)
    assert math.isfinite(float(loss)) and not torch.equal(before, probe)
