"""Checkpoints written atomically and read back with clear errors."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from learnlib.train.errors import CheckpointError

FORMAT = "learnlib-checkpoint-v1"


def _file_mode() -> int:
    """The permissions a new file of this user gets (0o666 less the umask), not mkstemp's 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_save(obj: dict, path: str | os.PathLike) -> Path:
    """Write `obj` with torch.save to a temporary file, then rename it over `path`.

    A crash at any moment leaves either the previous file or the new one, never a
    half-written checkpoint.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a file to `dst` through a temporary file and a rename (no second serialization)."""
    dst = Path(dst)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


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
