"""Export a trained checkpoint to a small folder (safetensors + config + provenance) and load it back."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from learnlib.train.checkpoint import load_checkpoint, load_model_state
from learnlib.train.errors import CheckpointError

WEIGHTS, CONFIG, METRICS, README = "model.safetensors", "config.yaml", "metrics.json", "README.md"


def _weights(state: dict, ema: bool) -> dict[str, torch.Tensor]:
    if ema and state.get("ema") is not None:
        return {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    return state["model"]


def export_checkpoint(checkpoint: str | Path, dest: str | Path, command: str, ema: bool = True,
                      seconds: float | None = None) -> Path:
    """Write dest/ with model.safetensors, config.yaml, metrics.json and a README holding `command`."""
    state = load_checkpoint(checkpoint)
    dest = Path(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent if dest.parent.exists() else None))
    weights = {k: v.contiguous() for k, v in _weights(state, ema).items()}
    save_file(weights, str(tmp / WEIGHTS))
    (tmp / CONFIG).write_text(state["config"])
    metrics = {k: round(float(v), 6) for k, v in state["metrics"].items()}
    info = {"step": state["step"], "metrics": metrics, "train_seconds": seconds, "command": command}
    (tmp / METRICS).write_text(json.dumps(info, indent=2) + "\n")
    lines = [f"# {OmegaConf.create(state['config']).name}", "", "Produced by:", "", "```bash", command, "```", "",
             f"Optimizer steps: {state['step']}" + (f"; training time {seconds:.0f} s" if seconds else ""), "",
             "Held-out metrics at the end of training:", ""]
    lines += [f"- `{k}`: {v:.4f}" for k, v in sorted(metrics.items())]
    (tmp / README).write_text("\n".join(lines) + "\n")
    tmp.chmod(0o755)
    for path in tmp.iterdir():
        path.chmod(0o644)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def resolve_path(path: str | Path) -> Path:
    """`path` as given when it exists, else relative to the repository root (for `checkpoints/...`)."""
    path = Path(path).expanduser()
    if path.exists() or path.is_absolute():
        return path
    in_repo = Path(__file__).resolve().parents[2] / path
    return in_repo if in_repo.exists() else path


def load_model(path: str | Path, ema: bool = True, model_name: str | None = None,
               overrides: dict | None = None) -> torch.nn.Module:
    """The model of a training checkpoint (.pt), an exported folder, or (with `model_name`) a plain
    state dict such as a released checkpoint, in eval mode."""
    from learnlib import models

    path = resolve_path(path)
    if model_name is not None and path.is_file():
        try:
            weights = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(f"{path} could not be read as a state dict ({type(err).__name__}: {err})") from None
        if isinstance(weights, dict) and weights.get("format") is not None:
            weights = _weights(weights, ema)
        model = models.create(model_name, **(overrides or {}))
        load_model_state(model, weights, str(path))
        return model.eval()
    if path.is_dir():
        if not (path / WEIGHTS).exists() or not (path / CONFIG).exists():
            raise CheckpointError(f"{path} is not an exported model folder (needs {WEIGHTS} and {CONFIG})")
        cfg = OmegaConf.load(path / CONFIG)
        weights = load_file(str(path / WEIGHTS))
    else:
        state = load_checkpoint(path)
        cfg = OmegaConf.create(state["config"])
        weights = _weights(state, ema)
    model = models.build_model(cfg)
    load_model_state(model, weights, str(path))
    return model.eval()
