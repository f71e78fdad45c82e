"""A CUDA step without CUDA: tensors that say they live on `cuda:0`, and an error for every op mixing devices.

Why not `FakeTensorMode`: on a CPU-only PyTorch build it can hold tensors on `cuda:0`, but
autograd aborts the process (C++ `getDeviceGuardImpl`: "PyTorch is not linked with support for
cuda devices") the first time a fake CUDA parameter gets a gradient accumulator, `.to("cuda")`
refuses, and data-dependent ops (unique, nonzero, `.item()`; the sparse families are full of
them) have no fake result. So this mode keeps the values on a backing device (CPU: real numbers,
or meta: shapes only, for the full-size models, where `.item()`, `float()`, `.tolist()` and
`bincount` answer zeros) and tracks where each tensor would be:

- tensors that exist before the step (model, optimizer state, the batch) are on "cuda";
- `tensor.device` answers `cuda:0` and `tensor.is_cuda` True for them, so `device=x.device` and
  `x.new_*` / `*_like` keep tensors on "cuda", and `.to("cuda")`, `.cuda()`, `.to(x.device)` move
  a tensor there;
- a factory called inside the step without a device (`torch.arange(n)`, `torch.tensor(...)`,
  `torch.zeros(...)`, ...) or with `device="cpu"` makes a host tensor, as it would on a GPU;
- an op that takes a host tensor of one or more dimensions together with a "cuda" tensor
  raises `DeviceMismatchError` naming the op, as CUDA kernels do (0-dim host scalars and
  indexing with host indices are allowed, as on CUDA).
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.weak import WeakTensorKeyDictionary

CUDA = torch.device("cuda", 0)
FACTORIES = {torch.arange, torch.zeros, torch.ones, torch.empty, torch.full, torch.tensor, torch.as_tensor,
             torch.randn, torch.rand, torch.randint, torch.randperm, torch.linspace, torch.logspace, torch.eye,
             torch.empty_strided, torch.scalar_tensor, torch.normal, torch.tril_indices, torch.triu_indices}
ALLOWS_HOST_INDICES = {"__getitem__", "__setitem__"}
MOVES = {"to", "cuda", "cpu"}
_DEVICE = torch._C.TensorBase.__dict__["device"]  # the getters arrive as fresh method-wrappers: compare owners
_IS_CUDA = torch._C.TensorBase.__dict__["is_cuda"]


# Data-dependent ops have no meta kernel; with backing="meta" (shapes only) they answer placeholders.
META_PLACEHOLDERS = {
    "item": lambda t: False if t.dtype == torch.bool else (0 if not t.is_floating_point() else 0.0),
    "tolist": lambda t: torch.zeros(t.shape, dtype=t.dtype).tolist(),
    "__float__": lambda t: 0.0, "__int__": lambda t: 0, "__index__": lambda t: 0, "__bool__": lambda t: False,
    "bincount": lambda t, weights=None, minlength=0: torch.zeros(max(minlength, 1), dtype=torch.long, device="meta"),
}


class DeviceMismatchError(RuntimeError):
    """An op of a CUDA step received a tensor that would be on the CPU."""


def _is_cuda_target(arg) -> bool | None:
    """True for a CUDA device spec, False for a CPU one, None when `arg` names no device."""
    if isinstance(arg, torch.Tensor):
        return None
    if isinstance(arg, (str, torch.device)):
        kind = torch.device(arg).type
        return True if kind == "cuda" else (False if kind == "cpu" else None)
    if isinstance(arg, int) and not isinstance(arg, bool):
        return True  # .cuda(0), .to(0)
    return None


class FakeCuda(TorchFunctionMode):
    """Run a training step as if on `cuda:0`; values live on `backing` ("cpu" or "meta")."""

    def __init__(self, backing: str = "cpu"):
        super().__init__()
        self.backing = torch.device(backing)
        self.host = WeakTensorKeyDictionary()  # tensors that a real CUDA run would hold on the CPU
        self.ops: list[str] = []

    def _on_host(self, t: torch.Tensor) -> bool:
        return t in self.host

    def _tag(self, out, host: bool):
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                if host:
                    self.host[t] = True
                elif t in self.host:
                    del self.host[t]
        return out

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        owner = getattr(func, "__self__", None)
        if owner is _DEVICE:
            return args[0].device if self._on_host(args[0]) else CUDA
        if owner is _IS_CUDA:
            return not self._on_host(args[0])
        name = getattr(func, "__name__", "")
        is_method = isinstance(owner, type) or "TensorBase" in getattr(func, "__qualname__", "")
        if func in FACTORIES:
            target = _is_cuda_target(kwargs.get("device"))
            kwargs = {**kwargs, "device": self.backing} if target else kwargs
            if not target and self.backing.type == "meta":
                kwargs = {**kwargs, "device": self.backing}
            if func in (torch.tensor, torch.as_tensor) and args and isinstance(args[0], torch.Tensor):
                return self._tag(func(*args, **kwargs), self._on_host(args[0]) and not target)
            return self._tag(func(*args, **kwargs), host=not target)
        if is_method and name in MOVES:
            return self._move(name, func, args, kwargs)
        if self.backing.type == "meta" and name in META_PLACEHOLDERS:
            return self._tag(META_PLACEHOLDERS[name](*args, **kwargs), host=False)
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        host = [t for t in tensors if self._on_host(t)]
        device = [t for t in tensors if not self._on_host(t)]
        if device and name not in ALLOWS_HOST_INDICES:
            bad = [t for t in host if t.dim() > 0]
            if bad:
                name = getattr(func, "__qualname__", None) or getattr(func, "__name__", str(func))
                raise DeviceMismatchError(
                    f"{name}: a host tensor {tuple(bad[0].shape)} {bad[0].dtype} meets tensors on cuda:0; "
                    "create it with device=<input>.device or move it with .to(<input>.device)")
        out = func(*args, **kwargs)
        self.ops.append(getattr(func, "__name__", str(func)))
        return self._tag(out, host=bool(host) and not device)

    def _move(self, name, func, args, kwargs):
        t = args[0]
        if name == "cuda":
            target = True
        elif name == "cpu":
            target = False
        else:
            spec = [a for a in args[1:] if not isinstance(a, (torch.dtype, bool))] + [kwargs.get("device")]
            other = next((a for a in args[1:] if isinstance(a, torch.Tensor)), kwargs.get("other"))
            target = not self._on_host(other) if isinstance(other, torch.Tensor) else next(
                (v for v in map(_is_cuda_target, spec) if v is not None), None)
        if target is None:  # a dtype or copy change only: stays where it is
            return self._tag(func(*args, **kwargs), self._on_host(t))
        dtype = next((a for a in args[1:] if isinstance(a, torch.dtype)), kwargs.get("dtype"))
        if isinstance(dtype, torch.dtype):
            t = t.to(dtype)
        moved = t.view_as(t)  # an alias, so the source keeps its own place
        if moved.device != self.backing and self.backing.type == "meta":
            moved = moved.to(self.backing)
        return self._tag(moved, host=not target)


def to_backing(tree, backing: str):
    """Every tensor of `tree` (a batch) on the backing device."""
    return tree_map(lambda t: t.to(backing) if isinstance(t, torch.Tensor) else t, tree)
