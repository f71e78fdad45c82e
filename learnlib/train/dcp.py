"""Sharded checkpoints (torch.distributed.checkpoint): each rank writes its own shards, and a run
resumes on any number of ranks, with any strategy (none, ddp, fsdp).

A checkpoint is a folder:
    <path_dir>/.metadata        DCP's index of every tensor and which file holds which slice
    <path_dir>/__<rank>_0.distcp the tensors rank <rank> wrote: model weights and AdamW moments,
                                 keyed by parameter name ("model.blocks.0.attn.qkv.weight", ...)
    <path_dir>/extra.pt          rank 0's plain torch file: {"format", "world_size", "strategy", "extra"}
Every rank calls `save_sharded` and `load_sharded` (they are collective under a process group).
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dist_cp
from torch import nn
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from learnlib.errors import CheckpointError
from learnlib.train.checkpoint import FORMAT as SINGLE_FILE_FORMAT
from learnlib.train.checkpoint import atomic_save, load_checkpoint, load_model_state
from learnlib.train.sharding import strategy_of

FORMAT = "learnlib-dcp-v1"
EXTRA = "extra.pt"
_SINGLE_PROCESS_WARNING = "torch.distributed is .*single process"  # intended without a process group


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _rank() -> int:
    return dist.get_rank() if _distributed() else 0


def _barrier() -> None:
    if _distributed():
        dist.barrier()


def _staging(path_dir: Path) -> tuple[Path, Path]:
    return path_dir.with_name(f".{path_dir.name}.partial"), path_dir.with_name(f".{path_dir.name}.old")


def save_sharded(path_dir: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
                 extra: dict) -> Path:
    """Write model and optimizer state (sharded as they are) and rank 0's `extra` to the folder `path_dir`.

    All ranks write into a hidden staging folder `.<name>.partial` next to `path_dir`; after a
    barrier rank 0 swaps it in by two renames. A kill before the swap leaves the previous
    checkpoint untouched; a kill between the renames leaves it as `.<name>.old`, which
    `load_sharded` falls back to and the next save puts back first. `path_dir` must be on a
    file system every rank sees. `extra` must hold what torch.load(weights_only=True) reads
    back: tensors, numbers, strings, and lists and dicts of them (as `checkpoint.rng_state()`).
    """
    if not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict (step, scheduler, rng, data position...), got {type(extra).__name__}")
    path_dir = Path(path_dir)
    partial, old = _staging(path_dir)
    if _rank() == 0:
        if not path_dir.exists() and (old / EXTRA).is_file():
            os.replace(old, path_dir)  # a save killed mid-swap: its previous checkpoint becomes current again
        shutil.rmtree(partial, ignore_errors=True)  # a save killed while writing
        partial.mkdir(parents=True)
    _barrier()
    model_state, optim_state = get_state_dict(model, optimizer)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_SINGLE_PROCESS_WARNING)
        dist_cp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=partial)
    if _rank() == 0:
        world_size = dist.get_world_size() if _distributed() else 1
        atomic_save({"format": FORMAT, "world_size": world_size, "strategy": strategy_of(model), "extra": extra},
                    partial / EXTRA)
    _barrier()  # every rank's shards are on disk
    if _rank() == 0:
        shutil.rmtree(old, ignore_errors=True)
        if path_dir.exists():
            os.replace(path_dir, old)
        os.replace(partial, path_dir)
        shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return path_dir


def load_sharded(path_dir: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Load a `save_sharded` folder into `model` and `optimizer` (resharded to this run's ranks); return `extra`.

    Call after `wrap_for_training` and after building the optimizer, on every rank.
    """
    path_dir = _resolve(Path(path_dir), model)
    header = torch.load(path_dir / EXTRA, map_location="cpu", weights_only=True)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path_dir / EXTRA} is not a learnlib sharded checkpoint (expected format {FORMAT!r})")
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_SINGLE_PROCESS_WARNING)
            dist_cp.load(state, checkpoint_id=path_dir)
    except (Exception, CheckpointException) as err:  # missing keys, wrong shapes; DCP's is a BaseException
        cause = [line for line in str(err).splitlines() if line.strip()][-1:] or [type(err).__name__]
        raise CheckpointError(f"sharded checkpoint {path_dir} does not fit this model and optimizer "
                              f"({cause[0].strip()[:300]}); was it written by another model config?") from None
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    return header["extra"]


def _resolve(path_dir: Path, model: nn.Module) -> Path:
    """The folder to read: `path_dir`, or the previous checkpoint a kill mid-swap left behind."""
    if path_dir.is_file():
        _single_file_error(path_dir, model)
    if not path_dir.exists():
        _, old = _staging(path_dir)
        if (old / EXTRA).is_file():
            return old
        raise CheckpointError(f"sharded checkpoint folder {path_dir} does not exist")
    missing = [name for name in (".metadata", EXTRA) if not (path_dir / name).is_file()]
    if missing:
        raise CheckpointError(f"{path_dir} is not a complete sharded checkpoint (missing {', '.join(missing)}); "
                              "point resume at another checkpoint")
    return path_dir


def _single_file_error(path: Path, model: nn.Module) -> None:
    try:
        load_checkpoint(path)
        kind = f"a single-file learnlib checkpoint ({SINGLE_FILE_FORMAT}: the full, unsharded state)"
    except CheckpointError:
        kind = "a file that is not a learnlib checkpoint"
    hint = ("under strategy=fsdp each rank holds only its shard of the weights and optimizer state, and "
            "a single file does not record how to reshard it to this world size"
            if strategy_of(model) == "fsdp" else "load_sharded reads the folders that save_sharded writes")
    raise CheckpointError(f"{path} is {kind}, not a sharded checkpoint folder: {hint}. Convert it once, in one "
                          "process: learnlib.train.dcp.convert_single_file(path, out_dir, model, optimizer) "
                          "with a freshly built model and optimizer, then resume from out_dir on any number "
                          "of ranks (or resume the file itself with strategy=none or ddp)")


def convert_single_file(path: str | os.PathLike, out_dir: str | os.PathLike, model: nn.Module,
                        optimizer: torch.optim.Optimizer) -> Path:
    """Turn a single-file trainer checkpoint into a sharded folder any world size can resume from.

    Runs in one process on an unwrapped model and its optimizer; everything but the model and
    optimizer state (step, scheduler, rng, data position, config...) becomes `extra`.
    """
    if strategy_of(model) != "none" or _distributed():
        raise ValueError("convert_single_file runs in one process on an unwrapped model (strategy none), "
                         f"got strategy {strategy_of(model)!r} with a process group: {_distributed()}")
    state = load_checkpoint(path)
    load_model_state(model, state["model"], str(path))
    optimizer.load_state_dict(state["optimizer"])
    extra = {key: value for key, value in state.items() if key not in ("model", "optimizer", "format")}
    return save_sharded(out_dir, model, optimizer, extra)
