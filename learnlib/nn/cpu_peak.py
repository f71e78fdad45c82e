"""The peak of CPU memory that torch's allocator holds while a block of code runs (torch.profiler's memory events).

`CpuPeak` records every CPU allocation and free inside its `with` block and reports the highest
point above what was allocated when the block began (`peak`), and where it ended (`end`). It counts
tensor storages only (what torch allocates through its CPU allocator), not Python objects or the
allocator's own slack: the CPU counterpart of CUDA's `max_memory_allocated() - memory_allocated()`.
The profiler's start and stop lines, which its C++ side writes to the process's stderr with a
timestamp, are silenced (they would differ in every stored notebook output).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Self

import torch
from torch.profiler import ProfilerActivity, profile


@contextlib.contextmanager
def _quiet_stderr():
    """File descriptor 2 sent to /dev/null for the block (C++ writes bypass sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class CpuPeak:
    """`with CpuPeak() as p: ...`, then `p.peak` (bytes above the start at the highest point) and `p.end`."""

    def __init__(self):
        self.peak = 0
        self.end = 0
        self._profile = None

    def __enter__(self) -> Self:
        self._profile = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        with _quiet_stderr():
            self._profile.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        with _quiet_stderr():
            self._profile.__exit__(*exc)
        events = self._profile.profiler.kineto_results.events()
        cpu = torch.autograd.DeviceType.CPU
        deltas = sorted((e.start_ns(), i, e.nbytes()) for i, e in enumerate(events)
                        if e.name() == "[memory]" and e.device_type() == cpu)
        level = peak = 0
        for _, _, nbytes in deltas:
            level += nbytes
            peak = max(peak, level)
        self.peak, self.end = peak, level
