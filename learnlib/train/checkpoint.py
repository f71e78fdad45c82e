"""Checkpoints written atomically, and the training state (RNG, optimizer tensors) they hold.

Reading them back (`load_checkpoint`, `load_model_state`) lives in learnlib.weights, below the
families that load weights too.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from learnlib.atomic import atomic_open
from learnlib.weights import FORMAT, load_checkpoint, load_model_state  # noqa: F401  (the reading half)


def atomic_save(obj: dict, path: str | os.PathLike) -> Path:
    """Write `obj` with torch.save to a temporary file, then rename it over `path`.

    A crash at any moment leaves either the previous file or the new one, never a
    half-written checkpoint.
    """
    with atomic_open(path) as handle:
        torch.save(obj, handle)
    return Path(path)


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a file to `dst` through a temporary file and a rename (no second serialization)."""
    with atomic_open(dst) as handle, open(src, "rb") as source:
        shutil.copyfileobj(source, handle)
    return Path(dst)


def rng_state() -> dict:
    """Every random generator's state, in a form torch.load(weights_only=True) accepts."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators saved by `rng_state`."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def first_non_finite(named_tensors) -> str | None:
    """The name of the first floating tensor holding NaN or infinity, or None when all are finite.

    A sharded tensor (DTensor) is checked on this rank's shard.
    """
    for name, tensor in named_tensors:
        tensor = getattr(tensor, "_local_tensor", tensor)
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return name
    return None


def optimizer_tensors(optimizer: torch.optim.Optimizer):
    """(name, tensor) of every optimizer state tensor (moments, steps)."""
    for index, state in enumerate(optimizer.state.values()):
        for key, value in state.items():
            yield f"optimizer state {key} of parameter {index}", value
