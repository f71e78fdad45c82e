"""How the model is spread over ranks for training: one process, DDP replicas or FSDP2 shards.

The trainer calls, in this order:
    model = wrap_for_training(model, strategy, info, precision)   # before the optimizer is built
    optimizer = build_optimizer(model, ...)                       # sees the sharded parameters
    for each micro-batch:  with accumulation_context(model, is_last_micro): forward, loss.backward()
    on the stepping micro-batch only, after scaler.unscale_:  grad_norm = clip_grad_norm(model, max_norm)

FSDP2 (`torch.distributed.fsdp.fully_shard`) shards each transformer block, then the root
(the embeddings, final norm and head): a block's full weights exist only during its own
forward and backward, and each rank keeps 1/world_size of the parameters, gradients and
optimizer state.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from learnlib.train.distributed import DistInfo

STRATEGIES = ("none", "ddp", "fsdp")
PRECISIONS = ("fp32", "bf16", "fp16")


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The children of `model.blocks` (the course's ViT and VAR): one FSDP unit each."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Module):
        raise TypeError(f"{type(model).__name__} has no `blocks` container (nn.Sequential or nn.ModuleList) "
                         "of transformer blocks to shard one by one; give the model a `.blocks` attribute "
                         "or use strategy=ddp")
    children = list(blocks.children())
    if not children:
        raise ValueError(f"{type(model).__name__}.blocks is empty: expected at least one transformer block")
    return children


def mixed_precision_policy(precision: str, device: torch.device, output_dtype: torch.dtype | None = None):
    """FSDP2's MixedPrecisionPolicy for `precision`: compute in bf16/fp16, reduce gradients in fp32,
    cast the unit's outputs to `output_dtype` (None: leave them in the compute dtype)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    _check_precision(precision)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision=fp16 with strategy=fsdp needs CUDA (fp16 needs a GradScaler, which is "
                         f"CUDA-only here); got device {device.type!r}: use precision=bf16 or fp32 on CPU")
    if precision == "fp32":
        return MixedPrecisionPolicy()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32, output_dtype=output_dtype)


def wrap_for_training(model: nn.Module, strategy: str, info: DistInfo, precision: str = "fp32") -> nn.Module:
    """The module to train: `model` itself (none), a DDP replica (ddp) or `model` sharded in place (fsdp).

    Under fsdp the returned module is `model` (its parameters become DTensor shards), so build
    the optimizer and load checkpoints after this call. With precision bf16 or fp16, fsdp casts
    the weights for compute (gradients are reduced and kept in fp32) and returns fp32 outputs;
    ddp and none leave precision to the trainer's autocast.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    _check_precision(precision)
    if strategy == "none":
        return model
    if strategy == "ddp":
        if not info.enabled:
            return model  # one process: nothing to synchronize, as the trainer does today
        _check_process_group(strategy, info)
        return DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    block_policy = mixed_precision_policy(precision, info.device)
    _check_process_group(strategy, info)
    blocks = transformer_blocks(model)
    mesh = init_device_mesh(info.device.type, (info.world_size,))  # the run's device, not the machine's default
    for block in blocks:
        fully_shard(block, mesh=mesh, mp_policy=block_policy)
    # the root returns fp32 (logits, reconstructions) so that losses are computed in full precision
    fully_shard(model, mesh=mesh, mp_policy=mixed_precision_policy(precision, info.device, torch.float32))
    return model


def accumulation_context(model: nn.Module, is_last_micro: bool):
    """Context for one micro-batch's forward and backward: gradients are reduced over ranks only on the last one.

    DDP: `no_sync()` on earlier micro-batches. FSDP2: `set_requires_gradient_sync(is_last_micro)`
    (earlier micro-batches accumulate unsharded local gradients, the last one reduce-scatters
    their sum). One process: nothing to do.
    """
    model = _unwrap_compiled(model)
    if _is_fsdp(model):
        model.set_requires_gradient_sync(bool(is_last_micro))
        return contextlib.nullcontext()
    if isinstance(model, DistributedDataParallel) and not is_last_micro:
        return model.no_sync()
    return contextlib.nullcontext()


def clip_grad_norm(model: nn.Module, max_norm: float) -> float:
    """Clip gradients to global L2 norm `max_norm`; return the norm before clipping, equal on every rank.

    Call it once per optimizer step, on the stepping micro-batch after its backward (and after
    `scaler.unscale_`): there the gradients are complete. On earlier micro-batches of an
    accumulated step they are partial (and under FSDP not yet reduced), so the norm would be
    meaningless; this function raises rather than return None or NaN when no gradient exists.
    Under FSDP2 the gradients are DTensor shards: torch's clip_grad_norm_ reduces the squared
    norms over the mesh and the result is materialized with `full_tensor()`. With fp16, a step
    whose gradients overflowed returns inf or nan (the GradScaler then skips that step).
    """
    if not (isinstance(max_norm, (int, float)) and math.isfinite(max_norm) and max_norm > 0):
        raise ValueError(f"max_norm must be a finite positive number, got {max_norm!r}")
    params = [p for p in _unwrap_compiled(model).parameters() if p.grad is not None]
    if not params:
        raise RuntimeError("clip_grad_norm found no gradients: call it after the backward of the stepping "
                           "micro-batch, before optimizer.zero_grad")
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    if hasattr(norm, "full_tensor"):  # a DTensor (FSDP2): replicated over the mesh
        norm = norm.full_tensor()
    return float(norm)


def strategy_of(model: nn.Module) -> str:
    """'fsdp', 'ddp' or 'none': how `model` (possibly torch.compile'd) is spread over ranks."""
    model = _unwrap_compiled(model)
    if _is_fsdp(model):
        return "fsdp"
    return "ddp" if isinstance(model, DistributedDataParallel) else "none"


def _is_fsdp(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _unwrap_compiled(model: nn.Module) -> nn.Module:
    return getattr(model, "_orig_mod", model)


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")


def _check_process_group(strategy: str, info: DistInfo) -> None:
    if info.world_size < 2 or not (dist.is_available() and dist.is_initialized()):
        raise ValueError(f"strategy={strategy} needs a process group of 2 or more ranks, got world_size "
                         f"{info.world_size} (process group initialized: {dist.is_initialized()}); launch with "
                         "`torchrun --nproc_per_node=N -m learnlib.train ...`, or use strategy=none")
    if info.world_size != dist.get_world_size():
        raise ValueError(f"DistInfo.world_size is {info.world_size} but the process group has "
                         f"{dist.get_world_size()} ranks: pass the DistInfo that distributed.setup returned")
