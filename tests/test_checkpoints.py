"""The small checkpoints under checkpoints/: they load, they reach their recorded metrics, and (slow)
retraining with their recorded command reaches the same metrics."""

import json
import shlex
from pathlib import Path

import pytest
import torch

from learnlib.data import build_datasets
from learnlib.tasks import build_task
from learnlib.train import compose, fit, load_model
from learnlib.train.distributed import DistInfo
from learnlib.train.loader import eval_batches
from learnlib.train.trainer import evaluate

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = sorted(p for p in (ROOT / "checkpoints").iterdir() if (p / "metrics.json").exists())
TOLERANCE = {"val/accuracy": 0.01, "val/psnr": 1.0, "val/mse": 0.003, "val/loss": 0.1, "val/token_accuracy": 0.02,
             "val/perplexity": 8.0, "val/ssim": 0.03, "val/kl": None}  # None: relative, KL_RELATIVE
KL_RELATIVE = 0.5  # the KL term weighs 1e-6 in the slat_vae loss: its value drifts freely between runs


def recorded(path: Path) -> dict:
    return json.loads((path / "metrics.json").read_text())


def overrides_of(command: str) -> tuple[str, list[str]]:
    args = shlex.split(command)[3:]  # after `python -m learnlib.train`
    experiment = next(a.split("=", 1)[1] for a in args if a.startswith("experiment="))
    return experiment, [a for a in args if not a.startswith("experiment=")]


def test_there_are_checkpoints():
    assert {"vit_digits", "vqvae_digits"} <= {p.name for p in CHECKPOINTS}


@pytest.mark.parametrize("path", CHECKPOINTS, ids=lambda p: p.name)
def test_checkpoint_reaches_its_recorded_metrics(path):
    info = recorded(path)
    experiment, overrides = overrides_of(info["command"])
    cfg = compose(experiment, overrides)
    model = load_model(path)
    _, val_set = build_datasets(cfg.data)
    info_cpu = DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    batch_size = cfg.trainer.get("eval_batch_size") or 256
    metrics = evaluate(model, build_task(cfg.task), eval_batches(val_set, batch_size, 0, 1), info_cpu, "fp32")
    for key, value in info["metrics"].items():
        assert metrics[key] == pytest.approx(value, **tolerance(key, 0.25)), key


def tolerance(key: str, fraction: float = 1.0) -> dict:
    """pytest.approx keywords for metric `key`: a share `fraction` of its retraining tolerance."""
    absolute = TOLERANCE.get(key, 0.01)
    return {"rel": KL_RELATIVE * fraction} if absolute is None else {"abs": absolute * fraction}


@pytest.mark.slow
@pytest.mark.parametrize("path", CHECKPOINTS, ids=lambda p: p.name)
def test_retraining_reaches_the_recorded_metrics(path, tmp_path):
    info = recorded(path)
    experiment, overrides = overrides_of(info["command"])
    result = fit(compose(experiment, [*overrides, f"run_dir={tmp_path}", "trainer.progress=false"]))
    for key, value in info["metrics"].items():
        assert result.metrics[key] == pytest.approx(value, **tolerance(key)), key
