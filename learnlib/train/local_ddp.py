"""Run `fit` (or any function) on several local CPU processes joined by a gloo group: for tests and notebooks.

`run_local_ddp` meets on a TCP port as torchrun does; `spawn_ranks` through a file in a fresh
temporary folder (no port chosen in one process and bound later in another). Each rank ends in a fixed order: a barrier (every collective done on every rank), the group
destroyed, then the process leaves without interpreter finalization, so that no C++ thread of
torch.distributed (gloo's workers, a group a DeviceMesh still references) is torn down after
Python, which can abort a process ("terminate called without an active exception").
"""

from __future__ import annotations

import os
import random
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import torch.multiprocessing as mp
from omegaconf import DictConfig, OmegaConf


def free_port() -> int:
    """A TCP port on the loopback interface that no process listens on now, below the ephemeral range.

    The port is free when chosen and bound later by rank 0; the ports the system hands out on its own
    (every `bind(0)`, e.g. gloo's connections) come from the ephemeral range, so one chosen below it
    cannot be taken by them in between.
    """
    low = _ephemeral_range()[0]
    candidates = list(range(max(1024, low - 12000), low))
    random.SystemRandom().shuffle(candidates)
    for port in candidates[:200]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # everything below is taken: any free port
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _end_rank(code: int) -> None:
    """Leave the group in order, then the process without interpreter finalization (see the module docstring)."""
    import torch.distributed as dist

    if dist.is_initialized():
        if code == 0:
            dist.barrier()  # no rank tears down while another still runs a collective
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run_rank(fn: Callable, rank: int, args: tuple) -> None:
    code = 0
    try:
        fn(rank, *args)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 (reported here: the process leaves through os._exit)
        traceback.print_exc()
        code = 1
    _end_rank(code)


def _rank_entry(rank: int, world_size: int, store: str, fn: Callable, args: tuple) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
                       "OMP_NUM_THREADS": "1"})
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    _run_rank(fn, rank, args)


def spawn_ranks(fn: Callable, world_size: int, *args) -> None:
    """Call `fn(rank, *args)` in `world_size` spawned processes joined by a gloo group (RANK, WORLD_SIZE set).

    The ranks meet through a file in a fresh temporary folder (no TCP port to choose). `fn` must be
    importable (a module-level function); mp.ProcessExitedException if a rank fails.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    with tempfile.TemporaryDirectory(prefix="learnlib-ranks-") as folder:
        mp.start_processes(_rank_entry, args=(world_size, os.path.join(folder, "store"), fn, args),
                           nprocs=world_size, join=True, start_method="spawn")


def _fit(rank: int, cfg_yaml: str) -> None:
    from learnlib.train.trainer import fit

    fit(OmegaConf.create(cfg_yaml))


def _worker(rank: int, world_size: int, port: int, cfg_yaml: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size), "OMP_NUM_THREADS": "1"})
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)  # fit keeps a group already up
    _run_rank(_fit, rank, (cfg_yaml,))


def run_local_ddp(cfg: DictConfig, world_size: int = 2) -> None:
    """Train `cfg` with `world_size` CPU processes joined by a gloo process group."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    cfg = OmegaConf.merge(cfg, {"trainer": {"device": "cpu"}})
    mp.start_processes(_worker, args=(world_size, free_port(), OmegaConf.to_yaml(cfg)),
                       nprocs=world_size, join=True, start_method="spawn")
