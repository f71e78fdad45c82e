"""Loading trained weights: learnlib checkpoints, exported model folders and released state dicts.

Below the families (VAR's task loads its frozen tokenizer this way) and below `train`, which writes
what this reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from learnlib.errors import CheckpointError

FORMAT = "learnlib-checkpoint-v1"
WEIGHTS, CONFIG = "model.safetensors", "config.yaml"


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a learnlib checkpoint; raise CheckpointError if it is missing, corrupted or foreign."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(err).__name__}: {str(err)[:200]}); "
            "it is corrupted or not a learnlib checkpoint. Delete it or point resume at another run."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a learnlib checkpoint (expected format {FORMAT!r})")
    return state


def read_state_dict(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a released weights file (a state dict, or one under "model" / "state_dict").

    CheckpointError naming the file and `what` it must hold (e.g. "the DINOv2 ViT-L/14 weights
    dinov2_vitl14_reg4_pretrain.pth") when it cannot be read as one, or is a learnlib training checkpoint."""
    path = Path(path).expanduser()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 torch raises several types for text, truncated or foreign files
        raise CheckpointError(f"{path} could not be read as a weights file ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:120]}); it must hold {what}") from None
    if isinstance(state, dict) and state.get("format") == FORMAT:
        raise CheckpointError(f"{path} is a learnlib training checkpoint, not a weights file: it must hold {what}")
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors ({type(state).__name__}); it must hold {what}")
    return state


def load_released_weights(model: torch.nn.Module, state_dict: dict, path, what: str) -> None:
    """`load_model_state` whose error names the weights file and what it must hold."""
    try:
        load_model_state(model, state_dict, str(path))
    except CheckpointError as err:
        raise CheckpointError(f"{err}; {path} must hold {what}") from None


def load_model_state(model: torch.nn.Module, state_dict: dict, source: str) -> None:
    """load_state_dict(strict) that names the missing and unexpected keys on a mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong_shape = [k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape]
    if missing or unexpected or wrong_shape:
        details = []
        if missing:
            details.append(f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            details.append(f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        for key in sorted(wrong_shape)[:5]:
            details.append(f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(own[key].shape)}")
        raise CheckpointError(
            f"checkpoint {source} does not fit this model ({'; '.join(details)}); "
            "was it written by another experiment or model config?"
        )
    model.load_state_dict(state_dict)


def _weights(state: dict, ema: bool) -> dict[str, torch.Tensor]:
    if ema and state.get("ema") is not None:
        return {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    return state["model"]


def resolve_path(path: str | Path) -> Path:
    """`path` as given when it exists, else relative to the repository root (for `checkpoints/...`)."""
    path = Path(path).expanduser()
    if path.exists() or path.is_absolute():
        return path
    in_repo = Path(__file__).resolve().parents[1] / path
    return in_repo if in_repo.exists() else path


def load_model(path: str | Path, ema: bool = True, model_name: str | None = None,
               overrides: dict | None = None) -> torch.nn.Module:
    """The model of a training checkpoint (.pt), an exported folder, or (with `model_name`) a plain
    state dict such as a released checkpoint, in eval mode."""
    from omegaconf import OmegaConf
    from safetensors.torch import load_file

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
