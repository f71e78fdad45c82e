"""The bytes of tensor storages that ops create inside a block of code and that are still alive, over time.

`LiveTensors` is a dispatch mode: every op's new output storage (not one of its inputs', as an
in-place or view op returns) is counted from its creation until it is freed. It runs on real tensors
and on FakeTensors (shapes only), forward and backward alike, so a traced training step gives the
highest point of its tensors without running a kernel. It sees tensors, not what a kernel allocates
inside itself (a convolution's workspace).
"""

from __future__ import annotations

import weakref
from typing import Self

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def _storages(tree) -> list[torch.UntypedStorage]:
    return [t.untyped_storage() for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


class LiveTensors(TorchDispatchMode):
    """`with LiveTensors() as live: ...`, then `live.levels`: the live bytes after each allocation, in order,
    and `live.peak`, their highest."""

    def __init__(self):
        super().__init__()
        self.levels: list[int] = []
        self._live: dict[int, int] = {}
        self._level = 0
        self._open = False

    @property
    def peak(self) -> int:
        """The most bytes alive at once (0 when nothing was allocated)."""
        return max(self.levels, default=0)

    def __enter__(self) -> Self:
        self._open = True
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        self._open = False
        super().__exit__(*exc)

    def _free(self, key: int) -> None:
        if self._open:
            self._level -= self._live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        inputs = {s._cdata for s in _storages((args, kwargs))}
        out = func(*args, **(kwargs or {}))
        for storage in _storages(out):
            key = storage._cdata
            if key in inputs or key in self._live:
                continue
            self._live[key] = storage.nbytes()
            self._level += self._live[key]
            self.levels.append(self._level)
            weakref.finalize(storage, self._free, key)
        return out
