"""Helpers the benchmark scripts share: the machine's description and a wall/CPU timer."""

from __future__ import annotations

import ctypes
import platform
import statistics
import time
from pathlib import Path

from results import Figure, record  # noqa: F401 (Figure: for the scripts)

RESULTS = Path(__file__).with_name("RESULTS.md")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def return_freed_memory(threshold: int = 1 << 20) -> None:
    """Have glibc serve allocations of `threshold` bytes or more by mmap, returned to the system when freed.

    By default glibc raises that threshold to the largest block freed so far (up to 32 MiB), so the
    tensors of a big training step come from its heaps and stay in the process after they are freed:
    measuring several full-size steps in one process then needs a multiple of the largest step's memory.
    A no-op where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_threshold = -3  # glibc's mallopt parameter; setting it also turns the dynamic threshold off
    libc.mallopt(m_mmap_threshold, threshold)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds of `repeats` calls (after one warm-up)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def best_times(fns: dict, repeats: int) -> dict[str, float]:
    """Best wall seconds of each callable after one warm-up call each; the calls are interleaved so
    that load from other processes hits every contender alike."""
    return {name: wall for name, (wall, _) in best_wall_and_cpu(fns, repeats).items()}


def best_wall_and_cpu(fns: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """Like `best_times`, with the process CPU seconds of each fastest call."""
    for fn in fns.values():
        fn()
    best = {name: (float("inf"), float("nan")) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if wall < best[name][0]:
                best[name] = (wall, cpu)
    return best


def append_results(title: str, body: str, figures=()) -> None:
    """Append a section "## title (today)" with `body` to benchmarks/RESULTS.md and update the rows of
    `figures` (results.Figure) in its current-figures table, in one write."""
    record(title, body, figures, RESULTS)
