"""Count the bytes autograd saves for backward, once per storage, attributed to the blocks of a model.

Works on real tensors (measurement) and on FakeTensors (the estimate's shape-only trace).
Storages of parameters and buffers are model state, not activations, and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


def storage_key(t: torch.Tensor) -> int:
    """Identity of the storage behind `t`: the data pointer for real tensors, the storage handle for fake ones."""
    storage = t.untyped_storage()
    if t.device.type == "meta" or type(t).__name__ == "FakeTensor":
        return storage._cdata
    return storage.data_ptr()


@dataclass
class SavedTensors:
    """Saved-for-backward storages seen during a forward: bytes by storage, and which block saved each."""

    nbytes: dict[int, int] = field(default_factory=dict)
    owner: dict[int, int | None] = field(default_factory=dict)  # block index, None outside blocks
    block_inputs: dict[int, int] = field(default_factory=dict)  # storages of the blocks' tensor arguments

    @property
    def total(self) -> int:
        """Bytes of every distinct saved storage."""
        return sum(self.nbytes.values())

    def per_block(self, num_blocks: int) -> list[int]:
        """Bytes first saved inside each block."""
        out = [0] * num_blocks
        for key, owner in self.owner.items():
            if owner is not None:
                out[owner] += self.nbytes[key]
        return out

    @property
    def kept_with_checkpointing(self) -> int:
        """Bytes saved when every block is checkpointed: outside-block storages plus the blocks' inputs."""
        kept = {k: n for k, n in self.nbytes.items() if self.owner[k] is None}
        kept.update(self.block_inputs)
        return sum(kept.values())


class SavedTensorTracker:
    """Context manager recording what autograd saves inside it (see `SavedTensors`).

    `model` (optional) gives the parameters and buffers to skip and the `.blocks` whose
    saved tensors and inputs are attributed per block; `exclude` adds more tensors to skip.
    """

    def __init__(self, model: nn.Module | None = None, exclude: list[torch.Tensor] = ()):
        self.result = SavedTensors()
        state = list(exclude)
        if model is not None:
            state += list(model.parameters()) + list(model.buffers())
        self._state = {storage_key(t) for t in state}
        self._blocks = list(getattr(model, "blocks", ())) if model is not None else []
        self._current: int | None = None
        self._handles = []

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        if key not in self._state and key not in self.result.nbytes:
            self.result.nbytes[key] = t.untyped_storage().nbytes()
            self.result.owner[key] = self._current
        return t

    def _enter_block(self, index: int):
        def hook(module, args, kwargs):
            self._current = index
            for arg in (*args, *kwargs.values()):
                if isinstance(arg, torch.Tensor) and torch.is_grad_enabled():
                    key = storage_key(arg)
                    if key not in self._state:
                        self.result.block_inputs[key] = arg.untyped_storage().nbytes()
        return hook

    def _leave_block(self, module, args, output):
        self._current = None

    def __enter__(self) -> SavedTensors:
        for i, block in enumerate(self._blocks):
            self._handles.append(block.register_forward_pre_hook(self._enter_block(i), with_kwargs=True))
            self._handles.append(block.register_forward_hook(self._leave_block))
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self.result

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
